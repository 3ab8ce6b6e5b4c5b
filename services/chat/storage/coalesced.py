"""Acknowledged positions held in memory and written about once a second, not once per ack.

Why: every ack moved a device's cursor and its user's delivered marker with a write, and read
the markers first to know which moved: 0.75 documents written and 0.37 read per delivered
message at W = 10 (bench/dbops.py), a third of the database's work. Here the newest position per
(device, conversation) waits in memory; one bulk `$max` writes what moved every
`flush_seconds`, and on shutdown. Delivered markers (the highest of a user's devices' cursors)
are not written at all: they are read from the cursors (storage/cursors.py). Markers this
process moved or read stay known, so deciding whether an ack moved one costs no read.

What a crash costs: a kill -9 loses at most the last `flush_seconds` of positions. A device is
then sent again, at its next sync, messages it had acknowledged; clients drop them by seq
(delivery is at least once, docs/protocol.md). A `receipt.delivered` may be pushed twice
(idempotent: the highest seq counts). Nothing stored is lost: messages are written before they
are answered, only positions are late.

Several chat replicas: each holds the acks it handled. A sync served by another replica within
`flush_seconds` of an ack may resend what the ack covered (dropped by seq, as above).

Bounds: at most MAX_PENDING positions wait; an ack that would pass it writes them at once (the
ack waits for that write). At most MAX_KNOWN markers are remembered (~200 bytes each: ~10 MB);
past it they are forgotten and read again when next needed.
"""
import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TypeVar

from services.chat.domain.records import Cursor
from shared.logs import log_event

log = logging.getLogger("parley.chat.positions")

MAX_PENDING = 20_000
MAX_KNOWN = 50_000

DeviceKey = tuple[str, str, str]  # user, device, conversation
UserKey = tuple[str, str]  # user, conversation
Write = Callable[[dict[DeviceKey, int]], Awaitable[None]]
Key = TypeVar("Key", DeviceKey, UserKey)


def _raise(into: dict[Key, int], key: Key, seq: int) -> bool:
    """into[key] = max(into[key], seq); whether it moved."""
    if seq > into.get(key, 0):
        into[key] = seq
        return True
    return False


class CoalescedPositions:
    def __init__(self, write: Write, flush_seconds: float):
        self._write = write
        self.flush_seconds = flush_seconds
        self.cursors: dict[DeviceKey, int] = {}  # waiting to be written
        self.known_delivered: dict[UserKey, int] = {}  # highest seen, moved here or read
        self._flusher: asyncio.Task[None] | None = None
        self._writing = asyncio.Lock()

    async def advance(self, cursors: Iterable[Cursor], delivered: Mapping[UserKey, int]) -> None:
        for c in cursors:
            _raise(self.cursors, (c.user_id, c.device_id, c.conversation_id), c.seq)
        for key, seq in delivered.items():
            self.remember(key, seq)
        if len(self.cursors) >= MAX_PENDING:
            await self.flush()
        elif self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_later())

    def remember(self, key: UserKey, seq: int) -> None:
        if len(self.known_delivered) >= MAX_KNOWN:
            self.known_delivered.clear()
        _raise(self.known_delivered, key, seq)

    def newer_cursors(self, found: dict[str, int], user_id: str, device_id: str) -> dict[str, int]:
        """`found` (conversation → cursor from the database) with the pending ones of this device on top."""
        for (user, device, conversation_id), seq in self.cursors.items():
            if user == user_id and device == device_id:
                found[conversation_id] = max(found.get(conversation_id, 0), seq)
        return found

    def pending_of_user(self, user_id: str, conversation_ids: Iterable[str]) -> dict[str, int]:
        wanted = set(conversation_ids)
        best: dict[str, int] = {}
        for (user, _, conversation_id), seq in self.cursors.items():
            if user == user_id and conversation_id in wanted:
                best[conversation_id] = max(best.get(conversation_id, 0), seq)
        return best

    async def _flush_later(self) -> None:
        while self.cursors:
            await asyncio.sleep(self.flush_seconds)
            try:
                await self.flush()
            except Exception as exc:  # the database is away: what waits stays and goes next time
                log_event(log, "positions.flush_failed", logging.WARNING, error=repr(exc)[:200],
                          waiting=len(self.cursors))

    async def flush(self) -> None:
        """Write what waits (one bulk write); on failure it waits again, merged with newer ones."""
        async with self._writing:
            cursors, self.cursors = self.cursors, {}
            if not cursors:
                return
            try:
                await self._write(cursors)
            except BaseException:
                for key, seq in cursors.items():
                    _raise(self.cursors, key, seq)
                raise

    async def close(self) -> None:
        """Write what waits (shutdown); stop the timer."""
        if self._flusher is not None:
            self._flusher.cancel()
        await self.flush()
