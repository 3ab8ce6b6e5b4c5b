"""A Redis Cluster primary killed -9 under the chaos load (`make chaos`: marked `chaos`; its
store-level representative in `make test` is test_redis_cluster_failover.py): a stack of its own
on a six-node Redis Cluster (tests/support/chaos.py, ChaosStack(redis_cluster=True)), users
chatting in pairs and a group through the client library. Asserted as test_chaos.py's
scenarios: 0 acknowledged lost, 0 stored twice, no seq gap, every acknowledged message delivered,
no `internal` reply, the logged-out token still refused, and recovery within BOUNDS
["redis-cluster"] measured from the kill. The figures are docs/reliability.md's.
"""
import asyncio
import time

import pytest

from tests.support import leaks
from tests.support.chaos import BOUNDS, ChaosStack, LoadConfig, redis_primary_kill, run_scenario
from tests.support.infra import LOG_DIR

pytestmark = [pytest.mark.chaos, pytest.mark.faults, pytest.mark.timeout(300)]

CONFIG = LoadConfig(pairs=6, group_size=4, rate=30.0, retry_budget=30.0)
BOUND = BOUNDS["redis-cluster"]


async def test_a_redis_cluster_primary_killed_under_load() -> None:
    stack = ChaosStack(LOG_DIR / "chaos-redis-cluster.log", redis_cluster=True)
    leaks.keep(stack)
    try:
        await asyncio.to_thread(stack.start)
        lines: list[str] = []

        def log(line: str) -> None:
            lines.append(f"{time.strftime('%H:%M:%S')} {line}")
            print(line)

        report = await run_scenario(stack, "redis-cluster", redis_primary_kill(), CONFIG, warmup=4.0,
                                    after=BOUND["normal"], settle=10.0, log=log)
        problems = report.problems(BOUND)
        assert not problems, "redis-cluster: " + "\n  ".join(["", *problems]) + f"\n(log: {stack.log_path})"
    finally:
        await stack.astop()
        leaks.release(stack)
