"""Sending again what may not have arrived, as PROTOCOL.md allows: the same request, unchanged.

For `message.send` that is the outbox's rule: a send keeps its `client_msg_id` for every try,
so the server stores it once whatever happened to the tries before (it answers a repeat with
the first reply). A try is repeated only when its outcome is unknown or the server says it is
safe: `unavailable`, no reply in time, or the socket gone (when the client reconnects). Any
other error is final and raised at once.
"""
import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from parley_client.errors import ConnectionLost, Offline, ReplyError, RequestTimeout
from parley_client.models import Reply

# Outcomes of one try, besides "ok" and the server's error codes.
TIMEOUT, CLOSED, OFFLINE = "timeout", "closed", "offline"


@dataclass(frozen=True)
class RetryPolicy:
    attempt_timeout: float = 15.0  # seconds to wait for one try's reply
    budget: float = 120.0  # seconds from the first try after which no new try starts
    max_attempts: int = 30
    first_backoff: float = 0.2  # after `unavailable` or a timeout; doubling up to max_backoff
    max_backoff: float = 2.0
    wait_bound: float | None = None  # per try, how long to wait for a bound socket (None: attempt_timeout)
    # Error codes tried again besides the socket's fate. `rate_limited` is safe too (nothing was
    # stored, the id not remembered) but means "slow down": add it when that is what you want.
    retry_codes: frozenset[str] = frozenset({"unavailable"})
    rate_limited_pause: float = 1.0  # the least pause after `rate_limited`, when it is retried

    @property
    def bound_wait(self) -> float:
        return self.attempt_timeout if self.wait_bound is None else self.wait_bound


ONCE = RetryPolicy(max_attempts=1)
PATIENT = RetryPolicy(budget=math.inf, max_attempts=1_000_000)


@dataclass(frozen=True)
class Attempt:
    """One try, for whoever keeps figures (time.perf_counter() seconds)."""

    outcome: str  # "ok", an error code, "timeout", "closed", "offline"
    started: float
    ended: float
    retrying: bool  # another try follows


async def with_retries(attempt: Callable[[float, float], Awaitable[Reply]], policy: RetryPolicy,
                       reconnects: bool, on_attempt: Callable[[Attempt], None] | None = None) -> dict[str, Any]:
    """Run `attempt(reply_timeout, bound_wait)` until a reply is ok (its data is returned), an
    error is final (raised), or the policy's tries or budget are used up (the last failure is
    raised). A lost socket or no bound socket is tried again only if the client `reconnects`."""
    first = time.perf_counter()
    backoff = policy.first_backoff
    tries = 0
    while True:
        tries += 1
        started = time.perf_counter()
        failure: Exception
        try:
            reply = await attempt(policy.attempt_timeout, policy.bound_wait)
        except Offline as exc:
            outcome, failure = OFFLINE, exc
        except ConnectionLost as exc:
            outcome, failure = CLOSED, exc
        except RequestTimeout as exc:
            outcome, failure = TIMEOUT, exc
        else:
            if reply["ok"]:
                if on_attempt is not None:
                    on_attempt(Attempt("ok", started, time.perf_counter(), False))
                return reply.get("data") or {}
            failure = ReplyError.from_reply(reply)
            outcome = failure.code
        ended = time.perf_counter()
        retryable = outcome in policy.retry_codes or outcome == TIMEOUT or (reconnects and outcome in (CLOSED, OFFLINE))
        retrying = retryable and tries < policy.max_attempts and ended - first <= policy.budget
        if on_attempt is not None:
            on_attempt(Attempt(outcome, started, ended, retrying))
        if not retrying:
            raise failure
        if outcome in (CLOSED, OFFLINE):
            await asyncio.sleep(0.05)  # the next try waits for the reconnect itself
            continue
        pause = max(backoff, policy.rate_limited_pause) if outcome == "rate_limited" else backoff
        await asyncio.sleep(pause)
        backoff = min(policy.max_backoff, backoff * 2)
