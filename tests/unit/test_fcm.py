"""The FCM provider (services/push/providers/fcm.py) against a stand-in speaking Google's token
endpoint and FCM HTTP v1 (tests/support/fcm_standin.py): what FCM receives, how the access token
is kept and replaced, and what each of FCM's answers comes to."""
import asyncio
import email.utils
import logging
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from services.push.domain.ports import Outgoing, Subscription, Urgency
from services.push.providers.fcm import FcmProvider, ServiceAccount
from shared.contracts.push import Notification
from shared.settings import Settings
from tests.support.fcm_standin import SCOPE, Answer, FcmStandin, fcm_error, fcm_standin, service_account

PROJECT = "parley-test"
DEVICE = "fcm-registration-token-of-alices-phone"
MESSAGE = Notification(kind="message", tag="c:conv1", conversation_id="conv1", title="Bob", body="Lunch at 12?",
                       badge=3, url="/app/#c=conv1", sent_at="2026-12-07T10:00:00.000Z")
CALL = Notification(kind="call", tag="call:k1", call_id="k1", conversation_id="conv1", title="Bob",
                    body="Incoming call", url="/app/#c=conv1")


class Clock:
    """Wall time the test moves forward (time.time by default in the provider)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def outgoing(notification: Notification = MESSAGE, *, token: str = DEVICE, urgency: Urgency = "normal",
             ttl: int = 86400, topic: str | None = "c-3f2a9b") -> Outgoing:
    subscription = Subscription(user_id="u_alice", device_id="d_phone", kind="fcm", token=token)
    return Outgoing(subscription, notification, urgency=urgency, ttl_seconds=ttl, topic=topic)


@pytest.fixture(scope="module")
def account() -> tuple[bytes, rsa.RSAPublicKey]:
    return service_account()


@asynccontextmanager
async def running(account: tuple[bytes, rsa.RSAPublicKey], project: str = PROJECT, standin_key: Any = None,
                  **options: Any) -> AsyncIterator[tuple[FcmStandin, FcmProvider, Clock]]:
    raw, public = account
    clock = Clock()
    async with fcm_standin(project_id="parley-test", client_email="parley-push@parley-test.iam.gserviceaccount.com",
                           public_key=standin_key or public, **options) as standin:
        provider = FcmProvider(project_id=project, account=ServiceAccount.from_json(raw), url=standin.url,
                               token_url=standin.token_url, clock=clock)
        try:
            yield standin, provider, clock
        finally:
            await provider.close()


async def test_a_message_reaches_fcm_as_the_documented_request(account):
    async with running(account) as (standin, provider, clock):
        sent = await provider.send(outgoing())
        assert sent.outcome == "sent" and sent.status == 200
        assert sent.detail.startswith(f"projects/{PROJECT}/messages/")
        [received] = standin.received
        assert received.body == {"message": {
            "token": DEVICE,
            "data": {"kind": "message", "tag": "c:conv1", "conversation_id": "conv1", "title": "Bob",
                     "body": "Lunch at 12?", "badge": "3", "url": "/app/#c=conv1", "sent_at": "2026-12-07T10:00:00.000Z"},
            "android": {"priority": "NORMAL", "ttl": "86400s", "collapse_key": "c-3f2a9b"},
        }}
        [claims] = standin.assertions
        assert claims["iss"] == "parley-push@parley-test.iam.gserviceaccount.com"
        assert claims["scope"] == SCOPE and claims["aud"] == standin.token_url
        assert claims["iat"] == int(clock.now) and claims["exp"] == int(clock.now) + 3600


async def test_a_call_goes_at_high_priority_with_its_short_ttl(account):
    async with running(account) as (standin, provider, _):
        assert (await provider.send(outgoing(CALL, urgency="high", ttl=45, topic=None))).outcome == "sent"
        [received] = standin.received
        assert received.message["android"] == {"priority": "HIGH", "ttl": "45s"}
        assert received.message["data"]["kind"] == "call" and received.message["data"]["call_id"] == "k1"


async def test_a_withdraw_is_a_data_message_too(account):
    async with running(account) as (standin, provider, _):
        withdraw = Notification(kind="withdraw", tag="c:conv1", badge=0)
        assert (await provider.send(outgoing(withdraw))).outcome == "sent"
        assert standin.received[0].message["data"] == {"kind": "withdraw", "tag": "c:conv1", "badge": "0"}


async def test_the_access_token_is_kept_until_shortly_before_it_expires(account):
    async with running(account, expires_in=1800) as (standin, provider, clock):
        clock.now -= 1800  # (the stand-in, as Google, refuses an assertion issued in the future)
        await provider.send(outgoing())
        clock.now += 1800 - 61
        await provider.send(outgoing())
        assert len(standin.assertions) == 1
        assert {r.access_token for r in standin.received} == {standin.received[0].access_token}
        clock.now += 2  # 59 s before it expires: no send goes out with it any more
        assert (await provider.send(outgoing())).outcome == "sent"
        assert len(standin.assertions) == 2
        assert standin.received[2].access_token != standin.received[0].access_token


async def test_a_burst_of_sends_asks_for_one_token(account):
    async with running(account) as (standin, provider, _):
        results = await asyncio.gather(*(provider.send(outgoing(token=f"{DEVICE}-{i}")) for i in range(10)))
        assert [r.outcome for r in results] == ["sent"] * 10
        assert len(standin.assertions) == 1 and len(standin.received) == 10


async def test_a_refused_access_token_is_replaced_and_the_send_tried_again(account):
    async with running(account) as (standin, provider, _):
        await provider.send(outgoing())
        standin.revoke_access_tokens()
        sent = await provider.send(outgoing())
        assert sent.outcome == "sent"
        assert standin.unauthenticated == 1 and len(standin.assertions) == 2 and len(standin.received) == 2


async def test_a_second_401_is_not_tried_a_third_time(account):
    async with running(account) as (standin, provider, _):
        refused = fcm_error(401, "UNAUTHENTICATED", message="Request had invalid authentication credentials.")
        standin.answer(DEVICE, refused, refused)
        sent = await provider.send(outgoing())
        assert (sent.outcome, sent.status) == ("failed", 401)
        assert len(standin.received) == 2 and len(standin.assertions) == 2


@pytest.mark.parametrize("answer", [
    fcm_error(404, "NOT_FOUND", "UNREGISTERED", "Requested entity was not found."),
    fcm_error(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "The registration token is not a valid FCM registration token"),
    fcm_error(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "Invalid value", field_name="message.token"),
], ids=["unregistered", "invalid-token", "invalid-token-field"])
async def test_a_dead_registration_token_is_gone(account, answer: Answer):
    async with running(account) as (standin, provider, _):
        standin.answer(DEVICE, answer)
        sent = await provider.send(outgoing())
        assert (sent.outcome, sent.status) == ("gone", answer.status)


@pytest.mark.parametrize("answer", [
    fcm_error(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "Invalid value", field_name="message.data"),
    fcm_error(403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH", "SenderId mismatch"),
    fcm_error(401, "UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR", "Auth error from APNS or Web Push Service"),
], ids=["invalid-message", "sender-mismatch", "third-party-auth"])
async def test_any_other_refusal_fails_without_a_retry(account, answer: Answer):
    async with running(account) as (standin, provider, _):
        standin.answer(DEVICE, answer)
        sent = await provider.send(outgoing())
        assert (sent.outcome, sent.status) == ("failed", answer.status)
        assert sent.detail.startswith(answer.body["error"]["details"][0]["errorCode"])
        assert len(standin.received) == 1 and len(standin.assertions) == 1


async def test_a_wrong_project_is_a_failure_not_a_dead_token(account):
    async with running(account, project="another-project") as (standin, provider, _):
        sent = await provider.send(outgoing())
        assert (sent.outcome, sent.status) == ("failed", 404)


async def test_overload_and_server_errors_are_retried_honouring_retry_after(account):
    async with running(account) as (standin, provider, clock):
        later = email.utils.formatdate(clock.now + 30, usegmt=True)
        standin.answer(DEVICE, fcm_error(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", headers={"retry-after": "7"}),
                       fcm_error(503, "UNAVAILABLE", "UNAVAILABLE"),
                       fcm_error(500, "INTERNAL", "INTERNAL", headers={"retry-after": later}))
        first, second, third = [await provider.send(outgoing()) for _ in range(3)]
        assert (first.outcome, first.status, first.retry_after) == ("retry", 429, 7.0)
        assert (second.outcome, second.status, second.retry_after) == ("retry", 503, None)
        assert third.outcome == "retry" and third.retry_after is not None and 29 <= third.retry_after <= 30
        assert (await provider.send(outgoing())).outcome == "sent"


async def test_a_refused_service_account_fails_and_a_busy_token_endpoint_is_retried(account, caplog):
    _, stranger = service_account()
    async with running(account, standin_key=stranger) as (standin, provider, _):
        with caplog.at_level(logging.WARNING, logger="parley.push"):
            sent = await provider.send(outgoing())
        assert (sent.outcome, sent.status) == ("failed", 400) and "invalid_grant" in sent.detail
        assert standin.received == [] and [r.getMessage() for r in caplog.records] == ["push.fcm.token_refused"]
    async with running(account) as (standin, provider, _):
        standin.token_answers.append(Answer(503, {"error": "temporarily_unavailable"}, {"retry-after": "3"}))
        sent = await provider.send(outgoing())
        assert (sent.outcome, sent.status, sent.retry_after) == ("retry", 503, 3.0)
        assert (await provider.send(outgoing())).outcome == "sent"


async def test_an_unreachable_fcm_is_retried(account):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{closed.getsockname()[1]}"
    provider = FcmProvider(project_id=PROJECT, account=ServiceAccount.from_json(account[0]), url=url,
                           token_url=f"{url}/token", timeout=2)
    try:
        sent = await provider.send(outgoing())
        assert sent.outcome == "retry" and sent.status is None and "Connect" in sent.detail
    finally:
        await provider.close()
        closed.close()


async def test_a_long_preview_is_cut_to_what_fcm_takes(account):
    async with running(account) as (standin, provider, _):
        long = MESSAGE.model_copy(update={"body": "長い" * 3000})
        assert (await provider.send(outgoing(long))).outcome == "sent"
        data = standin.received[0].message["data"]
        assert data["body"].endswith("…") and data["body"].startswith("長い長い")
        assert len(orjson.dumps(data)) <= 4096


async def test_fcm_is_off_unless_configured(account, tmp_path: Path, caplog):
    assert FcmProvider.from_settings(Settings()) is None
    with caplog.at_level(logging.WARNING, logger="parley.push"):
        assert FcmProvider.from_settings(Settings(push_fcm_project_id=PROJECT)) is None
    assert [r.getMessage() for r in caplog.records] == ["push.fcm.incomplete"]
    credentials = tmp_path / "service-account.json"
    credentials.write_bytes(account[0])
    async with fcm_standin(project_id=PROJECT, client_email="parley-push@parley-test.iam.gserviceaccount.com",
                           public_key=account[1]) as standin:
        provider = FcmProvider.from_settings(Settings(
            push_fcm_project_id=PROJECT, push_fcm_credentials_file=str(credentials),
            push_fcm_url=standin.url, push_fcm_token_url=standin.token_url))
        assert provider is not None and provider.kind == "fcm"
        try:
            assert (await provider.send(outgoing())).outcome == "sent"
        finally:
            await provider.close()
