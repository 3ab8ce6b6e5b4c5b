"""The `devices` and `cursors` collections: what each (user, device) has acknowledged."""
from collections.abc import Iterable
from contextlib import suppress
from datetime import datetime

from pymongo import ASCENDING, UpdateOne, WriteConcern
from pymongo.asynchronous.cursor import AsyncCursor
from pymongo.errors import DuplicateKeyError, OperationFailure

from services.chat.domain.records import Cursor
from shared.stores import Database, Document

AFTER_BAR = chr(ord("|") + 1)  # the first character above "|": the end of a `...|` prefix range


class CursorStore:
    def __init__(self, db: Database):
        self.devices = db["devices"]
        # Cursor moves are not waited on to reach the journal (a flush per write): one lost
        # with a database crash only means a device is sent again what it already holds,
        # which it drops by seq (delivery is at least once).
        self.cursors = db["cursors"].with_options(write_concern=WriteConcern(w=1, j=False))
        self.read_markers = db["read_markers"]

    async def ensure_indexes(self) -> None:
        await self.devices.create_index([("user_id", ASCENDING)])
        # Cursors are found by their _id's prefix (`user|device|`), not a second index: every
        # ack writes a cursor, and each index a write maintains costs it on the embedded server.
        with suppress(OperationFailure):  # made by earlier versions; gone already is fine
            await self.cursors.drop_index("user_id_1_device_id_1")
        await self.read_markers.create_index([("user_id", ASCENDING)])

    async def register_device(self, user_id: str, device_id: str, now: datetime) -> bool:
        """True the first time this device of this user is seen."""
        try:
            await self.devices.insert_one(
                {"_id": f"{user_id}|{device_id}", "user_id": user_id, "device_id": device_id, "first_seen": now}
            )
        except DuplicateKeyError:
            return False
        return True

    def _with_prefix(self, *parts: str) -> AsyncCursor[Document]:
        """Cursors whose _id starts with `part|...|`: a range of the _id index. ("|" may occur in
        a device id, so callers also check the fields.)"""
        prefix = "|".join(parts) + "|"
        return self.cursors.find({"_id": {"$gte": prefix, "$lt": prefix[:-1] + AFTER_BAR}})

    async def of_device(self, user_id: str, device_id: str) -> dict[str, int]:
        """conversation_id → highest acknowledged seq of this device."""
        return {
            doc["conversation_id"]: doc["seq"]
            async for doc in self._with_prefix(user_id, device_id)
            if doc["user_id"] == user_id and doc["device_id"] == device_id
        }

    async def highest_of_user(self, user_id: str) -> dict[str, int]:
        """conversation_id → highest seq any of the user's devices has acknowledged."""
        best: dict[str, int] = {}
        async for doc in self._with_prefix(user_id):
            if doc["user_id"] == user_id:
                best[doc["conversation_id"]] = max(best.get(doc["conversation_id"], 0), doc["seq"])
        return best

    async def advance(self, user_id: str, device_id: str, positions: dict[str, int]) -> None:
        """Move cursors forward (never back) to the given seqs."""
        await self.advance_many(Cursor(user_id, device_id, cid, seq) for cid, seq in positions.items())

    async def advance_many(self, cursors: Iterable[Cursor]) -> None:
        """Move many devices' cursors forward in one write."""
        updates = [
            UpdateOne(
                {"_id": f"{c.user_id}|{c.device_id}|{c.conversation_id}"},
                {
                    "$max": {"seq": c.seq},
                    "$setOnInsert": {"user_id": c.user_id, "device_id": c.device_id, "conversation_id": c.conversation_id},
                },
                upsert=True,
            )
            for c in cursors
        ]
        if updates:
            await self.cursors.bulk_write(updates, ordered=False)

    async def mark_read(self, user_id: str, conversation_id: str, seq: int) -> bool:
        """Move the user's read marker (shared by their devices) up to `seq`; False if it was there."""
        result = await self.read_markers.update_one(
            {"_id": f"{user_id}|{conversation_id}"},
            {"$max": {"seq": seq}, "$setOnInsert": {"user_id": user_id, "conversation_id": conversation_id}},
            upsert=True,
        )
        return result.upserted_id is not None or result.modified_count == 1

    async def read_positions(self, user_id: str) -> dict[str, int]:
        """conversation_id → the user's read marker."""
        return {doc["conversation_id"]: doc["seq"] async for doc in self.read_markers.find({"user_id": user_id})}
