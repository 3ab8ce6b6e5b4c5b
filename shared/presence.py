"""Presence in Redis: which gateway instance holds each of a user's devices.

Each bound socket is a member `device|gateway|conn` of the sorted set `presence:user:<uid>`,
scored by the time it expires. Gateways refresh their sockets' scores; a gateway that dies
stops refreshing, and the sweeper (every gateway runs one) drops the expired members.
Delivery reads only members whose expiry is in the future, so a dead gateway is never sent
anything for long.

Whether a user is online is the set `presence:{p<b>}:online` of the user's bucket (b = CRC32 of
the user id modulo Settings.redis_buckets; shared/redis_slots.py); a user comes online when a
bind adds them to it and goes offline when the leave script removes them, both atomic in Redis,
so each transition is announced exactly once whichever gateway or sweeper notices it. A user's
sockets, and their bucket's expiry index, online set and last-seen hash, share the bucket's hash
tag: the bind transaction and the leave script touch one slot of a Redis Cluster. The sweeper
reads every bucket's expiry index.

Redis may lose all of this (a restart without persistence, a failover to an empty replica):
each gateway keeps a marker key of its own and checks it every second (`marker_was_lost`);
a missing marker means its sockets vanished from Redis, and it writes them back at once
(`restore`) without announcing anything: nobody went offline or came online, and chat's live
deliveries find the devices again within a second.
"""
import time
from dataclasses import dataclass

from shared.contracts.base import iso, utc_now
from shared.redis_slots import DEFAULT_BUCKETS, RedisClient, bucket_of, due_in_buckets, tag

# KEYS: user zset, expiry zset, online set, last_seen hash; ARGV: member, expiry entry, now, user, last_seen.
# Returns 1 when this removal left the user with no live device (they went offline), else 0.
_LEAVE = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[2])
if redis.call('ZCOUNT', KEYS[1], ARGV[3], '+inf') > 0 then return 0 end
if redis.call('SREM', KEYS[3], ARGV[4]) == 1 then
  redis.call('HSET', KEYS[4], ARGV[4], ARGV[5])
  return 1
