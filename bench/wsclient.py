"""The load generator's client: the project's client library (clients/python) kept lean for
hundreds of sockets in one process (no push queue, a callback per message), `message.new`
handed on with its arrival time (time.perf_counter_ns, comparable across the sockets of this
process); and the helpers of the benchmarks' texts and figures."""
import asyncio
import secrets
import time
from collections.abc import Callable
from typing import Any

from parley_client import ParleyClient, ReplyError
from parley_client.models import Message, Push, Reply

PASSWORD = "correct horse battery"

__all__ = ["PASSWORD", "BenchClient", "ReplyError", "befriend", "parse_text", "percentiles", "stamped_text"]


class BenchClient:
    """One user's socket for the load generator: the client library (clients/python) without a
    push queue (hundreds of these run in one process), `message.new` handed to `on_message`
    with its arrival time, `sync.done` to `on_sync_done`."""

    def __init__(self, url: str):
        self.url = url
        self.session = ParleyClient(url, request_timeout=30, keep_pushes=False, open_timeout=60, ping_interval=None)
        self.session.on_message = self._message
        self.on_message: Callable[[dict[str, Any], int], None] | None = None
        self.on_sync_done: Callable[[dict[str, Any], int], None] | None = None
        self.user_id = ""
        self.username = ""

    def _message(self, message: Message, new: bool) -> None:
        if self.on_message is not None:
            self.on_message(message, time.perf_counter_ns())  # type: ignore[arg-type]

    def _push(self, push: Push) -> None:
        if push["type"] == "sync.done" and self.on_sync_done is not None:
            self.on_sync_done(push["data"], time.perf_counter_ns())

    @property
    def on_sync_done(self) -> Callable[[dict[str, Any], int], None] | None:
        return self._on_sync_done

    @on_sync_done.setter
    def on_sync_done(self, callback: Callable[[dict[str, Any], int], None] | None) -> None:
        self._on_sync_done = callback
        self.session.on_push = self._push if callback is not None else None  # no call per push unless asked

    @property
    def duplicates(self) -> int:
        return self.session.inbox.duplicates

    @property
    def received(self) -> int:
        """Distinct messages received on this socket ((conversation_id, seq) once each)."""
        return self.session.inbox.received

    @property
    def acks_sent(self) -> int:
        return self.session.stats.acks_sent

    @property
    def ack_errors(self) -> int:
        return self.session.stats.ack_errors

    async def connect(self) -> "BenchClient":
        await self.session.connect()
        return self

    def expect(self, kind: str) -> "asyncio.Future[dict[str, Any]]":
        """A future for the next push of `kind`; create it before the request that causes it."""
        return self.session.expect(kind)

    async def request(self, kind: str, data: dict[str, Any] | None = None, timeout: float = 30) -> Reply:
        """The whole reply frame (ok or not)."""
        return await self.session.request(kind, data, timeout)

    async def call(self, kind: str, data: dict[str, Any] | None = None, timeout: float = 30) -> dict[str, Any]:
        return await self.session.call(kind, data, timeout)

    async def register(self, prefix: str = "b") -> None:
        await self.session.register(f"{prefix}_{secrets.token_hex(6)}", PASSWORD)
        self.user_id, self.username = self.session.user_id or "", self.session.username or ""

    async def login(self, device_id: str = "bench") -> dict[str, Any]:
        return dict(await self.session.login(self.username, PASSWORD, device_id))

    def ack_every(self, seconds: float) -> None:
        """Acknowledge, every `seconds`, each conversation's contiguous prefix held, as an app
        does (debounced, not one ack per message): the device's cursor write is part of the load."""
        self.session.start_acking(seconds)

    async def close(self) -> None:
        await self.session.close()


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
