"""services/chat/domain/interactions.py on chat's real stores: the rules a socket test cannot
reach in reasonable time (the edit window, the never-opened cap) and what burning takes away."""
from datetime import timedelta
from typing import Any

import pytest

from services.chat.domain import interactions
from shared.contracts.base import utc_now
from shared.contracts.errors import ErrorCode, ParleyError
from shared.contracts.interactions import MessageEdit
from shared.emoji import is_single_emoji
from tests.unit.world import chat_world

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


@pytest.mark.parametrize("emoji", ["👍", "❤️", "👍🏿", "👩‍💻", "👨‍👩‍👧‍👦", "🇯🇵", "#️⃣", "🏳️‍🌈"])
def test_single_emoji_are_accepted(emoji: str) -> None:
    assert is_single_emoji(emoji)


@pytest.mark.parametrize("text", ["", "a", ":)", "👍👍", "👍 ", "🇯", "ok👍", "1", "❤️❤️"])
def test_anything_else_is_not_an_emoji(text: str) -> None:
    assert not is_single_emoji(text)
