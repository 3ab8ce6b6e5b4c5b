"""One valid request answered: its handler found in one table by operation name.

The gateway answers `ping`, `auth.resume` and `calls.ice_servers` itself and binds or unbinds the socket around
`auth.login` / `auth.logout`; `message.send` and `message.ack` go to chat in batches; every
other operation is relayed to its service as one RPC.

`message.send` and `message.ack` (most frames) are answered without a task of their own
(`answer_soon`): their batch's future answers the frame in a callback.
"""
import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import Counter

from services.gateway.chat_batches import ChatBatches
from services.gateway.connections import Connection
from services.gateway.frames import ParsedFrame, reply_error, reply_ok
from services.gateway.ice_servers import IceServers
from services.gateway.identity import TokenCheck, caller_for
from services.gateway.metrics import FRAMES
from services.gateway.sessions import Sessions
from shared.broker import RpcClient, model_json
from shared.contracts import auth
from shared.contracts.base import iso_from_timestamp
from shared.contracts.errors import ParleyError
from shared.contracts.operations import PUSH_DEVICE_LOGGED_OUT
from shared.contracts.push import PushUnsubscribe
from shared.contracts.wire import Caller
from shared.logs import log_event, request_id_var, user_id_var
from shared.outages import is_outage

log = logging.getLogger("parley.gateway")

# The reply's data, or None when the handler has already replied (binding replies before the sync).
FrameHandler = Callable[[Connection, ParsedFrame[Any]], Awaitable[dict[str, Any] | None]]
# The future of the reply's data, the frame queued (batched operations).
SoonHandler = Callable[[Connection, ParsedFrame[Any]], "asyncio.Future[dict[str, Any]]"]


