"""files: for now the process connects and answers readiness; upload and download come with
the file-transfer issue (GridFS through AsyncGridFSBucket)."""
import asyncio

from shared.contracts.base import Empty
from shared.contracts.wire import Caller
from shared.runtime import Runtime, serve
from shared.service import Router
from shared.stores import mongo_ping


async def wire(rt: Runtime) -> Router:
    router = Router("files")

    @router.operation("files.health", timeout=5)
    async def health(request: Empty, caller: Caller) -> Empty:
        await mongo_ping(rt.mongo)
        return Empty()

    return router


if __name__ == "__main__":
    asyncio.run(serve("files", wire))
