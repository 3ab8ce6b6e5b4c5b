"""Ending calls nobody answered and calls whose participant's socket is gone.

Every chat replica runs it (ending a call is one atomic step in the call store, so two replicas
never both end one); the jitter keeps replicas from checking in step.
"""
import asyncio
import logging
import random

from services.chat.domain.calls import CallPorts, check_calls
from shared.logs import log_event

log = logging.getLogger("parley.chat.calls")


async def check_calls_forever(ports: CallPorts, every_seconds: float) -> None:
    while True:
        await asyncio.sleep(every_seconds * random.uniform(0.75, 1.25))
        try:
            await check_calls(ports)
        except Exception as exc:  # Redis or the database away: the next check catches up
            log_event(log, "calls.check_failed", logging.WARNING, error=repr(exc))
