"""Sending to the push platforms (docs/push.md "Reliability"): retries honouring Retry-After and
then giving up, a gone subscription deleted, at most push_concurrency in flight; and the push.*
operations a client asks (docs/protocol.md "Offline push")."""
import asyncio
import time
from datetime import datetime, timedelta, timezone

import pytest

from services.push.domain.ports import Outgoing, Sent
from shared.contracts.base import iso
from shared.contracts.errors import ParleyError
from shared.contracts.push import ConversationPush
from tests.support.waiting import eventually
from tests.unit.push_world import PushWorld, browser_keys, push_world
from tests.unit.world import refusal

A, B = "u_alice", "u_bob"


@pytest.fixture
async def world(db, settings):
    async with push_world(db, settings, A, B, push_max_attempts=3, push_concurrency=2) as world:
        await world.chat.befriend(A, B)
        yield world


async def send(world: PushWorld, text: str = "hello") -> None:
    await world.chat.send(A, B, device="laptop", text=text)
    await world.settle()


async def test_a_retry_waits_what_the_service_asked_and_then_is_sent(world) -> None:
    await world.subscribe(B, "phone")
    world.webpush.answers = [Sent("retry", 429, retry_after=0.3)]
    started = time.monotonic()
    await send(world)
    assert time.monotonic() - started >= 0.3
    assert len(world.attempts(B, "phone")) == 2


async def test_a_notification_is_given_up_after_the_last_attempt_and_its_event_ends(world) -> None:
    await world.subscribe(B, "phone")
    world.webpush.answers = [Sent("retry", 503, retry_after=0.01) for _ in range(10)]
    await asyncio.wait_for(send(world), 10)  # the event's handling ends: its consumer acks it
    assert len(world.attempts(B, "phone")) == 3  # push_max_attempts


async def test_a_refusal_is_not_retried(world) -> None:
    await world.subscribe(B, "phone")
    world.webpush.answers = [Sent("failed", 400, detail="bad payload")]
    await send(world)
    assert len(world.attempts(B, "phone")) == 1


async def test_a_gone_subscription_is_deleted_and_hears_nothing_more(world) -> None:
    await world.subscribe(B, "phone")
    world.webpush.answers = [Sent("gone", 410)]
    await send(world, "one")
    assert await world.push.subscriptions.of_users([B]) == []
    await send(world, "two")
    assert len(world.attempts(B, "phone")) == 1


async def test_gone_spares_a_subscription_that_replaced_the_dead_one_meanwhile(world) -> None:
    await world.subscribe(B, "phone")
    (old,) = await world.push.subscriptions.of_users([B])
    await world.ask(B, "push.subscribe", "phone", kind="webpush", endpoint="https://push.example/new",
                    keys=browser_keys())
    assert not await world.push.subscriptions.remove_if_same(old)
    assert [s.endpoint for s in await world.push.subscriptions.of_users([B])] == ["https://push.example/new"]


async def test_no_more_than_push_concurrency_notifications_are_in_flight(world) -> None:
    devices = [f"d{i}" for i in range(6)]
    for device in devices:
        await world.subscribe(B, device)
    in_flight = most = 0
    release = asyncio.Event()
    real = world.webpush.send

    async def slow(outgoing: Outgoing) -> Sent:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await release.wait()
        in_flight -= 1
        return await real(outgoing)

    world.webpush.send = slow  # type: ignore[method-assign]
    handling = asyncio.create_task(send(world))
    redis, ns = world.chat.presence.redis, world.chat.presence.ns

    async def all_past_dedup() -> bool:  # every job is then in a provider call or waiting for a slot
        return len([k async for k in redis.scan_iter(f"{ns}:push:sent:*")]) == len(devices)

    await eventually(all_past_dedup, "every notification asked for")
    for _ in range(20):
        await asyncio.sleep(0)  # the turns a job past its slot would need to reach the provider
    assert in_flight == 2
    release.set()
    await handling
    assert most == 2 and len(world.webpush.attempts) == len(devices)


# --- the operations --------------------------------------------------------------------------
async def test_config_names_the_providers_that_run(world) -> None:
    config = await world.ask(B, "push.config")
    assert config.providers == ["fcm", "webpush"] and config.vapid_public_key is None  # no key in this world


