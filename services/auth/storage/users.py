"""The `users` collection: accounts and their password hashes (owned by auth alone).

`{_id: user_id, username, display_name, display_name_folded, password_hash, created_at,
avatar_url?}` (`avatar_url`: the user's avatar image, made by the files service);
usernames are unique (the index says so: a second registration of one is UsernameTaken).
"""
import re
from datetime import datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from services.auth.domain.ports import Profile, User, UsernameTaken
from shared.stores import Database, Document, update_then_read

# What a profile read fetches: never the password hash.
_PROFILE = {"password_hash": 0}


def _user(doc: Document) -> User:
    return User(
        user_id=doc["_id"], username=doc["username"], display_name=doc["display_name"],
        password_hash=doc["password_hash"],
    )


def _profile(doc: Document) -> Profile:
    return Profile(
        user_id=doc["_id"], username=doc["username"], display_name=doc["display_name"],
        avatar_url=doc.get("avatar_url"),
    )


class MongoUserStore:
    """The `UserStore` port (services/auth/domain/ports.py): documents in, records out."""

    def __init__(self, db: Database):
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

    async def by_username(self, username: str) -> User | None:
        doc = await self.users.find_one({"username": username})
        return _user(doc) if doc else None

    async def set_password_hash(self, user_id: str, password_hash: str) -> None:
        await self.users.update_one({"_id": user_id}, {"$set": {"password_hash": password_hash}})

    async def profiles(self, user_ids: list[str]) -> list[Profile]:
        cursor = self.users.find({"_id": {"$in": user_ids}}, _PROFILE)
        return [_profile(doc) async for doc in cursor]

    async def search_prefix(self, prefix: str, limit: int) -> list[Profile]:
        """Users whose username or display name starts with `prefix` (case-insensitive)."""
        anchored = "^" + re.escape(prefix.casefold())
        cursor = (
            self.users.find(
                {"$or": [{"username": {"$regex": anchored}}, {"display_name_folded": {"$regex": anchored}}]},
                _PROFILE,
            )
            .sort("username", ASCENDING)
            .limit(limit)
        )
        return [_profile(doc) async for doc in cursor]

    async def update_profile(
        self, user_id: str, display_name: str | None, avatar_url: str | None, clear_avatar: bool
    ) -> Profile | None:
        update: dict[str, Any] = {}
        if display_name is not None:
            update["$set"] = {"display_name": display_name, "display_name_folded": display_name.casefold()}
        if avatar_url is not None:
            update.setdefault("$set", {})["avatar_url"] = avatar_url
        elif clear_avatar:
            update["$unset"] = {"avatar_url": ""}
        if not update:
            doc = await self.users.find_one({"_id": user_id}, _PROFILE)
        else:
            doc = await update_then_read(self.users, user_id, update, projection=_PROFILE)
        return _profile(doc) if doc else None