end
return 0
"""


@dataclass(frozen=True)
class DeviceSocket:
    user_id: str
    device_id: str
    gateway_id: str
    conn_id: str

    @property
    def member(self) -> str:
        return f"{self.device_id}|{self.gateway_id}|{self.conn_id}"

    @classmethod
    def parse(cls, user_id: str, member: str) -> "DeviceSocket":
        device_id, gateway_id, conn_id = member.rsplit("|", 2)
        return cls(user_id, device_id, gateway_id, conn_id)


class Presence:
    def __init__(self, redis: RedisClient, namespace: str, ttl_seconds: float, buckets: int = DEFAULT_BUCKETS):
        self.redis = redis
        self.ns = namespace
        # Entries live 80 % of the advertised expiry so the sweeper announces a crash within it.
        self.lifetime = ttl_seconds * 0.8
        self.buckets = buckets
        self._leave = redis.register_script(_LEAVE)

    def _bucket(self, user_id: str) -> str:
        """`<ns>:presence:{p<b>}`: the prefix of every key of the user's bucket (one slot)."""
        return self._prefix(bucket_of(user_id, self.buckets))

    def _prefix(self, bucket: int) -> str:
        return f"{self.ns}:presence:{tag('p', bucket)}"

    def _user_key(self, user_id: str) -> str:
        return f"{self._bucket(user_id)}:user:{user_id}"

    def expiry_key(self, user_id: str) -> str:
        return f"{self._bucket(user_id)}:expiry"

    def _online_key(self, user_id: str) -> str:
        return f"{self._bucket(user_id)}:online"

    def _last_seen_key(self, user_id: str) -> str:
        return f"{self._bucket(user_id)}:last_seen"

    async def bind(self, sock: DeviceSocket) -> bool:
        """Register a socket; True when the user was offline until now (they came online)."""
        expires = time.time() + self.lifetime
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(self._user_key(sock.user_id), {sock.member: expires})
            pipe.zadd(self.expiry_key(sock.user_id), {f"{sock.user_id}|{sock.member}": expires})
            pipe.sadd(self._online_key(sock.user_id), sock.user_id)
            *_, added = await pipe.execute()
        return bool(added == 1)

    async def _remove(self, user_id: str, member: str) -> str | None:
        seen = iso(utc_now())
        went_offline = await self._leave(
            keys=[self._user_key(user_id), self.expiry_key(user_id), self._online_key(user_id),
                  self._last_seen_key(user_id)],
            args=[member, f"{user_id}|{member}", time.time(), user_id, seen],
        )
        return seen if went_offline else None

    async def unbind(self, sock: DeviceSocket) -> str | None:
        """Forget a socket; when the user has no live device left, their new last_seen."""
        return await self._remove(sock.user_id, sock.member)

    def _marker_key(self, gateway_id: str) -> str:
        return f"{self.ns}:presence:gateway:{gateway_id}"

    async def marker_was_lost(self, gateway_id: str) -> bool:
        """Set this gateway's marker (expiring, refreshed each call); True if it was not there."""
        previous = await self.redis.set(self._marker_key(gateway_id), "1", ex=max(60, int(self.lifetime * 4)), get=True)
        return previous is None

    async def restore(self, socks: list[DeviceSocket]) -> None:
        """Write live sockets back after Redis lost them, silently (no presence transition)."""
        expires = time.time() + self.lifetime
        async with self.redis.pipeline(transaction=False) as pipe:
            for sock in socks:
                pipe.zadd(self._user_key(sock.user_id), {sock.member: expires})
                pipe.zadd(self.expiry_key(sock.user_id), {f"{sock.user_id}|{sock.member}": expires})
                pipe.sadd(self._online_key(sock.user_id), sock.user_id)
            await pipe.execute()

    async def refresh(self, socks: list[DeviceSocket]) -> list[DeviceSocket]:
        """Push the expiry of live sockets forward; returns those the sweeper had already dropped."""
        if not socks:
            return []
        expires = time.time() + self.lifetime
        async with self.redis.pipeline(transaction=False) as pipe:
            for sock in socks:
                pipe.zadd(self._user_key(sock.user_id), {sock.member: expires}, xx=True, ch=True)
                pipe.zadd(self.expiry_key(sock.user_id), {f"{sock.user_id}|{sock.member}": expires}, xx=True)
            results = await pipe.execute()
        return [sock for sock, changed in zip(socks, results[::2], strict=True) if not changed]

    async def sweep(self, limit: int = 500) -> list[tuple[str, str]]:
        """Drop expired sockets (up to `limit`, from every bucket); returns (user, last_seen) of
        users who thereby went offline."""
        expiries = (f"{self._prefix(bucket)}:expiry" for bucket in range(self.buckets))
        expired = await due_in_buckets(self.redis, expiries, time.time(), limit)
        gone_offline: list[tuple[str, str]] = []
        for entry in expired:
            user_id, member = str(entry).split("|", 1)
            if seen := await self._remove(user_id, member):
                gone_offline.append((user_id, seen))
        return gone_offline

    async def sockets_of(self, user_ids: list[str]) -> list[DeviceSocket]:
        """Every live socket of these users, with the gateway that holds it."""
        if not user_ids:
            return []
        now = time.time()
        async with self.redis.pipeline(transaction=False) as pipe:
            for user_id in user_ids:
                pipe.zrangebyscore(self._user_key(user_id), now, "+inf")
            results = await pipe.execute()
        return [DeviceSocket.parse(uid, m) for uid, members in zip(user_ids, results, strict=True) for m in members]

    async def status_of(self, user_ids: list[str]) -> dict[str, tuple[bool, str | None]]:
        """user_id → (online, last_seen), as the presence pushes announced it."""
        if not user_ids:
            return {}
        by_bucket: dict[str, list[str]] = {}
        for uid in dict.fromkeys(user_ids):
            by_bucket.setdefault(self._bucket(uid), []).append(uid)
        async with self.redis.pipeline(transaction=False) as pipe:
            for prefix, uids in by_bucket.items():
                pipe.smismember(f"{prefix}:online", uids)
                pipe.hmget(f"{prefix}:last_seen", uids)
            found = await pipe.execute()
        status: dict[str, tuple[bool, str | None]] = {}
        for i, uids in enumerate(by_bucket.values()):
            online, seen = found[2 * i], found[2 * i + 1]
            status.update({uid: (bool(on), last) for uid, on, last in zip(uids, online, seen, strict=True)})
        return {uid: status[uid] for uid in user_ids}  # in the order asked
