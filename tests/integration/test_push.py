"""Offline push over real sockets (docs/push.md, docs/protocol.md "Offline push"): the session's
stack runs the push service, whose Web Push provider POSTs to a push service on 127.0.0.1
(tests/support/webpush_receiver.py) that checks VAPID and decrypts what it gets as the browser
would. A device subscribes with the receiver's endpoint and keys and closes its socket; what the
receiver decrypts for it is what the user would see.

A device's socket closing is seen by the server a moment later: `away` waits for its presence
to go (Redis, as the push service reads it) before the test goes on.
"""
from collections.abc import AsyncIterator
from typing import Any

import pytest

from shared.presence import Presence
from shared.settings import Settings
from shared.stores import redis_client
from tests.support.client import Client, befriend, log_in_again, new_user
from tests.support.fake_olm import FakeDevice, envelope
from tests.support.waiting import eventually
from tests.support.webpush_receiver import ReceiverSubscription, WebPushReceiver

BURN_TEXT = "Sent a message that burns after reading"


@pytest.fixture
async def receiver() -> AsyncIterator[WebPushReceiver]:
    async with WebPushReceiver() as running:
        yield running


@pytest.fixture
async def presence(settings: Settings) -> AsyncIterator[Presence]:
    redis = redis_client(settings)
    try:
        yield Presence(redis, settings.namespace, settings.presence_ttl_seconds, settings.redis_buckets)
    finally:
        await redis.aclose()


class Pair:
    """alice and bob, friends; bob on a laptop that stays connected."""

    def __init__(self, alice: Client, bob: Client, receiver: WebPushReceiver, presence: Presence):
        self.alice, self.bob, self.receiver, self.presence = alice, bob, receiver, presence

    async def subscription(self, client: Client) -> ReceiverSubscription:
        """A browser's subscription for this deployment's VAPID key, registered for `client`'s device."""
        config = await client.call("push.config")
        assert "webpush" in config["providers"] and config["vapid_public_key"]
        subscription = self.receiver.new_subscription(application_server_key=config["vapid_public_key"])
        await client.call("push.subscribe", subscription.subscribe_request())
        return subscription

    async def away(self, port: int, device: str) -> ReceiverSubscription:
        """bob's `device`: subscribed, then its socket closed (a tab closed, a phone in a pocket)."""
        client = await log_in_again(self.bob, port, device)
        await client.wait_synced()
        subscription = await self.subscription(client)
        await client.close()

        async def gone() -> bool:
            return all(s.device_id != device for s in await self.presence.sockets_of([self.bob.user_id or ""]))

        await eventually(gone, f"{device}'s socket gone from presence")
        return subscription

    def shown(self, subscription: ReceiverSubscription) -> list[dict[str, Any]]:
        return self.receiver.notifications(subscription)

    async def arrives(self, subscription: ReceiverSubscription, count: int) -> list[dict[str, Any]]:
        return await eventually(
            lambda: (found := self.shown(subscription)) and len(found) >= count and found, f"{count} notification(s)"
        )


@pytest.fixture
async def pair(port: int, other_port: int, receiver: WebPushReceiver, presence: Presence) -> AsyncIterator[Pair]:
    alice = await new_user(port)
    bob = await new_user(other_port, "bob-laptop")
    await befriend(alice, bob)
    yield Pair(alice, bob, receiver, presence)
    await alice.close()
    await bob.close()


async def test_an_away_device_hears_each_message_once_and_a_connected_one_nothing(pair: Pair, port: int) -> None:
    laptop = await pair.subscription(pair.bob)  # connected: it has messages live
    phone = await pair.away(port, "bob-phone")
    sent = await pair.alice.send_text(pair.bob.user_id or "", "see you at eight")
    (first,) = await pair.arrives(phone, 1)
    cid = sent["conversation_id"]
    assert (first["kind"], first["tag"], first["body"]) == ("message", f"c:{cid}", "see you at eight")
    assert first["title"] == pair.alice.username and first["url"] == f"/app/#c={cid}" and first["badge"] == 1
    await pair.alice.send_text(pair.bob.user_id or "", "bring the map")
    notifications = await pair.arrives(phone, 2)
    assert [n["body"] for n in notifications] == ["see you at eight", "bring the map"]  # once each
    assert pair.shown(laptop) == []
    delivery = next(d for d in pair.receiver.deliveries if d.notification["tag"] == f"c:{cid}")
    assert delivery.topic and delivery.urgency == "normal" and delivery.ttl > 0


