"""Who hears of what while away (docs/push.md): the push service told chat's and calls' real
events, its notifications recorded by a provider standing in for a push platform."""
from datetime import datetime, timedelta, timezone

import pytest

from services.push.domain import rules
from shared.contracts.base import iso
from shared.contracts.push import DoNotDisturb
from tests.unit.push_world import PushWorld, push_world

A, B, C = "u_alice", "u_bob", "u_carol"


@pytest.fixture
async def world(db, redis_settings):  # push's Redis state (and chat's, calls') on one Redis and a cluster
    async with push_world(db, redis_settings, A, B, C, push_max_attempts=3) as world:
        await world.chat.befriend(A, B)
        await world.chat.befriend(A, C)
        yield world


async def send(world: PushWorld, sender: str, to: str | None = None, *, group: str | None = None, **fields):
    reply = await world.chat.send(sender, to, group=group, device="laptop", **{"text": "hello", **fields})
    await world.settle()
    return reply


async def group_of(world: PushWorld, *members: str) -> tuple[str, str]:
    reply = await world.chat.ask(A, "groups.create", name="Weekend", member_ids=list(members))
    await world.settle()
    return reply.group_id, reply.conversation_id


async def test_a_recipients_away_device_hears_of_a_message_and_the_sender_never(world) -> None:
    await world.subscribe(B, "phone")
    await world.subscribe(A, "tablet")  # the sender's own other device, away too
    reply = await send(world, A, B, text="see you at eight")
    (notification,) = world.received(B, "phone")
    cid = reply.conversation_id
    assert notification.kind == "message" and notification.tag == f"c:{cid}"
    assert (notification.title, notification.body) == ("U_Alice", "see you at eight")
    assert (notification.url, notification.badge, notification.conversation_id) == (f"/app/#c={cid}", 1, cid)
    assert world.received(A, "tablet") == []
    (attempt,) = world.attempts(B, "phone")
    assert attempt.topic and len(attempt.topic) <= 32 and attempt.ttl_seconds == world.push.message_ttl


async def test_neither_a_device_reached_live_nor_one_connected_now_is_notified(world) -> None:
    for device in ("phone", "tablet", "laptop"):
        await world.subscribe(B, device)
    await world.chat.online(B, "phone")  # had it live
    await world.chat.send(A, B, device="laptop", text="hi")
    await world.chat.online(B, "tablet", conn_id="c_tab")  # connected before push looked: has it from its sync
    await world.settle()
    assert world.received(B, "phone") == [] and world.received(B, "tablet") == []
    assert [n.body for n in world.received(B, "laptop")] == ["hi"]


async def test_a_muted_conversation_is_quiet_until_its_time_is_up(world) -> None:
    await world.subscribe(B, "phone")
    cid = (await send(world, A, B, text="one")).conversation_id
    later = iso(datetime.now(timezone.utc) + timedelta(hours=1))
    setting = await world.ask(B, "push.conversation.set", conversation_id=cid, level="none", until=later)
    assert (setting.level, setting.until) == ("none", later)
    await send(world, A, B, text="two")
    assert [n.body for n in world.received(B, "phone")] == ["one"]
    await world.ask(B, "push.conversation.set", conversation_id=cid, level="all")
    await send(world, A, B, text="three")
    assert [n.body for n in world.received(B, "phone")] == ["one", "three"]


async def test_at_mentions_only_a_group_notifies_the_messages_that_mention_you(world) -> None:
    group_id, cid = await group_of(world, B, C)
    await world.subscribe(B, "phone")
    await world.subscribe(C, "phone")
    await world.ask(B, "push.conversation.set", conversation_id=cid, level="mentions")
    await send(world, A, group=group_id, text="lunch?")
    await send(world, A, group=group_id, text="@bob you too", mentions=[B])
    assert [n.body for n in world.received(B, "phone")] == ["@bob you too"]
    assert [n.body for n in world.received(C, "phone")] == ["lunch?", "@bob you too"]
    assert world.received(C, "phone")[0].title == "U_Alice · Weekend"
    assert world.attempts(B, "phone")[0].urgency == "high"  # a mention


def test_a_large_group_defaults_to_mentions_and_a_direct_conversation_to_all() -> None:
    assert rules.default_level("direct", 2) == "all"
    assert rules.default_level("group", rules.GROUP_ALL_UP_TO) == "all"
    assert rules.default_level("group", rules.GROUP_ALL_UP_TO + 1) == "mentions"


async def test_nothing_during_do_not_disturb(world) -> None:
    await world.subscribe(B, "phone")
    now = datetime.now(timezone.utc)
    minute = now.hour * 60 + now.minute
    quiet = {"start_minute": (minute - 60) % 1440, "end_minute": (minute + 60) % 1440, "utc_offset_minutes": 0}
    await world.ask(B, "push.preferences.set", do_not_disturb=quiet)
    await send(world, A, B, text="shh")
    assert world.received(B, "phone") == []
    await world.ask(B, "push.preferences.set", do_not_disturb=None)
    await send(world, A, B, text="now")
    assert [n.body for n in world.received(B, "phone")] == ["now"]