async def test_a_subscription_must_suit_its_kind_and_a_provider_that_runs(world) -> None:
    keys = browser_keys()
    cases = [
        {"kind": "webpush", "endpoint": "https://push.example/x", "keys": {"p256dh": "bm90IGEga2V5", "auth": keys["auth"]}},
        {"kind": "apns", "token": "t" * 64},  # not configured here
        {"kind": "webpush", "endpoint": "http://10.0.0.1/internal", "keys": keys},  # http: refused
        {"kind": "webpush", "endpoint": "https://user:pw@push.example/x", "keys": keys},
        {"kind": "webpush", "endpoint": "https://push.example/x"},  # no keys
        {"kind": "fcm", "endpoint": "https://push.example/x", "keys": keys},  # fcm has a token
    ]
    for data in cases:
        error = await refusal(world.ask(B, "push.subscribe", "phone", **data))
        assert error.code == "bad_request", data
    assert await world.push.subscriptions.of_users([B]) == []


async def test_one_subscription_per_device_and_one_device_per_endpoint(world) -> None:
    await world.subscribe(B, "phone")
    await world.subscribe(B, "phone", kind="fcm")  # replaces the webpush one
    await world.ask(A, "push.subscribe", "shared", kind="fcm", token="token-u_bob-phone")  # same token, now alice's
    assert await world.push.subscriptions.of_users([B]) == []
    (alices,) = await world.push.subscriptions.of_users([A])
    assert (alices.kind, alices.device_id) == ("fcm", "shared")


async def test_unsubscribe_and_logout_forget_the_device(world) -> None:
    await world.subscribe(B, "phone")
    await world.subscribe(B, "tablet")
    await world.ask(B, "push.unsubscribe", "phone")
    await world.ask(B, "push.device.logged_out", "tablet")
    assert await world.push.subscriptions.of_users([B]) == []


async def test_preferences_are_the_users_own(world) -> None:
    assert (await world.ask(B, "push.preferences.get")).model_dump() == {
        "previews": True, "do_not_disturb": None, "locale": None,
    }
    quiet = {"start_minute": 1320, "end_minute": 420, "utc_offset_minutes": 480}
    await world.ask(B, "push.preferences.set", previews=False, do_not_disturb=quiet, locale="zh-CN")
    mine = await world.ask(B, "push.preferences.get")
    assert (mine.previews, mine.locale, mine.do_not_disturb.model_dump()) == (False, "zh-CN", quiet)
    assert (await world.ask(A, "push.preferences.get")).previews is True


async def test_conversation_settings_list_only_those_in_force(world) -> None:
    later = iso(datetime.now(timezone.utc) + timedelta(hours=8))
    await world.ask(B, "push.conversation.set", conversation_id="c1", level="none")
    await world.ask(B, "push.conversation.set", conversation_id="c2", level="mentions", until=later)
    listed = await world.ask(B, "push.conversations.list")
    assert [(c.conversation_id, c.level, c.until) for c in listed.conversations] == [
        ("c1", "none", None), ("c2", "mentions", later),
    ]
    past = iso(datetime.now(timezone.utc) - timedelta(minutes=1))
    error: ParleyError = await refusal(world.ask(B, "push.conversation.set", conversation_id="c3", level="none", until=past))
    assert error.code == "bad_request"
    # c2's time runs out (written as the store would hold it then: no command sets a past time)
    await world.push.preferences.set_level(B, ConversationPush(conversation_id="c2", level="mentions", until=past))
    listed = await world.ask(B, "push.conversations.list")
    assert [c.conversation_id for c in listed.conversations] == ["c1"]
    assert (await world.ask(A, "push.conversations.list")).conversations == []


def test_the_events_waiting_for_push_are_bounded(world) -> None:
    """A push service away for long must not heap up chat's events in RabbitMQ: its events queue
    is declared bounded in count, bytes and age (the age: a notification's TTL)."""
    arguments = world.push.router().events_arguments
    assert arguments["x-overflow"] == "drop-head"
    assert arguments["x-max-length"] > 0 and arguments["x-max-length-bytes"] > 0
    assert arguments["x-message-ttl"] == world.push.settings.push_message_ttl_seconds * 1000
    assert world.chat.service.router().events_arguments == {}  # chat's events must all be seen
