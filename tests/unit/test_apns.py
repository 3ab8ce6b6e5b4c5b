"""The APNs provider (services/push/providers/apns.py) against a stand-in speaking APNs' provider
API over HTTP/2 and TLS (tests/support/apns_standin.py): what APNs receives, how the provider
token is kept and replaced, and what each of APNs' answers comes to."""
import asyncio
import email.utils
import logging
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import jwt
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from services.push.domain.ports import Outgoing, Subscription, Urgency
from services.push.providers.apns import ApnsProvider, load_key
from shared.contracts.push import Notification
from shared.settings import Settings
from tests.support.apns_standin import Answer, ApnsStandin, apns_standin, signing_key
from tests.support.fcm_standin import service_account

KEY_ID = "ABC123DEFG"
TEAM_ID = "DEF123GHIJ"
BUNDLE = "chat.parley.ios"
DEVICE = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"
MESSAGE = Notification(kind="message", tag="c:conv1", conversation_id="conv1", title="Bob · Lunch club",
                       body="Lunch at 12?", badge=3, url="/app/#c=conv1", sent_at="2026-12-07T10:00:00.000Z")
CALL = Notification(kind="call", tag="call:k1", call_id="k1", conversation_id="conv1", title="Bob",
                    body="Incoming call", url="/app/#c=conv1")


