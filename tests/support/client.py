"""A client written from PROTOCOL.md alone, on the `websockets` package, as a user's app would be.

It keeps what it has received the way the protocol tells clients to: messages deduplicated by
(conversation_id, seq), and acks only up to the highest seq below which it has everything.
"""
import asyncio
import itertools
import json
import secrets
import weakref
from collections import defaultdict
from typing import Any

import httpx
import websockets

from tests.support.waiting import eventually

PASSWORD = "correct horse battery"
# Every client made in this process, for the tests' leak check (tests/support/leaks.py).
MADE: "weakref.WeakSet[Client]" = weakref.WeakSet()


class ReplyError(Exception):
    def __init__(self, reply: dict[str, Any]):
        super().__init__(f"{reply['error']['code']}: {reply['error']['message']}")
        self.code = reply["error"]["code"]
        self.message = reply["error"]["message"]


class Client:
    def __init__(self, port: int):
        self.port = port
        self.url = f"ws://127.0.0.1:{port}/ws"
        self.ws: websockets.ClientConnection | None = None
        self._ids = itertools.count(1)
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.pushes: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.unmatched_replies: list[dict[str, Any]] = []
        self._reader: asyncio.Task[None] | None = None
        self.user_id: str | None = None
        self.username: str | None = None
        self.token: str | None = None
        self.closed = asyncio.Event()
        # What the user sees: messages by conversation, deduplicated by seq.
        self.inbox: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
        self.duplicates = 0

    async def connect(self) -> "Client":
        self.ws = await websockets.connect(self.url, max_size=8 * 1024 * 1024)
        self.closed.clear()
        self._reader = asyncio.create_task(self._read())
        MADE.add(self)
        return self

    async def _read(self) -> None:
        assert self.ws is not None
        try:
            async for raw in self.ws:
                frame = json.loads(raw)
                if frame.get("type") == "reply":
                    future = self._waiting.pop(frame.get("id"), None)
                    if future is not None and not future.done():
                        future.set_result(frame)
                    else:
                        self.unmatched_replies.append(frame)
                else:
                    if frame["type"] == "message.new":
                        self._keep(frame["data"])
                    self.pushes.put_nowait(frame)
        except websockets.ConnectionClosed:
            pass
        finally:
            self.closed.set()
            for future in self._waiting.values():
                if not future.done():
                    future.set_exception(ConnectionError("socket closed"))

    def _keep(self, message: dict[str, Any]) -> None:
        seen = self.inbox[message["conversation_id"]]
        if message["seq"] in seen:
            self.duplicates += 1
        seen[message["seq"]] = message

    async def send_raw(self, text: str) -> None:
        assert self.ws is not None
        await self.ws.send(text)

    async def frame(self, frame: dict[str, Any], timeout: float = 15) -> dict[str, Any]:
        """Send a whole frame (for bad-input tests) and return the reply carrying its id."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[frame.get("id")] = future  # type: ignore[index]
        try:
            await self.send_raw(json.dumps(frame))
        except BaseException:  # never sent: nobody will wait for its reply
            self._waiting.pop(frame.get("id"), None)  # type: ignore[arg-type]
            raise
        return await asyncio.wait_for(future, timeout)

    async def reply(self, type_: str, data: dict[str, Any] | None = None, timeout: float = 15) -> dict[str, Any]:
        return await self.frame({"type": type_, "id": f"r{next(self._ids)}", "data": data or {}}, timeout)

    async def call(self, type_: str, data: dict[str, Any] | None = None, timeout: float = 15) -> dict[str, Any]:
        """The reply's data, or ReplyError with its code."""
        reply = await self.reply(type_, data, timeout)
        if not reply["ok"]:
            raise ReplyError(reply)
        return reply["data"]

    async def next_push(self, type_: str, timeout: float = 10) -> dict[str, Any]:
        """The next push of this type (others received meanwhile are skipped)."""
        async def wait() -> dict[str, Any]:
            while True:
                push = await self.pushes.get()
                if push["type"] == type_:
                    return push["data"]

        return await asyncio.wait_for(wait(), timeout)

    async def next_unmatched_reply(self, timeout: float = 10) -> dict[str, Any]:
        """The oldest reply that answered no request of ours (a frame without a readable id),
        waiting for it to arrive."""
        await eventually(lambda: self.unmatched_replies, "a reply to a frame without an id", timeout)
        return self.unmatched_replies.pop(0)

    async def no_push(self, type_: str, within: float) -> bool:
        try:
            await self.next_push(type_, within)
        except asyncio.TimeoutError:
            return True
        return False

    # --- session -------------------------------------------------------------------------------
    async def register(self, username: str | None = None, password: str = PASSWORD, **extra: Any) -> dict[str, Any]:
        username = username or f"user_{secrets.token_hex(5)}"
        data = await self.call("auth.register", {"username": username, "password": password, **extra})
        self.user_id, self.username = data["user_id"], data["username"]
        return data

    async def login(self, device_id: str | None = None, password: str = PASSWORD) -> dict[str, Any]:
        data: dict[str, Any] = {"username": self.username, "password": password}
        if device_id is not None:
            data["device_id"] = device_id
        reply = await self.call("auth.login", data)
        self.token = reply["token"]
        return reply

    async def wait_synced(self, timeout: float = 30) -> int:
        return (await self.next_push("sync.done", timeout))["count"]

    async def ack_all(self) -> None:
        """Acknowledge, per conversation, everything up to the first gap.

        Sync starts just above the device's cursor, so the lowest seq this socket received is
        where its unbroken run begins.
        """
        for conversation_id, seen in self.inbox.items():
            seq = min(seen)
            while seq + 1 in seen:
                seq += 1
            await self.call("message.ack", {"conversation_id": conversation_id, "seq": seq})

    async def send_text(self, to_user: str, text: str, client_msg_id: str | None = None) -> dict[str, Any]:
        return await self.call(
            "message.send",
            {"to": {"user_id": to_user}, "client_msg_id": client_msg_id or secrets.token_hex(8), "text": text},
        )

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            await self._reader

    @property
    def is_open(self) -> bool:
        return self.ws is not None and not self.closed.is_set()

    def texts(self, conversation_id: str) -> list[str]:
        return [m.get("text") for _, m in sorted(self.inbox[conversation_id].items())]


async def new_user(port: int, device_id: str | None = None) -> Client:
    """A connected, registered, logged-in client that has finished its first sync."""
    client = await Client(port).connect()
    await client.register()
    await client.login(device_id)
    await client.wait_synced()
    return client


async def log_in_again(client: Client, port: int, device_id: str | None = None) -> Client:
    """The same user on a new socket (on any gateway), logged in again, optionally as another device."""
    again = await Client(port).connect()
    again.username, again.user_id = client.username, client.user_id
    await again.login(device_id)
    return again


async def befriend(a: Client, b: Client) -> None:
    await a.call("friends.request", {"user_id": b.user_id})
    await b.next_push("friend.request")
    await b.call("friends.accept", {"user_id": a.user_id})
    await a.next_push("friend.accepted")


async def http_post(port: int, path: str, body: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        if isinstance(body, (bytes, str)):
            return await http.post(path, content=body, headers={"content-type": "application/json"})
        return await http.post(path, json=body)
