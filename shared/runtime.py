"""What every service process does around its own wiring: settings, logs, metrics, MongoDB,
Redis and RabbitMQ up; consume until SIGTERM; everything closed in order."""
import asyncio
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import redis.asyncio as aioredis

from shared.broker import Broker
from shared.ids import new_id
from shared.logs import configure_logging
from shared.metrics import serve_metrics
from shared.service import Router, ServiceRunner
from shared.settings import Settings, UnsafeSecret, get_settings, refuse_unsafe_secrets
from shared.stores import Database, MongoClient, mongo_client, mongo_database, redis_client, wait_for_mongo


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    mongo: MongoClient
    db: Database
    redis: aioredis.Redis
    broker: Broker
    instance_id: str  # this process, among the replicas of its service


async def serve(service: str, wire: Callable[[Runtime], Awaitable[Router]]) -> None:
    """Run one service: `wire` builds its stores and handlers from the shared clients."""
    settings = get_settings()
    refuse_to_start_unsafely(service, settings)
    configure_logging(service, settings.log_level, settings.log_format)
    serve_metrics(settings.metrics_port)
    mongo = mongo_client(settings)
    await wait_for_mongo(mongo, settings)
    redis = redis_client(settings)
    broker = await Broker(settings).connect()
    instance_id = new_id(service)
    try:
        router = await wire(Runtime(settings, mongo, mongo_database(mongo, settings), redis, broker, instance_id))
        await ServiceRunner(broker, router, settings).run_until_signalled()
    finally:
        await broker.close()
        await redis.aclose()
        await mongo.close()


def refuse_to_start_unsafely(service: str, settings: Settings) -> None:
    """Exit (status 1, the reason on stderr, no traceback) with a public or placeholder JWT
    secret outside development: anyone could sign tokens the system would accept."""
    try:
        refuse_unsafe_secrets(settings)
    except UnsafeSecret as exc:
        sys.exit(f"{service}: refusing to start: {exc}")


def run(service: str, wire: Callable[[Runtime], Awaitable[Router]]) -> None:
    """The process entry point: `serve` on uvloop (libuv's loop: ~2x fewer CPU cycles per
    socket event than asyncio's selector loop) where it is installed, else asyncio's own."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(service, wire))
    else:
        uvloop.run(serve(service, wire))