async def test_a_muted_conversation_and_a_logged_out_device_hear_nothing(pair: Pair, port: int) -> None:
    phone = await pair.away(port, "bob-phone")
    tablet_client = await log_in_again(pair.bob, port, "bob-tablet")
    await tablet_client.wait_synced()
    tablet = await pair.subscription(tablet_client)
    await tablet_client.call("auth.logout")
    await tablet_client.close()
    cid = (await pair.alice.send_text(pair.bob.user_id or "", "one"))["conversation_id"]
    await pair.arrives(phone, 1)
    await pair.bob.call("push.conversation.set", {"conversation_id": cid, "level": "none"})
    await pair.alice.send_text(pair.bob.user_id or "", "muted")
    # Another conversation, after it: its notification arriving says the muted one was handled.
    carol = await new_user(port)
    try:
        await befriend(carol, pair.bob)
        await carol.send_text(pair.bob.user_id or "", "from carol")
        notifications = await pair.arrives(phone, 2)
    finally:
        await carol.close()
    assert [n["body"] for n in notifications] == ["one", "from carol"]
    assert pair.shown(tablet) == []  # its subscription went with its session


async def test_a_burn_after_reading_message_shows_none_of_its_content(pair: Pair, port: int) -> None:
    phone = await pair.away(port, "bob-phone")
    await pair.alice.call("message.send", {
        "to": {"user_id": pair.bob.user_id}, "client_msg_id": "burn-1", "text": "the password is swordfish", "burn_seconds": 10,
    })
    (notification,) = await pair.arrives(phone, 1)
    assert notification["body"] == BURN_TEXT
    assert "swordfish" not in str(notification)


async def test_an_encrypted_message_is_notified_without_a_preview(pair: Pair, port: int) -> None:
    """docs/security.md: the server cannot read it, so the notification says only that it came."""
    phone = await pair.away(port, "bob-phone")
    bob = pair.bob.user_id or ""
    await pair.alice.call("conversations.encrypt", {"to": {"user_id": bob}})
    sender = FakeDevice(pair.alice.user_id or "", "default")
    await pair.alice.call("message.send", {
        "to": {"user_id": bob}, "client_msg_id": "e2e-1", "encrypted": envelope(sender, (bob, "bob-phone")),
    })
    (notification,) = await pair.arrives(phone, 1)
    assert notification["body"] == "New encrypted message" and notification["kind"] == "message"


async def test_a_call_rings_an_away_device_until_it_is_answered_on_another(pair: Pair, port: int) -> None:
    phone = await pair.away(port, "bob-phone")
    invite = await pair.alice.call("call.invite", {"user_id": pair.bob.user_id, "media": "audio", "sdp": "v=0 offer"})
    assert invite["state"] == "ringing"  # on bob's laptop
    call_id = invite["call_id"]
    (ring,) = await pair.arrives(phone, 1)
    assert (ring["kind"], ring["tag"], ring["call_id"], ring["body"]) == ("call", f"call:{call_id}", call_id, "Incoming voice call")
    (delivery,) = [d for d in pair.receiver.deliveries if d.notification["tag"] == f"call:{call_id}"]
    assert delivery.urgency == "high" and 0 < delivery.ttl <= 45
    await pair.bob.next_push("call.incoming")
    await pair.bob.call("call.accept", {"call_id": call_id, "sdp": "v=0 answer"})
    _, withdrawn = await pair.arrives(phone, 2)
    assert (withdrawn["kind"], withdrawn["tag"]) == ("withdraw", f"call:{call_id}")
    await pair.alice.call("call.hangup", {"call_id": call_id})


async def test_a_stalled_push_service_does_not_delay_messages_to_a_connected_device(pair: Pair, port: int) -> None:
    phone = await pair.away(port, "bob-phone")
    pair.receiver.stall()
    try:
        await pair.alice.send_text(pair.bob.user_id or "", "first")
        await eventually(lambda: pair.receiver.held >= 1, "the push service's request held")
        for text in ("second", "third"):
            await pair.alice.send_text(pair.bob.user_id or "", text)
        arrived = []
        while len(arrived) < 3:
            arrived.append((await pair.bob.next_push("message.new", timeout=5))["text"])
        assert arrived == ["first", "second", "third"] and pair.receiver.held >= 1
    finally:
        pair.receiver.release()
    await eventually(lambda: {n["body"] for n in pair.shown(phone)} >= {"third"}, "the notifications once released")
