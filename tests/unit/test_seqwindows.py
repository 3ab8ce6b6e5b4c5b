"""services/chat/storage/seqwindows.py through MessageStore: reads in windows of seqs give the
same answers as whole-range reads, across long holes (expired messages deleted by the TTL
index) and above a `last_seq` that was not raised yet."""
from datetime import timedelta

import pytest

from services.chat.storage.messages import MessageStore
from shared.contracts.base import utc_now

CONV = "d_windows"


@pytest.fixture
async def store(db):
    messages = MessageStore(db)
    await messages.ensure_indexes()
    return messages


async def fill(store: MessageStore, seqs: list[int], sender=lambda seq: "u_a" if seq % 3 else "u_b") -> None:
    now = utc_now()
    await store.messages.insert_many([
        {"_id": f"m{seq}", "conversation_id": CONV, "seq": seq, "from_user_id": sender(seq), "client_msg_id": f"c{seq}",
         "to": {"user_id": "u_b"}, "text": f"t{seq}", "sent_at": now - timedelta(seconds=1000 - seq)}
        for seq in seqs
    ])


async def test_pages_walk_across_a_long_hole_of_deleted_messages(store):
    await fill(store, [*range(1, 11), *range(2001, 2011)])  # 11..2000 expired and deleted
    now = utc_now()
    docs, more = await store.page(CONV, None, 15, now, top=2010)
    assert [d.seq for d in docs] == [*range(6, 11), *range(2001, 2011)] and more
    docs, more = await store.page(CONV, 6, 15, now, top=2010)
    assert [d.seq for d in docs] == list(range(1, 6)) and not more
    assert [d.seq for d in await store.above(CONV, 8, 5, now, top=2010)] == [9, 10, 2001, 2002, 2003]
    assert (await store.latest(CONV, 0, now, top=2010)).seq == 2010
    assert (await store.latest(CONV, 2010, now, top=2010)) is None
    # u_b sent the multiples of 3: unread for u_b counts the others'.
    expected = len([s for s in [*range(1, 11), *range(2001, 2011)] if s > 4 and s % 3])
    assert await store.count_unread(CONV, "u_b", 4, now, top=2010) == expected


async def test_messages_above_a_last_seq_not_yet_raised_are_still_read(store):
    await fill(store, list(range(1, 701)))  # last_seq recorded as 690: a replica died between writes
    now = utc_now()
    docs, _ = await store.page(CONV, None, 3, now, top=690)
    assert [d.seq for d in docs] == [698, 699, 700]
    above = await store.above(CONV, 600, 500, now, top=690)
    assert [d.seq for d in above] == list(range(601, 701))
    assert (await store.latest(CONV, 0, now, top=690)).seq == 700
    assert await store.count_unread(CONV, "u_x", 0, now, top=690) == 700
    await store.conversations.insert_one({"_id": CONV, "kind": "direct", "members": ["u_a", "u_b"], "last_seq": 690})
    assert await store.highest_seq(CONV) == 700
    assert await store.catch_up_last_seq(CONV) == 700


async def test_a_whole_sync_of_a_big_conversation_comes_in_order_without_repeats(store):
    await fill(store, list(range(1, 1301)))
    now = utc_now()
    after, seen = 0, []
    while after < 1300:
        batch = await store.above(CONV, after, 500, now, top=1300)
        seen += [d.seq for d in batch]
        after = batch[-1].seq
    assert seen == list(range(1, 1301))


@pytest.mark.parametrize("newest_first", [True, False])
async def test_a_bound_far_beyond_the_last_seq_costs_one_read_not_a_walk_down_to_it(store, newest_first):
    """Issue 29's timed-out `history.fetch`: a fuzzed `before_seq` of 2^53 on a conversation of
    ten messages walked down from 2^53 one window (at most 8,192 seqs) at a time: ~10^12 reads
    until the 30 s deadline. The window that reaches `top` reads what lies above it, up to the bound."""
    from services.chat.storage.seqwindows import windows

    await fill(store, list(range(1, 11)))
    reads, seen = 0, []
    async for docs in windows(store.messages, CONV, 0, 2**53, 10, 51, newest_first):
        reads += 1
        seen += [d["seq"] for d in docs]
        if reads > 3:
            break
    assert reads == 1 and sorted(seen) == list(range(1, 11))
    docs, more = await store.page(CONV, 2**53, 5, utc_now(), top=10)
    assert [d.seq for d in docs] == [6, 7, 8, 9, 10] and more
