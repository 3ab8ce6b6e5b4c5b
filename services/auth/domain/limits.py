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

Only failures count, but an attempt is admitted before its password is checked, so a burst of
concurrent guesses could slip through before the first failure lands: a gate therefore admits no
more attempts in flight than it has free failures left. An attempt beyond them is neither
counted nor refused: it waits in line (up to `login_wait_in_line_seconds`) until one in flight
settles — fifty people of one office logging in at once all get in, one free failure each
spoken for at a time, while fifty guesses at once get the free failures and then the backoff. A
success clears its (account, address) gate. A refused attempt is not counted.
Failures older than `login_failure_window_seconds` are forgotten. Unknown usernames are counted
exactly like known ones (the answer must not tell which names exist). Without a client address
(a caller that gave none) only the account gate applies. If Redis does not answer, logins go
through unthrottled (logged once per outage): being able to log in matters more.
"""
import asyncio
import contextlib
import hashlib
import logging
import math
import secrets
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
# How long an admitted attempt may take to settle; one that never does (its replica died) then
# counts as a failure. Longer than the login RPC's deadline.
IN_FLIGHT_SECONDS = 30
# A login waiting in line looks again at least this often (a slot freed on another replica).
LINE_POLL_SECONDS = 1.0
# Checks one replica has with Redis at once: a burst of logins queues here rather than on the
# connection pool, so each check's own round trips fit STORE_TIMEOUT_SECONDS (a check that does
# not fit fails open: under a flood of guesses that would be an opening).
CONCURRENT_CHECKS = 16


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
    """A login admitted by the throttle, in flight until settled: which gates it entered."""

    account: str
    address: str | None
    attempt_id: str
    entered: tuple[str, ...]


class LoginThrottle:
    def __init__(self, gates: GateStore, rules: LoginRules, clock: Callable[[], float] = time.time,
                 wait_in_line_seconds: float = 10.0):
        self.gates = gates
        self.rules = rules
        self.clock = clock
        self.wait_in_line_seconds = wait_in_line_seconds
        self.outage = FailOpen("login_throttle", log)
        self._settled = asyncio.Condition()  # an attempt of this replica settled: a slot is free
        self._checks = asyncio.Semaphore(CONCURRENT_CHECKS)

    def _keys(self, username: str, address: str | None) -> tuple[str, str | None, str | None, str]:
        account = _fold(username)
        if address is None:
            return f"acct:{{{account}}}", None, None, f"known:{{{account}}}:-"
        where = _fold(address)
        return f"acct:{{{account}}}", f"pair:{{{account}}}:{where}", f"addr:{where}", f"known:{{{account}}}:{where}"

    async def admit(self, username: str, address: str | None) -> Attempt | None:
        """Put this attempt in flight (waiting in line while the free failures left are spoken
        for), or raise `rate_limited`; None when Redis could not be asked."""
        attempt_id = secrets.token_hex(8)
        give_up_at = time.monotonic() + self.wait_in_line_seconds
        while True:
            try:
                async with self._checks, asyncio.timeout(STORE_TIMEOUT_SECONDS):
                    attempt = await self._admit(username, address, attempt_id)
            except (Unreachable, TimeoutError) as exc:
                self.outage.failed(underlying(exc))
                return None
            self.outage.worked()
            if attempt is not None:
                return attempt
            left = give_up_at - time.monotonic()
            if left <= 0:
                log_event(log, "login.line_too_long", logging.INFO, client_address=address)
                raise ParleyError(
                    ErrorCode.RATE_LIMITED, "too many logins in progress for this account or address; retry in 1 s"
                )
            await self._wait_for_a_settled_attempt(min(left, LINE_POLL_SECONDS))

    async def _wait_for_a_settled_attempt(self, seconds: float) -> None:
        async with self._settled:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._settled.wait(), seconds)

    async def _admit(self, username: str, address: str | None, attempt_id: str) -> Attempt | None:
        account_key, pair_key, address_key, known_key = self._keys(username, address)
        now = self.clock()
        # One gate after the other, narrowest first: a gate is entered only by attempts the
        # gates before it admitted, so a refused guess touches nothing wider than itself.
        gates: list[tuple[str | None, GateRule]] = [(pair_key, self.rules.pair), (address_key, self.rules.address)]
        if address is None or not await self.gates.remembered(known_key):
            gates.append((account_key, self.rules.account))
        entered: list[str] = []
        wait: float | None = 0.0
        for key, rule in gates:
            if key is None:
                continue
            wait = await self.gates.admit(key, attempt_id, now, rule)
            if wait != 0:
                break
            entered.append(key)
        if wait == 0:
            return Attempt(username, address, attempt_id, tuple(entered))
        for key in entered:  # a gate further out said no (or not yet): leave the ones entered
            await self.gates.settle(key, attempt_id, failed=False, now=now)
        if wait is None:
            return None
        log_event(log, "login.throttled", logging.INFO, wait_seconds=round(wait, 1), client_address=address)
        raise ParleyError(ErrorCode.RATE_LIMITED, f"too many failed logins; retry in {math.ceil(wait)} s")

    async def succeeded(self, attempt: Attempt | None) -> None:
        """The password was right: this attempt was no failure, and its address is now known."""
        await self._settle(attempt, failed=False)

    async def failed(self, attempt: Attempt | None) -> None:
        """The password (or the name) was wrong: one failure in every gate the attempt entered."""
        await self._settle(attempt, failed=True)

    async def abandoned(self, attempt: Attempt | None) -> None:
        """The check itself could not be made (the database, say): neither failure nor success."""
        await self._settle(attempt, failed=False, success=False)

    async def _settle(self, attempt: Attempt | None, failed: bool, success: bool = True) -> None:
        if attempt is None:
            return
        _, pair_key, _, known_key = self._keys(attempt.account, attempt.address)
        try:
            async with self._checks, asyncio.timeout(STORE_TIMEOUT_SECONDS):
                for key in attempt.entered:
                    await self.gates.settle(key, attempt.attempt_id, failed, self.clock())
                if success and not failed and pair_key is not None:
                    # the account and address gates keep their other failures; this pair starts afresh
                    await self.gates.delete(pair_key)
                    await self.gates.remember(known_key, KNOWN_ADDRESS_SECONDS)
        except (Unreachable, TimeoutError) as exc:
            self.outage.failed(underlying(exc))
        async with self._settled:
            self._settled.notify(1)


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
