"""Group commit of new messages: one insert and one `last_seq` update for every message that
arrived while the previous write was in flight.

Why: each send used to cost its own insert and update, and concurrent sends to one
conversation read the same `last_seq`, so all but one clashed on the unique
(conversation_id, seq) index and retried (4 senders in one conversation: 279 → 61 stored/s).
Here seqs are handed out in this process from a per-conversation hint, so senders served by
one replica never clash; the unique index still arbitrates between replicas.

`last_seq` is recorded lazily (issue 26): the highest seq stored per conversation waits in memory
and one bulk `$max` writes what moved every `flush_seconds` and at shutdown, instead of one per
conversation per batch. A batch that holds a disappearing message records it at once: expired
messages are deleted, and a `last_seq` lost with a crash must not let their seqs be taken again.
What reads it treats `last_seq` as a floor: sends number from this process's hints (the unique
index arbitrates, highest_seq catches up), acks and reads compare with known_top before a
catch-up read, history and sync read the window above it open (seqwindows.py,
messaging.sync_device). A kill -9 leaves `last_seq` behind until the conversation's next send.

Gap-free as before: the batch is inserted `ordered`, so what is stored is always a prefix of
it. After a failure at position i, nothing from i on was written; those messages take their
seqs again from the hints as they stood after the stored prefix.
"""
import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from pymongo import UpdateOne, WriteConcern
from pymongo.errors import BulkWriteError

from services.chat.domain.records import Conversation, Draft, Message
from services.chat.storage.coalesced import Coalesced
from services.chat.storage.documents import message_doc
from shared.stores import Collection, Document

DUPLICATE_KEY = 11000
MAX_BATCH = 256
MAX_HINTS = 100_000


class DuplicateClientMessage(Exception):
    """The sender already sent a message with this client_msg_id in this conversation; `existing` is it."""

    def __init__(self, existing: Message):
        super().__init__(existing.message_id)
        self.existing = existing


@dataclass
class Pending:
    conversation: Conversation
    draft: Draft
    done: asyncio.Future[Message]
    seq: int = 0
    doc: Document = field(default_factory=dict)


