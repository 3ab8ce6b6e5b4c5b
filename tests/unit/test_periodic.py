"""Periodic jobs and their leases (shared/periodic.py) on real Redis: N replicas do a leased job
once, a stopped or dead holder is replaced, every acquisition fences off the one before."""
import asyncio

import pytest

from shared.periodic import Leases, Periodic, PeriodicJobs, current_fence
from tests.support.waiting import eventually
from tests.unit.helpers import redis_namespace



@pytest.fixture
async def redis_and_namespace(redis_settings):
    async with redis_namespace(redis_settings) as found:
        yield found


def replicas(redis, namespace: str, job: Periodic, n: int = 3) -> list[PeriodicJobs]:
    return [PeriodicJobs([job], Leases(redis, namespace, f"chat_{i}")) for i in range(n)]


async def test_three_replicas_run_a_leased_job_once_per_round(redis_and_namespace):
    redis, namespace = redis_and_namespace
    runs: list[int | None] = []

    async def sweep() -> None:
        runs.append(current_fence())

    job = Periodic("sweep", every=1.0, run=sweep, once_across_replicas=True)
    three = replicas(redis, namespace, job)
    for _ in range(5):
        ran = [await r.run_once(job) for r in three]
        assert ran.count(True) == 1
    assert len(runs) == 5 and len(set(runs)) == 1 and runs[0] is not None  # one holder, one token


async def test_a_job_on_every_replica_runs_everywhere_without_a_lease(redis_and_namespace):
    redis, namespace = redis_and_namespace
    fences: list[int | None] = []

    async def beat() -> None:
        fences.append(current_fence())

    job = Periodic("beat", every=1.0, run=beat)
    assert [await r.run_once(job) for r in replicas(redis, namespace, job)] == [True, True, True]
    assert fences == [None, None, None]


async def test_a_stopped_holder_hands_the_job_over_at_once_with_a_newer_token(redis_and_namespace):
    redis, namespace = redis_and_namespace
    fences: list[int | None] = []

    async def sweep() -> None:
        fences.append(current_fence())

    job = Periodic("sweep", every=60.0, run=sweep, once_across_replicas=True)
    first, second = replicas(redis, namespace, job, 2)
    assert await first.run_once(job) and not await second.run_once(job)
    await first.stop(timeout=1)  # releases its lease
    assert await second.run_once(job)
    assert fences[1] > fences[0]


async def test_a_holder_that_died_is_replaced_once_its_lease_expires(redis_and_namespace):
    redis, namespace = redis_and_namespace

    async def sweep() -> None:
        return None

    job = Periodic("sweep", every=0.1, run=sweep, once_across_replicas=True)  # lease: the 2 s minimum
    dead, alive = replicas(redis, namespace, job, 2)
    assert await dead.run_once(job)  # then it is never heard of again (no release)
    assert not await alive.run_once(job)
    await eventually(lambda: alive.run_once(job), "the job taken over after the dead holder's lease", timeout=10)


async def test_a_run_is_cut_off_before_the_lease_it_started_under_expires(redis_and_namespace):
    redis, namespace = redis_and_namespace

    async def stuck() -> None:
        await asyncio.sleep(60)

    job = Periodic("stuck", every=0.1, run=stuck, once_across_replicas=True)  # lease 2 s, cut at 1.8 s
    (only,) = replicas(redis, namespace, job, 1)
    with pytest.raises(TimeoutError):
        await only.run_once(job)


async def test_jobs_run_while_started_and_not_after_stop(redis_and_namespace):
    redis, namespace = redis_and_namespace
    runs = 0

    async def count() -> None:
        nonlocal runs
        runs += 1

    jobs = PeriodicJobs([Periodic("count", every=0.05, run=count)], None)
    jobs.start()
    await eventually(lambda: runs >= 3, "three runs")
    await jobs.stop(timeout=1)
    after_stop = runs
    await asyncio.sleep(0.3)  # six periods: none may run now
    assert runs == after_stop


def test_a_leased_job_without_leases_is_refused() -> None:
    async def sweep() -> None:
        return None

    with pytest.raises(ValueError, match="need leases"):
        PeriodicJobs([Periodic("sweep", every=1.0, run=sweep, once_across_replicas=True)], None)
