"""Calls in progress, in Redis: every calls replica (and every gateway's death) sees the same
state, and each change that must happen once (begin, accept, end) is one Lua script.

Keys under `<ns>:call:`. A call belongs to a slot bucket, `{c<b>}` with b = CRC32(call id) %
Settings.redis_buckets (shared/redis_slots.py); its own keys and its bucket's indexes share that
hash tag, so every script touches one slot of a Redis Cluster:
  `{c<b>}:<id>`         hash: the Call's fields                  (expires after CALL_TTL_SECONDS)
  `{c<b>}:<id>:ice`     list: the caller's candidates while it rings (delivered on accept)
  `{c<b>}:<id>:ended`   "caller|callee" for a minute after the end (a crossing hang-up is not not_found)
  `{c<b>}:ringing`      zset id → ring_until: what the checker times out (it reads every bucket)
  `{c<b>}:live`         set of ids: what the checker watches for sockets gone (every bucket)
  `user:{<user>}`       the call a user is in (busy)             (same expiry)
  `unrecorded`          list: calls ended whose message chat could not store yet (retried; MAX_UNRECORDED)
A user's busy key is in the user's slot, not the call's: begin writes the call, then claims the
two busy keys one at a time (SET NX), dropping the call if either is taken; end removes the call,
then releases the busy keys that still name it. A busy key left behind by a replica that died
between the two steps names a call that no longer exists, and the next begin takes it over.
Two users calling each other at the same instant may now both be told `busy` (each claimed
themselves first), where one Redis script let exactly one through; never both connected twice.
"""
from typing import Any

import orjson

from services.calls.domain.ports import Accepted, Begun, Buffered, Call, CallState
from shared.contracts.calls import EndReason, IceCandidate
from shared.redis_slots import DEFAULT_BUCKETS, RedisClient, bucket_of, due_in_buckets, tag

# A call's keys outlive any real call; the checker ends calls whose sockets are gone long before.
CALL_TTL_SECONDS = 12 * 3600
TOMBSTONE_SECONDS = 60
MAX_BUFFERED_CANDIDATES = 64  # of at most MAX_CANDIDATE_CHARS each: <= 64 KiB per ringing call
# Ended calls waiting for their message (chat or its database away): each entry is ~400 bytes, so
# at most ~4 MB; past it the oldest are dropped (those calls leave no message).
MAX_UNRECORDED = 10_000

# KEYS: call hash, ringing, live; ARGV: call id, ring_until, ttl, field pairs...
_BEGIN = """
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[1])
return 'ok'
"""

# KEYS: a busy key; ARGV: the call id it must hold, the call id to put instead, ttl. 1 if swapped.
_SWAP_BUSY = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
"""

# KEYS: a busy key; ARGV: call id. Deletes it only while it still names this call.
_RELEASE_BUSY = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS: call hash, ice list; ARGV: callee device, answered_at.
# Returns {'ok', candidates...} | {'taken'} | {'gone'}. (The ringing index is cleaned after it:
# the checker ends a due call only if it still rings, so a late clean-up ends nothing.)
_ACCEPT = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'gone'} end
if state ~= 'ringing' then return {'taken'} end
redis.call('HSET', KEYS[1], 'state', 'active', 'callee_device', ARGV[1], 'answered_at', ARGV[2])
local buffered = redis.call('LRANGE', KEYS[2], 0, -1)
redis.call('DEL', KEYS[2])
table.insert(buffered, 1, 'ok')
return buffered
"""

# KEYS: call hash, ice list; ARGV: candidate json, max buffered, ttl.
_BUFFER_ICE = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 'gone' end
if state ~= 'ringing' then return 'active' end
if redis.call('LLEN', KEYS[2]) >= tonumber(ARGV[2]) then return 'full' end
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return 'buffered'
"""

# KEYS: call hash, ringing, live, ice list, tombstone; ARGV: call id, tombstone ttl, only if
# ringing (1/0), leave a tombstone (1/0).
# Returns the call's fields (flat), or nil when it had already ended (only one ender wins) or,
# asked only if ringing, was answered (then it just leaves the ringing index).
_END = """
local fields = redis.call('HGETALL', KEYS[1])
if #fields == 0 then return nil end
local h = {}
for i = 1, #fields, 2 do h[fields[i]] = fields[i + 1] end
if ARGV[3] == '1' and h['state'] ~= 'ringing' then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return nil
end
redis.call('DEL', KEYS[1], KEYS[4])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[3], ARGV[1])
if ARGV[4] == '1' then
  redis.call('SET', KEYS[5], h['caller'] .. '|' .. h['callee'], 'EX', ARGV[2])
