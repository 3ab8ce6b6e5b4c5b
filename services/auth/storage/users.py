"""The `users` collection: accounts and their password hashes (owned by auth alone)."""
import re
from datetime import datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared.contracts.auth import UserProfile


class UsernameTaken(Exception):
    pass


def _profile(doc: dict[str, Any]) -> UserProfile:
    return UserProfile(user_id=doc["_id"], username=doc["username"], display_name=doc["display_name"])


class UserStore:
    def __init__(self, db: AsyncDatabase):
        self.users = db["users"]

    async def ensure_indexes(self) -> None:
        await self.users.create_index([("username", ASCENDING)], unique=True)
        await self.users.create_index([("display_name_folded", ASCENDING)])

    async def insert(
        self, user_id: str, username: str, display_name: str, password_hash: str, created_at: datetime
    ) -> None:
        try:
            await self.users.insert_one(
                {
                    "_id": user_id,
                    "username": username,
                    "display_name": display_name,
                    "display_name_folded": display_name.casefold(),
                    "password_hash": password_hash,
                    "created_at": created_at,
                }
            )
        except DuplicateKeyError:
            raise UsernameTaken(username) from None

    async def by_username(self, username: str) -> dict[str, Any] | None:
        return await self.users.find_one({"username": username})

    async def set_password_hash(self, user_id: str, password_hash: str) -> None:
        await self.users.update_one({"_id": user_id}, {"$set": {"password_hash": password_hash}})

    async def profiles(self, user_ids: list[str]) -> list[UserProfile]:
        cursor = self.users.find({"_id": {"$in": user_ids}}, {"password_hash": 0})
        return [_profile(doc) async for doc in cursor]

    async def search_prefix(self, prefix: str, limit: int) -> list[UserProfile]:
        """Users whose username or display name starts with `prefix` (case-insensitive)."""
        anchored = "^" + re.escape(prefix.casefold())
        cursor = (
            self.users.find(
                {"$or": [{"username": {"$regex": anchored}}, {"display_name_folded": {"$regex": anchored}}]},
                {"password_hash": 0},
            )
            .sort("username", ASCENDING)
            .limit(limit)
        )
        return [_profile(doc) async for doc in cursor]
