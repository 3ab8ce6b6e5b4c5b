"""Acknowledged positions held in memory and written about once a second, not once per ack.
(`Coalesced` is the mechanism: storage/appender.py records conversations' `last_seq` with it too.)

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

Bounds: at most MAX_PENDING positions wait (~300-400 bytes each with the longest device ids,
measured with tracemalloc: at most ~8 MB); an ack that would pass it writes them at once (the
ack waits for that write). At most MAX_KNOWN markers are remembered (~200 bytes each: ~10 MB);
past it they are forgotten and read again when next needed.
"""
import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime
from typing import Generic, TypeVar

from services.chat.domain.records import Cursor
from shared.logs import log_event

log = logging.getLogger("parley.chat.coalesced")

MAX_PENDING = 20_000
MAX_KNOWN = 50_000

DeviceKey = tuple[str, str, str]  # user, device, conversation
UserKey = tuple[str, str]  # user, conversation
K = TypeVar("K")
V = TypeVar("V", int, tuple[int, datetime])  # compared with `>`: a seq, or (seq, when)


def _raise(into: dict[K, V], key: K, value: V) -> None:
    """into[key] = max(into[key], value)."""
    if key not in into or value > into[key]:
        into[key] = value


class Coalesced(Generic[K, V]):
    """The highest value per key, waiting in memory; `write` takes them all at once every
    `flush_seconds` (a timer that runs while some wait), when more than MAX_PENDING wait (the
    caller adding them waits for that write), and at close. A failed write keeps them waiting,
    merged with newer ones; `event` names its log line (`<event>.flush_failed`)."""

    def __init__(self, write: Callable[[dict[K, V]], Awaitable[None]], flush_seconds: float, event: str):
        self._write: Callable[[dict[K, V]], Awaitable[None]] = write
        self.flush_seconds = flush_seconds
        self.event = event
        self.waiting: dict[K, V] = {}
        self._flusher: asyncio.Task[None] | None = None
        self._writing = asyncio.Lock()

    async def add(self, items: Iterable[tuple[K, V]]) -> None:
        for key, value in items:
            _raise(self.waiting, key, value)
        if len(self.waiting) >= MAX_PENDING:
            await self.flush()
        elif self.waiting and (self._flusher is None or self._flusher.done()):
            self._flusher = asyncio.create_task(self._flush_later())

    async def _flush_later(self) -> None:
        while self.waiting:
            await asyncio.sleep(self.flush_seconds)
            try:
                await self.flush()
            except Exception as exc:  # the database is away: what waits stays and goes next time
                log_event(log, f"{self.event}.flush_failed", logging.WARNING, error=repr(exc)[:200],
                          waiting=len(self.waiting))

    async def flush(self) -> None:
        """Write what waits (one call of `write`); on failure it waits again, merged with newer ones."""
        async with self._writing:
            batch, self.waiting = self.waiting, {}
            if not batch:
                return
            try:
                await self._write(batch)
            except BaseException:
                for key, value in batch.items():
                    _raise(self.waiting, key, value)
                raise

    async def close(self) -> None:
        """Write what waits (shutdown); stop the timer."""
        if self._flusher is not None:
            self._flusher.cancel()
        await self.flush()


class CoalescedPositions(Coalesced[DeviceKey, int]):
    """Devices' cursors waiting to be written, and the delivered markers this process knows."""

    def __init__(self, write: Callable[[dict[DeviceKey, int]], Awaitable[None]], flush_seconds: float):
        super().__init__(write, flush_seconds, "positions")
        self.known_delivered: dict[UserKey, int] = {}  # highest seen, moved here or read

    async def advance(self, cursors: Iterable[Cursor], delivered: Mapping[UserKey, int]) -> None:
        for key, seq in delivered.items():
            self.remember(key, seq)
        await self.add(((c.user_id, c.device_id, c.conversation_id), c.seq) for c in cursors)

    def remember(self, key: UserKey, seq: int) -> None:
        if len(self.known_delivered) >= MAX_KNOWN:
            self.known_delivered.clear()
        _raise(self.known_delivered, key, seq)

    def newer_cursors(self, found: dict[str, int], user_id: str, device_id: str) -> dict[str, int]:
        """`found` (conversation → cursor from the database) with the pending ones of this device on top."""
        for (user, device, conversation_id), seq in self.waiting.items():
            if user == user_id and device == device_id:
                found[conversation_id] = max(found.get(conversation_id, 0), seq)
        return found

    def pending_of_user(self, user_id: str, conversation_ids: Iterable[str]) -> dict[str, int]:
        wanted = set(conversation_ids)
        best: dict[str, int] = {}
        for (user, _, conversation_id), seq in self.waiting.items():
            if user == user_id and conversation_id in wanted:
                best[conversation_id] = max(best.get(conversation_id, 0), seq)
        return best