end
return fields
"""


def _call(fields: dict[str, str]) -> Call:
    answered = fields.get("answered_at")
    state: CallState = "active" if fields["state"] == "active" else "ringing"
    return Call(
        call_id=fields["call_id"],
        conversation_id=fields["conversation_id"],
        caller=fields["caller"],
        caller_device=fields["caller_device"],
        callee=fields["callee"],
        media="video" if fields["media"] == "video" else "audio",
        state=state,
        invited_at=float(fields["invited_at"]),
        ring_until=float(fields["ring_until"]),
        answered_at=float(answered) if answered else None,
        callee_device=fields.get("callee_device") or None,
    )


def _fields(call: Call) -> list[str | float]:
    """A ringing call's hash fields, flat (accept adds answered_at and callee_device)."""
    return [
        "call_id", call.call_id, "conversation_id", call.conversation_id, "caller", call.caller,
        "caller_device", call.caller_device, "callee", call.callee, "media", call.media, "state", call.state,
        "invited_at", call.invited_at, "ring_until", call.ring_until,
    ]


def _answer_fields(call: Call) -> list[str | float]:
    if call.answered_at is None:
        return []
    return ["answered_at", call.answered_at, "callee_device", call.callee_device or ""]


def _pairs(flat: list[Any]) -> dict[str, str]:
    return {str(flat[i]): str(flat[i + 1]) for i in range(0, len(flat), 2)}


