"""The pushes a client has received and not read yet, in arrival order."""
import asyncio
from collections.abc import AsyncIterator
from typing import Any

from parley_client.models import Push


class PushQueue(asyncio.Queue[Push | None]):
    """A queue of pushes, bounded: when nobody reads it, the oldest go first (`dropped` counts
    them), so a client that only sends does not grow. `None` marks the end of the stream
    (`end`): no push will come any more."""

    def __init__(self, maxsize: int = 100_000):
        super().__init__(maxsize)
        self.dropped = 0
        self.failure: Exception | None = None  # why the stream ended, when it was not closed on purpose

    def deliver(self, push: Push | None) -> None:
        if self.full():
            self.get_nowait()
            self.dropped += 1
        self.put_nowait(push)

    def end(self, failure: Exception | None = None) -> None:
        self.failure = failure
        self.deliver(None)

    def reopen(self) -> None:
        """A new socket after the end: drop the end marks, keep the pushes not read yet."""
        if self.failure is None and self.empty():
            return
        kept = [push for push in (self.get_nowait() for _ in range(self.qsize())) if push is not None]
        for push in kept:
            self.put_nowait(push)
        self.failure = None

    async def next(self, kind: str, timeout: float = 10.0) -> dict[str, Any]:
        """The data of the next push of `kind`, skipping (and consuming) the others; TimeoutError."""
        async with asyncio.timeout(timeout):
            while True:
                push = await self.get()
                if push is not None and push["type"] == kind:
                    return push["data"]

    async def stream(self) -> AsyncIterator[Push]:
        """Each push as it comes; ends with the stream (raising its failure, if any)."""
        while True:
            push = await self.get()
            if push is not None:
                yield push
                continue
            if self.failure is not None:
                raise self.failure
            return
