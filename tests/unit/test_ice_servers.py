"""calls.ice_servers' credentials (services/gateway/ice_servers.py): coturn's shared-secret scheme.

coturn (use-auth-secret) takes the username's expiry time (before the ':'), refuses it once that
time has passed, and otherwise recomputes the password as base64(HMAC-SHA1(static-auth-secret,
username)). `coturn_accepts` below does the same, written from that description rather than from
the module under test; tests/integration/test_ice_servers.py has a real turnserver check them.
"""
import base64
import hashlib
import hmac
import logging
from datetime import datetime, timezone

import pytest

from services.gateway.ice_servers import IceServers, turn_password
from shared.settings import Settings

SECRET = "a-turn-secret-shared-with-coturn"
NOW = 1_750_000_000.75
STUN = ["stun:turn.example.com:3478"]
TURN = ["turn:turn.example.com:3478?transport=udp", "turn:turn.example.com:3478?transport=tcp"]


def coturn_accepts(secret: str, username: str, password: str, now: float) -> bool:
    expiry, _, _user = username.partition(":")
    if not expiry.isdigit() or int(expiry) < now:
        return False
    expected = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return hmac.compare_digest(base64.b64decode(password), expected)


def servers(stun: list[str] = STUN, turn: list[str] = TURN, secret: str = SECRET, ttl: int = 3600) -> IceServers:
    return IceServers(stun, turn, secret, ttl, clock=lambda: NOW)


def test_turn_credentials_are_accepted_by_coturns_check() -> None:
    reply = servers().for_user("u_alice")
    stun, turn = reply.ice_servers
    assert stun.urls == STUN and stun.username is None and stun.credential is None
    assert turn.urls == TURN
    assert turn.username is not None and turn.credential is not None
    assert coturn_accepts(SECRET, turn.username, turn.credential, NOW)
    # ... until they expire, and only with the shared secret, for this username.
    assert coturn_accepts(SECRET, turn.username, turn.credential, NOW + 3599)
    assert not coturn_accepts(SECRET, turn.username, turn.credential, NOW + 3601)
    assert not coturn_accepts("another-secret", turn.username, turn.credential, NOW)
    forged = turn.username.replace("u_alice", "u_bob")
    assert not coturn_accepts(SECRET, forged, turn.credential, NOW)


def test_the_username_is_expiry_colon_user_id_and_expires_at_says_the_same_time() -> None:
    reply = servers(ttl=600).for_user("u_alice")
    turn = reply.ice_servers[-1]
    expiry = int(NOW) + 600
    assert turn.username == f"{expiry}:u_alice"
    assert reply.expires_at == "2025-06-15T15:16:40.000Z"
    assert datetime.fromisoformat(reply.expires_at.replace("Z", "+00:00")) == datetime.fromtimestamp(expiry, timezone.utc)


def test_the_password_matches_a_fixed_vector() -> None:
    # printf %s '1795828853:u_alice' | openssl dgst -sha1 -hmac s3cret -binary | base64
    assert turn_password("s3cret", "1795828853:u_alice") == "kW65Ywulh38xeRDpkKUbgPbbnuw="


def test_each_request_gets_credentials_from_the_clock() -> None:
    now = [NOW]
    ice = IceServers([], TURN, SECRET, 3600, clock=lambda: now[0])
    first = ice.for_user("u_alice").ice_servers[0]
    now[0] += 100
    later = ice.for_user("u_alice").ice_servers[0]
    assert first.username != later.username and first.credential != later.credential
    assert later.username is not None and later.credential is not None
    assert coturn_accepts(SECRET, later.username, later.credential, now[0])


def test_without_turn_urls_stun_only() -> None:
    reply = servers(turn=[]).for_user("u_alice")
    assert reply.model_dump(mode="json") == {"ice_servers": [{"urls": STUN}]}


def test_without_a_secret_turn_is_left_out() -> None:
    reply = servers(secret="").for_user("u_alice")
    assert reply.model_dump(mode="json") == {"ice_servers": [{"urls": STUN}]}


def test_nothing_configured_is_an_empty_list() -> None:
    reply = IceServers.from_settings(Settings(stun_urls=[], turn_urls=[], turn_secret="")).for_user("u_alice")
    assert reply.model_dump(mode="json") == {"ice_servers": []}


def test_turn_only_without_stun() -> None:
    reply = servers(stun=[]).for_user("u_alice")
    dumped = reply.model_dump(mode="json")
    (turn,) = dumped["ice_servers"]
    assert set(turn) == {"urls", "username", "credential"}
    assert set(dumped) == {"ice_servers", "expires_at"}


def test_from_settings_reads_the_call_settings() -> None:
    settings = Settings(stun_urls=STUN, turn_urls=TURN, turn_secret=SECRET, turn_credential_ttl_seconds=120)
    ice = IceServers.from_settings(settings)
    ice.clock = lambda: NOW
    turn = ice.for_user("u_alice").ice_servers[-1]
    assert turn.username == f"{int(NOW) + 120}:u_alice"


def test_turn_urls_without_a_secret_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    """The gateway's records only: caplog takes every logger's, and a warning of something else
    (an earlier test's leftover being collected meanwhile, say) is not this test's business."""
    with caplog.at_level(logging.WARNING, logger="parley.gateway"):
        ice = IceServers.from_settings(Settings(stun_urls=[], turn_urls=TURN, turn_secret=""))
    assert ice.for_user("u_alice").ice_servers == []
    assert [r.getMessage() for r in caplog.records if r.name == "parley.gateway"] == ["ice.turn_without_secret"]
