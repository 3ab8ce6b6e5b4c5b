"""services/chat/domain/interactions.py on chat's real stores: the rules a socket test cannot
reach in reasonable time (the edit window, the never-opened cap) and what burning takes away."""
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest

from services.chat.domain import interactions
from shared.contracts.base import utc_now
from shared.contracts.errors import ErrorCode, ParleyError
from shared.contracts.interactions import MessageEdit
from shared.emoji import is_single_emoji
from tests.unit.world import chat_world, refusal

A, B = "u_alice", "u_bob"


@pytest.fixture
async def world(db, settings):
    async with chat_world(db, settings, burn_unopened_seconds=30) as world:
        await world.befriend(A, B)
        yield world



class ClosedWindow:
    """The world's parts, with an edit window that has always closed already."""

    edit_window = timedelta(0)

    def __init__(self, world: Any) -> None:
        self.world = world

    def __getattr__(self, name: str) -> Any:
        return getattr(self.world, name)


async def test_an_edit_after_the_window_is_refused_and_changes_nothing(world) -> None:
    sent = await world.send(A, B, text="typo")
    edit = MessageEdit(message_id=sent.message_id, text="fixed")
    with pytest.raises(ParleyError) as late:  # the window's rule, on the clock's edge: asked directly
        await interactions.edit_message(edit, A, "d1", ClosedWindow(world))
    assert late.value.code == ErrorCode.FORBIDDEN
    assert (await world.messages.message(sent.message_id)).text == "typo"
    reply = await world.ask(A, "message.edit", edit)
    stored = await world.messages.message(sent.message_id)
    assert stored.text == "fixed" and reply.edited_at


async def test_a_burn_message_never_opened_burns_at_the_cap_and_its_file_goes_with_it(world) -> None:
    world.files.add("f_1", A)
    await world.online(B, "d1")
    sent = await world.send(A, B, burn_seconds=5, file_id="f_1")
    assert await world.may_see_file("f_1", B)
    assert await interactions.burn_due(utc_now(), world) == 0
    later = utc_now() + timedelta(seconds=31)
    assert await interactions.burn_due(later, world) == 1
    assert await interactions.burn_due(later, world) == 0  # once
    burned = await world.messages.message(sent.message_id)
    assert burned.burned and burned.file is None and burned.text is None
    assert not await world.may_see_file("f_1", B)
    pushes = [p["type"] for p in world.outbox.received_by(B, "d1")]
    assert pushes.count("message.burned") == 1


async def test_opening_starts_the_timer_once(world) -> None:
    sent = await world.send(A, B, text="secret", burn_seconds=60)
    first = await world.ask(B, "message.open", message_id=sent.message_id, device="d2")
    again = await world.ask(B, "message.open", message_id=sent.message_id, device="d2")
    assert first.text == "secret" and first.burn.opened_at == again.burn.opened_at
    assert first.burn.burns_at == again.burn.burns_at


class Meanwhile:
    """The `messages` collection, where another request (`other`) runs once, just before or just
    after the next update_one: what another chat replica does at that moment. The changes after
    sending are an update_one and a read after it (shared.stores.update_then_read), not one
    find_one_and_update: these show what the users see when something lands in between."""

    def __init__(self, collection: Any, other: Callable[[], Awaitable[Any]], before: bool = False) -> None:
        self.collection, self.other, self.before = collection, other, before

    def __getattr__(self, name: str) -> Any:
        return getattr(self.collection, name)

    async def update_one(self, *args: Any, **kwargs: Any) -> Any:
        other, self.other = self.other, None
        if other is not None and self.before:
            await other()
        result = await self.collection.update_one(*args, **kwargs)
        if other is not None and not self.before:
            await other()
        return result


async def test_an_edit_overtaken_by_a_recall_is_answered_not_found_and_its_text_told_nobody(world, monkeypatch) -> None:
    await world.online(B, "d1")
    sent = await world.send(A, B, text="typo")
    recall = lambda: world.ask(A, "message.recall", message_id=sent.message_id, device="d2")  # noqa: E731
    monkeypatch.setattr(world.messages, "messages", Meanwhile(world.messages.messages, recall))
    refused = await refusal(world.ask(A, "message.edit", MessageEdit(message_id=sent.message_id, text="secret")))
    assert refused.code == ErrorCode.NOT_FOUND
    stored = await world.messages.message(sent.message_id)
    assert stored.recalled and stored.text is None
    assert "message.recalled" in world.push_types(B) and "message.edited" not in world.push_types(B)
    assert not [e for e in world.events.named("message.changed") if e.change == "edited"]


async def test_a_reaction_answers_with_the_totals_including_one_that_landed_meanwhile(world, monkeypatch) -> None:
    await world.online(A, "d1")
    sent = await world.send(A, B, text="hi")
    other = lambda: world.ask(A, "reaction.add", message_id=sent.message_id, emoji="🎉", device="d2")  # noqa: E731
    monkeypatch.setattr(world.messages, "messages", Meanwhile(world.messages.messages, other))
    await world.ask(B, "reaction.add", message_id=sent.message_id, emoji="👍")
    last = world.pushes(A, "d1", "message.reactions")[-1]
    assert {r["emoji"]: r["user_ids"] for r in last["reactions"]} == {"👍": [B], "🎉": [A]}


async def test_two_devices_opening_at_once_get_the_content_and_one_timer(world, monkeypatch) -> None:
    sent = await world.send(A, B, text="secret", burn_seconds=60)
    other = lambda: world.ask(B, "message.open", message_id=sent.message_id, device="d2")  # noqa: E731
    monkeypatch.setattr(world.messages, "messages", Meanwhile(world.messages.messages, other, before=True))
    first = await world.ask(B, "message.open", message_id=sent.message_id, device="d1")  # d2's open lands first
    again = await world.ask(B, "message.open", message_id=sent.message_id, device="d2")
    assert first.text == again.text == "secret"
    assert first.burn.opened_at == again.burn.opened_at and first.burn.burns_at == again.burn.burns_at


@pytest.mark.parametrize("emoji", ["👍", "❤️", "👍🏿", "👩‍💻", "👨‍👩‍👧‍👦", "🇯🇵", "#️⃣", "🏳️‍🌈"])
def test_single_emoji_are_accepted(emoji: str) -> None:
    assert is_single_emoji(emoji)


@pytest.mark.parametrize("text", ["", "a", ":)", "👍👍", "👍 ", "🇯", "ok👍", "1", "❤️❤️"])
def test_anything_else_is_not_an_emoji(text: str) -> None:
    assert not is_single_emoji(text)
