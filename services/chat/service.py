"""chat: friendships and blocks, conversations and groups, messages (send, store, sync, history,
receipts, edits, reactions, burning, expiry) and the pushes that carry them; the messages calls
leave (the calls service asks for them: services/chat/domain/call_messages.py).

`ChatService` is its handler classes together (handlers.py, group_handlers.py, both on the parts
declared in parts.py) and its periodic jobs, each run by one replica at a time.
"""
from datetime import timedelta

from services.chat.domain.interactions import burn_due
from services.chat.expiry import delete_expired_messages
from services.chat.group_handlers import GroupHandlers
from services.chat.handlers import ChatHandlers
from shared.contracts.base import utc_now
from shared.declared import periodic

# How far back each look for newly encrypted conversations reads (`encrypted_at` is dated a few
# seconds ahead): a look that comes late still finds what it missed.
ENCRYPTED_LOOK_BACK = timedelta(minutes=1)


class ChatService(ChatHandlers, GroupHandlers):
    @periodic("expired.sweep", every=lambda settings: settings.expired_sweep_seconds, once_across_replicas=True)
    async def delete_expired(self) -> None:
        """Disappearing messages, gone from every read already, are removed from the database."""
        await delete_expired_messages(self.messages)

    @periodic("encrypted.watch", every=lambda settings: settings.encryption_watch_seconds)
    async def learn_encrypted(self) -> None:
        """Every replica: direct conversations it holds in memory that another replica encrypted
        are held encrypted before their `encrypted_at` comes (it is dated two looks ahead)."""
        await self.conversations.learn_encrypted(utc_now() - ENCRYPTED_LOOK_BACK)

    @periodic("device_messages.sweep", every=lambda settings: settings.device_messages_sweep_seconds,
              once_across_replicas=True)
    async def delete_expired_device_messages(self) -> None:
        await self.device_messages.delete_expired(utc_now())

    @periodic("burn.check", every=lambda settings: settings.burn_check_seconds, once_across_replicas=True)
    async def burn_what_is_due(self) -> None:
        await burn_due(utc_now(), self)
