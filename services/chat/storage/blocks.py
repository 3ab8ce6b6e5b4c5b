"""The `blocks` collection: one document per (blocker, blocked), `_id` "<blocker>|<blocked>".

Every check is a point read by `_id` (on the embedded server an `_id` range is a whole-collection
scan); only a user's own list reads the index on `blocker`.
"""
from datetime import datetime

from pymongo import ASCENDING, DESCENDING

from shared.stores import Database


def block_key(blocker: str, blocked: str) -> str:
    return f"{blocker}|{blocked}"


class BlockStore:
    def __init__(self, db: Database):
        self.blocks = db["blocks"]

    async def ensure_indexes(self) -> None:
        await self.blocks.create_index([("blocker", ASCENDING), ("blocked_at", DESCENDING)])

    async def add(self, blocker: str, blocked: str, now: datetime) -> None:
        """Idempotent: blocking again keeps the first time."""
        await self.blocks.update_one(
            {"_id": block_key(blocker, blocked)},
            {"$setOnInsert": {"blocker": blocker, "blocked": blocked, "blocked_at": now}},
            upsert=True,
        )

    async def remove(self, blocker: str, blocked: str) -> bool:
        result = await self.blocks.delete_one({"_id": block_key(blocker, blocked)})
        return result.deleted_count == 1

    async def blockers_of(self, user_id: str, among: list[str]) -> set[str]:
        """Which of `among` have blocked `user_id`, in one read."""
        keys = {block_key(other, user_id): other for other in among}
        if not keys:
            return set()
        cursor = self.blocks.find({"_id": {"$in": list(keys)}}, projection={"_id": 1})
        return {keys[doc["_id"]] async for doc in cursor}

    async def between(self, a: str, b: str) -> set[str]:
        """Which of the two blocked the other (empty, one or both), in one read."""
        keys = {block_key(a, b): a, block_key(b, a): b}
        cursor = self.blocks.find({"_id": {"$in": list(keys)}}, projection={"_id": 1})
        return {keys[doc["_id"]] async for doc in cursor}

    async def count_by(self, blocker: str) -> int:
        return await self.blocks.count_documents({"blocker": blocker})

    async def blocked_by(self, blocker: str) -> list[str]:
        """The users `blocker` blocked, the most recent first."""
        cursor = self.blocks.find({"blocker": blocker}, projection={"blocked": 1}).sort("blocked_at", DESCENDING)
        return [doc["blocked"] async for doc in cursor]
