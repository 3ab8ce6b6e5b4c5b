"""--prefill N: a database that already holds N messages, written straight into MongoDB.

Why not through the API: issue 12 is about a stack that *holds* a lot (the embedded server
slowed down as data grew), not about how fast it fills; through the gateway a million messages
would take hours. So the documents are inserted with insert_many, in batches, shaped exactly as
the services store them (services/chat/storage/messages.py, appender.py, cursors.py,
friendships.py; services/auth/storage/users.py), so that every index and every query the stack
runs sees what a long-used stack would hold:

- `users`: prefill-only users (they cannot log in: their password hash is not a hash);
- `friendships`: accepted, one per direct conversation;
- `conversations`: direct, `_id` d_<sha256 of the sorted pair>, last_seq / created_at / last_at;
- `messages`: PER_CONVERSATION per conversation, seq 1..n, `_id` m_<ms><random> as new_id
  makes, client_msg_id, to, text, sent_at spread over the last 30 days;
- `devices` (one "phone" per user), `cursors` (most acknowledged to the end, some behind) and
  `read_markers`, as devices that synced and read leave them.

The stack must be up first, so that chat and auth created their indexes (we wait for them):
inserting first and indexing after would measure a different store. A --store DIR remembers how
much it was filled (DIR/prefill.json); asking for more tops it up with new users and
conversations, asking for as much or less fills nothing.
"""
import asyncio
import hashlib
import json
import os
import random
import secrets
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from collections.abc import Callable
from typing import Any

from pymongo import AsyncMongoClient

PER_CONVERSATION = 100  # messages per prefilled conversation
CONVERSATIONS_PER_USER = 8  # on average
BATCH = int(os.environ.get("PARLEY_BENCH_PREFILL_BATCH", "5000"))  # documents per insert_many
SPREAD = timedelta(days=30)
MARKER = "prefill.json"


def direct_conversation_id(a: str, b: str) -> str:
    """As services/chat/domain/sending.py names direct conversations (copied, not imported:
    the bench must not break when chat's modules move)."""
    return "d_" + hashlib.sha256("|".join(sorted((a, b))).encode()).hexdigest()[:24]


def doc_id(kind: str, at: datetime) -> str:
    """As shared/ids.new_id, but for a moment in the past."""
    return f"{kind}_{int(at.timestamp() * 1000):012x}{secrets.token_hex(6)}"


def read_marker(store: Path | None) -> dict[str, Any]:
    if store is None or not (store / MARKER).exists():
        return {"prefilled": 0, "rounds": []}
    return json.loads((store / MARKER).read_text())


def write_marker(store: Path, marker: dict[str, Any]) -> None:
    (store / MARKER).write_text(json.dumps(marker, indent=2))


async def wait_for_indexes(db: Any, timeout: float = 90) -> None:
    """Until chat's message indexes exist (it makes them at start-up)."""
    deadline = time.monotonic() + timeout
    while True:
        info = await db["messages"].index_information()
        keys = {tuple(k for k, _ in v["key"]) for v in info.values()}
        if ("conversation_id", "seq") in keys and ("conversation_id", "from_user_id", "client_msg_id") in keys:
            return
        if time.monotonic() > deadline:
            raise RuntimeError("chat did not create its message indexes; is the stack up?")
        await asyncio.sleep(0.5)


async def stored_counts(mongo_url: str, mongo_db: str) -> dict[str, int]:
    client: AsyncMongoClient = AsyncMongoClient(mongo_url)
    try:
        db = client[mongo_db]
        return {name: await db[name].estimated_document_count() for name in ("messages", "conversations", "users")}
    finally:
        await client.close()


class Filler:
    """Inserts in batches, one insert_many in flight while the next batch is built."""

    def __init__(self, db: Any, total: int, on_progress: Callable[[int], None] = lambda n: None):
        self.db, self.total, self.on_progress = db, total, on_progress
        self.buffers: dict[str, list[dict[str, Any]]] = {}
        self.pending: asyncio.Task[None] | None = None
        self.messages = 0
        self.t0 = time.perf_counter()
        self.last_print = 0.0

    async def add(self, collection: str, doc: dict[str, Any]) -> None:
        buf = self.buffers.setdefault(collection, [])
        buf.append(doc)
        if len(buf) >= BATCH:
            await self.flush(collection)

    async def flush(self, collection: str) -> None:
        docs = self.buffers.pop(collection, [])
        if not docs:
            return
        if self.pending is not None:
            await self.pending
            self.on_progress(self.messages)  # every message batch before the one now going is in
        self.pending = asyncio.create_task(self.db[collection].insert_many(docs, ordered=False))
        if collection == "messages":
            self.messages += len(docs)
            now = time.perf_counter()
            if now - self.last_print >= 2 or self.messages >= self.total:
                self.last_print = now
                rate = self.messages / max(now - self.t0, 1e-9)
                print(f"[prefill ] {now - self.t0:6.1f} s  {self.messages:>10,} / {self.total:,} messages  "
                      f"{rate:,.0f}/s", flush=True)

    async def finish(self) -> None:
        for collection in list(self.buffers):
            await self.flush(collection)
        if self.pending is not None:
            await self.pending
        self.on_progress(self.messages)


