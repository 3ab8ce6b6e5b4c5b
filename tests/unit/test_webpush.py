"""The Web Push provider (services/push/providers/webpush.py) against a local push service that
checks and decrypts what it receives as a browser's push service and the browser would
(tests/support/webpush_receiver.py): what arrives is exactly the notification sent, signed with
the deployment's VAPID key, and each answer of a push service becomes the outcome the push
service acts on."""
import dataclasses
import os
import stat
import time
from collections.abc import AsyncIterator
from email.utils import formatdate
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from services.push.domain.ports import Outgoing, Sent
from services.push.providers.webpush import (
    MAX_BODY,
    WebPushProvider,
    b64url,
    load_vapid_key,
    public_key_b64url,
    subscription_problem,
    topic_for,
)
from shared.contracts.push import Notification
from shared.settings import Settings
from tests.support.webpush_receiver import ReceiverSubscription, WebPushReceiver

SUBJECT = "mailto:push@parley.example"
NOTE = Notification(kind="message", tag="c:conv1", conversation_id="conv1", title="Alice · 旅行",
                    body="见面吗? \"quoted\" 🙂", badge=3, url="/app/#c=conv1", sent_at="2026-12-07T10:00:00.000Z")


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def receiver() -> AsyncIterator[WebPushReceiver]:
    async with WebPushReceiver() as running:
        yield running


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def provider(clock: Clock) -> AsyncIterator[WebPushProvider]:
    made = WebPushProvider(ec.generate_private_key(ec.SECP256R1()), SUBJECT, timeout=2.0, clock=clock)
    yield made
    await made.close()


def outgoing(to: ReceiverSubscription, notification: Notification = NOTE, **how: object) -> Outgoing:
    return Outgoing(to.as_subscription("u_bob", "d_phone"), notification, **how)  # type: ignore[arg-type]


async def test_the_browser_reads_exactly_the_notification_sent_with_its_headers(
    receiver: WebPushReceiver, provider: WebPushProvider
) -> None:
    browser = receiver.new_subscription()
    sent = await provider.send(outgoing(browser, urgency="high", ttl_seconds=45, topic="call-abc_123"))
    assert sent == Sent("sent", 201)
    [delivery] = receiver.deliveries
    assert delivery.notification == NOTE.model_dump(exclude_none=True)
    assert (delivery.ttl, delivery.urgency, delivery.topic) == (45, "high", "call-abc_123")
    assert delivery.size <= MAX_BODY


async def test_a_topic_that_is_not_one_is_hashed_into_one_the_same_each_time(
    receiver: WebPushReceiver, provider: WebPushProvider
) -> None:
    browser = receiver.new_subscription()
    for _ in range(2):
        assert (await provider.send(outgoing(browser, topic="c:a conversation id longer than 32"))).outcome == "sent"
    first, second = receiver.deliveries
    assert first.topic == second.topic == topic_for("c:a conversation id longer than 32")
    assert first.topic is not None and len(first.topic) == 32
    assert first.urgency == "normal" and first.ttl == 86400  # the port's defaults


async def test_it_is_signed_with_the_deployments_vapid_key_for_the_push_services_origin(
    receiver: WebPushReceiver, provider: WebPushProvider
) -> None:
    browser = receiver.new_subscription(application_server_key=provider.public_key_b64url())
    assert (await provider.send(outgoing(browser))).outcome == "sent"
    [delivery] = receiver.deliveries
    assert delivery.vapid_key == provider.public_key_b64url()
    assert delivery.claims["aud"] == receiver.origin and delivery.claims["sub"] == SUBJECT
    assert time.time() < delivery.claims["exp"] <= time.time() + 24 * 3600


async def test_a_subscription_made_for_another_key_refuses_it(
    receiver: WebPushReceiver, provider: WebPushProvider
) -> None:
    other = public_key_b64url(ec.generate_private_key(ec.SECP256R1()))
    browser = receiver.new_subscription(application_server_key=other)
    sent = await provider.send(outgoing(browser))
    assert sent.outcome == "failed" and sent.status == 403
    assert receiver.deliveries == []
    [refusal] = receiver.refusals
    assert refusal.status == 403 and "key" in refusal.reason


