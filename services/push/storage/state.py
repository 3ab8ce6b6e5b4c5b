"""What the push service remembers in Redis, every key with a TTL (nothing here is the truth of
anything: losing it costs a duplicate notification, a notification left shown or a badge off):

- `<ns>:push:sent:<user>|<device>|<what>`: SET NX before a send, so a repeated event (at least
  once, `again`) notifies a device once per message (dedup TTL: a day);
- `<ns>:push:u:{<user>}:read|latest|unread`: per conversation the read marker and the latest
  message from someone else, and the set of conversations where the latter is above the former
  (the badge), kept by one script each so that a read overtaking its message counts right;
- `<ns>:push:u:{<user>}:shown:<conversation>`: device → the notification it was last sent;
- `<ns>:push:call:{<call>}`, `...:over`: the devices a call was pushed to; that it is over.
"""
import json

from shared.redis_slots import RedisClient

from services.push.domain.ports import Shown
from shared.contracts.push import Notification

SENT_TTL_SECONDS = 24 * 3600
UNREAD_TTL_SECONDS = 30 * 24 * 3600
CALL_TTL_SECONDS = 600

# KEYS: read hash, latest hash, unread set; ARGV: conversation, seq, ttl.
# Returns {still unread (1/0), unread conversations}.
_NOTE_MESSAGE = """
local read = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
local seq = tonumber(ARGV[2])
if seq <= read then return {0, redis.call('SCARD', KEYS[3])} end
local latest = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if seq > latest then redis.call('HSET', KEYS[2], ARGV[1], ARGV[2]) end
redis.call('SADD', KEYS[3], ARGV[1])
for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ARGV[3]) end
return {1, redis.call('SCARD', KEYS[3])}
"""

# KEYS: read hash, latest hash, unread set; ARGV: conversation, seq, ttl. Returns unread conversations.
_NOTE_READ = """
local read = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
local seq = tonumber(ARGV[2])
if seq > read then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
local latest = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if latest <= seq then
  redis.call('SREM', KEYS[3], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
end
for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ARGV[3]) end
return redis.call('SCARD', KEYS[3])
"""


class RedisPushState:
    def __init__(self, redis: RedisClient, namespace: str, shown_ttl_seconds: int):
        self.redis = redis
        self.ns = namespace
        self.shown_ttl = max(60, shown_ttl_seconds)
        self._note_message = redis.register_script(_NOTE_MESSAGE)
        self._note_read = redis.register_script(_NOTE_READ)

    def _user(self, user_id: str, what: str) -> str:
        return f"{self.ns}:push:u:{{{user_id}}}:{what}"

    def _badge_keys(self, user_id: str) -> list[str]:
        return [self._user(user_id, "read"), self._user(user_id, "latest"), self._user(user_id, "unread")]

    def _call(self, call_id: str) -> str:
        return f"{self.ns}:push:call:{{{call_id}}}"

    # --- dedup -------------------------------------------------------------------------------
    async def first_send(self, key: str) -> bool:
        return bool(await self.redis.set(f"{self.ns}:push:sent:{key}", "1", nx=True, ex=SENT_TTL_SECONDS))

    async def unsend(self, key: str) -> None:
        await self.redis.delete(f"{self.ns}:push:sent:{key}")

    # --- the badge ---------------------------------------------------------------------------
    async def note_message(self, user_id: str, conversation_id: str, seq: int) -> tuple[bool, int]:
        unread, count = await self._note_message(
            keys=self._badge_keys(user_id), args=[conversation_id, seq, UNREAD_TTL_SECONDS]
        )
        return bool(unread), int(count)

    async def note_read(self, user_id: str, conversation_id: str, seq: int) -> int:
        return int(await self._note_read(keys=self._badge_keys(user_id), args=[conversation_id, seq, UNREAD_TTL_SECONDS]))

    # --- what each device shows --------------------------------------------------------------
    async def shown(self, user_id: str, conversation_id: str) -> dict[str, Shown]:
        raw = await self.redis.hgetall(self._user(user_id, f"shown:{conversation_id}"))
        found = {}
        for device, value in raw.items():
            data = json.loads(value)
            found[_text(device)] = Shown(data["seq"], Notification.model_validate(data["n"]), data.get("p", False))
        return found

    async def show(self, user_id: str, conversation_id: str, shown: dict[str, Shown]) -> None:
        if not shown:
            return
        key = self._user(user_id, f"shown:{conversation_id}")
        async with self.redis.pipeline(transaction=False) as pipe:
            for device, s in shown.items():
                data = {"seq": s.seq, "n": s.notification.model_dump(mode="json", exclude_none=True), "p": s.preview}
                pipe.hset(key, device, json.dumps(data))
            pipe.expire(key, self.shown_ttl)
            await pipe.execute()

    async def hide(self, user_id: str, conversation_id: str, device_ids: list[str]) -> None:
        if device_ids:
            await self.redis.hdel(self._user(user_id, f"shown:{conversation_id}"), *device_ids)

    # --- calls -------------------------------------------------------------------------------
    async def ring(self, call_id: str, devices: list[tuple[str, str]]) -> None:
        if not devices:
            return
        key = self._call(call_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.sadd(key, *(f"{u}|{d}" for u, d in devices))
            pipe.expire(key, CALL_TTL_SECONDS)
            await pipe.execute()

    async def rung(self, call_id: str) -> list[tuple[str, str]]:
        members = await self.redis.smembers(self._call(call_id))
        return [_pair(_text(m)) for m in members]

    async def stop_ringing(self, call_id: str, devices: list[tuple[str, str]], over: bool) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            if devices:
                pipe.srem(self._call(call_id), *(f"{u}|{d}" for u, d in devices))
            if over:
                pipe.set(f"{self._call(call_id)}:over", "1", ex=CALL_TTL_SECONDS)
            await pipe.execute()

    async def call_over(self, call_id: str) -> bool:
        return bool(await self.redis.exists(f"{self._call(call_id)}:over"))


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _pair(member: str) -> tuple[str, str]:
    user_id, device_id = member.split("|", 1)
    return user_id, device_id
