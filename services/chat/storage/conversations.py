"""The `conversations` collection: direct chats and groups, with their members and roles.

A group's members and roles live in its conversation document, so each membership change is
one atomic update. `last_seq` is written by the messages it counts (storage/messages.py).
"""
from contextlib import suppress
from datetime import datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from services.chat.domain.records import Conversation, GroupChanges, Kind, Member
from services.chat.storage.documents import conversation, conversation_doc, member_doc
from shared.contracts.groups import Role
from shared.stores import Database, update_then_read

MAX_KNOWN_DIRECT = 100_000


class ConversationStore:
    def __init__(self, db: Database):
        self.collection = db["conversations"]
        # Direct conversations as first read: their members never change (last_seq goes stale).
        self._known_direct: dict[str, Conversation] = {}

    async def ensure_indexes(self) -> None:
        await self.collection.create_index([("members", ASCENDING)])
        await self.collection.create_index([("group_id", ASCENDING)], unique=True, sparse=True)
        # Encrypted conversations (few), for each replica's watch (learn_encrypted).
        await self.collection.create_index([("encrypted_at", ASCENDING)], sparse=True)

    async def conversation(self, conversation_id: str) -> Conversation | None:
        doc = await self.collection.find_one({"_id": conversation_id})
        return conversation(doc) if doc else None

    async def by_ids(self, conversation_ids: list[str]) -> dict[str, Conversation]:
        """Many conversations in one read (a batch of acks names several). Direct ones this
        process has seen come from memory, with `last_seq` as first read: a caller that needs
        the top compares with MessageStore.known_top."""
        found = {cid: self._known_direct[cid] for cid in conversation_ids if cid in self._known_direct}
        rest = [cid for cid in conversation_ids if cid not in found]
        if rest:
            async for doc in self.collection.find({"_id": {"$in": rest}}):
                found[doc["_id"]] = read = conversation(doc)
                if read.kind == "direct":
                    self._know_direct(read)
        return found

    def _know_direct(self, direct: Conversation) -> None:
        if len(self._known_direct) >= MAX_KNOWN_DIRECT:
            self._known_direct.clear()
        self._known_direct[direct.conversation_id] = direct

    async def groups_by_id(self, group_ids: list[str]) -> dict[str, Conversation]:
        """Many groups' conversations in one read (a batch of sends names several)."""
        if not group_ids:
            return {}
        return {
            doc["group_id"]: conversation(doc) async for doc in self.collection.find({"group_id": {"$in": group_ids}})
        }

    async def ensure_direct(self, conversation_id: str, members: list[str], now: datetime) -> Conversation:
        """The direct conversation, created on first use. Direct conversations are never deleted
        and their members never change, so once this process has seen one it skips the read
        (the seq comes from the group commit's hint; a stale one is caught by the unique index)."""
        known = self._known_direct.get(conversation_id)
        if known is not None:
            return known
        found = await self._direct(conversation_id, members, now)
        self._know_direct(found)
        return found

    async def _direct(self, conversation_id: str, members: list[str], now: datetime) -> Conversation:
        found = await self.conversation(conversation_id)
        if found is not None:
            return found
        with suppress(DuplicateKeyError):  # created by a concurrent first message
            await self.collection.insert_one(
                conversation_doc(Conversation(conversation_id, "direct", members, created_at=now))
            )
        found = await self.conversation(conversation_id)
        assert found is not None
        return found

    async def of_user(self, user_id: str, kind: Kind | None = None) -> list[Conversation]:
        query: dict[str, Any] = {"members": user_id}
        if kind is not None:
            query["kind"] = kind
        return [conversation(doc) async for doc in self.collection.find(query).sort("_id", ASCENDING)]

    # --- end-to-end encryption (docs/security.md) -----------------------------------------------
    async def encrypt(self, conversation_id: str, at: datetime) -> tuple[Conversation | None, bool]:
        """Encrypted from `at` on, unless it already is (the first time stands): the conversation
        after (None: no such conversation, a group dissolved), and whether this call encrypted it."""
        result = await self.collection.update_one(
            {"_id": conversation_id, "encrypted_at": {"$exists": False}}, {"$set": {"encrypted_at": at}}
        )
        found = await self.conversation(conversation_id)
        if found is not None and found.kind == "direct":
            self._know_direct(found)
        return found, result.modified_count == 1

    async def learn_encrypted(self, since: datetime) -> int:
        """Direct conversations this process holds in memory that were encrypted from `since` on
        (by any replica) are held encrypted from now; how many it learnt. What it does not hold
        (groups are never held: each batch of sends reads them) it reads when needed, encryption
        and all."""
        learnt = 0
        async for doc in self.collection.find({"encrypted_at": {"$gte": since}}):
            known = self._known_direct.get(doc["_id"])
            if known is not None and known.encrypted_at is None:
                self._know_direct(conversation(doc))
                learnt += 1
        return learnt

    async def encrypted_peers(self, user_id: str) -> set[str]:
        """Everyone who shares an end-to-end encrypted conversation (direct or group) with the
        user, the user included when there is one: one read, of the members only."""
        cursor = self.collection.find({"members": user_id, "encrypted_at": {"$exists": True}}, projection={"members": 1})
        return {member async for doc in cursor for member in doc["members"]}

    # --- groups ----------------------------------------------------------------------------
    async def create_group(
        self, conversation_id: str, group_id: str, name: str, members: dict[str, Member], now: datetime
    ) -> Conversation:
        created = Conversation(
            conversation_id, "group", list(members), created_at=now, group_id=group_id, name=name, roster=members
        )
        await self.collection.insert_one(conversation_doc(created))
        return created

    async def group(self, group_id: str) -> Conversation | None:
        doc = await self.collection.find_one({"group_id": group_id})
        return conversation(doc) if doc else None

    async def add_members(self, conversation_id: str, members: dict[str, Member]) -> Conversation | None:
        """Add members who are not in yet; returns the updated conversation (None: it is gone)."""
        sets = {f"member_info.{uid}": member_doc(member) for uid, member in members.items()}
        doc = await update_then_read(
            self.collection, conversation_id, {"$addToSet": {"members": {"$each": list(members)}}, "$set": sets}
        )
        return conversation(doc) if doc else None

    async def remove_member(self, conversation_id: str, user_id: str) -> Conversation | None:
        """Remove one member; returns the updated conversation (None if they were not in it)."""
        doc = await update_then_read(
            self.collection, conversation_id, {"$pull": {"members": user_id}, "$unset": {f"member_info.{user_id}": ""}},
            where={"members": user_id},
        )
        return conversation(doc) if doc else None

    async def set_role(self, conversation_id: str, user_id: str, role: Role) -> bool:
        result = await self.collection.update_one(
            {"_id": conversation_id, "members": user_id}, {"$set": {f"member_info.{user_id}.role": role}}
        )
        return result.matched_count == 1

    async def delete_if_empty(self, conversation_id: str) -> bool:
        """An empty group is gone (unless someone joined meanwhile); its messages go next
        (MessageStore.delete_conversation)."""
        result = await self.collection.delete_one({"_id": conversation_id, "members": {"$size": 0}})
        return bool(result.deleted_count)

    # --- administration (docs/protocol.md "Group administration") -----------------------------
    async def update_group(self, conversation_id: str, changes: GroupChanges) -> Conversation | None:
        """Change a group's settings; the group as it is after (None: it is gone)."""
        sets: dict[str, Any] = {
            field: value
            for field, value in (
                ("name", changes.name),
                ("description", changes.description),
                ("avatar_url", changes.avatar_url),
                ("everyone_muted", changes.everyone_muted),
                ("approval_required", changes.approval_required),
            )
            if value is not None
        }
        if changes.clear_avatar:
            sets["avatar_url"] = None
        if not sets:
            return await self.conversation(conversation_id)
        doc = await update_then_read(self.collection, conversation_id, {"$set": sets}, where={"kind": "group"})
        return conversation(doc) if doc else None

    async def mute(self, conversation_id: str, user_id: str, until: datetime | None) -> bool:
        """Mute a member until a time (None: unmute); False when they are not a member. Mutes
        live in `mutes`, which leaving does not clear: at most one entry per user ever muted in
        the group (a mute again replaces it), so it stays small."""
        field = f"mutes.{user_id}"
        update = {"$set": {field: until}} if until is not None else {"$unset": {field: ""}}
        result = await self.collection.update_one({"_id": conversation_id, "members": user_id}, update)
        return result.matched_count == 1

    async def transfer_ownership(self, conversation_id: str, owner: str, heir: str) -> bool:
        """The owner becomes an admin and `heir` (a member) the owner, unmuted, in one update;
        False when `owner` no longer owns the group or `heir` is no longer in it."""
        result = await self.collection.update_one(
            {"_id": conversation_id, "members": heir, f"member_info.{owner}.role": "owner"},
            {
                "$set": {f"member_info.{owner}.role": "admin", f"member_info.{heir}.role": "owner"},
                "$unset": {f"mutes.{heir}": ""},
            },
        )
        return result.matched_count == 1

    async def dissolve(self, conversation_id: str) -> Conversation | None:
        """Delete a group's conversation; what it was (for telling its members), None if it was
        already gone. Its messages, invites and join requests go next, in their stores."""
        doc = await self.collection.find_one_and_delete({"_id": conversation_id, "kind": "group"})
        return conversation(doc) if doc else None
