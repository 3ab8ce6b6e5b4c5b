"""services/auth/domain/limits.py: failed logins back off per (account, address), per address and
(briefly) per account; registrations per address. Gates in real Redis, time from a fake clock."""
import asyncio

import pytest

from services.auth.domain.limits import (
    ACCOUNT_BACKOFF_MAX_SECONDS,
    IN_FLIGHT_SECONDS,
    GateRule,
    LoginRules,
    LoginThrottle,
    RegistrationLimit,
)
from services.auth.storage.limits import RedisGates, RedisRateBucket
from shared.contracts.errors import ErrorCode, ParleyError
from shared.stores import redis_client
from tests.unit.helpers import redis_namespace


FREE_PAIR, FREE_ADDRESS, BASE, CAP, WINDOW = 3, 10, 1.0, 8.0, 60.0
RULES = LoginRules(
    pair=GateRule(FREE_PAIR, BASE, CAP, WINDOW),
    address=GateRule(FREE_ADDRESS, BASE, CAP, WINDOW),
    account=GateRule(FREE_PAIR * 4, BASE, ACCOUNT_BACKOFF_MAX_SECONDS, WINDOW),
)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def world(redis_settings):
    async with redis_namespace(redis_settings) as (redis, namespace):
        clock = Clock()
        yield LoginThrottle(RedisGates(redis, namespace), RULES, clock), clock


async def fail(throttle: LoginThrottle, username: str, address: str | None) -> None:
    """A wrong password: admitted, checked, failed."""
    await throttle.failed(await throttle.admit(username, address))


async def log_in_concurrently(throttle: LoginThrottle, logins: list[tuple[str, str]], right: bool) -> list:
    """Each (username, address) logs in at once, the password check taking a moment (as argon2
    does); what each got: the settled Attempt or the ParleyError. Also the most in flight at once."""
    in_flight = peak = 0

    async def one(username: str, address: str):
        nonlocal in_flight, peak
        attempt = await throttle.admit(username, address)
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.005)
        in_flight -= 1
        await (throttle.succeeded(attempt) if right else throttle.failed(attempt))
        return attempt

    results = await asyncio.gather(*(one(u, a) for u, a in logins), return_exceptions=True)
    return results + [peak]


async def refused(throttle: LoginThrottle, username: str, address: str | None) -> int:
    with pytest.raises(ParleyError) as info:
        await throttle.admit(username, address)
    assert info.value.code == ErrorCode.RATE_LIMITED
    assert info.value.message.startswith("too many failed logins; retry in ")
    return int(info.value.message.split()[-2])


def test_backoff_doubles_from_the_base_up_to_the_cap():
    rule = GateRule(free=3, base_seconds=1, max_seconds=8, window_seconds=60)
    assert [rule.backoff(k) for k in range(1, 7)] == [1, 2, 4, 8, 8, 8]
    assert rule.backoff(10_000) == 8
    assert rule.schedule() == [1, 2, 4, 8]
    assert len(GateRule(free=1, base_seconds=0.001, max_seconds=1e9, window_seconds=1).schedule()) <= 64


async def test_free_failures_then_exponential_backoff_then_waiting_lets_you_in(world):
    throttle, clock = world
    for _ in range(FREE_PAIR):
        await fail(throttle, "alice", "10.0.0.1")
    await fail(throttle, "alice", "10.0.0.1")  # the first past the free ones: admitted, gate closes 1 s
    assert await refused(throttle, "alice", "10.0.0.1") == 1
    clock.now += 1.0
    await fail(throttle, "alice", "10.0.0.1")  # then 2 s
    clock.now += 1.5
    assert await refused(throttle, "alice", "10.0.0.1") == 1  # 0.5 s left, rounded up
    clock.now += 0.5
    await fail(throttle, "alice", "10.0.0.1")  # then 4 s
    clock.now += 3.9
    await refused(throttle, "alice", "10.0.0.1")
    clock.now += 0.1
    attempt = await throttle.admit("alice", "10.0.0.1")  # the owner, with the right password
    await throttle.succeeded(attempt)
    for _ in range(FREE_PAIR):  # a success clears the (account, address) count
        await fail(throttle, "alice", "10.0.0.1")


