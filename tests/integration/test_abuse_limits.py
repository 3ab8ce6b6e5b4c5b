"""Abuse limits as a user sees them (issue 11, point 8), on a small stack of its own with low
limits (the session stack raises them: every test user there comes from 127.0.0.1).

The gateway takes the client address from X-Forwarded-For here (PARLEY_TRUST_FORWARDED_FOR, as
behind our own proxy), so each test plays clients at addresses of its choosing.

- Wrong passwords: the first ones are `unauthorized`, then `rate_limited` ("retry in N s") over
  WebSocket, and 429 over POST /auth/login; the owner at another address still gets in; once
  the backoff has passed the right password works again from the guessing address too.
- Registrations from one address past the burst are `rate_limited`; another address is not.
"""
import asyncio
import itertools
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.support.client import PASSWORD, Client
from tests.support.infra import stack_of_its_own

FREE_FAILURES = 3  # per (account, address)
# The first wait past the free failures. The refusals the tests expect (three round trips after
# the failure that set it) must land within it, on a loaded machine too.
BACKOFF_BASE = 2.0
REGISTER_BURST = 3


@pytest.fixture(scope="module")
async def port(test_env: dict[str, str]) -> AsyncIterator[int]:
    overrides = {
        "PARLEY_TRUST_FORWARDED_FOR": "true",
        "PARLEY_LOGIN_FREE_FAILURES_PER_ACCOUNT": str(FREE_FAILURES),
        "PARLEY_LOGIN_FREE_FAILURES_PER_ADDRESS": "20",
        "PARLEY_LOGIN_BACKOFF_BASE_SECONDS": str(BACKOFF_BASE),
        "PARLEY_LOGIN_BACKOFF_MAX_SECONDS": "4",
        "PARLEY_LOGIN_FAILURE_WINDOW_SECONDS": "60",
        "PARLEY_REGISTER_PER_ADDRESS_PER_HOUR": "1",
        "PARLEY_REGISTER_BURST_PER_ADDRESS": str(REGISTER_BURST),
        "PARLEY_ARGON2_TIME_COST": "1",
        "PARLEY_ARGON2_MEMORY_KIB": "8192",
    }
    async with stack_of_its_own(test_env, "abuse-limits", overrides) as (stack, _):
        yield stack.gateway_ports[0]


class At(Client):
    """A client at a given address (X-Forwarded-For, trusted by this stack's gateway)."""

    def __init__(self, port: int, address: str):
        super().__init__(port, headers={"X-Forwarded-For": address})
        self.address = address

    async def try_login(self, username: str, password: str) -> dict[str, Any]:
        return await self.reply("auth.login", {"username": username, "password": password})


_hosts = itertools.count(1)


def address() -> str:
    """A fresh address for each client played (so tests do not share a limit)."""
    n = next(_hosts)
    return f"203.0.{113 + n // 250}.{n % 250 + 1}"


def code(reply: dict[str, Any]) -> str:
    return "ok" if reply["ok"] else reply["error"]["code"]


async def test_wrong_passwords_back_off_but_the_owner_elsewhere_gets_in(port: int):
    home, guesser_at = "198.51.100.7", address()
    owner = await At(port, home).connect()
    await owner.register()
    guesser = await At(port, guesser_at).connect()

    replies, asked_at = [], []
    for _ in range(FREE_FAILURES + 3):
        asked_at.append(time.monotonic())
        replies.append(await guesser.try_login(owner.username, "not the password"))
    took = time.monotonic() - asked_at[FREE_FAILURES]  # from the failure that set the wait
    # The free failures and one more are checked (and wrong); then the guesser must wait.
    assert [code(r) for r in replies] == ["unauthorized"] * (FREE_FAILURES + 1) + ["rate_limited"] * 2
    # What is left of the wait, rounded up: all of it, unless this machine took over a second.
    left = [int(BACKOFF_BASE)] if took < 1 else [int(BACKOFF_BASE) - 1, int(BACKOFF_BASE)]
    assert replies[-1]["error"]["message"] in [f"too many failed logins; retry in {n} s" for n in left], took
    # Even the right password is refused while the backoff lasts (no argon2 is spent).
    assert code(await guesser.try_login(owner.username, PASSWORD)) == "rate_limited"

    # The owner, at home, is not held up.
    assert code(await owner.try_login(owner.username, PASSWORD)) == "ok"

    # The backoff ends: waiting lets the right password in from the guesser's address too. The
    # wait began before these replies and auth compares with this machine's clock, so one
    # attempt once it is over is no bet on speed (and asking until it works would hide a late end).
    await asyncio.sleep(BACKOFF_BASE)
    assert code(await guesser.try_login(owner.username, PASSWORD)) == "ok"
    for client in (owner, guesser):
        await client.close()


