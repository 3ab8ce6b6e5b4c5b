"""Disappearing messages leave the database through chat's own sweep, not a TTL index."""
from datetime import timedelta

from services.chat.storage.messages import MessageStore
from shared.contracts.base import utc_now


async def test_expired_messages_are_deleted_and_the_rest_stay(db):
    store = MessageStore(db)
    await store.ensure_indexes()
    now = utc_now()
    docs = [
        {"_id": "m_gone", "conversation_id": "c", "seq": 1, "expires_at": now - timedelta(seconds=1)},
        {"_id": "m_later", "conversation_id": "c", "seq": 2, "expires_at": now + timedelta(hours=1)},
        {"_id": "m_kept", "conversation_id": "c", "seq": 3},
    ]
    await store.messages.insert_many([{**d, "from_user_id": "u", "client_msg_id": d["_id"]} for d in docs])
    assert await store.delete_expired(now) == 1
    assert sorted([d["_id"] async for d in store.messages.find({})]) == ["m_kept", "m_later"]


async def test_a_ttl_index_left_by_an_earlier_version_is_replaced(db):
    await db["messages"].create_index([("expires_at", 1)], expireAfterSeconds=0)
    await MessageStore(db).ensure_indexes()
    indexes = {i["name"]: i async for i in await db["messages"].list_indexes()}
    assert "expireAfterSeconds" not in indexes["expires_at_1"] and indexes["expires_at_1"].get("sparse") is True