async def test_the_jwt_is_reused_within_its_lifetime_and_renewed_before_it_ends(
    receiver: WebPushReceiver, provider: WebPushProvider, clock: Clock
) -> None:
    browser = receiver.new_subscription()
    await provider.send(outgoing(browser))
    clock.now += 3600
    await provider.send(outgoing(browser))
    clock.now += 10 * 3600 + 1  # less than an hour left: a new one
    await provider.send(outgoing(browser))
    first, second, third = receiver.deliveries
    assert first.token == second.token
    assert third.token != first.token and third.claims["exp"] > first.claims["exp"]


@pytest.mark.parametrize("status", [404, 410])
async def test_a_dead_subscription_is_gone(receiver: WebPushReceiver, provider: WebPushProvider, status: int) -> None:
    browser = receiver.new_subscription()
    receiver.answer(browser, status)
    sent = await provider.send(outgoing(browser))
    assert (sent.outcome, sent.status) == ("gone", status)


async def test_an_endpoint_the_push_service_does_not_know_is_gone(
    receiver: WebPushReceiver, provider: WebPushProvider
) -> None:
    browser = receiver.new_subscription()
    unknown = dataclasses.replace(browser, endpoint=f"{receiver.origin}/push/unsubscribed")
    assert (await provider.send(outgoing(unknown))).outcome == "gone"


async def test_too_many_requests_is_retried_after_what_the_push_service_said(
    receiver: WebPushReceiver, provider: WebPushProvider, clock: Clock
) -> None:
    browser = receiver.new_subscription()
    receiver.answer(browser, 429, retry_after="7", times=1)
    assert await provider.send(outgoing(browser)) == Sent("retry", 429, 7.0, "answered 429 as told")
    assert (await provider.send(outgoing(browser))).outcome == "sent"  # it answers normally again
    assert [r.status for r in receiver.requests] == [429, 201]
    receiver.answer(browser, 429, retry_after=formatdate(clock.now + 120, usegmt=True))
    sent = await provider.send(outgoing(browser))
    assert sent.outcome == "retry" and sent.retry_after is not None and 118 <= sent.retry_after <= 120


@pytest.mark.parametrize(("status", "retry_after", "expected"), [(503, "30", 30.0), (500, None, None)])
async def test_a_server_error_is_retried(
    receiver: WebPushReceiver, provider: WebPushProvider, status: int, retry_after: str | None, expected: float | None
) -> None:
    browser = receiver.new_subscription()
    receiver.answer(browser, status, retry_after=retry_after)
    sent = await provider.send(outgoing(browser))
    assert (sent.outcome, sent.status, sent.retry_after) == ("retry", status, expected)


async def test_another_refusal_fails_without_retry(receiver: WebPushReceiver, provider: WebPushProvider) -> None:
    browser = receiver.new_subscription()
    receiver.answer(browser, 400)
    sent = await provider.send(outgoing(browser))
    assert (sent.outcome, sent.status) == ("failed", 400) and "400" in sent.detail


async def test_a_push_service_that_does_not_answer_in_time_is_retried(receiver: WebPushReceiver, clock: Clock) -> None:
    browser = receiver.new_subscription()
    receiver.stall(browser)
    impatient = WebPushProvider(ec.generate_private_key(ec.SECP256R1()), SUBJECT, timeout=0.3, clock=clock)
    try:
        sent = await impatient.send(outgoing(browser))
        assert sent.outcome == "retry" and sent.status is None and "0.3 s" in sent.detail
        assert receiver.held == 1 and receiver.requests == []
        receiver.release()
        assert (await impatient.send(outgoing(browser))).outcome == "sent"
    finally:
        await impatient.close()


async def test_a_push_service_that_cannot_be_reached_is_retried(provider: WebPushProvider) -> None:
    async with WebPushReceiver() as gone_away:
        browser = gone_away.new_subscription()
    sent = await provider.send(outgoing(browser))  # nothing listens on its port any more
    assert sent.outcome == "retry" and sent.status is None and "Connect" in sent.detail


@pytest.mark.parametrize("body", ["a" * 5000, "长" * 3000 + '"' * 500], ids=["ascii", "escaped"])
async def test_a_long_preview_is_cut_to_fit_4_kib_encrypted(
    receiver: WebPushReceiver, provider: WebPushProvider, body: str
) -> None:
    browser = receiver.new_subscription()
    long = NOTE.model_copy(update={"body": body})
    assert (await provider.send(outgoing(browser, long))).outcome == "sent"
    [delivery] = receiver.deliveries
    assert delivery.size <= MAX_BODY
    if body.isascii():  # cut no more than it must
        assert delivery.size == MAX_BODY
    shown = delivery.notification["body"]
    assert shown.endswith("…") and shown[:-1] == body[: len(shown) - 1]
    assert {k: v for k, v in delivery.notification.items() if k != "body"} == NOTE.model_dump(
        exclude_none=True, exclude={"body"}
    )


