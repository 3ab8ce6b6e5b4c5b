"""The `friendships` collection: one document per pair of users, pending or accepted."""
from datetime import datetime

from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from services.chat.domain.records import Friendship
from services.chat.storage.documents import friendship
from shared.stores import Database


def pair_key(a: str, b: str) -> str:
    return "|".join(sorted((a, b)))


class FriendshipStore:
    def __init__(self, db: Database):
        self.friendships = db["friendships"]

    async def ensure_indexes(self) -> None:
        await self.friendships.create_index([("users", ASCENDING)])

    async def get(self, a: str, b: str) -> Friendship | None:
        doc = await self.friendships.find_one({"_id": pair_key(a, b)})
        return friendship(doc) if doc else None

    async def add_request(self, requester: str, target: str, now: datetime) -> bool:
        """False when the pair already has a document (someone asked first)."""
        try:
            await self.friendships.insert_one(
                {
                    "_id": pair_key(requester, target),
                    "users": [requester, target],
                    "requester": requester,
                    "status": "pending",
                    "created_at": now,
                }
            )
        except DuplicateKeyError:
            return False
        return True

    async def accept(self, requester: str, accepter: str, now: datetime) -> bool:
        """Accept a pending request from `requester`; False when there is none."""
        result = await self.friendships.update_one(
            {"_id": pair_key(requester, accepter), "status": "pending", "requester": requester},
            {"$set": {"status": "accepted", "accepted_at": now}},
        )
        return result.modified_count == 1

    async def remove(self, a: str, b: str) -> bool:
        result = await self.friendships.delete_one({"_id": pair_key(a, b)})
        return result.deleted_count == 1

    async def of_user(self, user_id: str) -> list[Friendship]:
        return [friendship(doc) async for doc in self.friendships.find({"users": user_id}).sort("created_at", ASCENDING)]

    async def accepted_among(self, pairs: list[tuple[str, str]]) -> set[tuple[str, str]]:
        """Those of the pairs (as given) that are friends, in one read."""
        by_key: dict[str, list[tuple[str, str]]] = {}
        for pair in pairs:
            by_key.setdefault(pair_key(*pair), []).append(pair)
        if not by_key:
            return set()
        cursor = self.friendships.find({"_id": {"$in": list(by_key)}, "status": "accepted"}, projection={"_id": 1})
        return {pair async for doc in cursor for pair in by_key[doc["_id"]]}

    async def are_friends(self, a: str, b: str) -> bool:
        return bool(await self.accepted_among([(a, b)]))