class Clock:
    """Wall time the test moves (the provider's JWT `iat` and `apns-expiration` come from it)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def outgoing(notification: Notification = MESSAGE, *, token: str = DEVICE, urgency: Urgency = "normal",
             ttl: int = 86400, topic: str | None = "c-3f2a9b") -> Outgoing:
    subscription = Subscription(user_id="u_alice", device_id="d_iphone", kind="apns", token=token)
    return Outgoing(subscription, notification, urgency=urgency, ttl_seconds=ttl, topic=topic)


@pytest.fixture(scope="module")
def p8() -> tuple[bytes, ec.EllipticCurvePublicKey]:
    return signing_key()


@asynccontextmanager
async def running(p8: tuple[bytes, ec.EllipticCurvePublicKey], key_id: str = KEY_ID
                  ) -> AsyncIterator[tuple[ApnsStandin, ApnsProvider, Clock]]:
    pem, public = p8
    clock = Clock()
    async with apns_standin(public_key=public, key_id=KEY_ID, team_id=TEAM_ID, topic=BUNDLE) as standin:
        assert standin.client_ssl is not None
        provider = ApnsProvider(key=load_key(pem), key_id=key_id, team_id=TEAM_ID, topic=BUNDLE, url=standin.url,
                                clock=clock, verify=standin.client_ssl)
        try:
            yield standin, provider, clock
        finally:
            await provider.close()


async def test_a_message_reaches_apns_as_the_documented_request(p8):
    async with running(p8) as (standin, provider, clock):
        sent = await provider.send(outgoing())
        assert sent.outcome == "sent" and sent.status == 200 and sent.detail  # the apns-id
        [request] = standin.requests
        assert request.device_token == DEVICE
        assert {k: v for k, v in request.headers.items() if k.startswith("apns-")} == {
            "apns-topic": BUNDLE, "apns-push-type": "alert", "apns-priority": "5",
            "apns-expiration": str(int(clock.now) + 86400), "apns-collapse-id": "c-3f2a9b",
        }
        assert request.payload == {
            "aps": {"alert": {"title": "Bob · Lunch club", "body": "Lunch at 12?"}, "badge": 3, "sound": "default",
                    "thread-id": "conv1"},
            "parley": {"kind": "message", "tag": "c:conv1", "conversation_id": "conv1", "title": "Bob · Lunch club",
                       "body": "Lunch at 12?", "badge": 3, "url": "/app/#c=conv1", "sent_at": "2026-12-07T10:00:00.000Z"},
        }
        assert jwt.get_unverified_header(request.provider_token) == {"alg": "ES256", "kid": KEY_ID, "typ": "JWT"}
        assert request.claims == {"iss": TEAM_ID, "iat": int(clock.now)}


async def test_a_call_is_an_alert_at_priority_10_with_its_short_ttl(p8):
    async with running(p8) as (standin, provider, clock):
        assert (await provider.send(outgoing(CALL, urgency="high", ttl=45, topic=None))).outcome == "sent"
        assert (await provider.send(outgoing(CALL, urgency="high", ttl=0, topic=None))).outcome == "sent"
        first, second = standin.requests
        assert first.headers["apns-push-type"] == "alert" and first.headers["apns-priority"] == "10"
        assert first.headers["apns-expiration"] == str(int(clock.now) + 45)
        assert second.headers["apns-expiration"] == "0"  # now or never
        assert "apns-collapse-id" not in first.headers
        assert first.payload["aps"] == {"alert": {"title": "Bob", "body": "Incoming call"}, "sound": "default",
                                        "thread-id": "conv1"}
        assert first.payload["parley"]["call_id"] == "k1"


async def test_a_withdraw_is_a_background_push(p8):
    async with running(p8) as (standin, provider, _):
        withdraw = Notification(kind="withdraw", tag="call:k1")
        assert (await provider.send(outgoing(withdraw, urgency="high", topic=None))).outcome == "sent"
        [request] = standin.requests
        assert request.headers["apns-push-type"] == "background" and request.headers["apns-priority"] == "5"
        assert request.payload == {"aps": {"content-available": 1}, "parley": {"kind": "withdraw", "tag": "call:k1"}}


async def test_the_provider_token_is_reused_for_50_minutes(p8):
    async with running(p8) as (standin, provider, clock):
        real = clock.now
        clock.now = real - 55 * 60  # a token issued 55 minutes ago (APNs takes it for an hour)
        await provider.send(outgoing())
        clock.now = real - 55 * 60 + 49 * 60
        await provider.send(outgoing())
        assert len(standin.provider_tokens) == 1
        clock.now = real
        await provider.send(outgoing())
        assert len(standin.provider_tokens) == 2
        assert [r.claims["iat"] for r in standin.requests] == [int(real) - 3300] * 2 + [int(real)]


async def test_an_expired_provider_token_is_replaced_once(p8):
    async with running(p8) as (standin, provider, _):
        await provider.send(outgoing())
        standin.expire_provider_tokens()
        assert (await provider.send(outgoing())).outcome == "sent"
        assert standin.refused == [(403, "ExpiredProviderToken")] and len(standin.provider_tokens) == 2
        standin.answer(DEVICE, Answer(403, "ExpiredProviderToken"), Answer(403, "ExpiredProviderToken"))
        sent = await provider.send(outgoing())
        assert (sent.outcome, sent.status, sent.detail) == ("failed", 403, "ExpiredProviderToken")
        assert len(standin.provider_tokens) == 3


async def test_concurrent_sends_share_one_provider_token(p8):
    async with running(p8) as (standin, provider, _):
        results = await asyncio.gather(*(provider.send(outgoing(token=f"{i:064x}")) for i in range(10)))
        assert [r.outcome for r in results] == ["sent"] * 10
        assert len(standin.provider_tokens) == 1 and len(standin.requests) == 10


async def test_a_dead_device_token_is_gone(p8):
    async with running(p8) as (standin, provider, _):
        standin.answer(DEVICE, Answer(410, "Unregistered"))
        unregistered = await provider.send(outgoing())
        assert (unregistered.outcome, unregistered.status, unregistered.detail) == ("gone", 410, "Unregistered")
        bad = await provider.send(outgoing(token="not-a-device-token"))
        assert (bad.outcome, bad.status, bad.detail) == ("gone", 400, "BadDeviceToken")


async def test_overload_and_server_errors_are_retried_honouring_retry_after(p8):
    async with running(p8) as (standin, provider, clock):
        later = email.utils.formatdate(clock.now + 20, usegmt=True)
        standin.answer(DEVICE, Answer(429, "TooManyRequests", {"retry-after": "5"}),
                       Answer(503, "ServiceUnavailable"), Answer(500, "InternalServerError", {"retry-after": later}))
        first, second, third = [await provider.send(outgoing()) for _ in range(3)]
        assert (first.outcome, first.status, first.retry_after, first.detail) == ("retry", 429, 5.0, "TooManyRequests")
        assert (second.outcome, second.status, second.retry_after) == ("retry", 503, None)
        assert third.outcome == "retry" and third.retry_after is not None and 19 <= third.retry_after <= 20
        assert (await provider.send(outgoing())).outcome == "sent"


async def test_any_other_refusal_fails_without_a_retry(p8, caplog):
    async with running(p8) as (standin, provider, _):
        standin.answer(DEVICE, Answer(400, "DeviceTokenNotForTopic"))
        sent = await provider.send(outgoing())
        assert (sent.outcome, sent.status, sent.detail) == ("failed", 400, "DeviceTokenNotForTopic")
    async with running(p8, key_id="WRONGKEYID") as (standin, provider, _):
        with caplog.at_level(logging.WARNING, logger="parley.push"):
            sent = await provider.send(outgoing())
        assert (sent.outcome, sent.status, sent.detail) == ("failed", 403, "InvalidProviderToken")
        assert [r.getMessage() for r in caplog.records] == ["push.apns.refused"]
        assert standin.requests == []


async def test_a_long_collapse_id_and_a_long_preview_are_made_to_fit(p8):
    async with running(p8) as (standin, provider, _):
        long = MESSAGE.model_copy(update={"body": "長い\"" * 2000})
        assert (await provider.send(outgoing(long, topic="c:" + "x" * 80))).outcome == "sent"
        [request] = standin.requests
        assert len(request.headers["apns-collapse-id"]) == 64
        assert request.payload["aps"]["alert"]["body"].endswith("…")
        assert request.payload["parley"]["body"] == request.payload["aps"]["alert"]["body"]
        assert len(orjson.dumps(request.payload)) <= 4096


async def test_an_unreachable_apns_is_retried():
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    pem, _ = signing_key()
    provider = ApnsProvider(key=load_key(pem), key_id=KEY_ID, team_id=TEAM_ID, topic=BUNDLE,
                            url=f"https://127.0.0.1:{closed.getsockname()[1]}", timeout=2)
    try:
        sent = await provider.send(outgoing())
        assert sent.outcome == "retry" and sent.status is None and "Connect" in sent.detail
    finally:
        await provider.close()
        closed.close()


async def test_apns_is_off_unless_configured(p8, tmp_path: Path, caplog):
    assert ApnsProvider.from_settings(Settings()) is None
    key_file = tmp_path / f"AuthKey_{KEY_ID}.p8"
    key_file.write_bytes(p8[0])
    complete: dict[str, Any] = {"push_apns_key_file": str(key_file), "push_apns_key_id": KEY_ID,
                                "push_apns_team_id": TEAM_ID, "push_apns_topic": BUNDLE}
    with caplog.at_level(logging.WARNING, logger="parley.push"):
        assert ApnsProvider.from_settings(Settings(**{**complete, "push_apns_topic": ""})) is None
    assert [r.getMessage() for r in caplog.records] == ["push.apns.incomplete"]
    provider = ApnsProvider.from_settings(Settings(**complete, push_apns_url="https://127.0.0.1:1"))
    assert provider is not None
    try:
        assert (provider.kind, provider.key_id, provider.team_id, provider.topic) == ("apns", KEY_ID, TEAM_ID, BUNDLE)
        assert provider.key.public_key().public_numbers() == p8[1].public_numbers()
    finally:
        await provider.close()
    rsa_key = tmp_path / "rsa.p8"
    rsa_key.write_bytes(orjson.loads(service_account()[0])["private_key"].encode())
    with pytest.raises(ValueError, match="P-256"):
        ApnsProvider.from_settings(Settings(**{**complete, "push_apns_key_file": str(rsa_key)}))
