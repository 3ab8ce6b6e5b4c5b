"""The tests' client: the project's client library (clients/python, `parley_client`), written from
PROTOCOL.md alone, with what tests want on top.

The library does the protocol: replies matched by id, messages deduplicated by
(conversation_id, seq), acks of each conversation's unbroken run, the session followed through
the `auth.*` replies. This layer keeps every message.new as it arrived in `inbox` (a duplicate
replaces the copy held), the replies that matched no request (`unmatched_replies`), raw frames
for bad-input tests (`frame`, `send_raw`), and every client in `MADE` for the leak check.
"""
import asyncio
import secrets
import weakref
from collections import defaultdict
from typing import Any

import httpx
from parley_client import ONCE, ParleyClient, ReplyError
from parley_client.models import Message, Reply
from parley_client.pushes import PushQueue
from websockets.asyncio.client import ClientConnection

from tests.support.waiting import eventually

PASSWORD = "correct horse battery"
# Every client made in this process, for the tests' leak check (tests/support/leaks.py).
MADE: "weakref.WeakSet[Client]" = weakref.WeakSet()

__all__ = ["MADE", "PASSWORD", "Client", "ReplyError", "befriend", "http_post", "log_in_again", "new_user", "send_texts"]


class Client:
    def __init__(self, port: int, headers: dict[str, str] | None = None):
        self.port = port
        self.url = f"ws://127.0.0.1:{port}/ws"
        self.session = ParleyClient(self.url, request_timeout=15, headers=headers)
        self.session.on_message = self._arrived
        self.unmatched_replies: list[Reply] = []
        self.session.on_unmatched_reply = self.unmatched_replies.append
        self._not_open = asyncio.Event()
        self._token: str | None = None
        # What the user sees: messages by conversation and seq, as they arrived.
        self.inbox: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)

    async def connect(self) -> "Client":
        await self.session.connect()
        MADE.add(self)
        return self

    def _arrived(self, message: Message, new: bool) -> None:
        self._keep(message)  # type: ignore[arg-type]  # a Message is the dict it arrived as

    def _keep(self, message: dict[str, Any]) -> None:
        self.inbox[message["conversation_id"]][message["seq"]] = message

    # --- what tests read ---------------------------------------------------------------------------
    @property
    def ws(self) -> ClientConnection | None:
        return self.session.connection.ws if self.session.connection is not None else None

    @property
    def closed(self) -> asyncio.Event:
        return self.session.connection.closed if self.session.connection is not None else self._not_open

    @property
    def is_open(self) -> bool:
        return self.session.is_open

    @property
    def pushes(self) -> PushQueue:
        assert self.session.pushes is not None
        return self.session.pushes

    @property
    def duplicates(self) -> int:
        return self.session.inbox.duplicates

    @property
    def user_id(self) -> str | None:
        return self.session.user_id

    @user_id.setter
    def user_id(self, value: str | None) -> None:
        self.session.user_id = value

    @property
    def username(self) -> str | None:
        return self.session.username

    @username.setter
    def username(self, value: str | None) -> None:
        self.session.username = value

    @property
    def token(self) -> str | None:
        """The session's token, or the last one it had (the library forgets it at auth.logout;
        tests go on to show that it is refused)."""
        self._token = self.session.token or self._token
        return self._token

    def texts(self, conversation_id: str) -> list[str]:
        return [m.get("text") for _, m in sorted(self.inbox[conversation_id].items())]

    # --- frames ------------------------------------------------------------------------------------
    async def send_raw(self, text: str | bytes) -> None:
        assert self.session.connection is not None
        await self.session.connection.send_text(text)

    async def frame(self, frame: dict[str, Any], timeout: float = 15) -> dict[str, Any]:
        """Send a whole frame (for bad-input tests) and return the reply carrying its id."""
        return dict(await self.session.send_frame(frame, timeout))

    async def reply(self, type_: str, data: dict[str, Any] | None = None, timeout: float = 15) -> dict[str, Any]:
        _ = self.token  # noted before an auth.logout forgets it
        return dict(await self.session.request(type_, data, timeout))

    async def call(self, type_: str, data: dict[str, Any] | None = None, timeout: float = 15) -> dict[str, Any]:
        """The reply's data, or ReplyError with its code."""
        _ = self.token
        return await self.session.call(type_, data, timeout)

    async def next_push(self, type_: str, timeout: float = 10) -> dict[str, Any]:
        """The next push of this type (others received meanwhile are skipped)."""
        return await self.session.next_push(type_, timeout)

    async def next_unmatched_reply(self, timeout: float = 10) -> dict[str, Any]:
        """The oldest reply that answered no request of ours (a frame without a readable id),
        waiting for it to arrive."""
        await eventually(lambda: self.unmatched_replies, "a reply to a frame without an id", timeout)
        return dict(self.unmatched_replies.pop(0))

    async def no_push(self, type_: str, within: float) -> bool:
        try:
            await self.next_push(type_, within)
        except TimeoutError:
            return True
        return False

    # --- session -------------------------------------------------------------------------------
    async def register(self, username: str | None = None, password: str = PASSWORD, **extra: Any) -> dict[str, Any]:
        username = username or f"user_{secrets.token_hex(5)}"
        return await self.call("auth.register", {"username": username, "password": password, **extra})

    async def login(self, device_id: str | None = None, password: str = PASSWORD) -> dict[str, Any]:
        return dict(await self.session.login(self.username or "", password, device_id))

    async def wait_synced(self, timeout: float = 30) -> int:
        return (await self.next_push("sync.done", timeout))["count"]

    async def ack_all(self) -> None:
        """Acknowledge, per conversation, everything up to the first gap (the library's rule)."""
        await self.session.ack()

    async def send_text(self, to_user: str, text: str, client_msg_id: str | None = None) -> dict[str, Any]:
        """One message.send (no retry: tests see what the server answered)."""
        return dict(await self.session.send({"user_id": to_user}, text, client_msg_id=client_msg_id, policy=ONCE))

    async def close(self) -> None:
        await self.session.close()


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


async def send_texts(client: Client, to_user: str, texts: list[str], window: int = 32) -> list[dict[str, Any]]:
    """message.send of each text, `window` at a time without waiting for each reply (as a fast app
    does; a socket's sends take seqs in the order sent, services/gateway/batching.py): the replies,
    in the order of `texts`. For tests that need many messages stored, not one round trip each."""
    replies: list[dict[str, Any]] = []
    for start in range(0, len(texts), window):
        replies += await asyncio.gather(*(client.send_text(to_user, text) for text in texts[start : start + window]))
    return replies


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
