"""calls.ice_servers over a real socket (docs/protocol.md, "Calls", step 1).

- The session stack configures no STUN or TURN: a logged-in socket gets an empty list, an
  unbound one `unauthorized`.
- A third gateway joins the session stack with STUN and TURN settings: its TURN credentials are
  coturn's shared-secret ones, and, where coturn is installed (`make coturn`), a real turnserver
  started with the same secret (--use-auth-secret --static-auth-secret) allocates a relay with
  them and refuses a forged one.
"""
import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime

import pytest

from deploy.local.devstack import Stack, free_port
from tests.support.client import Client, ReplyError, new_user
from tests.support.coturn import loopback_turnserver
from tests.support.infra import LOG_DIR, wait_until_ready

TTL_SECONDS = 120
REALM = "parley.test"


async def test_the_default_stack_offers_no_ice_servers(port: int) -> None:
    alice = await new_user(port)
    assert await alice.call("calls.ice_servers") == {"ice_servers": []}
    await alice.close()


async def test_an_unbound_socket_is_refused(port: int) -> None:
    client = await Client(port).connect()
    with pytest.raises(ReplyError) as info:
        await client.call("calls.ice_servers")
    assert info.value.code == "unauthorized"
    await client.close()


# --- a gateway with STUN and TURN ----------------------------------------------------------------
@pytest.fixture(scope="module")
def turn_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def turn_secret() -> str:
    return secrets.token_hex(32)


@pytest.fixture(scope="module")
async def ice_port(stack: Stack, turn_port: int, turn_secret: str) -> AsyncIterator[int]:
    """One more gateway on the session stack (same namespace and backends), with TURN settings."""
    gateway_port = free_port()
    overrides = {
        "PARLEY_GATEWAY_PORT": str(gateway_port),
        "PARLEY_STUN_URLS": json.dumps([f"stun:127.0.0.1:{turn_port}"]),
        "PARLEY_TURN_URLS": json.dumps([f"turn:127.0.0.1:{turn_port}?transport=udp", f"turn:127.0.0.1:{turn_port}?transport=tcp"]),
        "PARLEY_TURN_SECRET": turn_secret,
        "PARLEY_TURN_CREDENTIAL_TTL_SECONDS": str(TTL_SECONDS),
    }
    proc = stack.start_process("gateway-ice", "gateway", overrides)
    try:
        await wait_until_ready(gateway_port, timeout=60)
        yield gateway_port
    finally:
        await asyncio.to_thread(proc.stop)
        stack.procs.pop("gateway-ice", None)


async def test_turn_credentials_follow_coturns_shared_secret_scheme(ice_port: int, turn_port: int, turn_secret: str) -> None:
    alice = await new_user(ice_port)
    before = time.time()
    reply = await alice.call("calls.ice_servers")
    stun, turn = reply["ice_servers"]
    assert stun == {"urls": [f"stun:127.0.0.1:{turn_port}"]}
    assert turn["urls"] == [f"turn:127.0.0.1:{turn_port}?transport=udp", f"turn:127.0.0.1:{turn_port}?transport=tcp"]
    expiry, user_id = turn["username"].split(":")
    assert user_id == alice.user_id
    assert before + TTL_SECONDS - 1 <= int(expiry) <= time.time() + TTL_SECONDS
    assert datetime.fromisoformat(reply["expires_at"].replace("Z", "+00:00")).timestamp() == int(expiry)
    expected = hmac.new(turn_secret.encode(), turn["username"].encode(), hashlib.sha1).digest()
    assert base64.b64decode(turn["credential"]) == expected
    await alice.close()


# --- a real coturn ---------------------------------------------------------------------------------
def coturn_tools() -> tuple[str, str]:
    server, client = shutil.which("turnserver"), shutil.which("turnutils_uclient")
    if server is None or client is None:
        pytest.skip(
            "NO COTURN: turnserver/turnutils_uclient are not installed, so the credentials were not "
            "tried on a real TURN server. `sudo apt-get install --no-install-recommends coturn` "
            "(or `make coturn` as root), then run the tests again."
        )
    return server, client


@pytest.fixture(scope="module")
def turnserver(turn_port: int, turn_secret: str) -> Iterator[str]:
    """turnserver on 127.0.0.1:turn_port with the gateway's secret, its files in a temporary directory."""
    server, client = coturn_tools()
    with loopback_turnserver(server, turn_port, turn_secret, LOG_DIR / "turnserver.log", realm=REALM, relay_ports=20):
        yield client


def allocate(client: str, port: int, username: str, password: str) -> subprocess.CompletedProcess[str]:
    """turnutils_uclient: allocate a relay with these credentials and send a few packets through it."""
    return subprocess.run(
        [client, "-y", "-n", "1", "-m", "1", "-l", "100", "-u", username, "-w", password, "-p", str(port), "127.0.0.1"],
        capture_output=True, text=True, timeout=60,
    )


async def test_coturn_accepts_the_credentials_and_refuses_forged_ones(ice_port: int, turn_port: int, turnserver: str) -> None:
    alice = await new_user(ice_port)
    turn = (await alice.call("calls.ice_servers"))["ice_servers"][-1]
    await alice.close()

    accepted = await asyncio.to_thread(allocate, turnserver, turn_port, turn["username"], turn["credential"])
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert "Total lost packets 0" in accepted.stdout + accepted.stderr

    # Another user's name under the same password, and an expired username: both refused.
    expiry, user_id = turn["username"].split(":")
    for username in (f"{expiry}:u_someone_else", f"{int(time.time()) - 10}:{user_id}"):
        refused = await asyncio.to_thread(allocate, turnserver, turn_port, username, turn["credential"])
        assert refused.returncode != 0, f"{username}: allocated with a forged credential"
