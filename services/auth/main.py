"""auth: wiring only (settings → clients → stores → handlers → consumers)."""
import asyncio

from argon2 import PasswordHasher

from services.auth.domain.accounts import Passwords
from services.auth.handlers import build_router
from services.auth.storage.users import UserStore
from shared.broker import Broker
from shared.logs import configure_logging
from shared.metrics import serve_metrics
from shared.service import ServiceRunner
from shared.settings import get_settings
from shared.stores import mongo_client, mongo_database, redis_client, wait_for_mongo
from shared.tokens import Revocations, TokenCodec


async def main() -> None:
    settings = get_settings()
    configure_logging("auth", settings.log_level, settings.log_format)
    serve_metrics(settings.metrics_port)
    mongo = mongo_client(settings)
    await wait_for_mongo(mongo, settings)
    redis = redis_client(settings)
    users = UserStore(mongo_database(mongo, settings))
    await users.ensure_indexes()
    passwords = Passwords(
        PasswordHasher(time_cost=settings.argon2_time_cost, memory_cost=settings.argon2_memory_kib, parallelism=1)
    )
    tokens = TokenCodec(settings.jwt_secret, settings.token_ttl_seconds)
    router = build_router(users, passwords, tokens, Revocations(redis, settings.namespace), mongo)
    broker = await Broker(settings).connect()
    try:
        await ServiceRunner(broker, router, settings).run_until_signalled()
    finally:
        await broker.close()
        await redis.aclose()
        await mongo.close()


if __name__ == "__main__":
    asyncio.run(main())
