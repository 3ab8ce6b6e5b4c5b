"""`Session`: one user's device over one socket at a time, the plumbing under `ParleyClient`.

Replies matched by id with timeouts (`Connection`); the session (user, token, device_id)
followed through every `auth.*` reply whoever sent it; `message.new` deduplicated by
(conversation_id, seq) (`Inbox`) before it reaches a hook or the push queue; requests tried
again by a `RetryPolicy` (`outbox`); and, with `reconnect=True`, a lost socket replaced by one
to the next gateway, `auth.resume`d (or logged in again) and synced before anything waiting
for a bound socket goes on.
"""
import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self, cast

from parley_client.connection import Connection, Gateway
from parley_client.errors import ConnectionLost, Offline, ParleyError, ReplyError, RequestTimeout
from parley_client.inbox import Inbox
from parley_client.models import LoginResult, Message, Push, RegisterResult, Reply, ResumeResult
from parley_client.outbox import Attempt, RetryPolicy, with_retries
from parley_client.pushes import PushQueue

DEFAULT_URL = "http://127.0.0.1:8000"
BINDING = frozenset({"auth.login", "auth.resume"})
REPLACED = 4009  # close code: the same device logged in on a newer socket, which holds it now


@dataclass
class Stats:
    binds: int = 0  # auth.login / auth.resume answered ok
    reconnects: int = 0  # sockets replaced and bound again after one was lost
    resume_refused: int = 0  # auth.resume answered `unauthorized` while reconnecting (then logged in again)
    acks_sent: int = 0
    ack_errors: int = 0
    close_codes: Counter[str] = field(default_factory=Counter)  # sockets closed by the server or the network
    connect_failures: Counter[str] = field(default_factory=Counter)  # reconnect tries, by error
    errors: Counter[str] = field(default_factory=Counter)  # "operation:code" of the client's own requests


