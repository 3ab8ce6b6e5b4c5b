"""chat: wiring only (settings → clients → stores → handlers → consumers)."""
import asyncio

from services.chat.domain.ports import Deliverer
from services.chat.handlers import ChatContext, build_router
from services.chat.profiles import AuthProfiles
from services.chat.storage.cursors import CursorStore
from services.chat.storage.friendships import FriendshipStore
from services.chat.storage.messages import MessageStore
from shared.broker import Broker, RpcClient
from shared.ids import new_id
from shared.logs import configure_logging
from shared.metrics import serve_metrics
from shared.presence import Presence
from shared.service import ServiceRunner
from shared.settings import get_settings
from shared.stores import mongo_client, mongo_database, redis_client, wait_for_mongo


async def main() -> None:
    settings = get_settings()
    configure_logging("chat", settings.log_level, settings.log_format)
    serve_metrics(settings.metrics_port)
    mongo = mongo_client(settings)
    await wait_for_mongo(mongo, settings)
    db = mongo_database(mongo, settings)
    redis = redis_client(settings)
    friendships, messages, cursors = FriendshipStore(db), MessageStore(db), CursorStore(db)
    for store in (friendships, messages, cursors):
        await store.ensure_indexes()
    broker = await Broker(settings).connect()
    rpc = await RpcClient(broker, new_id("chat")).start()
    presence = Presence(redis, settings.namespace, settings.presence_ttl_seconds)
    ctx = ChatContext(
        friendships=friendships,
        messages=messages,
        cursors=cursors,
        presence=presence,
        deliver=Deliverer(presence, broker.deliver),
        profiles=AuthProfiles(rpc),
        mongo=mongo,
        sync_batch_size=settings.sync_batch_size,
    )
    try:
        await ServiceRunner(broker, build_router(ctx), settings).run_until_signalled()
    finally:
        await broker.close()
        await redis.aclose()
        await mongo.close()


if __name__ == "__main__":
    asyncio.run(main())
