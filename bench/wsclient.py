"""A lean protocol client for load: replies matched to requests, `message.new` handed to a callback
with its arrival time (time.perf_counter_ns, comparable across the sockets of this process)."""
import asyncio
import itertools
import secrets
import time
from collections.abc import Callable
from typing import Any

import orjson
import websockets

PASSWORD = "correct horse battery"


class ReplyError(Exception):
    def __init__(self, reply: dict[str, Any]):
        super().__init__(f"{reply['error']['code']}: {reply['error']['message']}")
        self.code = reply["error"]["code"]


class BenchClient:
    def __init__(self, url: str):
        self.url = url
        self.ws: websockets.ClientConnection | None = None
        self._ids = itertools.count(1)
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._pushes: dict[str, list[asyncio.Future[dict[str, Any]]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self.on_message: Callable[[dict[str, Any], int], None] | None = None
        self.on_sync_done: Callable[[dict[str, Any], int], None] | None = None
        self.user_id = ""
        self.username = ""
        self.seen: set[tuple[str, int]] = set()  # (conversation_id, seq) received on this socket
        self.duplicates = 0
        self.own: set[tuple[str, int]] = set()  # (conversation_id, seq) of this client's own sends
        self.acked: dict[str, int] = {}  # conversation_id -> seq acknowledged (message.ack)
        self.acks_sent = 0
        self.ack_errors = 0
        self._acker: asyncio.Task[None] | None = None

    async def connect(self) -> "BenchClient":
        self.ws = await websockets.connect(self.url, max_size=8 * 1024 * 1024, open_timeout=60, ping_interval=None)
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self.ws is not None
        try:
            async for raw in self.ws:
                now = time.perf_counter_ns()
                frame = orjson.loads(raw)
                kind = frame.get("type")
                if kind == "reply":
                    future = self._waiting.pop(frame.get("id"), None)
                    if future is not None and not future.done():
                        future.set_result(frame)
                    continue
                data = frame.get("data") or {}
                if kind == "message.new":
                    key = (data["conversation_id"], data["seq"])
                    if key in self.seen:
                        self.duplicates += 1
                    else:
                        self.seen.add(key)
                    if self.on_message is not None:
                        self.on_message(data, now)
                elif kind == "sync.done" and self.on_sync_done is not None:
                    self.on_sync_done(data, now)
                for future in self._pushes.pop(kind, []):
                    if not future.done():
                        future.set_result(data)
        except websockets.ConnectionClosed:
            pass
        finally:
            for future in self._waiting.values():
                if not future.done():
                    future.set_exception(ConnectionError("socket closed"))

    def expect(self, kind: str) -> "asyncio.Future[dict[str, Any]]":
        """A future for the next push of `kind`; create it before the request that causes it."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pushes.setdefault(kind, []).append(future)
        return future

    async def request(self, kind: str, data: dict[str, Any] | None = None, timeout: float = 30) -> dict[str, Any]:
        """The whole reply frame (ok or not)."""
        assert self.ws is not None
        rid = f"r{next(self._ids)}"
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[rid] = future
        await self.ws.send(orjson.dumps({"type": kind, "id": rid, "data": data or {}}).decode())
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            self._waiting.pop(rid, None)

    async def call(self, kind: str, data: dict[str, Any] | None = None, timeout: float = 30) -> dict[str, Any]:
        reply = await self.request(kind, data, timeout)
        if not reply["ok"]:
            raise ReplyError(reply)
        return reply["data"]

    async def register(self, prefix: str = "b") -> None:
        self.username = f"{prefix}_{secrets.token_hex(6)}"
        data = await self.call("auth.register", {"username": self.username, "password": PASSWORD})
        self.user_id = data["user_id"]

    async def login(self, device_id: str = "bench") -> dict[str, Any]:
        return await self.call("auth.login", {"username": self.username, "password": PASSWORD, "device_id": device_id})

    def ack_every(self, seconds: float) -> None:
        """Acknowledge, every `seconds`, each conversation's contiguous prefix received, as an app
        does (debounced, not one ack per message): the device's cursor write is part of the load."""
        if seconds > 0 and self._acker is None:
            self._acker = asyncio.create_task(self._ack_loop(seconds))

    def _ack_targets(self) -> dict[str, int]:
        targets: dict[str, int] = {}
        held = self.seen | self.own  # a device has its own messages from their replies
        for conversation_id in {c for c, _ in held}:
            seq = self.acked.get(conversation_id, 0)
            while (conversation_id, seq + 1) in held:
                seq += 1
            if seq > self.acked.get(conversation_id, 0):
                targets[conversation_id] = seq
        return targets

    async def _ack_loop(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            for conversation_id, seq in self._ack_targets().items():
                try:
                    await self.call("message.ack", {"conversation_id": conversation_id, "seq": seq})
                    self.acked[conversation_id] = seq
                    self.acks_sent += 1
                except (ReplyError, ConnectionError, asyncio.TimeoutError):
                    self.ack_errors += 1
                except websockets.ConnectionClosed:  # closing at the end of a run: nothing left to ack
                    return

    async def close(self) -> None:
        if self._acker is not None:
            self._acker.cancel()
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            await self._reader


async def befriend(a: BenchClient, b: BenchClient) -> None:
    await a.call("friends.request", {"user_id": b.user_id})
    await b.call("friends.accept", {"user_id": a.user_id})


def stamped_text(client_msg_id: str, size: int) -> str:
    """`<perf_counter_ns> <client_msg_id> xxx…`, padded to `size` characters."""
    head = f"{time.perf_counter_ns()} {client_msg_id} "
    return head + "x" * max(1, size - len(head))


def parse_text(text: str) -> tuple[int, str]:
    stamp, cmid, _ = text.split(" ", 2)
    return int(stamp), cmid


def percentiles(values_ms: list[float]) -> dict[str, float | None]:
    if not values_ms:
        return {"p50": None, "p95": None, "p99": None, "max": None, "n": 0}
    v = sorted(values_ms)

    def at(q: float) -> float:
        return round(v[min(len(v) - 1, int(q * len(v)))], 3)

    return {"p50": at(0.50), "p95": at(0.95), "p99": at(0.99), "max": round(v[-1], 3), "n": len(v)}
