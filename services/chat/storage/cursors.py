"""The `devices`, `cursors` and `read_markers` collections: what each (user, device) has
acknowledged, how far each user has received (delivered markers) and read each conversation,
and when each device last finished a sync.

devices: `{_id: user|device, user_id, device_id, first_seen, synced_at?}`
cursors: `{_id: user|device|conversation, user_id, device_id, conversation_id, seq}`. A user's
  delivered marker in a conversation (the highest seq any of their devices acknowledged) is read
  from their devices' cursors; earlier versions wrote it as `{_id: @delivered|conversation|user,
  seq}`, still read (both only move up, so the higher counts).
read_markers: `{_id: user|conversation, user_id, conversation_id, seq}`
"""
import asyncio
from collections.abc import Iterable, Mapping, Sequence
from contextlib import suppress
from datetime import datetime

from pymongo import ASCENDING, UpdateOne, WriteConcern
from pymongo.asynchronous.cursor import AsyncCursor
from pymongo.errors import DuplicateKeyError, OperationFailure

from services.chat.domain.records import Cursor
from services.chat.storage.coalesced import CoalescedPositions, DeviceKey
from shared.stores import Database, Document

AFTER_BAR = chr(ord("|") + 1)  # the first character above "|": the end of a `...|` prefix range
# The _id prefix of delivered markers in the cursors collection. No user id starts with "@"
# (ids are `u_...`), so no device cursor's `user|` prefix range reaches them.
DELIVERED = "@delivered|"


