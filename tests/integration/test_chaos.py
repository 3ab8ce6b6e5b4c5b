"""The fault suite, bounded for `make test`: one fault of each backend at a time under a steady load of clients
that follow PROTOCOL.md (retry with the same client_msg_id, reconnect + auth.resume + sync,
message.ack, duplicates dropped by (conversation_id, seq)). Harness: tests/support/chaos.py;
the longer version is `make chaos` (bench/chaos.py), method and figures in docs/reliability.md.

The three scenarios run one after the other on one stack of their own (two gateways, two chat
replicas, its own Redis and its own on-disk MongoDB-wire server, the machine's RabbitMQ), as a
deployment lives through its faults: it is checked before each (every process running, /readyz
200 on both gateways) and started afresh if it is not, so one failed scenario does not fail the
next. (A stack per scenario cost two more starts and stops, some 15 s of `make test`.) Each
scenario has a load of its own (new users) and asserts, for the messages of that load:
0 acknowledged lost, 0 stored twice, seq gap-free, every acknowledged message delivered to its
receivers during the run (live, or on a reconnect's sync) and again present after a forced
re-sync, no `internal` reply, the logged-out token still refused, and recovery within the
bounds of tests/support/chaos.py's BOUNDS (seconds from the component's return, or from
the kill for a replica):

- first_ok: the first send that succeeds;
- all_ok: every user has sent successfully again;
- normal: from then on every 1 s window has only successful sends with a send -> reply p99
  under 1 s (or 1.5x the warm-up's p99, if this shared machine was slower than that before the fault).

Replicas killed under load (a gateway, a chat replica) have their representatives in
test_faults.py and test_scaling.py, which kill them mid-stream under retrying clients on the
session's and a scaled stack; their longer scenarios here (25-40 s each) run in `make chaos`.

The load goes on after each fault for its recovery bound (RabbitMQ, MongoDB: 10 s) or 2 s
more (Redis: 7 s for a 5 s bound), so that the bound is what is checked; RabbitMQ is stopped
for 8 s: longer than one send's reply timeout (6 s), so sends time out and are retried while
it is still away (`make chaos` stops it 15 s, twice).
"""
import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from deploy.local.devstack import Stack
from tests.support.chaos import (
    BOUNDS, ChaosStack, LoadConfig, RabbitUnavailable, Report, mongo_restart, rabbit_outage, rabbitmqctl, redis_restart,
    run_scenario,
)
from tests.support import leaks
from tests.support.infra import LOG_DIR

pytestmark = [pytest.mark.faults, pytest.mark.timeout(150)]

# 12 users (6 pairs, a group of 4 of them) at 30 messages a second in all.
CONFIG = LoadConfig(pairs=6, group_size=4, rate=30.0, retry_budget=30.0)

BROKER, REDIS, MONGO = (BOUNDS[k] for k in ("rabbitmq", "redis", "mongo"))


class Stacks:
    """The module's chaos stack: the same one for every scenario while it is sound."""

    def __init__(self) -> None:
        self.current: ChaosStack | None = None
        self.started = 0

    async def sound(self) -> ChaosStack:
        """The stack, every process running and both gateways ready; a new one otherwise."""
        stack = self.current
        if stack is not None and not await asyncio.to_thread(self._is_sound, stack):
            print(f"[chaos] the stack is not sound after the last scenario: starting another (log: {stack.log_path})")
            await self.stop()
        if self.current is None:
            self.started += 1
            self.current = ChaosStack(LOG_DIR / f"chaos-{self.started}.log")
            leaks.keep(self.current)  # started in a test, outlives it: the module's
            await asyncio.to_thread(self.current.start)
        return self.current

    @staticmethod
    def _is_sound(stack: ChaosStack) -> bool:
        if stack.stack is None or not all(p.running for p in stack.stack.procs.values()):
            return False
        if any(proc is None or proc.poll() is not None for proc in (stack.redis, stack.mongo)):
            return False
        deadline = time.monotonic() + 15  # just back from a fault: give /readyz a moment
        while not all(stack.ready(port) for port in stack.gateway_ports):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.3)
        return True

    async def stop(self) -> None:
        if self.current is not None:
            await self.current.astop()
            leaks.release(self.current)
            self.current = None


@pytest.fixture(scope="module")
async def stacks() -> AsyncIterator[Stacks]:
    shared = Stacks()
    try:
        yield shared
    finally:
        await shared.stop()


async def scenario(stacks: Stacks, name: str, fault, bounds: dict[str, float], after: float) -> Report:
    stack = await stacks.sound()
    lines: list[str] = []

    def log(line: str) -> None:
        lines.append(f"{time.strftime('%H:%M:%S')} {line}")
        print(line)

    report = await run_scenario(stack, name, fault, CONFIG, warmup=4.0, after=after, settle=10.0, log=log)
    problems = report.problems(bounds)
    assert not problems, f"{name}: " + "\n  ".join(["", *problems]) + f"\n(log: {stack.log_path})"
    return report


async def test_rabbitmq_stopped_and_started(stack: Stack, stacks: Stacks) -> None:
    """The machine's RabbitMQ is stopped: the session's stack loses it too, so the test ends only
    once that stack answers /readyz again (the tests after it use it)."""
    try:
        rabbitmqctl("status", timeout=20)
    except (RabbitUnavailable, OSError, Exception) as exc:  # noqa: BLE001
        pytest.skip(f"SKIPPED LOUDLY: no RabbitMQ fault here: {exc}")
    try:
        await scenario(stacks, "rabbitmq", rabbit_outage(8.0), BROKER, after=BROKER["normal"])
    finally:
        await asyncio.to_thread(stack.wait_ready)


async def test_redis_killed_and_restarted_empty(stacks: Stacks) -> None:
    await scenario(stacks, "redis", redis_restart(2.0), REDIS, after=REDIS["normal"] + 2)


async def test_mongo_killed_and_restarted(stacks: Stacks) -> None:
    await scenario(stacks, "mongo", mongo_restart(2.0), MONGO, after=MONGO["normal"])
