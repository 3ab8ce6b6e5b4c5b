"""Abuse limits of auth: failed logins back off per account and per client address, and
registrations are rate-limited per address. All of it is checked before any argon2 work, so a
refused attempt costs a Redis round trip, not a password hash.

Failed logins are counted in three gates (a count, and a time before which no attempt passes):

- (account, address): `login_free_failures_per_account` free failures, then each further
  attempt must wait `base * 2^(excess-1)` seconds (capped at `login_backoff_max_seconds`)
  after the one before: someone guessing one account from one place is slowed to a crawl;
- address: `login_free_failures_per_address` free failures over all accounts, then the same
  backoff: one place guessing many accounts;
- account, over all addresses: a higher threshold (ACCOUNT_FREE_FACTOR times the per-account
  one) and a short cap (ACCOUNT_BACKOFF_MAX_SECONDS): many places guessing one account get a
  few tries a minute, while the owner is at most briefly slowed, never locked out. An address
  that has logged in to the account before (within KNOWN_ADDRESS_SECONDS) skips this gate, so
  strangers cannot slow the owner at home at all.

An attempt is counted when admitted, before its password is checked (so a burst of concurrent
guesses cannot all slip through before the first failure lands); a success takes its count back
and clears its (account, address) gate. A refused attempt is not counted (a gate that admitted
it before another gate refused it gets its count back).
Counts older than `login_failure_window_seconds` are forgotten. Unknown usernames are counted
exactly like known ones (the answer must not tell which names exist). Without a client address
(a caller that gave none) only the account gate applies. If Redis does not answer, logins go
through unthrottled (logged once per outage): being able to log in matters more.
"""
import asyncio
import hashlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from services.auth.domain.ports import GateStore, RateBucket, Unreachable, underlying
from shared.contracts.errors import ErrorCode, ParleyError
from shared.logs import log_event
from shared.ratelimit import FailOpen
from shared.settings import Settings

log = logging.getLogger("parley.auth")

ACCOUNT_FREE_FACTOR = 4
ACCOUNT_BACKOFF_MAX_SECONDS = 10.0
KNOWN_ADDRESS_SECONDS = 30 * 24 * 3600
# How long a limit waits on Redis before letting the attempt through unchecked.
STORE_TIMEOUT_SECONDS = 0.5


@dataclass(frozen=True)
class GateRule:
    """One gate's policy: `free` counted attempts, then a wait after each further one."""

    free: int
    base_seconds: float
    max_seconds: float
    window_seconds: float

    def backoff(self, excess: int) -> float:
        """The wait after the `excess`-th attempt past the free ones: base, 2 base, 4 base, ... cap."""
        return min(self.max_seconds, self.base_seconds * 2.0 ** min(excess - 1, 64))

    def schedule(self) -> list[float]:
        """Every distinct wait, in order, up to the cap (which then repeats): what the store applies."""
        waits = [self.backoff(1)]
        while waits[-1] < self.max_seconds and len(waits) < 64:
            waits.append(self.backoff(len(waits) + 1))
        return waits

    def keep_seconds(self) -> int:
        """How long a gate left alone is worth keeping: past the window and any wait, nothing."""
        return math.ceil(self.window_seconds + self.max_seconds) + 1


@dataclass(frozen=True)
class LoginRules:
    pair: GateRule
    address: GateRule
    account: GateRule

    @classmethod
    def from_settings(cls, settings: Settings) -> "LoginRules":
        base, cap, window = (
            settings.login_backoff_base_seconds,
            settings.login_backoff_max_seconds,
            settings.login_failure_window_seconds,
        )
        return cls(
            pair=GateRule(settings.login_free_failures_per_account, base, cap, window),
            address=GateRule(settings.login_free_failures_per_address, base, cap, window),
            account=GateRule(
                settings.login_free_failures_per_account * ACCOUNT_FREE_FACTOR,
                base,
                min(cap, ACCOUNT_BACKOFF_MAX_SECONDS),
                window,
            ),
        )


def _fold(value: str) -> str:
    """A fixed-length key part: any login name or address, safe in a Redis key."""
    return hashlib.blake2b(value.encode(), digest_size=12).hexdigest()


@dataclass(frozen=True)
class Attempt:
    """A login admitted by the throttle: which gates counted it."""

    account: str
    address: str | None
    counted: tuple[tuple[str, GateRule], ...]


