"""Announcements in the order messages were stored.

A send batch is answered as soon as it is stored and announced after (AnswerFirst), so a device
that sends again at once can have its next batch stored, and announced, while the first one's
pushes are still on their way: its friend would get seq 8 before seq 7. A turn taken when a
batch is stored (in store order) makes each conversation's announcements wait for the ones stored
before them in this process. Bounded: a turn whose work never comes (its command was lost) holds
the next ones at most WAIT_SECONDS; order across chat replicas is not this module's (a
conversation's sends are handled by one replica at a time only from issue 26 on).
"""
import asyncio
from collections.abc import Awaitable, Callable, Iterable
from contextlib import suppress

WAIT_SECONDS = 5.0


class Turn:
    def __init__(self, order: "InOrder", keys: list[str], before: list[asyncio.Future[None]]):
        self._order = order
        self._keys = keys
        self._before = before
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def run(self, work: Callable[[], Awaitable[None]]) -> None:
        """`work` once the turns taken before this one (for the same keys) are over."""
        try:
            if self._before:
                with suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.gather(*(asyncio.shield(f) for f in self._before)), WAIT_SECONDS)
            await work()
        finally:
            self._order.release(self)


class InOrder:
    """Turns per key (a conversation id): each runs after the ones taken before it."""

    def __init__(self) -> None:
        self._last: dict[str, asyncio.Future[None]] = {}

    def take_turn(self, keys: Iterable[str]) -> Turn:
        unique = list(dict.fromkeys(keys))
        before = list({id(f): f for k in unique if (f := self._last.get(k)) is not None}.values())
        turn = Turn(self, unique, before)
        for key in unique:
            self._last[key] = turn.done
        return turn

    def release(self, turn: Turn) -> None:
        if not turn.done.done():
            turn.done.set_result(None)
        for key in turn._keys:
            if self._last.get(key) is turn.done:
                del self._last[key]

    def __len__(self) -> int:
        """Keys with a turn under way (bounded by the batches in flight)."""
        return len(self._last)