async def test_unknown_usernames_are_throttled_the_same_way(port: int):
    guesser = await At(port, address()).connect()
    name = f"nobody_{secrets.token_hex(4)}"
    replies = [await guesser.try_login(name, "whatever it is") for _ in range(FREE_FAILURES + 2)]
    assert [code(r) for r in replies] == ["unauthorized"] * (FREE_FAILURES + 1) + ["rate_limited"]
    await guesser.close()


async def test_wrong_passwords_over_http_end_in_429(port: int):
    owner = await At(port, address()).connect()
    await owner.register()
    await owner.close()
    body = {"username": owner.username, "password": "not the password"}
    statuses: list[int] = []
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers={"X-Forwarded-For": address()}) as http:
        # Past the free failures of the address (or, if the gateway gave auth no address for HTTP,
        # of the account as a whole): 429.
        for _ in range(4 * FREE_FAILURES + 2):
            response = await http.post("/auth/login", json=body)
            statuses.append(response.status_code)
            if response.status_code == 429:
                break
    assert statuses[: FREE_FAILURES + 1] == [401] * (FREE_FAILURES + 1)
    assert statuses[-1] == 429, statuses
    error = response.json()["error"]
    assert error["code"] == "rate_limited" and error["message"].startswith("too many failed logins; retry in ")


async def test_registrations_from_one_address_stop_at_the_burst(port: int):
    crowd = await At(port, address()).connect()
    replies = []
    for _ in range(REGISTER_BURST + 2):
        replies.append(await crowd.reply(
            "auth.register", {"username": f"bulk_{secrets.token_hex(5)}", "password": PASSWORD}
        ))
    assert [code(r) for r in replies] == ["ok"] * REGISTER_BURST + ["rate_limited"] * 2
    assert replies[-1]["error"]["message"] == "too many registrations from your address; retry in 3600 s"
    # Someone at another address registers as usual.
    other = await At(port, address()).connect()
    await other.register()
    for client in (crowd, other):
        await client.close()


async def register_over_http(http: httpx.AsyncClient, count: int) -> list[str]:
    """`count` accounts, each registered from an address of its own (past no registration limit),
    ten at a time (set-up, not what is tested: one at a time it was a third of the office test)."""
    names = [f"office_{secrets.token_hex(5)}" for _ in range(count)]
    line = asyncio.Semaphore(10)

    async def register(name: str) -> None:
        async with line:
            response = await http.post(
                "/auth/register", json={"username": name, "password": PASSWORD}, headers={"X-Forwarded-For": address()}
            )
        assert response.status_code == 201, response.text

    await asyncio.gather(*(register(name) for name in names))
    return names


# Five times the address's 20 free failures: before the fix 29 of 50 concurrent logins were
# refused (aa62e77), and with the fix reverted 100 are refused too (checked when it went from 200
# to 100 to save a few seconds of make test); the fix's own scale (200) is in its unit tests.
OFFICE = 100


async def test_an_office_behind_one_address_logs_in_at_once(port: int):
    """Issue 29: an office's worth of people behind one address (an office, a school, a
    carrier's NAT) log in at the same moment with their right passwords. Before, every login in
    flight used up one of the address's 20 free failures, and most were told "too many failed
    logins"; now they wait in line for a moment and all get in."""
    office = address()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        names = await register_over_http(http, OFFICE)
        responses = await asyncio.gather(*(
            http.post("/auth/login", json={"username": n, "password": PASSWORD}, headers={"X-Forwarded-For": office})
            for n in names
        ))
    statuses = [r.status_code for r in responses]
    assert statuses == [200] * OFFICE, {s: statuses.count(s) for s in set(statuses)}


async def test_concurrent_wrong_passwords_from_one_address_are_held_to_its_free_failures(port: int):
    """The reason attempts are held in line: 300 wrong passwords at once from one address get the
    address's 20 free failures and one more checked, never more in flight at once; the rest are
    refused without a password check."""
    guesser = address()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        names = await register_over_http(http, 3)
        started = time.monotonic()
        responses = await asyncio.gather(*(
            http.post("/auth/login", json={"username": names[i % 3] if i % 2 else f"nobody_{i}", "password": "wrong"},
                      headers={"X-Forwarded-For": guesser})
            for i in range(300)
        ))
        took = time.monotonic() - started
    statuses = [r.status_code for r in responses]
    checked = statuses.count(401)
    assert statuses.count(401) + statuses.count(429) == 300, {s: statuses.count(s) for s in set(statuses)}
    # 20 free, then one past them; one more per backoff window only if the burst outlasted it.
    assert checked == 21 or (took > BACKOFF_BASE and 21 < checked <= 21 + int(took // BACKOFF_BASE)), (checked, took)
    refusal = next(r for r in responses if r.status_code == 429).json()["error"]
    assert refusal["message"].startswith("too many failed logins; retry in ")
