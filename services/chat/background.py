"""chat's periodic jobs (every replica runs each): deleting expired messages, burning what is
due, ending calls. Each job is idempotent across replicas, and the jitter keeps replicas from
running in step."""
import asyncio
import logging
import random
from collections.abc import Awaitable, Callable

from shared.logs import log_event

log = logging.getLogger("parley.chat")


async def every(seconds: float, job: Callable[[], Awaitable[object]], name: str) -> None:
    """Run `job` about every `seconds`, forever; a failure (Redis or the database away) is logged
    and the next run catches up."""
    while True:
        await asyncio.sleep(seconds * random.uniform(0.75, 1.25))
        try:
            await job()
        except Exception as exc:
            log_event(log, f"{name}.failed", logging.WARNING, error=repr(exc))
