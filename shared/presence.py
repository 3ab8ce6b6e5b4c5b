"""Presence in Redis: which gateway instance holds each of a user's devices.

Each bound socket is a member `device|gateway|conn` of the sorted set `presence:user:<uid>`,
scored by the time it expires. Gateways refresh their sockets' scores; a gateway that dies
stops refreshing, and the sweeper (every gateway runs one; they compete through ZREM) drops
the expired members and reports users whose last device went away. Delivery reads only
members whose expiry is in the future, so a dead gateway is never sent anything for long.
"""
import time
from dataclasses import dataclass

import redis.asyncio as aioredis

from shared.contracts.base import iso, utc_now


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
    def __init__(self, redis: aioredis.Redis, namespace: str, ttl_seconds: float):
        self.redis = redis
        self.ns = namespace
        # Entries live 80 % of the advertised expiry so the sweeper announces a crash within it.
        self.lifetime = ttl_seconds * 0.8
        self.expiry_key = f"{namespace}:presence:expiry"
        self.last_seen_key = f"{namespace}:presence:last_seen"

    def _user_key(self, user_id: str) -> str:
        return f"{self.ns}:presence:user:{user_id}"

    async def bind(self, sock: DeviceSocket) -> bool:
        """Register a socket; True when it is the user's first live device (they came online)."""
        now = time.time()
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(self._user_key(sock.user_id), {sock.member: now + self.lifetime})
            pipe.zadd(self.expiry_key, {f"{sock.user_id}|{sock.member}": now + self.lifetime})
            pipe.zcount(self._user_key(sock.user_id), now, "+inf")
            *_, live = await pipe.execute()
        return live == 1

    async def unbind(self, sock: DeviceSocket) -> bool:
        """Forget a socket; True when the user has no live device left (they went offline)."""
        now = time.time()
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrem(self._user_key(sock.user_id), sock.member)
            pipe.zrem(self.expiry_key, f"{sock.user_id}|{sock.member}")
            pipe.zcount(self._user_key(sock.user_id), now, "+inf")
            pipe.hset(self.last_seen_key, sock.user_id, iso(utc_now()))
            removed, _, live, _ = await pipe.execute()
        return bool(removed) and live == 0

    async def refresh(self, socks: list[DeviceSocket]) -> list[DeviceSocket]:
        """Push the expiry of live sockets forward; returns those the sweeper had already dropped."""
        if not socks:
            return []
        expires = time.time() + self.lifetime
        async with self.redis.pipeline(transaction=False) as pipe:
            for sock in socks:
                pipe.zadd(self._user_key(sock.user_id), {sock.member: expires}, xx=True, ch=True)
                pipe.zadd(self.expiry_key, {f"{sock.user_id}|{sock.member}": expires}, xx=True)
            results = await pipe.execute()
        return [sock for sock, changed in zip(socks, results[::2]) if not changed]

    async def sweep(self, limit: int = 500) -> list[str]:
        """Drop expired sockets; returns the users whose last device was among them."""
        now = time.time()
        expired = await self.redis.zrangebyscore(self.expiry_key, "-inf", now, start=0, num=limit)
        gone_offline: list[str] = []
        for entry in expired:
            if not await self.redis.zrem(self.expiry_key, entry):
                continue  # another gateway's sweeper took it
            user_id, member = entry.split("|", 1)
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.zrem(self._user_key(user_id), member)
                pipe.zcount(self._user_key(user_id), time.time(), "+inf")
                _, live = await pipe.execute()
            if live == 0:
                await self.redis.hset(self.last_seen_key, user_id, iso(utc_now()))
                gone_offline.append(user_id)
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
        return [DeviceSocket.parse(uid, m) for uid, members in zip(user_ids, results) for m in members]

    async def status_of(self, user_ids: list[str]) -> dict[str, tuple[bool, str | None]]:
        """user_id → (online, last_seen)."""
        if not user_ids:
            return {}
        now = time.time()
        async with self.redis.pipeline(transaction=False) as pipe:
            for user_id in user_ids:
                pipe.zcount(self._user_key(user_id), now, "+inf")
            pipe.hmget(self.last_seen_key, user_ids)
            *counts, seen = await pipe.execute()
        return {uid: (count > 0, last) for uid, count, last in zip(user_ids, counts, seen)}