async def test_a_refused_attempt_is_not_counted(world):
    throttle, clock = world
    for _ in range(FREE_PAIR + 1):
        await fail(throttle, "alice", "10.0.0.1")
    for _ in range(50):
        await refused(throttle, "alice", "10.0.0.1")
    clock.now += 1.0
    await fail(throttle, "alice", "10.0.0.1")  # the next wait is 2 s, not 2^50
    assert await refused(throttle, "alice", "10.0.0.1") == 2


async def test_another_address_is_not_held_up_by_a_guesser(world):
    throttle, clock = world
    for _ in range(FREE_PAIR + 1):
        await fail(throttle, "alice", "6.6.6.6")
    await refused(throttle, "alice", "6.6.6.6")
    attempt = await throttle.admit("alice", "10.0.0.1")  # alice herself, elsewhere
    await throttle.succeeded(attempt)


async def test_one_address_guessing_many_accounts_is_throttled(world):
    throttle, clock = world
    for i in range(FREE_ADDRESS + 1):
        await fail(throttle, f"user{i}", "6.6.6.6")  # never past one account's free failures
    assert await refused(throttle, "someone_else", "6.6.6.6") == 1
    await throttle.succeeded(await throttle.admit("someone_else", "10.0.0.1"))


async def test_many_addresses_on_one_account_get_a_short_capped_backoff_and_the_known_address_none(world):
    throttle, clock = world
    await throttle.succeeded(await throttle.admit("alice", "10.0.0.1"))  # alice's home address
    waits = []
    for i in range(200):  # a botnet, each address well within its own free failures
        try:
            await fail(throttle, "alice", f"7.7.{i // 250}.{i % 250}")
        except ParleyError as exc:
            waits.append(int(exc.message.split()[-2]))
            clock.now += 5
    assert waits and max(waits) <= ACCOUNT_BACKOFF_MAX_SECONDS  # slowed, never locked for long
    # alice at home is not slowed at all, and from a new place at most the short cap.
    await throttle.succeeded(await throttle.admit("alice", "10.0.0.1"))
    clock.now += ACCOUNT_BACKOFF_MAX_SECONDS
    await throttle.succeeded(await throttle.admit("alice", "192.168.1.9"))


async def test_unknown_usernames_count_like_known_ones(world):
    throttle, clock = world
    for _ in range(FREE_PAIR + 1):
        await fail(throttle, "nobody_has_this_name", "6.6.6.6")
    await refused(throttle, "nobody_has_this_name", "6.6.6.6")


async def test_failures_older_than_the_window_are_forgotten(world):
    throttle, clock = world
    for _ in range(FREE_PAIR):
        await fail(throttle, "alice", "10.0.0.1")
    clock.now += WINDOW + 1
    for _ in range(FREE_PAIR + 1):
        await fail(throttle, "alice", "10.0.0.1")  # free again


async def test_concurrent_guesses_cannot_slip_past_the_gate(world):
    throttle, clock = world
    *results, peak = await log_in_concurrently(throttle, [("alice", "6.6.6.6")] * 40, right=False)
    admitted = [r for r in results if not isinstance(r, Exception)]
    assert all(isinstance(r, ParleyError) and r.code == ErrorCode.RATE_LIMITED for r in results if r not in admitted)
    assert len(admitted) == FREE_PAIR + 1  # the free ones, then one past them, then the backoff
    assert peak <= FREE_PAIR


async def test_an_office_logging_in_at_once_all_get_in(world):
    """The issue-29 case: many people behind one address (an office, a school, a carrier's NAT),
    each with the right password, at once. None is refused; they wait in line for the address's
    free failures instead, never more in flight than could fail."""
    throttle, clock = world
    *results, peak = await log_in_concurrently(throttle, [(f"user{i}", "10.1.1.1") for i in range(200)], right=True)
    assert [r for r in results if isinstance(r, Exception)] == []
    assert peak <= FREE_ADDRESS
    # and the address has used none of its free failures
    for i in range(FREE_ADDRESS):
        await fail(throttle, f"guess{i}", "10.1.1.1")