class LoginThrottle:
    def __init__(self, gates: GateStore, rules: LoginRules, clock: Callable[[], float] = time.time):
        self.gates = gates
        self.rules = rules
        self.clock = clock
        self.outage = FailOpen("login_throttle", log)

    def _keys(self, username: str, address: str | None) -> tuple[str, str | None, str | None, str]:
        account = _fold(username)
        if address is None:
            return f"acct:{{{account}}}", None, None, f"known:{{{account}}}:-"
        where = _fold(address)
        return f"acct:{{{account}}}", f"pair:{{{account}}}:{where}", f"addr:{where}", f"known:{{{account}}}:{where}"

    async def admit(self, username: str, address: str | None) -> Attempt | None:
        """Count this attempt, or raise `rate_limited`; None when Redis could not be asked."""
        try:
            async with asyncio.timeout(STORE_TIMEOUT_SECONDS):
                attempt = await self._admit(username, address)
        except (Unreachable, TimeoutError) as exc:
            self.outage.failed(underlying(exc))
            return None
        self.outage.worked()
        return attempt

    async def _admit(self, username: str, address: str | None) -> Attempt:
        account_key, pair_key, address_key, known_key = self._keys(username, address)
        now = self.clock()
        # One gate after the other, narrowest first: a gate is entered only by attempts the
        # gates before it admitted, so a refused guess touches nothing wider than itself.
        gates: list[tuple[str | None, GateRule]] = [(pair_key, self.rules.pair), (address_key, self.rules.address)]
        if address is None or not await self.gates.remembered(known_key):
            gates.append((account_key, self.rules.account))
        counted: list[tuple[str, GateRule]] = []
        wait = 0.0
        for key, rule in gates:
            if key is None:
                continue
            wait = await self._enter(key, rule, now)
            if wait > 0:
                break
            counted.append((key, rule))
        if wait > 0:
            await self._take_back(counted)
            log_event(log, "login.throttled", logging.INFO, wait_seconds=round(wait, 1), client_address=address)
            raise ParleyError(ErrorCode.RATE_LIMITED, f"too many failed logins; retry in {math.ceil(wait)} s")
        return Attempt(username, address, tuple(counted))

    async def _enter(self, key: str, rule: GateRule, now: float) -> float:
        return await self.gates.admit(key, now, rule.free, rule.window_seconds, rule.keep_seconds(), rule.schedule())

    async def _take_back(self, counted: list[tuple[str, GateRule]]) -> None:
        for key, _ in counted:
            await self.gates.take_back(key)

    async def succeeded(self, attempt: Attempt | None) -> None:
        """The password was right: this attempt was no failure, and its address is now known."""
        if attempt is None:
            return
        account_key, pair_key, address_key, known_key = self._keys(attempt.account, attempt.address)
        try:
            async with asyncio.timeout(STORE_TIMEOUT_SECONDS):
                await self._take_back([(k, r) for k, r in attempt.counted if k != pair_key])
                # the account and address gates keep their other failures; this pair starts afresh
                if pair_key is not None:
                    await self.gates.delete(pair_key)
                    await self.gates.remember(known_key, KNOWN_ADDRESS_SECONDS)
        except (Unreachable, TimeoutError) as exc:
            self.outage.failed(underlying(exc))


class RegistrationLimit:
    """Registrations per client address: a token bucket (`register_per_address_per_hour`,
    burst `register_burst_per_address`) taken before any work, failing open without Redis."""

    def __init__(self, bucket: RateBucket):
        self.bucket = bucket
        self.outage = FailOpen("register_limit", log)

    async def take(self, address: str | None) -> None:
        if address is None:
            return
        try:
            async with asyncio.timeout(STORE_TIMEOUT_SECONDS):
                taken = await self.bucket.take(_fold(address))
        except (Unreachable, TimeoutError) as exc:
            self.outage.failed(underlying(exc))
            return
        self.outage.worked()
        if not taken:
            wait = math.ceil(1 / self.bucket.rate_per_second)
            log_event(log, "register.throttled", logging.INFO, client_address=address)
            raise ParleyError(
                ErrorCode.RATE_LIMITED, f"too many registrations from your address; retry in {wait} s"
            )
