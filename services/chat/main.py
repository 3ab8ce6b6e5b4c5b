"""chat: wiring only (clients → stores → handlers)."""
import asyncio
from datetime import timedelta
from typing import Any

from services.chat.background import every
from services.chat.domain.calls import CallPorts, check_calls
from services.chat.domain.interactions import burn_due
from services.chat.domain.delivery import Deliverer
from services.chat.expiry import delete_expired_messages
from services.chat.handlers import ChatContext, build_router
from services.chat.remote import AuthProfiles, FilesDirectory, FilesImages
from services.chat.storage.blocks import BlockStore
from services.chat.storage.calls import RedisCallStore
from services.chat.storage.conversations import ConversationStore
from services.chat.storage.cursors import CursorStore
from services.chat.storage.friendships import FriendshipStore
from services.chat.storage.invites import InviteStore, JoinRequestStore
from services.chat.storage.messages import MessageStore
from services.chat.storage.typing import TypingThrottle
from shared.broker import RpcClient
from shared.contracts.base import utc_now
from shared.contracts.chat import DeliveriesLost
from shared.presence import Presence
from shared.ratelimit import TokenBucket
from shared.runtime import Runtime, run
from shared.service import Router
from shared.stores import mongo_ping

# Background work of this process, held so that it is not garbage-collected.
_background: list[asyncio.Task[Any]] = []


async def wire(rt: Runtime) -> Router:
    friendships, conversations = FriendshipStore(rt.db), ConversationStore(rt.db)
    messages, cursors = MessageStore(rt.db), CursorStore(rt.db)
    for store in (friendships, conversations, messages, cursors):
        await store.ensure_indexes()
    blocks = BlockStore(rt.db)
    await blocks.ensure_indexes()
    invites, join_requests = InviteStore(rt.db), JoinRequestStore(rt.db)
    await invites.ensure_indexes()
    await join_requests.ensure_indexes()
    s = rt.settings
    rpc = await RpcClient(rt.broker, rt.instance_id).start()
    presence = Presence(rt.redis, s.namespace, s.presence_ttl_seconds)

    async def report_lost(why: str) -> None:
        await rt.broker.publish_event("deliveries.lost", DeliveriesLost(reason=why[:200]))

    deliver = Deliverer(presence, rt.broker.deliver, report_lost=report_lost)
    call_ports = CallPorts(
        calls=RedisCallStore(rt.redis, s.namespace),
        conversations=conversations,
        friendships=friendships,
        messages=messages,
        presence=presence,
        deliver=deliver,
        invites=TokenBucket(rt.redis, s.namespace, "call", s.call_invites_per_minute / 60, s.call_invite_burst),
        ring_seconds=s.call_ring_seconds,
    )
    _background.extend(
        asyncio.create_task(job)
        for job in (
            every(s.expired_sweep_seconds, lambda: delete_expired_messages(messages), "expired.sweep"),
            every(s.burn_check_seconds, lambda: burn_due(utc_now(), conversations, messages, deliver), "burn.check"),
            every(s.call_check_seconds, lambda: check_calls(call_ports), "calls.check"),
        )
    )
    return build_router(
        ChatContext(
            friendships=friendships,
            conversations=conversations,
            messages=messages,
            cursors=cursors,
            presence=presence,
            deliver=deliver,
            profiles=AuthProfiles(rpc),
            files=FilesDirectory(rpc),
            typing=TypingThrottle(rt.redis, rt.settings.namespace),
            health=lambda: mongo_ping(rt.mongo),
            calls=call_ports,
            blocks=blocks,
            invites=invites,
            join_requests=join_requests,
            images=FilesImages(rpc),
            edit_window=timedelta(seconds=s.edit_window_seconds),
            burn_unopened=timedelta(seconds=s.burn_unopened_seconds),
            sync_batch_size=rt.settings.sync_batch_size,
        )
    )


if __name__ == "__main__":
    run("chat", wire)
