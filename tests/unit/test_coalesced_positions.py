"""Acknowledged positions wait in memory and are written in one bulk `$max` per flush
(services/chat/storage/coalesced.py): what a flush writes, what a failed one keeps, the bound,
and what a crash costs a device (messages it had acknowledged are sent again, never lost)."""
import asyncio

import pytest

from services.chat.domain.records import Cursor
from shared.partitions import direct_conversation_id
from services.chat.storage import coalesced
from services.chat.storage.coalesced import CoalescedPositions
from services.chat.storage.cursors import CursorStore
from shared.contracts.base import utc_now
from tests.unit.world import chat_world

A, B = "u_alice", "u_bob"
AB = direct_conversation_id(A, B)


class Writes:
    """The write a flush makes, recorded; `failing` makes it raise as a database outage would."""

    def __init__(self) -> None:
        self.calls: list[dict] = []
        self.failing = False

    async def __call__(self, cursors: dict) -> None:
        if self.failing:
            raise ConnectionError("database away")
        self.calls.append(dict(cursors))


async def test_many_acks_become_one_write_of_the_highest_positions() -> None:
    writes = Writes()
    positions = CoalescedPositions(writes, flush_seconds=0.05)
    for seq in (1, 3, 2):
        await positions.advance([Cursor(B, "phone", AB, seq)], {(B, AB): seq})
    await asyncio.wait_for(positions._flusher, 2)  # type: ignore[arg-type]
    assert writes.calls == [{(B, "phone", AB): 3}]  # delivered markers are read from cursors, not written
    assert positions.known_delivered[(B, AB)] == 3  # known: the next ack's "moved?" costs no read


async def test_a_failed_flush_keeps_the_positions_for_the_next_one() -> None:
    writes = Writes()
    positions = CoalescedPositions(writes, flush_seconds=60)
    await positions.advance([Cursor(B, "phone", AB, 5)], {})
    writes.failing = True
    with pytest.raises(ConnectionError):
        await positions.flush()
    await positions.advance([Cursor(B, "phone", AB, 4)], {})  # an older ack arriving late moves nothing back
    writes.failing = False
    await positions.close()
    assert writes.calls == [{(B, "phone", AB): 5}]


async def test_past_the_bound_an_ack_writes_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(coalesced, "MAX_PENDING", 3)
    writes = Writes()
    positions = CoalescedPositions(writes, flush_seconds=60)
    await positions.advance([Cursor(B, f"d{i}", AB, 1) for i in range(2)], {})
    assert writes.calls == []
    await positions.advance([Cursor(B, "d2", AB, 1)], {})
    assert len(writes.calls) == 1 and len(writes.calls[0]) == 3
    await positions.close()


async def test_a_crash_before_the_flush_sends_acknowledged_messages_again(db, settings) -> None:
    """chat dies (no close, no flush) after B's phone acknowledged 3 messages: the next chat
    replica's sync sends the phone those 3 again (it drops them by seq); nothing is lost."""
    async with chat_world(db, settings, positions_flush_seconds=60) as world:
        await world.befriend(A, B)
        for n in range(3):
            await world.send(A, B, text=f"m{n}")
        assert await world.sync(B, "phone") == 3
        await world.ack(B, AB, 3, device="phone")
        assert await world.sync(B, "phone") == 0  # this replica knows the phone has them
        world.service.cursors.pending.waiting.clear()  # the crash: what waited in memory is gone
        await world.send(A, B, text="m3")
        assert await world.sync(B, "phone") == 4  # again 1-3, and the new one


async def test_delivered_markers_are_read_from_cursors_and_from_earlier_versions_markers(db) -> None:
    """A delivered marker is the highest of the user's devices' cursors; a marker document an
    earlier version wrote still counts (both only move up: the higher wins)."""
    store = CursorStore(db, flush_seconds=60)
    for device in ("phone", "laptop"):
        await store.register_device(B, device, utc_now())
    await store.advance_many([Cursor(B, "phone", AB, 4), Cursor(B, "laptop", AB, 7)])
    await store.close()
    assert await CursorStore(db).delivered_of([(B, AB)]) == {(B, AB): 7}
    await db["cursors"].insert_one({"_id": f"@delivered|{AB}|{A}", "user_id": A, "conversation_id": AB, "seq": 9})
    _, delivered = await CursorStore(db).positions(AB, [A, B])
    assert delivered == {A: 9, B: 7}
