"""Announcements in the order messages were stored (services/chat/domain/in_order.py): the
second batch of a conversation, answered and sent on at once, is announced after the first."""
import asyncio

from services.chat.domain import in_order
from services.chat.domain.in_order import InOrder


async def test_a_later_turn_of_a_conversation_waits_for_the_earlier_one() -> None:
    order, done = InOrder(), []
    first, second = order.take_turn(["c1"]), order.take_turn(["c1"])
    release_first = asyncio.Event()

    async def announce(name: str, wait: asyncio.Event | None = None) -> None:
        if wait is not None:
            await wait.wait()
        done.append(name)

    later = asyncio.create_task(second.run(lambda: announce("seq 8")))  # its work comes first
    earlier = asyncio.create_task(first.run(lambda: announce("seq 7", release_first)))
    await asyncio.sleep(0.05)
    assert done == []  # seq 8 waits for seq 7, which waits for its pushes
    release_first.set()
    await asyncio.gather(earlier, later)
    assert done == ["seq 7", "seq 8"] and len(order) == 0


async def test_other_conversations_do_not_wait() -> None:
    order, done = InOrder(), []
    blocked = order.take_turn(["c1"])
    free = order.take_turn(["c2"])
    await free.run(lambda: asyncio.sleep(0, done.append("c2")))
    assert done == ["c2"]
    await blocked.run(lambda: asyncio.sleep(0))
    assert len(order) == 0


async def test_a_turn_whose_work_never_comes_holds_the_next_only_so_long(monkeypatch) -> None:
    monkeypatch.setattr(in_order, "WAIT_SECONDS", 0.1)
    order, done = InOrder(), []
    order.take_turn(["c1"])  # its command was lost: never run
    await asyncio.wait_for(order.take_turn(["c1"]).run(lambda: asyncio.sleep(0, done.append("next"))), 2)
    assert done == ["next"]
