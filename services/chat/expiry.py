"""Deleting disappearing messages once they have expired.

Every read already hides them from `expires_at` on (records.is_visible); this removes them
from the database soon after, in chat rather than through a TTL index (MessageStore.
_drop_server_ttl says why). Every chat replica runs it; deleting is idempotent, and the
jitter keeps replicas from sweeping in step.
"""
import asyncio
import logging
import random

from services.chat.storage.messages import MessageStore
from shared.contracts.base import utc_now
from shared.logs import log_event

log = logging.getLogger("parley.chat")


async def delete_expired_messages(messages: MessageStore, every_seconds: float) -> None:
    while True:
        await asyncio.sleep(every_seconds * random.uniform(0.5, 1.5))
        try:
            deleted = await messages.delete_expired(utc_now())
        except Exception as exc:  # the database is away: the next sweep deletes them
            log_event(log, "expired.sweep_failed", logging.WARNING, error=repr(exc))
            continue
        if deleted:
            log_event(log, "expired.deleted", messages=deleted)
