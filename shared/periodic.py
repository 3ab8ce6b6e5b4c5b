"""Periodic jobs of a service, run by its runner beside the consumers, and leases for the jobs
that N replicas must do once (a sweep done by every replica is N times the database work, and
for some jobs N times the effect).

A lease is one Redis key per job, `<ns>:lease:{<job>}`, holding `<holder>|<token>` with a TTL;
the holder renews it at each run and runs the job only while it holds it. Each acquisition takes
a new fencing token from `<ns>:lease:{<job>}:fence` (INCR): a job can pass `current_fence()` to
a write that must not come from a holder that lost the lease (a process paused past its TTL, then
resumed), and a store can refuse tokens older than the newest it has seen. A run is cut off
before the lease it started under would expire, so two holders never run at once while the
clocks and the scheduler behave; the token is for when they do not. Both keys share one hash
tag, so the script runs on Redis Cluster too.
"""
import asyncio
import contextvars
import logging
import random
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass

from shared.redis_slots import RedisClient

from shared.logs import log_event
from shared.metrics import PERIODIC_RUNS

log = logging.getLogger("parley.periodic")

# How long a lease lasts, in runs of its job: the holder may miss one renewal (a slow run, a
# jittered sleep) and keep it; a holder that died is replaced within about this many periods.
LEASE_PERIODS = 3.0
MIN_LEASE_SECONDS = 2.0

_fence: contextvars.ContextVar[int | None] = contextvars.ContextVar("parley_fence", default=None)

_HOLD = """
local current = redis.call('GET', KEYS[1])
if not current then
  local token = redis.call('INCR', KEYS[2])
  redis.call('SET', KEYS[1], ARGV[1] .. '|' .. token, 'PX', ARGV[2])
  return token
end
local sep = string.find(current, '|', 1, true)
if sep and string.sub(current, 1, sep - 1) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return tonumber(string.sub(current, sep + 1))
end
return false
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def current_fence() -> int | None:
    """The fencing token of the lease the running job holds (None outside a leased job)."""
    return _fence.get()


@dataclass(frozen=True)
class Periodic:
    """A job run about every `every` seconds (±25 %, so replicas do not run in step)."""

    name: str
    every: float
    run: Callable[[], Awaitable[object]]
    once_across_replicas: bool = False

    @property
    def lease_seconds(self) -> float:
        return max(LEASE_PERIODS * self.every, MIN_LEASE_SECONDS)


class Leases:
    """Leases of one process (`holder`, its instance id) in one namespace."""

    def __init__(self, redis: RedisClient, namespace: str, holder: str):
        if "|" in holder:
            raise ValueError("a lease holder's id cannot contain '|'")
        self.redis = redis
        self.namespace = namespace
        self.holder = holder
        self._held: dict[str, int] = {}

    def _keys(self, job: str) -> list[str]:
        key = f"{self.namespace}:lease:{{{job}}}"
        return [key, f"{key}:fence"]

    async def hold(self, job: str, seconds: float) -> int | None:
        """Take the job's lease, or renew it if ours, for `seconds`: its fencing token; None when
        another replica holds it."""
        token = await self.redis.eval(_HOLD, 2, *self._keys(job), self.holder, int(seconds * 1000))
        if token is None:
            self._held.pop(job, None)
            return None
        self._held[job] = int(token)
        return int(token)

    async def release(self, job: str) -> None:
        """Give one lease up (if ours): another replica may take it at once, not a lease later."""
        token = self._held.pop(job, None)
        if token is not None:
            with suppress(Exception):  # Redis away: the lease expires by itself
                await self.redis.eval(_RELEASE, 1, self._keys(job)[0], f"{self.holder}|{token}")

    async def release_all(self) -> None:
        """On stop: another replica takes the jobs over at its next run, not a lease later."""
        for job in list(self._held):
            await self.release(job)


class PeriodicJobs:
    """Runs jobs until stopped; a failing run (Redis or the database away) is logged once per
    streak of failures, and the next run tries again."""

    def __init__(self, jobs: list[Periodic], leases: Leases | None):
        if leases is None and any(j.once_across_replicas for j in jobs):
            raise ValueError("jobs run once across replicas need leases (a Redis) to run")
        self.jobs = jobs
        self.leases = leases
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._loop(job), name=f"periodic.{job.name}") for job in self.jobs]

    async def _loop(self, job: Periodic) -> None:
        failing = False
        while True:
            with suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), job.every * random.uniform(0.75, 1.25))
            if self._stopping.is_set():
                return
            try:
                await self.run_once(job)
                if failing:
                    log_event(log, f"{job.name}.recovered")
                failing = False
            except Exception as exc:
                if not failing:
                    log_event(log, f"{job.name}.failed", logging.WARNING, error=repr(exc))
                failing = True

    async def run_once(self, job: Periodic) -> bool:
        """One run, if this replica may: whether it ran. A leased run is cut off before the lease
        it started under would expire (then another replica may take the job over)."""
        token = None
        if job.once_across_replicas:
            assert self.leases is not None
            token = await self.leases.hold(job.name, job.lease_seconds)
            if token is None:
                return False
        reset = _fence.set(token)
        try:
            async with asyncio.timeout(job.lease_seconds * 0.9 if token is not None else None):
                await job.run()
        finally:
            _fence.reset(reset)
        PERIODIC_RUNS.labels(job.name).inc()
        return True

    async def stop(self, timeout: float) -> None:
        """No new runs; a run under way may finish within `timeout` (then it is cancelled); then
        the leases go, so that another replica takes the jobs over at its next run."""
        self._stopping.set()
        if self._tasks:
            _, unfinished = await asyncio.wait(self._tasks, timeout=timeout)
            for task in unfinished:
                task.cancel()
            if unfinished:
                await asyncio.wait(unfinished)
        if self.leases is not None:
            await self.leases.release_all()
