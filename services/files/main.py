"""files: for now the process connects and answers readiness; upload and download come with
the file-transfer issue (GridFS through AsyncGridFSBucket)."""
import asyncio

from shared.broker import Broker
from shared.contracts.base import Empty
from shared.contracts.wire import Caller
from shared.logs import configure_logging
from shared.metrics import serve_metrics
from shared.service import Router, ServiceRunner
from shared.settings import get_settings
from shared.stores import mongo_client, mongo_ping, wait_for_mongo


async def main() -> None:
    settings = get_settings()
    configure_logging("files", settings.log_level, settings.log_format)
    serve_metrics(settings.metrics_port)
    mongo = mongo_client(settings)
    await wait_for_mongo(mongo, settings)
    router = Router("files")

    @router.operation("files.health", timeout=5)
    async def health(request: Empty, caller: Caller) -> Empty:
        await mongo_ping(mongo)
        return Empty()

    broker = await Broker(settings).connect()
    try:
        await ServiceRunner(broker, router, settings).run_until_signalled()
    finally:
        await broker.close()
        await mongo.close()


if __name__ == "__main__":
    asyncio.run(main())
