"""What chat is made of: its stores, presence and pushes, the services it asks, and the settings
its rules read. Declared once here; chat's handler classes (handlers.py, group_handlers.py)
read them as attributes, and tests give the ones they replace
(`await ChatService.build(rt, profiles=StaticProfiles(...), deliver=...)`).
"""
import logging
from datetime import timedelta

from services.chat.domain.in_order import InOrder
from shared.delivery import Deliverer
from services.chat.remote import AuthKeys, AuthProfiles, FilesDirectory
from services.chat.storage.blocks import BlockStore
from services.chat.storage.conversations import ConversationStore
from services.chat.storage.cursors import CursorStore
from services.chat.storage.device_messages import DeviceMessageStore
from services.chat.storage.friendships import FriendshipStore
from services.chat.storage.invites import InviteStore, JoinRequestStore
from services.chat.storage.messages import MessageStore
from services.chat.storage.typing import TypingThrottle
from shared.contracts.chat import DeliveriesLost
from shared.declared import Runtime, Service, part
from shared.logs import log_event
from shared.presence import Presence

log = logging.getLogger("parley.chat")


def _deliverer(rt: Runtime, presence: Presence) -> Deliverer:
    """Pushes through RabbitMQ; a push that failed has the gateways resync their sockets."""
    broker = rt.broker()

    async def report_lost(why: str) -> None:
        await broker.publish_event("deliveries.lost", DeliveriesLost(reason=why[:200]))

    return Deliverer(presence, broker.deliver, report_lost=report_lost)


class ChatParts(Service):
    name = "chat"

    friendships = part(lambda rt, s: FriendshipStore(rt.db))
    conversations = part(lambda rt, s: ConversationStore(rt.db))
    messages = part(lambda rt, s: MessageStore(rt.db, rt.settings.last_seq_flush_seconds))
    cursors = part(lambda rt, s: CursorStore(rt.db, rt.settings.positions_flush_seconds))
    blocks = part(lambda rt, s: BlockStore(rt.db))
    invites = part(lambda rt, s: InviteStore(rt.db))
    join_requests = part(lambda rt, s: JoinRequestStore(rt.db))
    presence = part(lambda rt, s: Presence(rt.redis, rt.settings.namespace, rt.settings.presence_ttl_seconds, rt.settings.redis_buckets))
    deliver = part(lambda rt, s: _deliverer(rt, s.presence))
    events = part(lambda rt, s: rt.broker())  # publish_event: `<ns>.events`, confirmed
    announcements = part(lambda rt, s: InOrder())  # each conversation's, in the order stored
    typing = part(lambda rt, s: TypingThrottle(rt.redis, rt.settings.namespace))
    profiles = part(lambda rt, s: AuthProfiles(rt.rpc()))
    files = part(lambda rt, s: FilesDirectory(rt.rpc()))
    # end-to-end encryption (docs/security.md)
    device_messages = part(lambda rt, s: DeviceMessageStore(rt.db))
    device_keys = part(lambda rt, s: AuthKeys(rt.rpc()))

    async def close(self) -> None:
        """Positions and `last_seq`s still in memory are written before the process ends (if the
        database is away they are lost: devices are sent again what they had, coalesced.py;
        `last_seq` is caught up by the next send, appender.py)."""
        for store in (self.cursors, self.messages):
            try:
                await store.close()
            except Exception as exc:
                log_event(log, "positions.unwritten_at_exit", logging.WARNING, error=repr(exc)[:200])

    @property
    def edit_window(self) -> timedelta:
        return timedelta(seconds=self.settings.edit_window_seconds)

    @property
    def burn_unopened(self) -> timedelta:
        return timedelta(seconds=self.settings.burn_unopened_seconds)

    @property
    def sync_batch_size(self) -> int:
        return self.settings.sync_batch_size

    @property
    def encryption_lead(self) -> timedelta:
        """How far ahead conversations.encrypt dates encryption: two of each replica's looks for
        newly encrypted conversations (ChatService.learn_encrypted)."""
        return timedelta(seconds=2 * self.settings.encryption_watch_seconds)

    @property
    def device_message_ttl(self) -> timedelta:
        return timedelta(seconds=self.settings.device_message_ttl_seconds)

    @property
    def device_messages_max(self) -> int:
        return self.settings.device_messages_max

    @property
    def device_messages_max_bytes(self) -> int:
        return self.settings.device_messages_max_bytes
