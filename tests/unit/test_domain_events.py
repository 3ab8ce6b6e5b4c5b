"""The seam after every stored message (issue 24): `messages.stored` once per batch, saying who
should see each message and which devices had it live; `message.changed` after an edit, recall,
reaction, opening, burning or hiding; `conversation.read` when a read marker moves (issue 25)."""
from datetime import timedelta

import pytest

from services.chat.domain import interactions
from shared.contracts.base import utc_now
from shared.contracts.events import ConversationRead, MessageChanged, MessagesStored
from shared.contracts.wire import DeviceAddress
from tests.unit.world import chat_world

A, B, C = "u_alice", "u_bob", "u_carol"


@pytest.fixture
async def world(db, settings):
    async with chat_world(db, settings) as world:
        await world.befriend(A, B)
        await world.befriend(A, C)
        yield world


def send(sender: str, to: str, client_msg_id: str, **fields) -> tuple[str, str, dict]:
    """One item of a `chat.messages.send` batch: message.send from the sender's phone."""
    return sender, "phone", {"to": {"user_id": to}, "client_msg_id": client_msg_id, **fields}


def stored_events(world) -> list[MessagesStored]:
    return world.events.named("messages.stored")


async def test_one_event_per_batch_with_every_message_once_in_seq_order(world):
    await world.send_items([send(A, B, "m1", text="one"), send(A, C, "m2", text="two"), send(A, B, "m3", text="three")])
    (event,) = stored_events(world)
    by_peer = {c.recipients[1] if c.recipients[0] == A else c.recipients[0]: c for c in event.conversations}
    to_bob, to_carol = by_peer[B], by_peer[C]
    assert [(m.seq, m.preview) for m in to_bob.messages] == [(1, "one"), (2, "three")]
    assert (to_bob.first_seq, to_bob.last_seq, to_bob.kind) == (1, 2, "direct")
    assert [(m.seq, m.preview) for m in to_carol.messages] == [(1, "two")]
    assert sorted(to_bob.recipients) == sorted([A, B])
    assert all(m.from_user_id == A and m.from_device_id == "phone" and not m.again for m in to_bob.messages)


async def test_it_says_which_devices_had_it_live_and_so_who_was_not_reached(world):
    await world.online(B, "laptop")  # bob's phone is not connected
    await world.online(A, "tablet", conn_id="c2")  # alice's other device gets her message too
    await world.send_items([send(A, B, "m1", text="hello")])
    (conversation,) = stored_events(world)[0].conversations
    assert set(conversation.reached) == {DeviceAddress(user_id=B, device_id="laptop"),
                                         DeviceAddress(user_id=A, device_id="tablet")}
    await world.send_items([send(A, C, "m2", text="carol is not online")])
    assert stored_events(world)[1].conversations[0].reached == [DeviceAddress(user_id=A, device_id="tablet")]


async def test_a_retry_is_told_again_marked_as_such_and_a_refused_send_not_at_all(world):
    await world.send_items([send(A, B, "m1", text="once")])
    await world.send_items([send(A, B, "m1", text="once"), send(B, "u_stranger", "x1", text="refused")])
    first, again = stored_events(world)
    assert [m.again for m in first.conversations[0].messages] == [False]
    assert [(c.conversation_id, [(m.seq, m.again) for m in c.messages]) for c in again.conversations] == [
        (first.conversations[0].conversation_id, [(1, True)])
    ]


async def test_nothing_of_a_burning_message_content_is_told(world):
    await world.send_items([send(A, B, "b1", text="secret", burn_seconds=10)])
    (message,) = stored_events(world)[0].conversations[0].messages
    assert message.burn_after_reading and message.preview is None and message.kind == "text"


async def test_a_preview_is_short(world):
    await world.send_items([send(A, B, "long", text="x" * 4000)])
    (message,) = stored_events(world)[0].conversations[0].messages
    assert message.preview == "x" * 120


async def test_changes_to_a_stored_message_are_told(world):
    await world.send_items([send(A, B, "m1", text="first"), send(A, B, "m2", text="second")])
    (conversation,) = stored_events(world)[0].conversations
    one, two = (m.message_id for m in conversation.messages)
    await world.ask(A, "message.edit", message_id=one, text="first!", device="phone")
    await world.ask(B, "reaction.add", message_id=one, emoji="👍", device="laptop")
    await world.ask(B, "message.hide", message_id=two, device="laptop")
    await world.ask(A, "message.recall", message_id=two, device="phone")
    changes: list[MessageChanged] = world.events.named("message.changed")
    assert [(c.message_id, c.change, c.by_user_id) for c in changes] == [
        (one, "edited", A), (one, "reactions", B), (two, "hidden", B), (two, "recalled", A),
    ]
    assert changes[2].audience == [B]  # deleted for bob only
    assert sorted(changes[3].audience) == sorted([A, B])
    assert [c.preview for c in changes] == ["first!", None, None, None]  # an edit says the new text


async def test_a_recall_asked_again_is_told_again(world):
    await world.send_items([send(A, B, "m1", text="oops")])
    message_id = stored_events(world)[0].conversations[0].messages[0].message_id
    for _ in range(2):
        await world.ask(A, "message.recall", message_id=message_id, device="phone")
    assert [c.change for c in world.events.named("message.changed")] == ["recalled", "recalled"]
    assert len(world.outbox.of_type("message.recalled")) <= 1  # pushed once at most (nobody online)


async def test_opening_and_burning_are_told(world):
    await world.send_items([send(A, B, "b1", text="secret", burn_seconds=1)])
    message_id = stored_events(world)[0].conversations[0].messages[0].message_id
    await world.ask(B, "message.open", message_id=message_id, device="laptop")
    # Burning is chat's periodic job, not a command: asked directly, with a clock past the timer.
    assert await interactions.burn_due(utc_now() + timedelta(seconds=5), world) == 1
    assert [(c.change, c.by_user_id) for c in world.events.named("message.changed")] == [("opened", B), ("burned", A)]


async def test_a_read_marker_moving_is_told_once_per_advance_with_the_device_that_read(world):
    await world.send_items([send(A, B, "m1", text="one"), send(A, B, "m2", text="two")])
    conversation_id = stored_events(world)[0].conversations[0].conversation_id
    for seq in (1, 1, 2):
        await world.ask(B, "message.read", conversation_id=conversation_id, seq=seq, device="laptop")
    reads: list[ConversationRead] = world.events.named("conversation.read")
    assert [(r.conversation_id, r.user_id, r.device_id, r.seq) for r in reads] == [
        (conversation_id, B, "laptop", 1), (conversation_id, B, "laptop", 2),
    ]
