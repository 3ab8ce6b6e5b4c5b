"""The `device_messages` collection: to-device messages (devices.send) waiting for their target
device to acknowledge them (docs/security.md "To-device messages").

`{_id, user_id, device_id (the target), from_user_id (absent in step one's: user_id), from_device_id,
sender_key, type, body, size, sent_at, expires_at}`; read by target device in the order sent, deleted when acknowledged or expired.
"""
from collections.abc import Sequence
from datetime import datetime

from pymongo import ASCENDING

from services.chat.domain.records import DeviceMessage
from services.chat.storage.messages import EPOCH
from shared.stores import Database, Document


def _record(doc: Document) -> DeviceMessage:
    return DeviceMessage(
        doc["_id"], doc["user_id"], doc["device_id"], doc.get("from_user_id") or doc["user_id"], doc["from_device_id"],
        doc["sender_key"], doc["type"], doc["body"], doc["sent_at"], doc["expires_at"],
    )


class DeviceMessageStore:
    def __init__(self, db: Database):
        self.collection = db["device_messages"]

    async def ensure_indexes(self) -> None:
        await self.collection.create_index([("user_id", ASCENDING), ("device_id", ASCENDING), ("_id", ASCENDING)])
        await self.collection.create_index([("expires_at", ASCENDING)])

    async def waiting(self, user_id: str, device_id: str) -> tuple[int, int]:
        """How many messages wait for the device, and their bodies' size in bytes."""
        cursor = self.collection.find({"user_id": user_id, "device_id": device_id}, projection={"size": 1})
        sizes = [doc["size"] async for doc in cursor]
        return len(sizes), sum(sizes)

    async def add(self, messages: Sequence[DeviceMessage]) -> None:
        await self.collection.insert_many([
            {
                "_id": m.message_id, "user_id": m.user_id, "device_id": m.device_id, "from_user_id": m.from_user_id,
                "from_device_id": m.from_device_id,
                "sender_key": m.sender_key, "type": m.type, "body": m.body, "size": m.size, "sent_at": m.sent_at,
                "expires_at": m.expires_at,
            }
            for m in messages
        ], ordered=True)

    async def for_device(self, user_id: str, device_id: str, now: datetime, limit: int) -> list[DeviceMessage]:
        """What waits for the device and has not expired, oldest first (ids ascend with time)."""
        cursor = self.collection.find({"user_id": user_id, "device_id": device_id}).sort("_id", ASCENDING).limit(limit)
        return [m for m in map(_record, await cursor.to_list()) if m.expires_at > now]

    async def acknowledge(self, user_id: str, device_id: str, message_ids: Sequence[str]) -> int:
        """Delete the device's messages of these ids (others' are not touched); how many."""
        result = await self.collection.delete_many(
            {"user_id": user_id, "device_id": device_id, "_id": {"$in": list(message_ids)}}
        )
        return result.deleted_count

    async def drop_device(self, user_id: str, device_id: str) -> None:
        """A device whose keys are gone can read none of what waits for it."""
        await self.collection.delete_many({"user_id": user_id, "device_id": device_id})

    async def delete_expired(self, now: datetime) -> int:
        result = await self.collection.delete_many({"expires_at": {"$gte": EPOCH, "$lt": now}})
        return result.deleted_count