async def test_the_receiver_refuses_a_token_not_signed_by_the_key_it_names(
    receiver: WebPushReceiver, provider: WebPushProvider
) -> None:
    """What makes the VAPID checks above mean something: a forged `k` is caught."""
    browser = receiver.new_subscription()
    await provider.send(outgoing(browser))
    [delivery] = receiver.deliveries
    other = public_key_b64url(ec.generate_private_key(ec.SECP256R1()))
    async with httpx.AsyncClient() as client:
        response = await client.post(browser.endpoint, content=b"x", headers={
            "TTL": "60", "Content-Encoding": "aes128gcm", "Authorization": f"vapid t={delivery.token}, k={other}"})
    assert response.status_code == 403
    assert "token refused" in receiver.refusals[-1].reason and len(receiver.deliveries) == 1


async def test_an_unusable_subscription_fails_without_a_request(receiver: WebPushReceiver, provider: WebPushProvider) -> None:
    browser = receiver.new_subscription()
    remote = dataclasses.replace(browser, endpoint="http://push.example.com/push/x")
    assert (await provider.send(outgoing(remote))).outcome == "failed"
    assert receiver.requests == [] and receiver.refusals == []


def test_what_a_subscription_must_be() -> None:
    p256dh = public_key_b64url(ec.generate_private_key(ec.SECP256R1()))
    auth = "AAAAAAAAAAAAAAAAAAAAAA"
    assert subscription_problem("https://fcm.googleapis.com/fcm/send/abc", p256dh, auth) is None
    assert subscription_problem("http://127.0.0.1:8080/push/a", p256dh, auth) is None
    assert subscription_problem("http://fcm.googleapis.com/fcm/send/abc", p256dh, auth)  # plain http, not loopback
    assert subscription_problem("https://user@push.example/a", p256dh, auth)
    assert subscription_problem("https://push.example/a", p256dh, auth[:-2])  # 15 bytes
    compressed = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )
    assert subscription_problem("https://push.example/a", b64url(compressed), auth)
    assert subscription_problem("https://push.example/a", "not a key", auth)
    assert subscription_problem(None, p256dh, auth)


def test_the_vapid_key_is_made_once_private_to_its_owner_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "run" / "vapid-private.pem"
    settings = Settings(push_vapid_private_key="", push_vapid_private_key_file=str(path))
    made = load_vapid_key(settings)
    assert made is not None and path.exists()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # nothing left aside
    again = load_vapid_key(settings)
    assert again is not None and public_key_b64url(again) == public_key_b64url(made)
    point = made.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    assert len(point) == 65 and point[0] == 4
    assert "=" not in public_key_b64url(made) and len(public_key_b64url(made)) == 87


def test_a_vapid_key_given_in_the_settings_wins_and_none_means_web_push_is_off(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    path = tmp_path / "unused.pem"
    given = load_vapid_key(Settings(push_vapid_private_key=pem, push_vapid_private_key_file=str(path)))
    assert given is not None and public_key_b64url(given) == public_key_b64url(key) and not path.exists()
    assert WebPushProvider.from_settings(Settings(push_vapid_private_key="", push_vapid_private_key_file="")) is None
    path.write_text("not a key")
    with pytest.raises(ValueError):
        load_vapid_key(Settings(push_vapid_private_key="", push_vapid_private_key_file=str(path)))


async def test_from_settings_builds_a_provider_that_delivers(receiver: WebPushReceiver, tmp_path: Path) -> None:
    settings = Settings(push_vapid_private_key="", push_vapid_private_key_file=str(tmp_path / "k.pem"),
                        push_vapid_subject=SUBJECT)
    provider = WebPushProvider.from_settings(settings)
    assert provider is not None and provider.kind == "webpush"
    try:
        browser = receiver.new_subscription(application_server_key=provider.public_key_b64url())
        assert (await provider.send(outgoing(browser))).outcome == "sent"
    finally:
        await provider.close()