def test_a_quiet_time_may_wrap_past_midnight() -> None:
    night = DoNotDisturb(start_minute=22 * 60, end_minute=7 * 60, utc_offset_minutes=60)
    at = datetime(2026, 1, 1, 22, 30, tzinfo=timezone.utc)  # 23:30 there
    assert rules.quiet_now(night, at)
    assert not rules.quiet_now(night, at.replace(hour=6))  # 07:30 there


async def test_a_burn_after_reading_message_says_nothing_of_its_content(world) -> None:
    await world.subscribe(B, "phone")
    await send(world, A, B, text="the password is swordfish", burn_seconds=10)
    (notification,) = world.received(B, "phone")
    assert notification.body == "Sent a message that burns after reading"
    assert "swordfish" not in notification.model_dump_json()


async def test_previews_off_say_new_message_in_the_subscriptions_language(world) -> None:
    await world.subscribe(B, "phone", locale="zh-CN")
    await world.subscribe(B, "tablet")
    await world.ask(B, "push.preferences.set", previews=False)
    await send(world, A, B, text="private")
    assert [n.body for n in world.received(B, "phone")] == ["新消息"]
    assert [n.body for n in world.received(B, "tablet")] == ["New message"]


async def test_a_batch_of_messages_is_one_notification_per_conversation(world) -> None:
    await world.subscribe(B, "phone")
    await world.chat.send_items([
        (A, "laptop", {"to": {"user_id": B}, "client_msg_id": f"m{i}", "text": f"part {i}"}) for i in range(3)
    ])
    await world.settle()
    (notification,) = world.received(B, "phone")
    assert notification.body == "part 2"
    await send(world, A, B, text="part 3")
    first, second = world.attempts(B, "phone")
    assert first.notification.tag == second.notification.tag and first.topic == second.topic


async def test_a_read_on_another_device_withdraws_the_notification_and_lowers_the_badge(world) -> None:
    await world.subscribe(B, "phone")
    await world.subscribe(B, "tablet")
    cid = (await send(world, A, B, text="hi")).conversation_id
    await world.chat.ask(B, "message.read", conversation_id=cid, seq=1, device="desktop")
    await world.settle()
    for device in ("phone", "tablet"):
        shown, withdrawn = world.received(B, device)
        assert (shown.kind, withdrawn.kind, withdrawn.tag, withdrawn.badge) == ("message", "withdraw", f"c:{cid}", 0)


async def test_a_message_read_before_its_event_was_handled_is_not_notified(world) -> None:
    await world.subscribe(B, "phone")
    reply = await world.chat.send(A, B, device="laptop", text="seen already")
    await world.chat.ask(B, "message.read", conversation_id=reply.conversation_id, seq=reply.seq, device="desktop")
    read = world.chat.events.named("conversation.read")[-1]
    await world.tell("conversation.read", read)  # a replica took the read first
    await world.settle()
    assert world.received(B, "phone") == []


async def test_a_recall_withdraws_and_an_edit_rewrites_the_notification_shown(world) -> None:
    await world.subscribe(B, "phone")
    first = await send(world, A, B, text="helo")
    await world.chat.ask(A, "message.edit", message_id=first.message_id, text="hello", device="laptop")
    await world.settle()
    second = await send(world, A, B, text="oops")
    await world.chat.ask(A, "message.recall", message_id=second.message_id, device="laptop")
    await world.settle()
    assert [(n.kind, n.body) for n in world.received(B, "phone")] == [
        ("message", "helo"), ("message", "hello"), ("message", "oops"), ("withdraw", None),
    ]


async def test_a_call_rings_the_devices_away_and_is_withdrawn_when_answered_elsewhere(world) -> None:
    await world.chat.online(A, "laptop")
    await world.chat.online(B, "phone")
    await world.subscribe(B, "phone")
    await world.subscribe(B, "tablet")
    invite = {"user_id": B, "media": "video", "sdp": "v=0"}
    call_id = (await world.ask_calls(A, "laptop", "call.invite", invite)).call_id
    await world.settle()
    assert world.received(B, "phone") == []  # it rang there live
    (ring,) = world.attempts(B, "tablet")
    assert (ring.notification.kind, ring.notification.tag, ring.urgency) == ("call", f"call:{call_id}", "high")
    assert ring.notification.body == "Incoming video call" and 0 < ring.ttl_seconds <= world.push.call_ttl
    await world.ask_calls(B, "phone", "call.accept", {"call_id": call_id, "sdp": "answer"})
    await world.settle()
    assert [(n.kind, n.tag) for n in world.received(B, "tablet")] == [("call", f"call:{call_id}"), ("withdraw", f"call:{call_id}")]
    await world.ask_calls(A, "laptop", "call.hangup", {"call_id": call_id})
    await world.settle()
    assert len(world.received(B, "tablet", "withdraw")) == 1


async def test_a_repeated_event_notifies_a_device_once(world) -> None:
    await world.subscribe(B, "phone")
    await world.chat.send(A, B, device="laptop", client_msg_id="m1", text="once")
    await world.chat.send(A, B, device="laptop", client_msg_id="m1", text="once")  # a retry: told again
    stored = world.chat.events.named("messages.stored")
    assert [c.messages[0].again for e in stored for c in e.conversations] == [False, True]
    await world.settle()
    await world.tell("messages.stored", stored[0])  # the broker hands it out again
    assert len(world.attempts(B, "phone")) == 1