class Dispatcher:
    def __init__(
        self,
        gateway_id: str,
        rpc: RpcClient,
        tokens: TokenCheck,
        sessions: Sessions,
        batches: ChatBatches,
        ice_servers: IceServers,
    ):
        self.gateway_id = gateway_id
        self.rpc = rpc
        self.tokens = tokens
        self.sessions = sessions
        self.ice_servers = ice_servers
        # Every operation not named here is relayed to its service (_relay).
        self.handlers: dict[str, FrameHandler] = {
            "ping": self._ping,
            "auth.login": self._login,
            "auth.resume": self._resume,
            "auth.logout": self._logout,
            "message.send": batches.send,
            "message.ack": batches.ack,
            "calls.ice_servers": self._ice_servers,
        }
        # Answered by a callback on their batch's future (answer_soon), not by a task.
        self.soon_handlers: dict[str, SoonHandler] = {
            "message.send": batches.send_soon,
            "message.ack": batches.ack_soon,
        }
        self._answered_ok: dict[str, Counter] = {}  # FRAMES' (operation, "ok") children

    async def answer(self, conn: Connection, frame: ParsedFrame[Any]) -> None:
        """Run the frame's handler and send its reply; every failure becomes the reply's error."""
        request_id_var.set(frame.id)
        user_id_var.set(conn.session.user_id if conn.session else None)
        name = frame.operation.name
        try:
            data = await self.handlers.get(name, self._relay)(conn, frame)
            if data is not None:
                conn.send(reply_ok(frame.id, data))
            self._ok(name).inc()
        except Exception as exc:
            self._answer_failure(conn, frame.id, name, exc)

    def answer_soon(self, conn: Connection, frame: ParsedFrame[Any]) -> "asyncio.Future[dict[str, Any]] | None":
        """A batched operation's frame queued, to be answered when its future is done (cancel the
        future: no answer); None for every other operation (`answer` it)."""
        start = self.soon_handlers.get(frame.operation.name)
        if start is None:
            return None
        future = start(conn, frame)
        future.add_done_callback(lambda done: self._answer_done(conn, frame.id, frame.operation.name, done))
        return future

    def _answer_done(self, conn: Connection, frame_id: str, name: str, done: "asyncio.Future[dict[str, Any]]") -> None:
        if done.cancelled():
            return
        exc = done.exception()
        if exc is None:
            conn.send(reply_ok(frame_id, done.result()))
            self._ok(name).inc()
        elif isinstance(exc, Exception):
            self._answer_failure(conn, frame_id, name, exc)
        else:
            raise exc

    def _ok(self, name: str) -> Counter:
        counter = self._answered_ok.get(name)
        if counter is None:
            counter = self._answered_ok[name] = FRAMES.labels(name, "ok")
        return counter

    def _answer_failure(self, conn: Connection, frame_id: str, name: str, exc: Exception) -> None:
        """The frame's error reply: the ParleyError raised, `unavailable` for an outage, else `internal`."""
        if isinstance(exc, ParleyError):
            FRAMES.labels(name, exc.code.value).inc()
            conn.send(reply_error(frame_id, exc))
            return
        request_id_var.set(frame_id)
        user_id_var.set(conn.session.user_id if conn.session else None)
        if is_outage(exc):  # Redis or the broker away: the protocol's promise is "retry"
            error = ParleyError.unavailable("a backend is unavailable; retry")
            log_event(log, "frame.unavailable", logging.WARNING, operation=name, error=repr(exc))
        else:
            error = ParleyError.internal("internal error")
            log_event(log, "frame.failed", logging.ERROR, exc=exc, operation=name, error=repr(exc))
        FRAMES.labels(name, error.code.value).inc()
        conn.send(reply_error(frame_id, error))

    def _caller(self, conn: Connection, request_id: str) -> Caller:
        return caller_for(self.gateway_id, request_id, conn.session, conn_id=conn.conn_id, address=conn.address)

    async def _relay(self, conn: Connection, frame: ParsedFrame[Any]) -> dict[str, Any]:
        """The service's reply data, passed on as it came: building its model here only to dump
        it again would cost every relayed reply (a history page of 200 messages) twice."""
        data = model_json(frame.request, exclude_none=True)
        return await self.rpc.exchange(frame.operation, self._caller(conn, frame.id), data)

    async def _ping(self, conn: Connection, frame: ParsedFrame[Any]) -> dict[str, Any]:
        return {}

    async def _login(self, conn: Connection, frame: ParsedFrame[auth.Login]) -> None:
        login: auth.LoginReply = await self.rpc.call(frame.operation, frame.request, self._caller(conn, frame.id))
        claims = self.tokens.codec.verify(login.token)
        await self.sessions.bind(conn, claims, claims.device_id, frame.id, login.model_dump(mode="json"))

    async def _resume(self, conn: Connection, frame: ParsedFrame[auth.Resume]) -> None:
        claims = await self.tokens.verify(frame.request.token)
        device_id = frame.request.device_id or claims.device_id
        reply = auth.ResumeReply(user_id=claims.user_id, expires_at=iso_from_timestamp(claims.expires_at))
        await self.sessions.bind(conn, claims, device_id, frame.id, reply.model_dump())

    async def _logout(self, conn: Connection, frame: ParsedFrame[auth.Logout]) -> dict[str, Any]:
        caller = self._caller(conn, frame.id)
        await self.rpc.call(frame.operation, frame.request, caller)
        await self.sessions.forget(conn)
        await self._forget_push_subscription(caller)
        return {}

    async def _forget_push_subscription(self, caller: Caller) -> None:
        """A logged-out device hears nothing more while away: the push service deletes its
        subscription (one-way, durable until a push replica takes it; auth publishes nothing at
        logout). Best effort: without a push service there is nothing to forget."""
        try:
            await self.rpc.broker.send_command(PUSH_DEVICE_LOGGED_OUT, caller, PushUnsubscribe())
        except Exception as exc:
            log_event(log, "logout.push_forget_failed", logging.WARNING, error=repr(exc))

    async def _ice_servers(self, conn: Connection, frame: ParsedFrame[Any]) -> dict[str, Any]:
        if conn.session is None:  # parse_frame refuses it first (needs_session); kept for the type
            raise ParleyError.unauthorized()
        return self.ice_servers.for_user(conn.session.user_id).model_dump(mode="json")
