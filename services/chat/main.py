"""chat: wiring only (clients → stores → handlers)."""
import asyncio
from typing import Any

from services.chat.expiry import delete_expired_messages

from services.chat.domain.ports import Deliverer
from services.chat.handlers import ChatContext, build_router
from services.chat.remote import AuthProfiles, FilesDirectory
from services.chat.storage.cursors import CursorStore
from services.chat.storage.friendships import FriendshipStore
from services.chat.storage.messages import MessageStore
from services.chat.storage.typing import TypingThrottle
from shared.broker import RpcClient
from shared.contracts.chat import DeliveriesLost
from shared.presence import Presence
from shared.runtime import Runtime, run
from shared.service import Router


# Background work of this process, held so that it is not garbage-collected.
_background: list[asyncio.Task[Any]] = []


async def wire(rt: Runtime) -> Router:
    friendships, messages, cursors = FriendshipStore(rt.db), MessageStore(rt.db), CursorStore(rt.db)
    for store in (friendships, messages, cursors):
        await store.ensure_indexes()
    _background.append(asyncio.create_task(delete_expired_messages(messages, rt.settings.expired_sweep_seconds)))
    rpc = await RpcClient(rt.broker, rt.instance_id).start()
    presence = Presence(rt.redis, rt.settings.namespace, rt.settings.presence_ttl_seconds)
    return build_router(
        ChatContext(
            friendships=friendships,
            messages=messages,
            cursors=cursors,
            presence=presence,
            deliver=Deliverer(
                presence, rt.broker.deliver,
                report_lost=lambda why: rt.broker.publish_event("deliveries.lost", DeliveriesLost(reason=why[:200])),
            ),
            profiles=AuthProfiles(rpc),
            files=FilesDirectory(rpc),
            typing=TypingThrottle(rt.redis, rt.settings.namespace),
            mongo=rt.mongo,
            sync_batch_size=rt.settings.sync_batch_size,
        )
    )


if __name__ == "__main__":
    run("chat", wire)