class Session:
    """`urls`: one gateway or several (`reconnect=True` moves to the next when a socket is lost).

    Hooks, all optional and called as frames arrive: `on_message(message, new)` for every
    `message.new` (`new` False for a duplicate), `on_push(push)` for every other push and each
    new message, `on_unmatched_reply(reply)`, `on_close(code)` when the server or the network
    ends a socket. Pushes also go to the `pushes` queue (`keep_pushes`), read with
    `iter_pushes()`, `messages()` or `next_push(type)`; duplicates of `message.new` do not.
    """

    def __init__(self, urls: str | Sequence[str] = DEFAULT_URL, *, device_id: str | None = None,
                 reconnect: bool = False, request_timeout: float = 15.0, sync_timeout: float = 30.0,
                 ack_interval: float | None = None, send_policy: RetryPolicy | None = None,
                 keep_pushes: bool = True, max_pushes: int = 100_000, headers: Mapping[str, str] | None = None,
                 open_timeout: float = 10.0, ping_interval: float | None = 20.0, close_timeout: float = 5.0):
        self.gateways = [Gateway.parse(u) for u in ([urls] if isinstance(urls, str) else urls)]
        if not self.gateways:
            raise ValueError("no gateway URL")
        self.auto_reconnect = reconnect
        self.request_timeout = request_timeout
        self.sync_timeout = sync_timeout
        self.send_policy = send_policy or RetryPolicy(attempt_timeout=request_timeout)
        self.headers = dict(headers or {})
        self._socket_options: dict[str, Any] = {"open_timeout": open_timeout, "ping_interval": ping_interval,
                                                "close_timeout": close_timeout}
        self.connection: Connection | None = None
        self.inbox = Inbox()
        self.stats = Stats()
        self.user_id: str | None = None
        self.username: str | None = None
        self.token: str | None = None
        self.device_id = device_id
        self.ready = asyncio.Event()  # bound, and the bind's sync is done
        self.syncing = False  # between a bind and its sync.done
        self.on_message: Callable[[Message, bool], None] | None = None
        self.on_push: Callable[[Push], None] | None = None
        self.on_unmatched_reply: Callable[[Reply], None] | None = None
        self.on_close: Callable[[int], None] | None = None
        self.pushes = PushQueue(max_pushes) if keep_pushes else None
        self.outbox: dict[str, dict[str, Any]] = {}  # client_msg_id -> message.send data, while unanswered
        self._expected: dict[str, list[asyncio.Future[dict[str, Any]]]] = {}
        self._password: str | None = None  # kept only with reconnect=True: to log in again if resume is refused
        self._at = 0
        self._lost = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []  # background work, cancelled by close()
        self._keeper: asyncio.Task[None] | None = None
        self._closing = False
        self.ack_interval = ack_interval  # ParleyClient acknowledges this often once bound

    # --- the socket ------------------------------------------------------------------------------
    @property
    def gateway(self) -> Gateway:
        return self.gateways[self._at]

    @property
    def is_open(self) -> bool:
        return self.connection is not None and self.connection.is_open

    async def connect(self) -> Self:
        """Open a socket to the first gateway that answers (`GatewayUnreachable` if none does)."""
        self._closing = False
        if self.pushes is not None:
            self.pushes.reopen()
        failure: Exception | None = None
        for k in range(len(self.gateways)):
            try:
                await self._open((self._at + k) % len(self.gateways))
                return self
            except ParleyError as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def _open(self, index: int) -> None:
        await self._drop_connection()
        self.connection = await Connection.open(
            self.gateways[index].ws_url, self._on_push, headers=self.headers, on_unmatched=self._on_unmatched,
            on_close=self._on_close, **self._socket_options)
        self._at = index

    async def _drop_connection(self) -> None:
        connection = self.connection
        if connection is not None and connection.is_open:
            with suppress(Exception):
                await asyncio.wait_for(connection.close(), self._socket_options["close_timeout"] + 1)

    def _on_unmatched(self, reply: Reply) -> None:
        if self.on_unmatched_reply is not None:
            self.on_unmatched_reply(reply)

    def _on_close(self, connection: Connection) -> None:
        if connection is not self.connection:
            return
        self.ready.clear()
        self.syncing = False
        code = connection.close_code or 1006
        if not (self._closing or connection.closing):
            self.stats.close_codes[str(code)] += 1
            if self.on_close is not None:
                self.on_close(code)
        if self._closing:
            return
        if self.auto_reconnect and self.token and code != REPLACED:
            self._lost.set()
        elif self.pushes is not None:
            self.pushes.end(ConnectionLost(f"socket closed ({code})", code))

    # --- requests --------------------------------------------------------------------------------
    async def request(self, kind: str, data: Mapping[str, Any] | None = None, timeout: float | None = None, *,
                      wait_ready: float | None = None) -> Reply:
        """The reply frame to one request, ok or not. `wait_ready`: first wait up to that many
        seconds for a bound, synced socket (`Offline` if none comes)."""
        if wait_ready is not None and not self.ready.is_set():
            try:
                async with asyncio.timeout(wait_ready):
                    await self.ready.wait()
            except TimeoutError:
                raise Offline(f"no bound socket within {wait_ready} s") from None
        connection = self.connection
        if connection is None:
            raise ConnectionLost("not connected")
        binding = kind in BINDING
        if binding:
            self.ready.clear()
            self.syncing = True
            self.inbox.begin_sync()
        try:
            reply = await connection.request(kind, data, self.request_timeout if timeout is None else timeout)
        except BaseException:
            self.syncing = self.syncing and not binding
            raise
        if reply["ok"]:
            self._note(kind, data or {}, reply.get("data") or {})
        elif binding:
            self.syncing = False
        return reply

    async def send_frame(self, frame: Mapping[str, Any], timeout: float | None = None) -> Reply:
        """A whole frame as given (any id, any fields: for testing servers); the reply with its id."""
        if self.connection is None:
            raise ConnectionLost("not connected")
        return await self.connection.send_frame(frame, self.request_timeout if timeout is None else timeout)

    async def call(self, kind: str, data: Mapping[str, Any] | None = None, timeout: float | None = None, *,
                   wait_ready: float | None = None, retry: RetryPolicy | None = None,
                   on_attempt: Callable[[Attempt], None] | None = None) -> dict[str, Any]:
        """The reply's data, or `ReplyError`. With `retry`, tried again as the policy says (only
        for requests that are safe to repeat: reads, acks, a send with its client_msg_id)."""
        if retry is None:
            reply = await self.request(kind, data, timeout, wait_ready=wait_ready)
            if not reply["ok"]:
                raise ReplyError.from_reply(reply)
            return reply.get("data") or {}

        async def attempt(reply_timeout: float, bound_wait: float) -> Reply:
            return await self.request(kind, data, reply_timeout, wait_ready=bound_wait if self.auto_reconnect else None)

        return await with_retries(attempt, retry, self.auto_reconnect, on_attempt)

    def _note(self, kind: str, data: Mapping[str, Any], result: dict[str, Any]) -> None:
        """Follow the session through the replies that change it."""
        if kind == "message.send":
            self.inbox.hold_own(result["conversation_id"], result["seq"])
        elif kind in BINDING:
            self.user_id = result["user_id"]
            self.token = result.get("token") or data.get("token") or self.token
            self.device_id = data.get("device_id") or self.device_id
            if kind == "auth.login":
                self.username = str(data.get("username", "")).lower() or self.username
            self.stats.binds += 1
            self._on_bound()
        elif kind == "auth.register":
            self.user_id, self.username = result["user_id"], result["username"]
        elif kind == "auth.logout":
            self.token = None
            self._password = None
            self.ready.clear()

    def _on_bound(self) -> None:
        """After each bind: keep the socket bound from now on, if asked."""
        if self.auto_reconnect and self._keeper is None:
            self._keeper = asyncio.create_task(self._keep_bound())
            self._tasks.append(self._keeper)

    # --- pushes ----------------------------------------------------------------------------------
    def _on_push(self, push: Push) -> None:
        kind = push.get("type")
        data: Any = push.get("data") or {}
        if kind == "message.new":
            new = self.inbox.keep(data["conversation_id"], data["seq"], self.syncing)
            if self.on_message is not None:
                self.on_message(data, new)
            if not new:
                return
        elif kind == "sync.done" and self.syncing:
            self.syncing = False
            self.inbox.end_sync()
            self.ready.set()
        self._deliver(push)

    def _deliver(self, push: Push) -> None:
        """Hand a push on (ParleyClient first decrypts, when end-to-end encryption is on)."""
        self._deliver_now(push)

    def _deliver_now(self, push: Push) -> None:
        """To the `on_push` hook, the futures of `expect`, the queue."""
        kind = push.get("type")
        data: Any = push.get("data") or {}
        if self.on_push is not None:
            self.on_push(push)
        if self._expected:
            for future in self._expected.pop(str(kind), ()):
                if not future.done():
                    future.set_result(data)
        if self.pushes is not None:
            self.pushes.deliver(push)

    def expect(self, kind: str) -> "asyncio.Future[dict[str, Any]]":
        """A future for the data of the next push of `kind`: make it before the request that causes it."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._expected.setdefault(kind, []).append(future)
        return future

    def _queue(self) -> PushQueue:
        if self.pushes is None:
            raise ParleyError("this client keeps no pushes (keep_pushes=False): use on_push or expect()")
        return self.pushes

    async def next_push(self, kind: str, timeout: float = 10.0) -> dict[str, Any]:
        """The data of the next queued push of `kind`, skipping (and consuming) others; TimeoutError."""
        return await self._queue().next(kind, timeout)

    def iter_pushes(self) -> AsyncIterator[Push]:
        """Every push as it comes; ends when the client is closed, raises `ConnectionLost` when
        the socket is gone for good (no reconnect, or the session ended)."""
        return self._queue().stream()

    async def messages(self) -> AsyncIterator[Message]:
        """Each new message once (from syncs and live), consuming the other pushes."""
        async for push in self.iter_pushes():
            if push["type"] == "message.new":
                yield cast(Message, push["data"])

    # --- session ---------------------------------------------------------------------------------
    async def register(self, username: str, password: str, display_name: str | None = None) -> RegisterResult:
        """A new account (the socket stays unbound: `login` follows)."""
        if not self.is_open:
            await self.connect()
        data = {"username": username, "password": password} | ({"display_name": display_name} if display_name else {})
        return cast(RegisterResult, await self.call("auth.register", data))

    async def login(self, username: str, password: str, device_id: str | None = None) -> LoginResult:
        """Bind the socket (connecting first if needed); the sync follows (`wait_synced`)."""
        if not self.is_open:
            await self.connect()
        data = {"username": username, "password": password}
        device_id = device_id or self.device_id
        if device_id is not None:
            data["device_id"] = device_id
        result = cast(LoginResult, await self.call("auth.login", data))
        if self.auto_reconnect:
            self._password = password
        return result

    async def resume(self, token: str | None = None, device_id: str | None = None) -> ResumeResult:
        """Bind the socket with a token (this client's by default)."""
        if not self.is_open:
            await self.connect()
        data = {"token": token or self.token or ""}
        device_id = device_id or self.device_id
        if device_id is not None:
            data["device_id"] = device_id
        return cast(ResumeResult, await self.call("auth.resume", data))

    async def logout(self) -> None:
        await self.call("auth.logout")

    async def wait_synced(self, timeout: float | None = None) -> None:
        """Until the bind's `sync.done` (`RequestTimeout`; `ConnectionLost` if the socket goes)."""
        connection = self.connection
        if connection is None:
            raise ConnectionLost("not connected")
        ready, gone = asyncio.ensure_future(self.ready.wait()), asyncio.ensure_future(connection.closed.wait())
        try:
            await asyncio.wait({ready, gone}, timeout=self.sync_timeout if timeout is None else timeout,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
            gone.cancel()
        if not self.ready.is_set():
            if gone.done() and not gone.cancelled():
                raise ConnectionLost("socket closed during the sync", connection.close_code)
            raise RequestTimeout("no sync.done in time")

    async def _keep_bound(self) -> None:
        """Whenever the socket is lost: the next gateway, auth.resume (log in again if the token
        is refused and the password is known), the sync; with backoff until one works."""
        while not self._closing:
            await self._lost.wait()
            self._lost.clear()
            if self.is_open and self.ready.is_set():
                continue  # already bound again (a reconnect asked for while one was under way)
            backoff = 0.1
            while not self._closing and self.token:
                try:
                    await self._open((self._at + 1) % len(self.gateways))
                    await self._rebind()
                except Exception as exc:  # any failure: the next gateway, after a pause
                    self.stats.connect_failures[exc.code if isinstance(exc, ReplyError) else type(exc).__name__] += 1
                    await self._drop_connection()
                    self._lost.clear()
                    if isinstance(exc, ReplyError) and exc.code == "unauthorized":
                        self.token = None  # the session is over: log in again to go on
                        if self.pushes is not None:
                            self.pushes.end(exc)
                        return
                    await asyncio.sleep(backoff)
                    backoff = min(2.0, backoff * 2)
                    continue
                self.stats.reconnects += 1
                break

    async def _rebind(self) -> None:
        try:
            await self.resume()
        except ReplyError as exc:
            if exc.code != "unauthorized" or self._password is None or self.username is None:
                raise
            self.stats.resume_refused += 1
            await self.login(self.username, self._password)
        await self.wait_synced()

    async def reconnect(self, timeout: float = 30.0) -> None:
        """Close the socket ourselves and wait for its replacement to be bound and synced."""
        if not (self.auto_reconnect and self.token):
            raise ParleyError("reconnect needs reconnect=True and a session")
        if self.connection is not None and self.connection.is_open:
            await self.connection.close()
        else:
            self._lost.set()
        try:
            async with asyncio.timeout(timeout):
                await self.ready.wait()
        except TimeoutError:
            raise RequestTimeout(f"not bound again within {timeout} s") from None

    # --- the end ---------------------------------------------------------------------------------
    async def close(self) -> None:
        """Stop the background work (reconnecting, acking), close the socket. `connect` may follow."""
        self._closing = True
        tasks, self._tasks, self._keeper = self._tasks, [], None
        for task in tasks:
            task.cancel()
            with suppress(asyncio.CancelledError, Exception):
                await task
        connection = self.connection
        if connection is not None and connection.is_open:
            await connection.close()
        if self.pushes is not None:
            self.pushes.end()

    async def __aenter__(self) -> Self:
        if not self.is_open:
            await self.connect()
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()
