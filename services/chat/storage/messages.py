"""The `conversations` and `messages` collections, and gap-free `seq` allocation.

A message takes the next seq and is inserted under a unique (conversation_id, seq) index: two
concurrent senders cannot take one seq, and a crash between allocating and storing leaves no
gap, because nothing is allocated until the insert succeeds (storage/appender.py batches the
inserts of concurrent sends). `last_seq` on the
conversation only moves up ($max) and is the base for the next seq even after old messages
expire and are deleted.
"""
from datetime import datetime, timezone
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.chat.storage.appender import GroupCommit
from services.chat.storage.seqwindows import windows

MAX_KNOWN_DIRECT = 100_000
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class MessageStore:
    def __init__(self, db: AsyncDatabase):
        self.conversations = db["conversations"]
        self.messages = db["messages"]
        self._known_direct: set[str] = set()
        self._group_commit = GroupCommit(self.messages, self.conversations, self.by_client_msg_id, self.highest_seq)

    async def ensure_indexes(self) -> None:
        await self.conversations.create_index([("members", ASCENDING)])
        await self.conversations.create_index([("group_id", ASCENDING)], unique=True, sparse=True)
        await self.messages.create_index([("conversation_id", ASCENDING), ("seq", ASCENDING)], unique=True)
        await self.messages.create_index([("from_user_id", ASCENDING), ("client_msg_id", ASCENDING)], unique=True)
        await self.messages.create_index([("file.file_id", ASCENDING)], sparse=True)
        # Disappearing messages: hidden by every read from expires_at, deleted by chat soon after
        # (delete_expired), not by a TTL index: see _drop_server_ttl.
        await self._drop_server_ttl()
        await self.messages.create_index([("expires_at", ASCENDING)], sparse=True)

    async def _drop_server_ttl(self) -> None:
        """Earlier versions let the server's TTL monitor delete expired messages. On the embedded
        MongoDB-wire server that monitor loads and matches the whole collection under the
        server's global lock once a minute: at 1,000,000 messages every command, ping
        included, waited 15-30 s of each 75 (a real mongod's monitor walks the index instead).
        Its index goes; the sparse one that replaces it holds only disappearing messages."""
        async for index in await self.messages.list_indexes():
            if dict(index["key"]) == {"expires_at": 1} and "expireAfterSeconds" in index:
                await self.messages.drop_index(index["name"])

    async def delete_expired(self, now: datetime) -> int:
        """Delete disappearing messages past their time; how many. The lower bound keeps the
        index walk to expired entries (an open `$lt` walks from the start of the index)."""
        result = await self.messages.delete_many({"expires_at": {"$gte": EPOCH, "$lt": now}})
        return result.deleted_count

    # --- conversations ---------------------------------------------------------------------
    async def conversation(self, conversation_id: str) -> dict[str, Any] | None:
        return await self.conversations.find_one({"_id": conversation_id})

    async def conversations_by_id(self, conversation_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Many conversations in one read (a batch of acks names several)."""
        if not conversation_ids:
            return {}
        return {doc["_id"]: doc async for doc in self.conversations.find({"_id": {"$in": conversation_ids}})}

    async def groups_by_id(self, group_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Many groups' conversations in one read (a batch of sends names several)."""
        if not group_ids:
            return {}
        return {doc["group_id"]: doc async for doc in self.conversations.find({"group_id": {"$in": group_ids}})}

    async def ensure_direct(self, conversation_id: str, members: list[str], now: datetime) -> dict[str, Any]:
        """The direct conversation, created on first use. Direct conversations are never deleted
        and their members never change, so once this process has seen one it skips the read
        (the seq comes from the group commit's hint; a stale one is caught by the unique index)."""
        if conversation_id in self._known_direct:
            return {"_id": conversation_id, "kind": "direct", "members": members}
        doc = await self._direct(conversation_id, members, now)
        if len(self._known_direct) >= MAX_KNOWN_DIRECT:
            self._known_direct.clear()
        self._known_direct.add(conversation_id)
        return doc

    async def _direct(self, conversation_id: str, members: list[str], now: datetime) -> dict[str, Any]:
        doc = await self.conversation(conversation_id)
        if doc is not None:
            return doc
        try:
            await self.conversations.insert_one(
                {"_id": conversation_id, "kind": "direct", "members": members, "last_seq": 0, "created_at": now}
            )
        except DuplicateKeyError:
            pass  # created by a concurrent first message
        doc = await self.conversation(conversation_id)
        assert doc is not None
        return doc

    async def conversations_of(self, user_id: str, kind: str | None = None) -> list[dict[str, Any]]:
        query: dict[str, Any] = {"members": user_id}
        if kind is not None:
            query["kind"] = kind
        return [doc async for doc in self.conversations.find(query).sort("_id", ASCENDING)]

    # --- groups: membership lives in the conversation document, so each change is atomic ---
    async def create_group(
        self, conversation_id: str, group_id: str, name: str, member_info: dict[str, dict[str, Any]], now: datetime
    ) -> None:
        await self.conversations.insert_one(
            {
                "_id": conversation_id,
                "kind": "group",
                "group_id": group_id,
                "name": name,
                "members": list(member_info),
                "member_info": member_info,
                "last_seq": 0,
                "created_at": now,
            }
        )

    async def group(self, group_id: str) -> dict[str, Any] | None:
        return await self.conversations.find_one({"group_id": group_id})

    async def add_group_members(self, conversation_id: str, member_info: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """Add members who are not in yet; returns the updated conversation."""
        sets = {f"member_info.{uid}": info for uid, info in member_info.items()}
        doc = await self.conversations.find_one_and_update(
            {"_id": conversation_id},
            {"$addToSet": {"members": {"$each": list(member_info)}}, "$set": sets},
            return_document=ReturnDocument.AFTER,
        )
        assert doc is not None
        return doc

    async def remove_group_member(self, conversation_id: str, user_id: str) -> dict[str, Any] | None:
        """Remove one member; returns the updated conversation (None if they were not in it)."""
        return await self.conversations.find_one_and_update(
            {"_id": conversation_id, "members": user_id},
            {"$pull": {"members": user_id}, "$unset": {f"member_info.{user_id}": ""}},
            return_document=ReturnDocument.AFTER,
        )

    async def set_group_role(self, conversation_id: str, user_id: str, role: str) -> bool:
        result = await self.conversations.update_one(
            {"_id": conversation_id, "members": user_id}, {"$set": {f"member_info.{user_id}.role": role}}
        )
        return result.matched_count == 1

    async def delete_if_empty(self, conversation_id: str) -> bool:
        """An empty group is gone, with its messages (unless someone joined meanwhile)."""
        result = await self.conversations.delete_one({"_id": conversation_id, "members": {"$size": 0}})
        if result.deleted_count:
            await self.messages.delete_many({"conversation_id": conversation_id})
        return bool(result.deleted_count)

    # --- messages --------------------------------------------------------------------------
    async def append(self, conversation: dict[str, Any], message: dict[str, Any]) -> dict[str, Any]:
        """Store `message` at the conversation's next seq; returns the stored document."""
        return await self._group_commit.append(conversation, message)

    async def append_many(self, entries: list[tuple[dict[str, Any], dict[str, Any]]]) -> list[dict[str, Any] | Exception]:
        """Store each (conversation, message) in this order, in as few writes as the group commit
        makes; returns each stored document, or the exception that refused it (a
        DuplicateClientMessage for a retry, or the database's error for all of them)."""
        return await self._group_commit.append_many(entries)

    async def by_client_msg_id(self, sender: str, client_msg_id: str) -> dict[str, Any] | None:
        return await self.messages.find_one({"from_user_id": sender, "client_msg_id": client_msg_id})

    async def catch_up_last_seq(self, conversation_id: str) -> int:
        """Raise `last_seq` to the highest seq stored (a crash between the two writes of a group
        commit leaves it behind); returns it."""
        recorded, latest = await self._recorded_and_stored_top(conversation_id)
        if latest is None:  # nothing stored above it (or all expired): last_seq stands
            return recorded
        conversation = await self.conversations.find_one_and_update(
            {"_id": conversation_id},
            {"$max": {"last_seq": latest["seq"], "last_at": latest["sent_at"]}},
            projection={"last_seq": 1},
            return_document=ReturnDocument.AFTER,
        )
        return conversation["last_seq"] if conversation else latest["seq"]

    async def highest_seq(self, conversation_id: str) -> int:
        """The highest seq stored or recorded for the conversation (even if since expired)."""
        recorded, latest = await self._recorded_and_stored_top(conversation_id)
        return max(latest["seq"] if latest else 0, recorded)

    async def _recorded_and_stored_top(self, conversation_id: str) -> tuple[int, dict[str, Any] | None]:
        """The conversation's recorded `last_seq`, and the highest message stored at or above it."""
        conversation = await self.conversation(conversation_id)
        recorded = conversation["last_seq"] if conversation else 0
        return recorded, await self._stored_from(conversation_id, recorded)

    async def _stored_from(self, conversation_id: str, seq: int) -> dict[str, Any] | None:
        """The highest message stored at or above `seq`: a short range just under the top,
        never the whole conversation sorted (seqwindows.py says why)."""
        cursor = self.messages.find(
            {"conversation_id": conversation_id, "seq": {"$gte": seq}}, projection={"seq": 1, "sent_at": 1}
        )
        docs = await cursor.to_list()
        return max(docs, key=lambda d: d["seq"]) if docs else None

    # Visibility (not recalled, not expired) is decided here in code, on the documents an index
    # range returns, not in the query: on the embedded MongoDB-wire server a `$ne`/`$or` beside
    # the (conversation_id, seq) range turned an index scan into a collection scan (7 ms ->
    # 240-350 ms at 10,000 messages). A real mongod filters fetched documents either way, so
    # results are the same; hidden messages are few, and the windows refill to `limit`.
    @staticmethod
    def is_visible(doc: dict[str, Any], now: datetime) -> bool:
        return not doc.get("recalled") and (doc.get("expires_at") is None or doc["expires_at"] > now)

    async def _visible_in_range(
        self, conversation_id: str, low: int, high: int | None, top: int, limit: int, now: datetime,
        newest_first: bool,
    ) -> list[dict[str, Any]]:
        """Up to `limit` visible messages with low < seq < high, in windows of seqs (seqwindows.py)."""
        found: list[dict[str, Any]] = []
        async for docs in windows(self.messages, conversation_id, low, high, top, limit, newest_first):
            found += [d for d in docs if self.is_visible(d, now)]
            if len(found) >= limit:
                break
        return found[:limit]

    async def page(
        self, conversation_id: str, before_seq: int | None, limit: int, now: datetime, top: int, floor: int = 0
    ) -> tuple[list[dict[str, Any]], bool]:
        """The newest `limit` visible messages above `floor` and below `before_seq`, ascending,
        and whether older ones (above `floor`) exist. `top`: the conversation's last_seq."""
        docs = await self._visible_in_range(conversation_id, floor, before_seq, top, limit + 1, now, newest_first=True)
        return list(reversed(docs[:limit])), len(docs) > limit

    async def above(
        self, conversation_id: str, after_seq: int, limit: int, now: datetime, top: int
    ) -> list[dict[str, Any]]:
        """Visible messages with seq > after_seq, ascending, at most `limit`."""
        return await self._visible_in_range(conversation_id, after_seq, None, top, limit, now, newest_first=False)

    async def latest(self, conversation_id: str, floor: int, now: datetime, top: int) -> dict[str, Any] | None:
        """The newest visible message above `floor`."""
        docs = await self._visible_in_range(conversation_id, floor, None, top, 1, now, newest_first=True)
        return docs[0] if docs else None

    async def count_unread(self, conversation_id: str, reader: str, floor: int, now: datetime, top: int) -> int:
        """Others' visible messages above `floor` (the reader's read marker): a read of what is
        unread, in windows, not of the conversation."""
        unread = 0
        projection = {"from_user_id": 1, "recalled": 1, "expires_at": 1, "seq": 1}
        async for docs in windows(self.messages, conversation_id, floor, None, top, 500, False, projection):
            unread += sum(1 for d in docs if d["from_user_id"] != reader and self.is_visible(d, now))
        return unread

    async def message(self, message_id: str) -> dict[str, Any] | None:
        return await self.messages.find_one({"_id": message_id})

    async def recall(self, message_id: str, now: datetime) -> None:
        """Mark recalled and drop the content: a recalled message keeps only its place (seq)."""
        await self.messages.update_one(
            {"_id": message_id}, {"$set": {"recalled": True, "recalled_at": now}, "$unset": {"text": "", "file": ""}}
        )

    async def carrying_file(self, file_id: str, now: datetime) -> list[dict[str, Any]]:
        """Visible messages that carry this file (conversation id and seq are enough)."""
        cursor = self.messages.find(
            {"file.file_id": file_id}, {"conversation_id": 1, "seq": 1, "recalled": 1, "expires_at": 1}
        )
        return [doc async for doc in cursor if self.is_visible(doc, now)]