class RedisCallStore:
    def __init__(self, redis: RedisClient, namespace: str, buckets: int = DEFAULT_BUCKETS):
        self.redis = redis
        self.prefix = f"{namespace}:call:"
        self.buckets = buckets
        self.unrecorded_key = self.prefix + "unrecorded"
        self._begin = redis.register_script(_BEGIN)
        self._swap_busy = redis.register_script(_SWAP_BUSY)
        self._release_busy = redis.register_script(_RELEASE_BUSY)
        self._accept = redis.register_script(_ACCEPT)
        self._buffer_ice = redis.register_script(_BUFFER_ICE)
        self._end = redis.register_script(_END)

    def _bucket(self, bucket: int) -> str:
        return f"{self.prefix}{tag('c', bucket)}"

    def _slot(self, call_id: str) -> str:
        return self._bucket(bucket_of(call_id, self.buckets))

    def _key(self, call_id: str, suffix: str = "") -> str:
        return f"{self._slot(call_id)}:{call_id}{suffix}"

    def _busy_key(self, user_id: str) -> str:
        return f"{self.prefix}user:{{{user_id}}}"

    def ringing_key(self, call_id: str) -> str:
        """The ringing index of the call's bucket."""
        return f"{self._slot(call_id)}:ringing"

    def _end_keys(self, call_id: str) -> list[str]:
        slot = self._slot(call_id)
        return [self._key(call_id), f"{slot}:ringing", f"{slot}:live", self._key(call_id, ":ice"),
                self._key(call_id, ":ended")]

    async def begin(self, call: Call) -> Begun:
        """Start ringing, unless either user is already in a call."""
        slot = self._slot(call.call_id)
        await self._begin(
            keys=[self._key(call.call_id), f"{slot}:ringing", f"{slot}:live"],
            args=[call.call_id, call.ring_until, CALL_TTL_SECONDS, *_fields(call)],
        )
        if not await self._claim(call.caller, call.call_id):
            await self._drop(call.call_id)
            return "caller_busy"
        if not await self._claim(call.callee, call.call_id):
            await self._release_busy(keys=[self._busy_key(call.caller)], args=[call.call_id])
            await self._drop(call.call_id)
            return "busy"
        return "ok"

    async def _claim(self, user_id: str, call_id: str) -> bool:
        """Mark the user in this call, unless they are in another call that still exists."""
        key = self._busy_key(user_id)
        for _ in range(3):
            if await self.redis.set(key, call_id, nx=True, ex=CALL_TTL_SECONDS):
                return True
            holder = await self.redis.get(key)
            if holder is None:
                continue  # released meanwhile: try again
            if await self.redis.exists(self._key(str(holder))):
                return False
            # Its call is gone (ended by a replica that died before releasing it): take it over.
            if await self._swap_busy(keys=[key], args=[holder, call_id, CALL_TTL_SECONDS]):
                return True
        return False

    async def _drop(self, call_id: str) -> None:
        """Undo a begin that found a user busy: no tombstone (the call never rang)."""
        await self._end(keys=self._end_keys(call_id), args=[call_id, TOMBSTONE_SECONDS, 0, 0])

    async def get(self, call_id: str) -> Call | None:
        fields = await self.redis.hgetall(self._key(call_id))
        return _call({str(k): str(v) for k, v in fields.items()}) if fields else None

    async def many(self, call_ids: list[str]) -> list[Call]:
        if not call_ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for call_id in call_ids:
                pipe.hgetall(self._key(call_id))
            found = await pipe.execute()
        return [_call({str(k): str(v) for k, v in f.items()}) for f in found if f]

    async def ended_between(self, call_id: str) -> tuple[str, str] | None:
        """The two users of a call that ended within the last minute."""
        value = await self.redis.get(self._key(call_id, ":ended"))
        if value is None:
            return None
        caller, _, callee = str(value).partition("|")
        return caller, callee

    async def accept(self, call_id: str, device_id: str, now: float) -> tuple[Accepted, list[IceCandidate]]:
        """Answer a ringing call on one device; the caller's candidates buffered meanwhile."""
        result = await self._accept(keys=[self._key(call_id), self._key(call_id, ":ice")], args=[device_id, now])
        head = str(result[0])
        if head != "ok":
            return ("taken" if head == "taken" else "gone"), []
        await self.redis.zrem(self.ringing_key(call_id), call_id)
        return "ok", [IceCandidate.model_validate_json(c) for c in result[1:]]

    async def buffer_ice(self, call_id: str, candidate: IceCandidate) -> Buffered:
        outcome = await self._buffer_ice(
            keys=[self._key(call_id), self._key(call_id, ":ice")],
            args=[candidate.model_dump_json(exclude_none=True), MAX_BUFFERED_CANDIDATES, CALL_TTL_SECONDS],
        )
        text = str(outcome)
        return "buffered" if text == "buffered" else "active" if text == "active" else "full" if text == "full" else "gone"

    async def end(self, call_id: str, only_if_ringing: bool = False) -> Call | None:
        """Remove the call; it, to the one caller that removed it (None to everyone else); then
        free its users (their busy keys, while they still name this call)."""
        fields = await self._end(keys=self._end_keys(call_id), args=[call_id, TOMBSTONE_SECONDS, int(only_if_ringing), 1])
        if not fields:
            return None
        call = _call(_pairs(fields))
        for user_id in (call.caller, call.callee):
            await self._release_busy(keys=[self._busy_key(user_id)], args=[call_id])
        return call

    async def due(self, now: float, limit: int = 200) -> list[str]:
        """Calls still ringing at their ring_until (from every bucket)."""
        ringing = (f"{self._bucket(bucket)}:ringing" for bucket in range(self.buckets))
        return await due_in_buckets(self.redis, ringing, now, limit)

    async def live(self, limit: int = 10_000) -> list[Call]:
        ids: list[str] = []
        for bucket in range(self.buckets):
            ids += [str(i) async for i in self.redis.sscan_iter(f"{self._bucket(bucket)}:live", count=500)]
        ids = ids[:limit]
        calls = await self.many(ids)
        gone = set(ids) - {c.call_id for c in calls}
        for call_id in gone:  # expired under us (CALL_TTL_SECONDS): forget them
            await self.redis.srem(f"{self._slot(call_id)}:live", call_id)
        return calls

    # --- calls ended whose message is not stored yet -------------------------------------------
    async def defer_record(self, call: Call, reason: EndReason, ended_at: float) -> None:
        entry = {"call": _pairs(_fields(call) + _answer_fields(call)), "reason": reason, "ended_at": ended_at}
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.rpush(self.unrecorded_key, orjson.dumps(entry))
            pipe.ltrim(self.unrecorded_key, -MAX_UNRECORDED, -1)
            await pipe.execute()

    async def take_deferred(self) -> tuple[Call, EndReason, float] | None:
        raw = await self.redis.lpop(self.unrecorded_key)
        if raw is None:
            return None
        entry = orjson.loads(str(raw))
        reason: EndReason = entry["reason"]
        return _call(entry["call"]), reason, float(entry["ended_at"])
