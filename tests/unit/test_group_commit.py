"""services/chat/storage/appender.py: concurrent sends share writes and stay gap-free."""
import asyncio
from dataclasses import replace
from datetime import timedelta

import pytest

from services.chat.domain.records import Conversation, Draft
from services.chat.storage.appender import DuplicateClientMessage
from services.chat.storage.conversations import ConversationStore
from services.chat.storage.messages import MessageStore
from shared.contracts.base import utc_now
from shared.ids import new_id


async def direct(store: MessageStore, members=("u_a", "u_b")) -> Conversation:
    return await ConversationStore(store.conversations.database).ensure_direct(new_id("c"), list(members), utc_now())


def message(sender: str, client_msg_id: str | None = None) -> Draft:
    return Draft(message_id=new_id("m"), from_user_id=sender, client_msg_id=client_msg_id or new_id("k"),
                 to={}, sent_at=utc_now(), text="hi")


async def stored_seqs(store: MessageStore, conversation_id: str) -> list[int]:
    return [d["seq"] async for d in store.messages.find({"conversation_id": conversation_id}).sort("seq", 1)]


async def stored_conversation(store: MessageStore, conversation_id: str) -> dict:
    return await store.conversations.find_one({"_id": conversation_id})


@pytest.fixture
async def store(db):
    store = MessageStore(db)
    await store.ensure_indexes()
    await ConversationStore(db).ensure_indexes()
    return store


async def test_concurrent_sends_to_one_conversation_take_consecutive_seqs(store):
    conv = await direct(store)
    results = await asyncio.gather(*(store.append(conv, message(f"u{i % 2}")) for i in range(60)))
    assert sorted(r.seq for r in results) == list(range(1, 61))
    assert await stored_seqs(store, conv.conversation_id) == list(range(1, 61))
    await store.record_last_seqs()  # recorded lazily: what the next flush does
    assert (await stored_conversation(store, conv.conversation_id))["last_seq"] == 60


async def test_sends_to_many_conversations_in_one_batch_each_count_from_one(store):
    convs = [await direct(store, (f"u{i}", f"v{i}")) for i in range(5)]
    await asyncio.gather(*(store.append(c, message("u_a")) for c in convs for _ in range(4)))
    for conv in convs:
        assert await stored_seqs(store, conv.conversation_id) == [1, 2, 3, 4]
        await store.record_last_seqs()  # recorded lazily: what the next flush does
        assert (await stored_conversation(store, conv.conversation_id))["last_seq"] == 4


async def test_a_repeated_client_msg_id_in_the_same_batch_stores_once_and_leaves_no_gap(store):
    conv = await direct(store)
    first, twin, after = message("u_a", "same"), message("u_a", "same"), message("u_b")
    results = await asyncio.gather(*(store.append(conv, m) for m in (first, twin, after)), return_exceptions=True)
    assert results[0].seq == 1
    assert isinstance(results[1], DuplicateClientMessage) and results[1].existing.message_id == first.message_id
    assert results[2].seq == 2
    assert await stored_seqs(store, conv.conversation_id) == [1, 2]


async def test_two_replicas_writing_one_conversation_never_share_or_skip_a_seq(db):
    """Two stores are two chat processes: each has its own hints; the unique index arbitrates."""
    one, two = MessageStore(db), MessageStore(db)
    conversations = ConversationStore(db)
    await one.ensure_indexes()
    await conversations.ensure_indexes()
    conv = await direct(one)

    async def burst(store: MessageStore, sender: str) -> None:
        for _ in range(15):
            fresh = await conversations.conversation(conv.conversation_id)
            await asyncio.gather(*(store.append(fresh, message(sender)) for _ in range(3)))

    await asyncio.gather(burst(one, "u_a"), burst(two, "u_b"))
    assert await stored_seqs(one, conv.conversation_id) == list(range(1, 91))
    await one.record_last_seqs()  # recorded lazily: what the next flush does
    await two.record_last_seqs()
    assert (await stored_conversation(one, conv.conversation_id))["last_seq"] == 90


async def test_last_seq_waits_in_memory_and_a_crash_only_leaves_it_behind(db, store):
    """Issue 26: no `last_seq` write per batch. A process that dies before recording it leaves it
    behind what is stored; the next process's send catches up above it, gap-free."""
    conv = await direct(store)
    for _ in range(3):
        await store.append(conv, message("u_a"))
    assert (await stored_conversation(store, conv.conversation_id)).get("last_seq", 0) == 0
    assert store.known_top(conv.conversation_id) == 3
    restarted = MessageStore(db)  # the first one is gone without recording
    fresh = await ConversationStore(db).conversation(conv.conversation_id)
    assert (await restarted.append(fresh, message("u_b"))).seq == 4
    assert await stored_seqs(store, conv.conversation_id) == [1, 2, 3, 4]
    await restarted.close()  # at shutdown: recorded
    assert (await stored_conversation(store, conv.conversation_id))["last_seq"] == 4


async def test_a_batch_with_a_disappearing_message_records_last_seq_at_once(store):
    """Expired messages are deleted: a last_seq lost with a crash must not let their seqs be
    numbered again, so such a batch records it before answering."""
    conv = await direct(store)
    await store.append(conv, message("u_a"))
    disappearing = replace(message("u_a"), expires_at=utc_now() + timedelta(seconds=5))
    assert (await store.append(conv, disappearing)).seq == 2
    assert (await stored_conversation(store, conv.conversation_id))["last_seq"] == 2