async def fill(db: Any, count: int, round_no: int, seed: int,
               on_progress: Callable[[int], None] = lambda n: None) -> dict[str, Any]:
    """`count` more messages in new conversations among new users."""
    rng = random.Random(seed)
    conversations = max(1, -(-count // PER_CONVERSATION))
    n_users = conversations * 2 // CONVERSATIONS_PER_USER + 8  # enough distinct pairs however few
    now = datetime.now(timezone.utc)
    users = [doc_id("u", now - SPREAD - timedelta(seconds=i)) for i in range(n_users)]
    filler = Filler(db, count, on_progress)
    for i, uid in enumerate(users):
        name = f"pf{round_no}_{i}_{uid[-6:]}"
        await filler.add("users", {"_id": uid, "username": name, "display_name": name, "display_name_folded": name,
                                   "password_hash": "prefill-only: no login", "created_at": now - SPREAD})
        await filler.add("devices", {"_id": f"{uid}|phone", "user_id": uid, "device_id": "phone",
                                     "first_seen": now - SPREAD})
    pairs: set[tuple[str, str]] = set()
    while len(pairs) < conversations:
        a, b = rng.sample(users, 2)
        pairs.add((min(a, b), max(a, b)))
    left = count
    for a, b in sorted(pairs):
        n = min(PER_CONVERSATION, left)
        left -= n
        cid = direct_conversation_id(a, b)
        start = now - SPREAD * rng.random()
        step = (now - start) / (n + 1)
        await filler.add("friendships", {"_id": f"{a}|{b}", "users": [a, b], "requester": a, "status": "accepted",
                                         "created_at": start - timedelta(minutes=1), "accepted_at": start})
        sent_at = start
        for seq in range(1, n + 1):
            sent_at = start + step * seq
            sender, recipient = (a, b) if rng.random() < 0.5 else (b, a)
            # Field order as chat's send_messages builds the document and the group commit numbers it.
            await filler.add("messages", {
                "_id": doc_id("m", sent_at), "from_user_id": sender, "client_msg_id": secrets.token_hex(8),
                "to": {"user_id": recipient}, "sent_at": sent_at,
                "text": f"prefill {seq} " + "x" * rng.randint(10, 150),
                "conversation_id": cid, "seq": seq})
        await filler.add("conversations", {"_id": cid, "kind": "direct", "members": [a, b], "last_seq": n,
                                           "created_at": start, "last_at": sent_at})
        for uid in (a, b):  # most devices are caught up; one in five is behind by a few
            seen = n if rng.random() < 0.8 else max(0, n - rng.randint(1, 20))
            if seen:
                await filler.add("cursors", {"_id": f"{uid}|phone|{cid}", "seq": seen, "user_id": uid,
                                             "device_id": "phone", "conversation_id": cid})
                await filler.add("read_markers", {"_id": f"{uid}|{cid}", "seq": seen, "user_id": uid,
                                                  "conversation_id": cid})
        if left <= 0:
            break
    await filler.finish()
    seconds = time.perf_counter() - filler.t0
    return {"messages": count, "conversations": conversations, "users": n_users, "seconds": round(seconds, 1),
            "messages_per_second": round(count / max(seconds, 1e-9))}


async def prefill(mongo_url: str, mongo_db: str, target: int, store: Path | None = None) -> dict[str, Any]:
    """Make the database hold at least `target` prefilled messages; what was done and how long."""
    marker = read_marker(store)
    have = marker["prefilled"]
    # No retryable writes: the embedded server keeps a record of each (the decay issue 12 is
    # about), and a batch that fails here is simply reported.
    client: AsyncMongoClient = AsyncMongoClient(mongo_url, retryWrites=False)
    try:
        db = client[mongo_db]
        await wait_for_indexes(db)
        if have >= target:
            if target:
                    print(f"prefill: the store already holds {have:,} prefilled messages (>= {target:,}); nothing "
                      "to fill", flush=True)
            result: dict[str, Any] = {"messages": 0, "seconds": 0.0}
        else:
            print(f"prefill: {target - have:,} messages into {mongo_db} ({have:,} there from earlier rounds), "
                  f"{PER_CONVERSATION} per conversation, insert_many of {BATCH:,} ...", flush=True)
            def progress(done: int) -> None:  # an interrupted fill still counts what it stored
                if store is not None:
                    write_marker(store, {**marker, "prefilled": have + done})

            result = await fill(db, target - have, len(marker["rounds"]), len(marker["rounds"]) + 12, progress)
            marker["prefilled"] = have + result["messages"]
            marker["rounds"].append(result)
            if store is not None:
                write_marker(store, marker)
            print(f"prefill: {result['messages']:,} messages in {result['seconds']:.1f} s "
                  f"({result['messages_per_second']:,}/s)", flush=True)
        result["prefilled_total"] = marker["prefilled"]
        result["stored"] = {name: await db[name].estimated_document_count()
                            for name in ("messages", "conversations", "users", "cursors")}
        return result
    finally:
        await client.close()