class GroupCommit:
    def __init__(
        self,
        messages: Collection,
        conversations: Collection,
        by_client_msg_id: Callable[[str, str, str], Awaitable[Message | None]],
        highest_seq: Callable[[str], Awaitable[int]],
        flush_seconds: float = 1.0,
    ):
        self.messages = messages
        # `last_seq` writes are not waited on to reach the journal (each journaled write costs a
        # flush: 26 ms against 16 ms for a batch's $max on the embedded server): the messages
        # are journaled, and a last_seq lost with a database crash is caught up from them
        # (MessageStore.catch_up_last_seq, highest_seq), as after a chat crash between the two.
        self.conversations = conversations.with_options(write_concern=WriteConcern(w=1, j=False))
        self.by_client_msg_id = by_client_msg_id
        self.highest_seq = highest_seq  # the highest seq stored or recorded for a conversation
        self._next_seq: dict[str, int] = {}
        self._queue: list[Pending] = []
        self._writer: asyncio.Task[None] | None = None
        self.flush_seconds = flush_seconds
        # conversation -> (seq, sent_at) of the newest stored, to record as last_seq / last_at
        self._tops: Coalesced[str, tuple[int, datetime]] = Coalesced(self._write_tops, flush_seconds, "last_seq")

    async def append(self, conversation: Conversation, draft: Draft) -> Message:
        """Store `draft` at the conversation's next seq; returns the stored message."""
        return await self._enqueue(conversation, draft)

    async def append_many(self, entries: list[tuple[Conversation, Draft]]) -> list[Message | BaseException]:
        """Queue every entry now, in order (so one sender's messages take ascending seqs), then
        wait for them all; each result is the stored message or what refused it."""
        waits = [self._enqueue(conversation, draft) for conversation, draft in entries]
        return list(await asyncio.gather(*waits, return_exceptions=True))

    def known_top(self, conversation_id: str) -> int:
        """The highest seq this process numbered in the conversation (0: none it knows of)."""
        return self._next_seq.get(conversation_id, 1) - 1

    def note_top(self, conversation_id: str, seq: int) -> None:
        """`seq` is stored (read from the database): number above it from now on."""
        if seq >= self._next_seq.get(conversation_id, 0):
            self._next_seq[conversation_id] = seq + 1

    def _enqueue(self, conversation: Conversation, draft: Draft) -> asyncio.Future[Message]:
        pending = Pending(conversation, draft, asyncio.get_running_loop().create_future())
        self._queue.append(pending)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_while_queued())
        return pending.done

    async def _write_while_queued(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            try:
                retry = await self._write(batch)
            except Exception as exc:
                # The database is away: whoever waits fails (and retries), the rest of the queue
                # too. What was stored stays a prefix of the queue, so a sender's later message
                # is never stored ahead of an earlier one that failed and will come again.
                failed, self._queue = [*batch, *self._queue], []
                for p in failed:
                    self._next_seq.pop(p.conversation.conversation_id, None)  # what was written is unknown
                    if not p.done.done():
                        p.done.set_exception(exc)
                continue
            self._queue[:0] = retry

    def _number(self, batch: list[Pending]) -> None:
        if len(self._next_seq) > MAX_HINTS:
            self._next_seq.clear()
        for p in batch:
            cid = p.conversation.conversation_id
            seq = max(self._next_seq.get(cid, 0), p.conversation.last_seq + 1)
            self._next_seq[cid] = seq + 1
            p.seq, p.doc = seq, message_doc(p.draft, cid, seq)

    async def _write(self, batch: list[Pending]) -> list[Pending]:
        """Insert the batch; settle what was stored or refused; return what must go again."""
        hints_before = dict(self._next_seq)
        self._number(batch)
        failed_at, error = len(batch), None
        try:
            await self.messages.insert_many([p.doc for p in batch], ordered=True)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors") or []
            if not errors or errors[0].get("code") != DUPLICATE_KEY:
                raise
            failed_at, error = errors[0]["index"], errors[0]
        stored = batch[:failed_at]
        await self._record_last_seq(stored)
        for p in stored:
            p.done.set_result(p.draft.stored_at(p.conversation.conversation_id, p.seq))
        if error is None:
            return []
        # Hints as they stand after the stored prefix: the rest takes its seqs again.
        self._next_seq = hints_before
        for p in stored:
            self._next_seq[p.conversation.conversation_id] = p.seq + 1
        failed, rest = batch[failed_at], batch[failed_at + 1:]
        if "client_msg_id" in (error.get("keyPattern") or {}):
            existing = await self.by_client_msg_id(
                failed.conversation.conversation_id, failed.draft.from_user_id, failed.draft.client_msg_id
            )
            if existing is not None:
                failed.done.set_exception(DuplicateClientMessage(existing))
                return rest
            return [failed, *rest]  # deleted meanwhile: try again
        # Another replica took this seq: start this conversation above everything stored.
        cid = failed.conversation.conversation_id
        self._next_seq[cid] = max(self._next_seq.get(cid, 0), await self.highest_seq(cid) + 1)
        return [failed, *rest]

    async def _record_last_seq(self, stored: list[Pending]) -> None:
        """`last_seq` only moves up: in memory now, written with the next flush; at once (one $max
        per conversation) for a batch with a disappearing message in it."""
        at_once = {p.conversation.conversation_id for p in stored if p.draft.expires_at is not None}
        latest: dict[str, tuple[int, datetime]] = {}
        for p in stored:
            latest[p.conversation.conversation_id] = (p.seq, p.draft.sent_at)
        if at_once:
            await self._write_tops({cid: latest[cid] for cid in at_once})
        await self._tops.add((cid, top) for cid, top in latest.items() if cid not in at_once)

    async def _write_tops(self, tops: dict[str, tuple[int, datetime]]) -> None:
        if tops:
            await self.conversations.bulk_write(
                [UpdateOne({"_id": cid}, {"$max": {"last_seq": seq, "last_at": at}}) for cid, (seq, at) in tops.items()],
                ordered=False,
            )

    async def record_now(self) -> None:
        """Write every `last_seq` that waits; on failure they wait again."""
        await self._tops.flush()

    async def close(self) -> None:
        await self._tops.close()
