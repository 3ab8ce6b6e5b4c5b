"""The `messages` collection, and gap-free `seq` allocation (the conversation's `last_seq`).

A message takes the next seq and is inserted under a unique (conversation_id, seq) index: two
concurrent senders cannot take one seq, and a crash between allocating and storing leaves no
gap, because nothing is allocated until the insert succeeds (storage/appender.py batches the
inserts of concurrent sends). `last_seq` on the
conversation only moves up ($max) and is the base for the next seq even after old messages
expire and are deleted.
"""
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from pymongo import ASCENDING

from services.chat.domain.records import Appended, Conversation, Draft, Message, Placed, is_visible
from services.chat.storage.appender import DuplicateClientMessage, GroupCommit
from services.chat.storage.documents import message, reaction_key
from services.chat.storage.seqwindows import windows
from shared.stores import Database, Document, update_then_read

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# Messages changed after sending (edit, reaction, open, burn, recall set `changed_at`), indexed by
# conversation. Partial, not sparse: a sparse compound index holds every document that has either
# field (every message); this one holds only changed messages. The embedded server's planner
# skips partial indexes, so reads name it (hint); mongod allows that, the query implying the filter.
CHANGED: Document = {"changed_at": {"$exists": True}}
CHANGED_INDEX = "conversation_id_1_changed_at_1_changed"
# A sender's client_msg_id is unique within a conversation (the messages' shard key leads every
# unique index: shared/sharding.py); earlier versions made it unique across conversations, an
# index dropped at start-up (no message conflicts under the narrower one).
CLIENT_MSG_KEY = [("conversation_id", ASCENDING), ("from_user_id", ASCENDING), ("client_msg_id", ASCENDING)]
SENDER_WIDE_KEY = [("from_user_id", ASCENDING), ("client_msg_id", ASCENDING)]


def _visible(doc: Document, now: datetime, viewer: str | None = None) -> bool:
    """records.is_visible on a document (projected with VISIBILITY_FIELDS), and not deleted by
    `viewer` for themselves."""
    return is_visible(
        bool(doc.get("recalled")), doc.get("expires_at"), now, doc.get("burns_at"), bool(doc.get("burned"))
    ) and (viewer is None or viewer not in doc.get("hidden_for", ()))


# What _visible reads, for projected reads.
VISIBILITY_FIELDS = {"recalled": 1, "expires_at": 1, "burns_at": 1, "burned": 1, "hidden_for": 1}


