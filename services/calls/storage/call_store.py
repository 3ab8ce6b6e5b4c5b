"""Calls in progress, in Redis: every calls replica (and every gateway's death) sees the same
state, and each change that must happen once (begin, accept, end) is one Lua script.

Keys under `<ns>:call:` — a call's own keys share its hash tag, so a script on one call touches
one slot:
  `{<id>}`          hash: the Call's fields                      (expires after CALL_TTL_SECONDS)
  `{<id>}:ice`      list: the caller's candidates while it rings (delivered on accept)
  `{<id>}:ended`    "caller|callee" for a minute after the end (a crossing hang-up is not not_found)
  `user:{<user>}`   the call a user is in (busy)                 (same expiry)
  `ringing`         zset id → ring_until: what the checker times out
  `live`            set of ids: what the checker watches for sockets gone
  `unrecorded`      list: calls ended whose message chat could not store yet (retried; MAX_UNRECORDED)
accept and buffer_ice touch one call's slot. begin (both users' busy keys, the indexes) and end
(the same) still span slots: every key is declared, but Redis Cluster needs them split, which
the Cluster issue does.
"""
from typing import Any

import orjson
from shared.redis_slots import RedisClient

from services.calls.domain.ports import Accepted, Begun, Buffered, Call, CallState
from shared.contracts.calls import EndReason, IceCandidate

# A call's keys outlive any real call; the checker ends calls whose sockets are gone long before.
CALL_TTL_SECONDS = 12 * 3600
TOMBSTONE_SECONDS = 60
MAX_BUFFERED_CANDIDATES = 64  # of at most MAX_CANDIDATE_CHARS each: <= 64 KiB per ringing call
# Ended calls waiting for their message (chat or its database away): each entry is ~400 bytes, so
# at most ~4 MB; past it the oldest are dropped (those calls leave no message).
MAX_UNRECORDED = 10_000

# KEYS: call hash, ringing, live, caller busy, callee busy; ARGV: call id, ring_until, ttl, field pairs...
_BEGIN = """
if redis.call('EXISTS', KEYS[4]) == 1 then return 'caller_busy' end
if redis.call('EXISTS', KEYS[5]) == 1 then return 'busy' end
redis.call('SET', KEYS[4], ARGV[1], 'EX', ARGV[3])
redis.call('SET', KEYS[5], ARGV[1], 'EX', ARGV[3])
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[1])
return 'ok'
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

# KEYS: call hash, ringing, live, ice list, tombstone, caller busy, callee busy;
# ARGV: call id, tombstone ttl, only if ringing (1/0).
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
for i = 6, 7 do
  if redis.call('GET', KEYS[i]) == ARGV[1] then redis.call('DEL', KEYS[i]) end
end
redis.call('SET', KEYS[5], h['caller'] .. '|' .. h['callee'], 'EX', ARGV[2])
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
    def __init__(self, redis: RedisClient, namespace: str):
        self.redis = redis
        self.prefix = f"{namespace}:call:"
        self.ringing_key = self.prefix + "ringing"
        self.live_key = self.prefix + "live"
        self.unrecorded_key = self.prefix + "unrecorded"
        self._begin = redis.register_script(_BEGIN)
        self._accept = redis.register_script(_ACCEPT)
        self._buffer_ice = redis.register_script(_BUFFER_ICE)
        self._end = redis.register_script(_END)

    def _key(self, call_id: str, suffix: str = "") -> str:
        return f"{self.prefix}{{{call_id}}}{suffix}"

    def _busy_key(self, user_id: str) -> str:
        return f"{self.prefix}user:{{{user_id}}}"

    async def begin(self, call: Call) -> Begun:
        """Start ringing, unless either user is already in a call."""
        outcome = await self._begin(
            keys=[self._key(call.call_id), self.ringing_key, self.live_key, self._busy_key(call.caller),
                  self._busy_key(call.callee)],
            args=[call.call_id, call.ring_until, CALL_TTL_SECONDS, *_fields(call)],
        )
        text = str(outcome)
        return "ok" if text == "ok" else "busy" if text == "busy" else "caller_busy"

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
        await self.redis.zrem(self.ringing_key, call_id)
        return "ok", [IceCandidate.model_validate_json(c) for c in result[1:]]

    async def buffer_ice(self, call_id: str, candidate: IceCandidate) -> Buffered:
        outcome = await self._buffer_ice(
            keys=[self._key(call_id), self._key(call_id, ":ice")],
            args=[candidate.model_dump_json(exclude_none=True), MAX_BUFFERED_CANDIDATES, CALL_TTL_SECONDS],
        )
        text = str(outcome)
        return "buffered" if text == "buffered" else "active" if text == "active" else "full" if text == "full" else "gone"

    async def end(self, call_id: str, only_if_ringing: bool = False) -> Call | None:
        """Remove the call; it, to the one caller that removed it (None to everyone else). The
        users' busy keys are named from a first read: a call's two users never change."""
        call = await self.get(call_id)
        if call is None:
            return None
        fields = await self._end(
            keys=[self._key(call_id), self.ringing_key, self.live_key, self._key(call_id, ":ice"),
                  self._key(call_id, ":ended"), self._busy_key(call.caller), self._busy_key(call.callee)],
            args=[call_id, TOMBSTONE_SECONDS, 1 if only_if_ringing else 0],
        )
        return _call(_pairs(fields)) if fields else None

    async def due(self, now: float, limit: int = 200) -> list[str]:
        """Calls still ringing at their ring_until."""
        return [str(c) for c in await self.redis.zrangebyscore(self.ringing_key, "-inf", now, start=0, num=limit)]

    async def live(self, limit: int = 10_000) -> list[Call]:
        ids = [str(i) async for i in self.redis.sscan_iter(self.live_key, count=500)][:limit]
        calls = await self.many(ids)
        gone = set(ids) - {c.call_id for c in calls}
        if gone:  # expired under us (CALL_TTL_SECONDS): forget them
            await self.redis.srem(self.live_key, *gone)
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
