"""Groups' invite links and join requests (docs/protocol.md "Group administration").

group_invites: `{_id: code, group_id, created_by, created_at, expires_at?, max_uses?, uses,
  revoked_at?}` — a revoked, expired or used-up link stays (so its holder is told which) until
  pruned when its group makes new ones, or the group is dissolved.
group_join_requests: `{_id: "<group_id>/<user_id>", group_id, user_id, requested_at}`.

A link is found and used by its `_id`, a request by its `_id`: point reads (on the embedded
server an `_id` range or an `$in` on a secondary index costs a scan). Only listing a group's
links or requests reads the `group_id` index.
"""
from contextlib import suppress
from datetime import datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from services.chat.domain.records import InviteLink, JoinRequest
from shared.stores import Database, Document


def _invite(doc: Document) -> InviteLink:
    return InviteLink(
        doc["_id"], doc["group_id"], doc["created_by"], doc["created_at"], doc.get("expires_at"),
        doc.get("max_uses"), doc.get("uses", 0), "revoked_at" in doc,
    )


def _invite_doc(invite: InviteLink) -> Document:
    doc: Document = {
        "_id": invite.code,
        "group_id": invite.group_id,
        "created_by": invite.created_by,
        "created_at": invite.created_at,
        "uses": invite.uses,
    }
    if invite.expires_at is not None:
        doc["expires_at"] = invite.expires_at
    if invite.max_uses is not None:
        doc["max_uses"] = invite.max_uses
    return doc


class InviteStore:
    def __init__(self, db: Database):
        self.collection = db["group_invites"]

    async def ensure_indexes(self) -> None:
        await self.collection.create_index([("group_id", ASCENDING)])

    async def create(self, invite: InviteLink) -> None:
        await self.collection.insert_one(_invite_doc(invite))

    async def get(self, code: str) -> InviteLink | None:
        doc = await self.collection.find_one({"_id": code})
        return _invite(doc) if doc else None

    async def of_group(self, group_id: str) -> list[InviteLink]:
        """Every stored link of a group (usable or not), oldest first."""
        found = [_invite(doc) async for doc in self.collection.find({"group_id": group_id})]
        return sorted(found, key=lambda i: i.created_at)

    async def use(self, invite: InviteLink) -> bool:
        """Count one use, atomically: False when the link was revoked or used up meanwhile
        (`max_uses` never changes, so the read's value bounds `uses` in the update's filter)."""
        query: dict[str, Any] = {"_id": invite.code, "revoked_at": {"$exists": False}}
        if invite.max_uses is not None:
            query["uses"] = {"$lt": invite.max_uses}
        result = await self.collection.update_one(query, {"$inc": {"uses": 1}})
        return result.modified_count == 1

    async def revoke(self, group_id: str, code: str, now: datetime) -> bool:
        """False when the group has no such link."""
        result = await self.collection.update_one(
            {"_id": code, "group_id": group_id, "revoked_at": {"$exists": False}}, {"$set": {"revoked_at": now}}
        )
        if result.matched_count == 1:
            return True
        return await self.collection.find_one({"_id": code, "group_id": group_id}) is not None  # revoked before

    async def delete(self, codes: list[str]) -> None:
        for code in codes:  # a few, by _id
            await self.collection.delete_one({"_id": code})

    async def delete_group(self, group_id: str) -> None:
        await self.collection.delete_many({"group_id": group_id})


def _request_key(group_id: str, user_id: str) -> str:
    return f"{group_id}/{user_id}"


class JoinRequestStore:
    def __init__(self, db: Database):
        self.collection = db["group_join_requests"]

    async def ensure_indexes(self) -> None:
        await self.collection.create_index([("group_id", ASCENDING)])

    async def add(self, request: JoinRequest) -> bool:
        """False when the user already has a pending request to the group."""
        with suppress(DuplicateKeyError):
            await self.collection.insert_one({
                "_id": _request_key(request.group_id, request.user_id),
                "group_id": request.group_id,
                "user_id": request.user_id,
                "requested_at": request.requested_at,
            })
            return True
        return False

    async def get(self, group_id: str, user_id: str) -> JoinRequest | None:
        doc = await self.collection.find_one({"_id": _request_key(group_id, user_id)})
        return JoinRequest(doc["group_id"], doc["user_id"], doc["requested_at"]) if doc else None

    async def of_group(self, group_id: str) -> list[JoinRequest]:
        """A group's pending requests, oldest first."""
        found = [
            JoinRequest(doc["group_id"], doc["user_id"], doc["requested_at"])
            async for doc in self.collection.find({"group_id": group_id})
        ]
        return sorted(found, key=lambda r: r.requested_at)

    async def count(self, group_id: str) -> int:
        return await self.collection.count_documents({"group_id": group_id})

    async def remove(self, group_id: str, user_id: str) -> bool:
        """False when there was no such request."""
        result = await self.collection.delete_one({"_id": _request_key(group_id, user_id)})
        return result.deleted_count == 1

    async def delete_group(self, group_id: str) -> None:
        await self.collection.delete_many({"group_id": group_id})