class MessageStore:
    """Messages: storing them in seq order, reading them in pages, recalling and expiring them.
    The conversations' `last_seq` is written here too: it moves with the messages it counts."""

    def __init__(self, db: Database, flush_seconds: float = 1.0):
        self.conversations = db["conversations"]
        self.messages = db["messages"]
        self._group_commit = GroupCommit(
            self.messages, self.conversations, self.by_client_msg_id, self.highest_seq, flush_seconds
        )

    async def close(self) -> None:
        """Record the `last_seq`s still in memory (at shutdown)."""
        await self._group_commit.close()

    async def record_last_seqs(self) -> None:
        """Record now the `last_seq`s waiting in memory (what the next flush would do)."""
        await self._group_commit.record_now()

    async def ensure_indexes(self) -> None:
        await self.messages.create_index([("conversation_id", ASCENDING), ("seq", ASCENDING)], unique=True)
        # Idempotency: a client_msg_id is the sender's, per conversation (led by the shard key,
        # shared/sharding.py). Earlier versions had it per sender across conversations: that
        # index goes once the new one is there (never a moment without one, during a rollout).
        await self.messages.create_index(CLIENT_MSG_KEY, unique=True)
        await self._drop_index_by_key(SENDER_WIDE_KEY)
        await self.messages.create_index([("file.file_id", ASCENDING)], sparse=True)
        # Disappearing messages: hidden by every read from expires_at, deleted by chat soon after
        # (delete_expired), not by a TTL index: see _drop_server_ttl.
        await self._drop_server_ttl()
        await self.messages.create_index([("expires_at", ASCENDING)], sparse=True)
        # Burn after reading: what is due (burns_at is unset once burned).
        await self.messages.create_index([("burns_at", ASCENDING)], sparse=True)
        # What changed in a conversation since a device's last sync (changed_since).
        await self.messages.create_index(
            [("conversation_id", ASCENDING), ("changed_at", ASCENDING)], name=CHANGED_INDEX, partialFilterExpression=CHANGED
        )

    async def _drop_index_by_key(self, key: list[tuple[str, int]]) -> None:
        async for index in await self.messages.list_indexes():
            if list(index["key"].items()) == key:
                await self.messages.drop_index(index["name"])

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

    # --- messages --------------------------------------------------------------------------
    async def append(self, conversation: Conversation, draft: Draft) -> Message:
        """Store `draft` at the conversation's next seq; returns the stored message (raises
        DuplicateClientMessage for a retry)."""
        return await self._group_commit.append(conversation, draft)

    async def append_many(self, entries: list[tuple[Conversation, Draft]]) -> list[Appended]:
        """Store each (conversation, draft) in this order, in as few writes as the group commit
        makes. A draft whose client_msg_id its sender used before gives the earlier message;
        a database error raises out of the whole batch."""
        results = await self._group_commit.append_many(entries)
        appended: list[Appended] = []
        for result in results:
            if isinstance(result, DuplicateClientMessage):  # a retry, or the same send racing itself
                appended.append(Appended(result.existing, first=False))
            elif isinstance(result, BaseException):
                raise result
            else:
                appended.append(Appended(result, first=True))
        return appended

    def known_top(self, conversation_id: str) -> int:
        """The highest seq this process knows is stored or being stored in the conversation,
        without a read (0: it knows none): above a `last_seq` read earlier."""
        return self._group_commit.known_top(conversation_id)

    def note_top(self, conversation_id: str, seq: int) -> None:
        self._group_commit.note_top(conversation_id, seq)

    async def by_client_msg_id(self, conversation_id: str, sender: str, client_msg_id: str) -> Message | None:
        """The sender's message of that client_msg_id in the conversation (a retry's first send)."""
        doc = await self.messages.find_one(
            {"conversation_id": conversation_id, "from_user_id": sender, "client_msg_id": client_msg_id}
        )
        return message(doc) if doc else None

    async def catch_up_last_seq(self, conversation_id: str) -> int:
        """Raise `last_seq` to the highest seq stored (a crash between the two writes of a group
        commit leaves it behind); returns it."""
        recorded, latest = await self._recorded_and_stored_top(conversation_id)
        if latest is None:  # nothing stored above it (or all expired): last_seq stands
            return recorded
        conversation = await update_then_read(
            self.conversations, conversation_id, {"$max": {"last_seq": latest["seq"], "last_at": latest["sent_at"]}},
            projection={"last_seq": 1},
        )
        return int(conversation["last_seq"] if conversation else latest["seq"])

    async def highest_seq(self, conversation_id: str) -> int:
        """The highest seq stored or recorded for the conversation (even if since expired)."""
        recorded, latest = await self._recorded_and_stored_top(conversation_id)
        return max(latest["seq"] if latest else 0, recorded)

    async def _recorded_and_stored_top(self, conversation_id: str) -> tuple[int, Document | None]:
        """The conversation's recorded `last_seq`, and the highest message stored at or above it."""
        conversation = await self.conversations.find_one({"_id": conversation_id}, projection={"last_seq": 1})
        recorded: int = conversation.get("last_seq", 0) if conversation else 0
        return recorded, await self._stored_from(conversation_id, recorded)

    async def _stored_from(self, conversation_id: str, seq: int) -> Document | None:
        """The highest message stored at or above `seq`: a short range just under the top,
        never the whole conversation sorted (seqwindows.py says why)."""
        cursor = self.messages.find(
            {"conversation_id": conversation_id, "seq": {"$gte": seq}}, projection={"seq": 1, "sent_at": 1}
        )
        docs = await cursor.to_list()
        return max(docs, key=lambda d: d["seq"]) if docs else None

    # Visibility (records.is_visible) is decided here in code, on the documents an index range
    # returns, not in the query: on the embedded MongoDB-wire server a `$ne`/`$or` beside the
    # (conversation_id, seq) range turned an index scan into a collection scan (7 ms ->
    # 240-350 ms at 10,000 messages). A real mongod filters fetched documents either way, so
    # results are the same; hidden messages are few, and the windows refill to `limit`.
    async def _visible_in_range(
        self, conversation_id: str, low: int, high: int | None, top: int, limit: int, now: datetime,
        newest_first: bool, viewer: str | None,
    ) -> list[Message]:
        """Up to `limit` messages visible (to `viewer`) with low < seq < high, in windows of seqs
        (seqwindows.py)."""
        found: list[Message] = []
        async for docs in windows(self.messages, conversation_id, low, high, top, limit, newest_first):
            found += [message(d) for d in docs if _visible(d, now, viewer)]
            if len(found) >= limit:
                break
        return found[:limit]

    async def page(
        self, conversation_id: str, before_seq: int | None, limit: int, now: datetime, top: int, floor: int = 0,
        *, viewer: str | None = None,
    ) -> tuple[list[Message], bool]:
        """The newest `limit` visible messages above `floor` and below `before_seq`, ascending,
        and whether older ones (above `floor`) exist. `top`: the conversation's last_seq."""
        docs = await self._visible_in_range(
            conversation_id, floor, before_seq, top, limit + 1, now, newest_first=True, viewer=viewer
        )
        return list(reversed(docs[:limit])), len(docs) > limit

    async def above(
        self, conversation_id: str, after_seq: int, limit: int, now: datetime, top: int, *, viewer: str | None = None
    ) -> list[Message]:
        """Visible messages with seq > after_seq, ascending, at most `limit`."""
        return await self._visible_in_range(
            conversation_id, after_seq, None, top, limit, now, newest_first=False, viewer=viewer
        )

    async def latest(
        self, conversation_id: str, floor: int, now: datetime, top: int, *, viewer: str | None = None
    ) -> Message | None:
        """The newest visible message above `floor`."""
        docs = await self._visible_in_range(conversation_id, floor, None, top, 1, now, newest_first=True, viewer=viewer)
        return docs[0] if docs else None

    async def count_unread(self, conversation_id: str, reader: str, floor: int, now: datetime, top: int) -> int:
        """Others' visible messages above `floor` (the reader's read marker)."""
        unread, _ = await self.unread_counts(conversation_id, reader, floor, now, top)
        return unread

    async def unread_counts(
        self, conversation_id: str, reader: str, floor: int, now: datetime, top: int
    ) -> tuple[int, int]:
        """Others' visible messages above `floor` (the reader's read marker), and how many of them
        mention the reader: one read of what is unread, in windows, not of the conversation."""
        unread = mentioned = 0
        projection = {"from_user_id": 1, "seq": 1, "mentions": 1, **VISIBILITY_FIELDS}
        async for docs in windows(self.messages, conversation_id, floor, None, top, 500, False, projection):
            for d in docs:
                if d["from_user_id"] != reader and _visible(d, now, reader):
                    unread += 1
                    mentioned += reader in d.get("mentions", ())
        return unread, mentioned

    async def message(self, message_id: str) -> Message | None:
        doc = await self.messages.find_one({"_id": message_id})
        return message(doc) if doc else None

    async def messages_by_id(self, message_ids: list[str]) -> dict[str, Message]:
        if not message_ids:
            return {}
        return {doc["_id"]: message(doc) async for doc in self.messages.find({"_id": {"$in": message_ids}})}

    async def recall(self, message_id: str, now: datetime) -> None:
        """Mark recalled and drop the content: a recalled message keeps only its place (seq)."""
        await self.messages.update_one(
            {"_id": message_id},
            {
                "$set": {"recalled": True, "recalled_at": now, "changed_at": now},
                "$unset": {"text": "", "file": "", "sticker": "", "voice": "", "encrypted": ""},
            },
        )

    # --- changes after sending (edit, reactions, burn after reading, delete for me) -------------
    # Each sets `changed_at`: what a device's next sync catches up on (messaging.sync_device).
    # Each is an update_one by _id and a read after it (shared.stores.update_then_read says why
    # not find_one_and_update, and what the reply may show of writes landing in between).
    async def edit(
        self, message_id: str, now: datetime, *, text: str | None = None, encrypted: Mapping[str, Any] | None = None
    ) -> Message | None:
        """The message with the new text (or, end-to-end encrypted, the new envelope); None when
        it was recalled or burned before the edit (nothing changed), or right after it (then its
        content is gone: not to be told anyone)."""
        content: Document = {"text": text} if encrypted is None else {"encrypted": dict(encrypted)}
        doc = await update_then_read(
            self.messages, message_id, {"$set": {**content, "edited_at": now, "changed_at": now}},
            where={"recalled": {"$ne": True}, "burned": {"$ne": True}},
        )
        if doc is None or doc.get("recalled") or doc.get("burned"):
            return None
        return message(doc)

    async def react(self, message_id: str, emoji: str, user_id: str, add: bool, now: datetime) -> Message | None:
        """Add or take back one user's emoji; the message as it is after (None: it is gone)."""
        key = f"reactions.{reaction_key(emoji)}"
        change: Document = {"$addToSet": {key: user_id}} if add else {"$pull": {key: user_id}}
        change["$set"] = {"changed_at": now}
        doc = await update_then_read(self.messages, message_id, change)  # with others' reactions since, if any
        if doc is not None and not add and not (doc.get("reactions") or {}).get(reaction_key(emoji), True):
            # The last one took it back: drop the emptied emoji (it counts toward the cap).
            await self.messages.update_one({"_id": message_id, key: {"$size": 0}}, {"$unset": {key: ""}})
        return message(doc) if doc else None

    async def open_sealed(self, message_id: str, now: datetime) -> Message | None:
        """The recipient opens a burn-after-reading message: its timer starts now (once; opening
        again changes nothing). None if it is gone."""
        doc = await self.messages.find_one({"_id": message_id})
        if doc is None or doc.get("burned") or "burn" not in doc:
            return None
        if doc["burn"].get("opened_at") is None:
            burns_at = min(doc["burns_at"], now + timedelta(seconds=doc["burn"]["seconds"]))
            # Only the first opening sets the timer; any opener reads what the first one set.
            await self.messages.update_one(
                {"_id": message_id, "burn.opened_at": {"$exists": False}},
                {"$set": {"burn.opened_at": now, "burns_at": burns_at, "changed_at": now}},
            )
            doc = await self.messages.find_one({"_id": message_id})
        return message(doc) if doc else None

    async def due_to_burn(self, now: datetime, limit: int = 500) -> list[Message]:
        """Burn-after-reading messages past their time, not yet burned."""
        cursor = self.messages.find({"burns_at": {"$gte": EPOCH, "$lte": now}}).limit(limit)
        return [message(d) async for d in cursor if not d.get("burned")]

    async def burn(self, message_id: str, now: datetime) -> bool:
        """Destroy the content (text, file, quote, reactions) for good; the seq stays, marked
        burned. False if it was already burned."""
        result = await self.messages.update_one(
            {"_id": message_id, "burned": {"$ne": True}},
            {
                "$set": {"burned": True, "burned_at": now, "changed_at": now},
                "$unset": {"text": "", "file": "", "sticker": "", "voice": "", "encrypted": "", "reply_to": "", "reactions": "", "mentions": "", "burns_at": ""},
            },
        )
        return result.modified_count == 1

    async def hide(self, message_id: str, user_id: str) -> None:
        """Delete for me: this user's reads skip it from now on."""
        await self.messages.update_one({"_id": message_id}, {"$addToSet": {"hidden_for": user_id}})

    async def carrying_file(self, file_id: str, now: datetime) -> list[Placed]:
        """Where the visible messages that carry this file sit."""
        cursor = self.messages.find(
            {"file.file_id": file_id}, {"conversation_id": 1, "seq": 1, **VISIBILITY_FIELDS}
        )
        return [Placed(doc["conversation_id"], doc["seq"]) async for doc in cursor if _visible(doc, now)]

    async def delete_conversation(self, conversation_id: str) -> None:
        """Every message of a conversation that is gone (an empty group)."""
        await self.messages.delete_many({"conversation_id": conversation_id})

    # --- catching up on changes (messaging.sync_device) ------------------------------------
    async def changed_since(self, conversation_id: str, since: datetime, up_to_seq: int) -> list[Message]:
        """Messages at or below `up_to_seq` whose `changed_at` is after `since`, ascending by seq,
        whatever they are now (recalled, burned, hidden: the caller decides what each is to whom).
        An index range of changed messages (the seq bound is applied here, on few documents)."""
        cursor = self.messages.find({"conversation_id": conversation_id, "changed_at": {"$gt": since}}).hint(CHANGED_INDEX)
        found = [message(d) for d in await cursor.to_list() if d["seq"] <= up_to_seq]
        return sorted(found, key=lambda m: m.seq)
