"""Sending notifications to the providers: bounded, retried, deduplicated, ordered per tag.

- At most `concurrency` provider calls in flight per replica (a slot is held for one attempt,
  not across a backoff); the event consumer's prefetch bounds the events waiting behind them.
- Retries (`Sent.retry`: 429, 5xx, a timeout) wait the `Retry-After` the service gave (at most
  MAX_RETRY_WAIT_SECONDS), else an exponential backoff, up to `max_attempts`; then given up.
- `gone` (404/410) deletes the subscription, if the device still has that one.
- A notification with a dedup key is sent only if the key was not set yet (Redis SET NX): a
  repeated event (at-least-once delivery, `again`) does not notify a device twice.
- Per (device, tag) one send at a time, in the order asked: a withdrawal asked while the call's
  ring is still being sent goes after it, not before (and so it wins).
"""
import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from services.push.domain.ports import Outgoing, Provider, PushState, Sent, Subscriptions
from services.push.metrics import PUSH_DUPLICATES, PUSH_LATENCY, PUSH_SENT
from shared.contracts.push import ProviderKind
from shared.logs import log_event

log = logging.getLogger("parley.push")

MAX_RETRY_WAIT_SECONDS = 60.0
# A provider that does not answer within its own timeout and this margin is counted as a retry.
TIMEOUT_MARGIN_SECONDS = 5.0

Result = Literal["sent", "gone", "failed", "given_up", "duplicate", "no_provider"]


@dataclass(frozen=True)
class Job:
    outgoing: Outgoing
    dedup: str | None = None  # the dedup key; None: always send (a withdrawal)


class Sender:
    def __init__(
        self,
        providers: Mapping[ProviderKind, Provider],
        subscriptions: Subscriptions,
        state: PushState,
        *,
        concurrency: int,
        max_attempts: int,
        timeout_seconds: float,
        backoff_seconds: float = 0.5,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ):
        self.providers = providers
        self.subscriptions = subscriptions
        self.state = state
        self.max_attempts = max_attempts
        self.timeout = timeout_seconds + TIMEOUT_MARGIN_SECONDS
        self.backoff = backoff_seconds
        self.sleep = sleep
        self._slots = asyncio.Semaphore(concurrency)
        self._order: dict[tuple[str, str, str], tuple[asyncio.Lock, int]] = {}

    async def send_all(self, jobs: list[Job]) -> list[Result]:
        """Every job to its end (sent or given up); a provider's bug is raised once all ended."""
        results = await asyncio.gather(*(self.send(job) for job in jobs), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return [r for r in results if not isinstance(r, BaseException)]

    async def send(self, job: Job) -> Result:
        sub = job.outgoing.subscription
        provider = self.providers.get(sub.kind)
        if provider is None:
            PUSH_SENT.labels(sub.kind, "no_provider").inc()
            log_event(log, "push.no_provider", logging.WARNING, provider=sub.kind, device_id=sub.device_id)
            return "no_provider"
        key = (sub.user_id, sub.device_id, job.outgoing.notification.tag)
        lock, users = self._order.get(key, (asyncio.Lock(), 0))
        self._order[key] = (lock, users + 1)
        try:
            async with lock:
                if job.dedup is not None and not await self.state.first_send(job.dedup):
                    PUSH_DUPLICATES.labels(sub.kind).inc()
                    return "duplicate"
                try:
                    return await self._attempts(provider, job.outgoing)
                except BaseException:
                    if job.dedup is not None:
                        await self.state.unsend(job.dedup)  # not sent for a bug: a repeat may try again
                    raise
        finally:
            lock, users = self._order[key]
            if users == 1:
                del self._order[key]
            else:
                self._order[key] = (lock, users - 1)

    async def _attempts(self, provider: Provider, outgoing: Outgoing) -> Result:
        sub = outgoing.subscription
        for attempt in range(1, self.max_attempts + 1):
            async with self._slots:
                sent = await self._attempt(provider, outgoing)
            if sent.outcome == "sent":
                return "sent"
            if sent.outcome == "gone":
                removed = await self.subscriptions.remove_if_same(sub)
                log_event(log, "push.gone", provider=sub.kind, device_id=sub.device_id, status=sent.status, removed=removed)
                return "gone"
            if sent.outcome == "failed":
                log_event(
                    log, "push.refused", logging.WARNING, provider=sub.kind, device_id=sub.device_id,
                    status=sent.status, detail=sent.detail,
                )
                return "failed"
            if attempt < self.max_attempts:
                await self.sleep(self._wait(sent, attempt))
        PUSH_SENT.labels(sub.kind, "given_up").inc()
        log_event(
            log, "push.given_up", logging.WARNING, provider=sub.kind, device_id=sub.device_id, attempts=self.max_attempts,
        )
        return "given_up"

    async def _attempt(self, provider: Provider, outgoing: Outgoing) -> Sent:
        started = time.perf_counter()
        try:
            sent = await asyncio.wait_for(provider.send(outgoing), self.timeout)
        except TimeoutError:
            sent = Sent("retry", detail="no answer in time")
        PUSH_LATENCY.labels(provider.kind).observe(time.perf_counter() - started)
        PUSH_SENT.labels(provider.kind, sent.outcome).inc()
        return sent

    def _wait(self, sent: Sent, attempt: int) -> float:
        """What the service asked for, else 0.5 s, 1 s, 2 s, ... with a little jitter."""
        if sent.retry_after is not None:
            return min(max(sent.retry_after, 0.0), MAX_RETRY_WAIT_SECONDS)
        return min(self.backoff * 2.0 ** (attempt - 1) * random.uniform(0.8, 1.2), MAX_RETRY_WAIT_SECONDS)
