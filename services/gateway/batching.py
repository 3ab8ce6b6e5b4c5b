"""Many sockets' message.sends (or acks) to chat in one command, at most one batch per socket
in flight.

Why: a round trip per message (gateway → chat → database → reply) capped one device at
1 / round trip and cost every message a broker message, an insert and a reply of its own.
Here, whatever arrived while earlier batches were out goes as the next batch, so at low load
a batch is one item (no added latency: a flush is scheduled for the next turn of the loop, not
after a timer) and under load batches grow by themselves, as in OpenIM's msg-transfer.

Order: with `one_per_socket`, a socket's items wait while a batch holding its earlier items is
in flight, and go, in arrival order, in the next one. Chat stores a batch's items in order, so
a device's messages take seqs in the order it sent them, as with the send lock before.

Bounds: at most `max_in_flight` batches out at once and `max_items` items in one; items wait
in memory meanwhile, bounded by each socket's MAX_IN_FLIGHT_PER_SOCKET requests.

Cost: the items of a socket with a batch out wait in a queue of that socket's (`_held`), not in
the line the next batch is taken from, so taking a batch looks only at items that can go. (One
line scanned whole on every flush, held items popped and pushed back, was 6 % of the gateway's
CPU with 200 sockets of 10 sends outstanding each: issue 26.)
"""
import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from services.gateway.metrics import BATCH_ITEMS
from shared.contracts.batches import ItemResult
from shared.contracts.errors import ErrorCode, ParleyError
from shared.logs import log_event
from shared.outages import is_outage

log = logging.getLogger("parley.gateway")

T = TypeVar("T")


@dataclass(eq=False)
class Queued(Generic[T]):
    socket: str  # the connection id: the unit of order
    item: T
    answer: asyncio.Future[dict[str, Any]] = field(repr=False)


SendBatch = Callable[[list[T]], Awaitable[list[ItemResult]]]


class Batcher(Generic[T]):
    def __init__(self, name: str, send: SendBatch[T], *, max_items: int, max_in_flight: int, one_per_socket: bool):
        self.name = name
        self._send = send
        self.max_items = max_items
        self.max_in_flight = max_in_flight
        self.one_per_socket = one_per_socket
        # Items that may go in the next batch, in arrival order (with `one_per_socket`: only items
        # of sockets without a batch out).
        self._waiting: deque[Queued[T]] = deque()
        # With `one_per_socket`: the items of each socket with a batch out, in arrival order.
        self._held: dict[str, deque[Queued[T]]] = {}
        self._busy: set[str] = set()  # sockets with a batch in flight (one_per_socket)
        self._in_flight: set[asyncio.Task[None]] = set()
        self._flush_scheduled = False
        self._observe = BATCH_ITEMS.labels(name).observe

    @property
    def waiting(self) -> int:
        return len(self._waiting) + sum(len(held) for held in self._held.values())

    async def submit(self, socket: str, item: T) -> dict[str, Any]:
        """Queue one item; its reply data, or the ParleyError that answers it."""
        return await self.enqueue(socket, item)

    def enqueue(self, socket: str, item: T) -> asyncio.Future[dict[str, Any]]:
        """Queue one item; the future of its reply data (or of the ParleyError that answers it).
        Cancelling the future before its batch goes withdraws the item."""
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        queued = Queued(socket, item, answer)
        if self.one_per_socket and socket in self._busy:
            held = self._held.get(socket)
            if held is None:
                held = self._held[socket] = deque()
            held.append(queued)
        else:
            self._waiting.append(queued)
            self._schedule_flush()
        return answer

    def _schedule_flush(self) -> None:
        # Next turn of the loop: the frames that arrived in this one join the same batch.
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        while self._waiting and len(self._in_flight) < self.max_in_flight:
            batch = self._take()
            if not batch:
                return
            task = asyncio.create_task(self._send_batch(batch))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    def _take(self) -> list[Queued[T]]:
        """The next batch: waiting items in arrival order (every one of them may go)."""
        batch: list[Queued[T]] = []
        waiting = self._waiting
        while waiting and len(batch) < self.max_items:
            queued = waiting.popleft()
            if not queued.answer.done():  # done: its asker gave up (cancelled), nothing to send
                batch.append(queued)
        if self.one_per_socket:
            taken = {q.socket for q in batch}
            self._busy |= taken
            if waiting:  # cut at max_items: what its sockets still have waiting is held now
                self._hold_behind(taken)
        return batch

    def _hold_behind(self, sockets: set[str]) -> None:
        """Move the waiting items of `sockets` (which now have a batch out) to their held queues;
        their held queues are empty (a socket's items are held only while it has a batch out)."""
        still: deque[Queued[T]] = deque()
        for queued in self._waiting:
            if queued.socket in sockets:
                self._held.setdefault(queued.socket, deque()).append(queued)
            else:
                still.append(queued)
        self._waiting = still

    async def _send_batch(self, batch: list[Queued[T]]) -> None:
        self._observe(len(batch))
        try:
            results = await self._send([q.item for q in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"{self.name}: {len(results)} answers for {len(batch)} items")
            for queued, result in zip(batch, results, strict=True):
                if queued.answer.done():
                    continue
                if result.ok:
                    queued.answer.set_result(result.data or {})
                else:
                    assert result.error is not None
                    queued.answer.set_exception(ParleyError(result.error.code, result.error.message))
        except Exception as exc:
            self._fail(batch, exc)
        finally:
            if self.one_per_socket:
                for socket in {q.socket for q in batch}:
                    self._busy.discard(socket)
                    held = self._held.pop(socket, None)
                    if held:
                        self._waiting.extend(held)
            # Its slot is free now (not when the done-callback runs, after the flush below).
            self._in_flight.discard(asyncio.current_task())
            if self._waiting:
                self._schedule_flush()

    def _fail(self, batch: list[Queued[T]], exc: Exception) -> None:
        """The whole batch failed: every item gets the same answer (`unavailable` when the
        broker or chat was away, which a client may safely retry), and so do the items of its
        sockets that wait for it (with `one_per_socket`): sent on, they would be stored ahead
        of the failed ones that their device is about to send again."""
        if isinstance(exc, ParleyError):
            error = exc
        elif is_outage(exc):
            error = ParleyError.unavailable("a backend is unavailable; retry")
        else:
            log_event(log, "batch.failed", logging.ERROR, batch=self.name, items=len(batch), error=repr(exc))
            error = ParleyError(ErrorCode.INTERNAL, "internal error")
        failed = list(batch)
        if self.one_per_socket:
            for socket in {q.socket for q in batch}:
                failed += self._held.pop(socket, ())
        for queued in failed:
            if not queued.answer.done():
                queued.answer.set_exception(error)
