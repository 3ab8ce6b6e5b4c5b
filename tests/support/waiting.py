"""Waiting for a condition itself, never for a fixed time.

A fixed sleep before a single look is a bet on how fast this machine is today: green on an
idle laptop, red on a loaded CI runner. `eventually` looks again and again until the condition
holds or a generous deadline passes, so a test is as fast as the system on a good day and
still right on a bad one; the deadline only bounds how long a real failure takes to report.
"""
import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

# Long enough for a loaded 2-core machine, short enough that a real failure reports quickly.
DEADLINE_SECONDS = 15.0


async def eventually(
    check: Callable[[], T | Awaitable[T]],
    what: str,
    timeout: float = DEADLINE_SECONDS,
    interval: float = 0.05,
) -> T:
    """The first truthy result of `check` (sync or async), asked every `interval` seconds; an
    AssertionError naming `what` and the last result if none came within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result  # type: ignore[return-value]
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout} s: {what} (last seen: {result!r})")
        await asyncio.sleep(interval)


def eventually_sync(check: Callable[[], T], what: str, timeout: float = DEADLINE_SECONDS, interval: float = 0.05) -> T:
    """`eventually` for tests without an event loop."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout} s: {what} (last seen: {result!r})")
        time.sleep(interval)