async def test_concurrent_wrong_passwords_from_one_address_are_held_to_its_free_count(world):
    throttle, clock = world
    *results, peak = await log_in_concurrently(throttle, [(f"user{i}", "6.6.6.6") for i in range(300)], right=False)
    admitted = [r for r in results if not isinstance(r, Exception)]
    refusals = [r for r in results if isinstance(r, Exception)]
    assert len(admitted) == FREE_ADDRESS + 1
    assert {(r.code, r.message.split(";")[0]) for r in refusals} == {(ErrorCode.RATE_LIMITED, "too many failed logins")}


async def test_an_attempt_that_never_settles_counts_as_a_failure_after_its_deadline(redis_settings):
    """An auth replica that dies mid-check leaves its attempt in flight: the line waits for it
    (refusing honestly when the wait is too long), and past its deadline it is a failure."""
    async with redis_namespace(redis_settings) as (redis, namespace):
        clock = Clock()
        throttle = LoginThrottle(RedisGates(redis, namespace), RULES, clock, wait_in_line_seconds=0.3)
        for _ in range(FREE_PAIR):
            await throttle.admit("alice", "6.6.6.6")  # never settled
        with pytest.raises(ParleyError) as line:
            await throttle.admit("alice", "6.6.6.6")
        assert line.value.code == ErrorCode.RATE_LIMITED and "in progress" in line.value.message
        clock.now += IN_FLIGHT_SECONDS + 1
        await fail(throttle, "alice", "6.6.6.6")  # the first past the free ones: the three counted
        assert await refused(throttle, "alice", "6.6.6.6") == 1


async def test_without_an_address_only_the_account_gate_applies(world):
    throttle, clock = world
    for _ in range(RULES.account.free + 1):
        await fail(throttle, "alice", None)
    assert await refused(throttle, "alice", None) <= ACCOUNT_BACKOFF_MAX_SECONDS


async def test_without_redis_logins_are_not_throttled(redis_settings, caplog):
    dead = redis_client(redis_settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"}))
    try:
        throttle = LoginThrottle(RedisGates(dead, "nowhere"), RULES, Clock())
        for _ in range(FREE_PAIR + 5):
            assert await throttle.admit("alice", "6.6.6.6") is None
        assert [r.getMessage() for r in caplog.records].count("login_throttle.unavailable") == 1
    finally:
        await dead.aclose()


def test_rules_from_settings(redis_settings):
    s = redis_settings.model_copy(update={
        "login_free_failures_per_account": 5, "login_free_failures_per_address": 20,
        "login_backoff_base_seconds": 1.0, "login_backoff_max_seconds": 300.0, "login_failure_window_seconds": 900.0,
    })
    rules = LoginRules.from_settings(s)
    assert (rules.pair.free, rules.pair.max_seconds) == (5, 300.0)
    assert (rules.address.free, rules.address.window_seconds) == (20, 900.0)
    assert (rules.account.free, rules.account.max_seconds) == (20, ACCOUNT_BACKOFF_MAX_SECONDS)


async def test_registrations_per_address_stop_at_the_burst(redis_settings):
    async with redis_namespace(redis_settings) as (redis, namespace):
        limit = RegistrationLimit(RedisRateBucket(redis, namespace, "register", 20 / 3600, 3))
        for _ in range(3):
            await limit.take("10.0.0.1")
        with pytest.raises(ParleyError) as info:
            await limit.take("10.0.0.1")
        assert info.value.code == ErrorCode.RATE_LIMITED
        assert info.value.message == "too many registrations from your address; retry in 180 s"
        await limit.take("10.0.0.2")  # another address has its own bucket
        await limit.take(None)  # no address known: not limited