class CursorStore:
    """Cursors move in memory and reach the database about once every `flush_seconds`
    (storage/coalesced.py says what a crash costs); reads see both."""

    def __init__(self, db: Database, flush_seconds: float = 1.0):
        self.devices = db["devices"]
        # Cursor moves are not waited on to reach the journal (a flush per write): one lost
        # with a database crash only means a device is sent again what it already holds,
        # which it drops by seq (delivery is at least once).
        self.cursors = db["cursors"].with_options(write_concern=WriteConcern(w=1, j=False))
        self.read_markers = db["read_markers"]
        self.pending = CoalescedPositions(self._write_positions, flush_seconds)

    async def close(self) -> None:
        """Write the positions still waiting (at shutdown)."""
        await self.pending.close()

    async def ensure_indexes(self) -> None:
        await self.devices.create_index([("user_id", ASCENDING)])
        # Cursors are found by their _id's prefix (`user|device|`), not a second index: every
        # ack writes a cursor, and each index a write maintains costs it on the embedded server.
        with suppress(OperationFailure):  # made by earlier versions; gone already is fine
            await self.cursors.drop_index("user_id_1_device_id_1")
        await self.read_markers.create_index([("user_id", ASCENDING)])
        # A conversation's members' markers (read_by): read markers move once per message.read,
        # not per ack, so this index costs no hot path.
        await self.read_markers.create_index([("conversation_id", ASCENDING)])

    async def register_device(self, user_id: str, device_id: str, now: datetime) -> bool:
        """True the first time this device of this user is seen."""
        try:
            await self.devices.insert_one(
                {"_id": f"{user_id}|{device_id}", "user_id": user_id, "device_id": device_id, "first_seen": now}
            )
        except DuplicateKeyError:
            return False
        return True

    async def begin_sync(self, user_id: str, device_id: str, now: datetime) -> tuple[bool, datetime | None]:
        """Register the device (one read; one write the first time): whether it is seen for the first
        time, and when it last finished a sync (a device that never recorded one: when it was
        first seen; None for a new device)."""
        key = {"_id": f"{user_id}|{device_id}"}
        # A read, then an insert only for a new device: not find_one_and_update, which the embedded
        # server answers with a scan of the collection (shared/stores.update_then_read says why).
        before = await self.devices.find_one(key)
        if before is None and await self.register_device(user_id, device_id, now):
            return True, None
        if before is None:  # a second bind of a new device raced this one's insert
            before = await self.devices.find_one(key)
        if before is None:
            return True, None
        synced_at: datetime | None = before.get("synced_at") or before.get("first_seen")
        return False, synced_at

    async def finish_sync(self, user_id: str, device_id: str, started_at: datetime) -> None:
        """The device's sync that started at `started_at` completed (never moves back)."""
        await self.devices.update_one({"_id": f"{user_id}|{device_id}"}, {"$max": {"synced_at": started_at}})

    def _with_prefix(self, *parts: str) -> AsyncCursor[Document]:
        """Cursors whose _id starts with `part|...|`: a range of the _id index. ("|" may occur in
        a device id, so callers also check the fields.)"""
        prefix = "|".join(parts) + "|"
        return self.cursors.find({"_id": {"$gte": prefix, "$lt": prefix[:-1] + AFTER_BAR}})

    async def of_device(
        self, user_id: str, device_id: str, conversation_ids: Sequence[str] | None = None
    ) -> dict[str, int]:
        """conversation_id → highest acknowledged seq of this device (in these conversations: read
        by _id, point reads; the embedded server scans the whole collection for an _id range)."""
        if conversation_ids is not None:
            if not conversation_ids:
                return {}
            ids = [f"{user_id}|{device_id}|{cid}" for cid in conversation_ids]
            found = {doc["conversation_id"]: doc["seq"] async for doc in self.cursors.find({"_id": {"$in": ids}})}
            wanted = set(conversation_ids)
            newer = self.pending.newer_cursors(found, user_id, device_id)
            return {cid: seq for cid, seq in newer.items() if cid in wanted}
        found = {
            doc["conversation_id"]: doc["seq"]
            async for doc in self._with_prefix(user_id, device_id)
            if doc["user_id"] == user_id and doc["device_id"] == device_id
        }
        return self.pending.newer_cursors(found, user_id, device_id)

    async def highest_of_user(self, user_id: str, conversation_ids: Sequence[str]) -> dict[str, int]:
        """conversation_id → highest seq any of the user's devices has acknowledged there: the
        user's devices (by the user_id index), then their cursors by _id point reads (an _id
        prefix range is a scan of the whole collection on the embedded server: 1.9 s at 100,000
        cursors, for every new device's first bind)."""
        if not conversation_ids:
            return {}
        devices = [d["device_id"] async for d in self.devices.find({"user_id": user_id}, {"device_id": 1})]
        ids = [f"{user_id}|{device}|{cid}" for device in devices for cid in conversation_ids]
        best = self.pending.pending_of_user(user_id, conversation_ids)
        if ids:
            async for doc in self.cursors.find({"_id": {"$in": ids}}):
                best[doc["conversation_id"]] = max(best.get(doc["conversation_id"], 0), doc["seq"])
        return best

    async def advance(self, user_id: str, device_id: str, positions: dict[str, int]) -> None:
        """Move cursors forward (never back) to the given seqs."""
        await self.advance_many(Cursor(user_id, device_id, cid, seq) for cid, seq in positions.items())

    async def advance_many(
        self, cursors: Iterable[Cursor], delivered: Mapping[tuple[str, str], int] | None = None
    ) -> None:
        """Move many devices' cursors, and users' delivered markers ((user_id, conversation_id) →
        seq), forward: in memory now, in the database with the next flush."""
        await self.pending.advance(cursors, delivered or {})

    async def _write_positions(self, cursors: dict[DeviceKey, int]) -> None:
        """One bulk `$max` of the cursors that waited (never moves one back)."""
        updates = [
            UpdateOne(
                {"_id": f"{user_id}|{device_id}|{conversation_id}"},
                {
                    "$max": {"seq": seq},
                    "$setOnInsert": {"user_id": user_id, "device_id": device_id, "conversation_id": conversation_id},
                },
                upsert=True,
            )
            for (user_id, device_id, conversation_id), seq in cursors.items()
        ]
        if updates:
            await self.cursors.bulk_write(updates, ordered=False)

    async def delivered_of(self, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """(user_id, conversation_id) → the user's delivered marker there, for the pairs that have
        one: those this process knows from memory, the others read (_delivered_in_store)."""
        pairs, known = list(pairs), self.pending.known_delivered
        found = {pair: known[pair] for pair in pairs if pair in known}
        read = await self._delivered_in_store([pair for pair in pairs if pair not in found])
        for pair, seq in read.items():
            self.pending.remember(pair, seq)
        return found | read

    async def _delivered_in_store(self, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """The highest cursor of each user's devices in each conversation (and an earlier
        version's written marker), as stored: the users' devices (user_id index), then one read
        of point lookups on _id."""
        if not pairs:
            return {}
        devices: dict[str, list[str]] = {}
        async for d in self.devices.find({"user_id": {"$in": list({u for u, _ in pairs})}}, {"user_id": 1, "device_id": 1}):
            devices.setdefault(d["user_id"], []).append(d["device_id"])
        ids = {_delivered_id(cid, user_id): (user_id, cid) for user_id, cid in pairs}
        ids.update({f"{user_id}|{device}|{cid}": (user_id, cid) for user_id, cid in pairs for device in devices.get(user_id, ())})
        found: dict[tuple[str, str], int] = {}
        async for doc in self.cursors.find({"_id": {"$in": list(ids)}}, {"seq": 1}):
            pair = ids[doc["_id"]]
            found[pair] = max(found.get(pair, 0), doc["seq"])
        return found

    async def positions(self, conversation_id: str, user_ids: Sequence[str]) -> tuple[dict[str, int], dict[str, int]]:
        """These users' read markers and delivered markers in the conversation: user_id → seq, for
        each that has one. Delivered markers are their devices' cursors, point reads by _id: on
        the embedded server a range of _id is a collection scan (a range of a secondary index is
        not)."""
        if not user_ids:
            return {}, {}
        wanted = set(user_ids)
        read_docs, stored = await asyncio.gather(
            self.read_markers.find({"conversation_id": conversation_id}).to_list(),
            self._delivered_in_store([(u, conversation_id) for u in wanted]),
        )
        read = {d["user_id"]: d["seq"] for d in read_docs if d["user_id"] in wanted}
        delivered = {user_id: seq for (user_id, _), seq in stored.items()}
        for user_id in wanted:  # newer than written, where this process knows it
            seq = self.pending.known_delivered.get((user_id, conversation_id), 0)
            if seq > delivered.get(user_id, 0):
                delivered[user_id] = seq
        return read, delivered

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


def _delivered_id(conversation_id: str, user_id: str) -> str:
    return f"{DELIVERED}{conversation_id}|{user_id}"
