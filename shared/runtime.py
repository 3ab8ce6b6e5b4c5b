"""What every service process does around its own wiring: settings, logs, metrics, MongoDB,
Redis and RabbitMQ up; consume until SIGTERM; everything closed in order."""
import asyncio
import sys

from shared.broker import Broker, RpcClient
from shared.declared import Runtime, Service
from shared.ids import new_id
from shared.logs import configure_logging
from shared.metrics import serve_metrics
from shared.periodic import Leases
from shared.service import ServiceRunner
from shared.settings import Settings, UnsafeSecret, get_settings, refuse_unsafe_secrets
from shared.stores import close_mongo, mongo_client, mongo_database, redis_client, wait_for_mongo


async def serve(service_class: type[Service]) -> None:
    """Run one service: its parts built from the process's clients, its bindings consumed and its
    periodic jobs run until SIGTERM, then everything closed in order."""
    name = service_class.name
    settings = get_settings()
    refuse_to_start_unsafely(name, settings)
    configure_logging(name, settings.log_level, settings.log_format)
    serve_metrics(settings.metrics_port)
    mongo = mongo_client(settings)  # connects on first use: never, for a service without collections
    if service_class.uses_database:
        await wait_for_mongo(mongo, settings)
    redis = redis_client(settings)
    broker = await Broker(settings).connect()
    instance_id = new_id(name)
    try:
        rpc = await RpcClient(broker, instance_id).start()
        rt = Runtime(settings, mongo_database(mongo, settings), redis, mongo, broker, rpc, instance_id)
        service = await service_class.build(rt)
        leases = Leases(redis, settings.namespace, instance_id)
        try:
            await ServiceRunner(broker, service.router(), settings, leases).run_until_signalled()
        finally:
            await service.close()
    finally:
        await broker.close()
        await redis.aclose()
        await close_mongo(mongo)  # bounded: the database may be gone already


def refuse_to_start_unsafely(service: str, settings: Settings) -> None:
    """Exit (status 1, the reason on stderr, no traceback) with a public or placeholder JWT
    secret outside development: anyone could sign tokens the system would accept."""
    try:
        refuse_unsafe_secrets(settings)
    except UnsafeSecret as exc:
        sys.exit(f"{service}: refusing to start: {exc}")


def run(service_class: type[Service]) -> None:
    """The process entry point: `serve` on uvloop (libuv's loop: ~2x fewer CPU cycles per
    socket event than asyncio's selector loop) where it is installed, else asyncio's own."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(service_class))
    else:
        uvloop.run(serve(service_class))
