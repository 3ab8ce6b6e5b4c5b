"""Deleting disappearing messages once they have expired.

Every read already hides them from `expires_at` on (records.is_visible); this removes them
from the database soon after, in chat rather than through a TTL index (MessageStore.
_drop_server_ttl says why). One chat replica at a time runs it (service.py, a leased periodic job); deleting is
idempotent.
"""
import logging

from services.chat.storage.messages import MessageStore
from shared.contracts.base import utc_now
from shared.logs import log_event

log = logging.getLogger("parley.chat")


async def delete_expired_messages(messages: MessageStore) -> None:
    if deleted := await messages.delete_expired(utc_now()):
        log_event(log, "expired.deleted", messages=deleted)
