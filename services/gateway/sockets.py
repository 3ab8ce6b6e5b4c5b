"""A socket's life: the upgrade admitted or refused, then its frames read, checked and handed
to the dispatcher, at most MAX_IN_FLIGHT_PER_SOCKET at a time."""
import asyncio
import logging
from typing import Any

from starlette.types import Message
from starlette.websockets import WebSocket, WebSocketDisconnect

from services.gateway.admission import Admission, client_address, origin_allowed
from services.gateway.connections import CLOSE_RESTARTING, Connection, Hub
from services.gateway.dispatch import Dispatcher
from services.gateway.frames import FrameError, ParsedFrame, error_response, parse_frame, reply_error
from services.gateway.metrics import FRAMES, SOCKETS_REFUSED
from services.gateway.send_rate import SendRate
from services.gateway.sessions import Sessions
from shared.contracts.errors import ErrorCode, ParleyError
from shared.contracts.operations import OPERATIONS
from shared.ids import new_id
from shared.logs import log_event
from shared.settings import Settings

log = logging.getLogger("parley.gateway")

# Requests of one socket handled at once; past this the gateway stops reading that socket.
MAX_IN_FLIGHT_PER_SOCKET = 64
# They change what later frames may do: each is answered before the socket is read on.
SESSION_OPERATIONS = frozenset({"auth.login", "auth.resume", "auth.logout"})


class SocketServer:
    def __init__(
        self, settings: Settings, hub: Hub, admission: Admission, sessions: Sessions, send_rate: SendRate,
        dispatcher: Dispatcher,
    ):
        self.settings = settings
        self.hub = hub
        self.admission = admission
        self.sessions = sessions
        self.send_rate = send_rate
        self.dispatcher = dispatcher
        # Every socket's requests being answered (tasks, or batched frames' futures), so that a
        # drain can wait for them.
        self.requests: set[asyncio.Future[Any]] = set()
        # Set by Gateway.drain: new sockets are refused, new frames answered `unavailable`.
        self.draining = False

    async def serve_socket(self, websocket: WebSocket) -> None:
        if self.draining:
            await self._refuse(websocket, ParleyError.unavailable("this gateway is shutting down"), CLOSE_RESTARTING)
            return
        address = client_address(websocket.client, websocket.headers, self.settings.trust_forwarded_for)
        if not origin_allowed(websocket.headers.get("origin"), websocket.headers.get("host"), self.settings.allowed_origins):
            SOCKETS_REFUSED.labels("origin").inc()
            log_event(log, "socket.refused", logging.WARNING, reason="origin", origin=websocket.headers.get("origin"))
            await self._refuse(websocket, ParleyError.forbidden("this Origin may not open a socket here"), 1008)
            return
        if refusal := self.admission.refusal(address):
            SOCKETS_REFUSED.labels("cap").inc()
            log_event(log, "socket.refused", logging.WARNING, reason=refusal, address=address)
            await self._refuse(websocket, ParleyError.rate_limited(refusal), 1008)
            return
        await websocket.accept()
        conn = Connection(new_id("c"), websocket, self.settings.outbound_queue_max_bytes, address)
        conn.unbound_since = asyncio.get_running_loop().time()
        self.admission.opened(address)
        self.hub.add(conn)
        # Requests being answered; the set's size bounds them (MAX_IN_FLIGHT_PER_SOCKET).
        pending: set[asyncio.Future[Any]] = set()
        try:
            while not conn.closed and await self._take_frame(conn, await websocket.receive(), pending):
                pass
        except WebSocketDisconnect:
            pass
        finally:
            for task in pending:
                task.cancel()
            await self.sessions.forget(conn)
            self.admission.closed(conn.address, None)
            self.hub.remove(conn)
            conn.close(1000)
            await conn.wait_written()

    async def _refuse(self, websocket: WebSocket, error: ParleyError, close_code: int) -> None:
        """Refuse the upgrade with an HTTP status and the protocol's error body (a close code where
        the server cannot answer the upgrade with a status)."""
        if "websocket.http.response" in websocket.scope.get("extensions", {}):
            await websocket.send_denial_response(error_response(error))
        else:
            await websocket.close(close_code)

    def _spawn(self, conn: Connection, frame: ParsedFrame[Any]) -> asyncio.Task[None]:
        task = asyncio.create_task(self.dispatcher.answer(conn, frame))
        self.requests.add(task)
        task.add_done_callback(self.requests.discard)
        return task

    async def _take_frame(self, conn: Connection, message: Message, pending: set[asyncio.Future[Any]]) -> bool:
        """Handle one received message; False when the socket is gone.

        A function of its own so that nothing of the last frame stays referenced while the
        socket waits for the next one (idle sockets are most of the gateway's memory).
        """
        if message["type"] == "websocket.disconnect":
            return False
        frame = await self._read_frame(conn, message.get("text"))
        if frame is None:
            return True
        if self.draining:
            FRAMES.labels(frame.operation.name, ErrorCode.UNAVAILABLE.value).inc()
            conn.send(reply_error(frame.id, ParleyError.unavailable("this gateway is shutting down; reconnect")))
            return True
        if frame.operation.name in SESSION_OPERATIONS:
            await self._spawn(conn, frame)
            return True
        while len(pending) >= MAX_IN_FLIGHT_PER_SOCKET:
            await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        answer: asyncio.Future[Any] | None = self.dispatcher.answer_soon(conn, frame)
        if answer is None:
            answer = self._spawn(conn, frame)
        else:
            self.requests.add(answer)
            answer.add_done_callback(self.requests.discard)
        pending.add(answer)
        answer.add_done_callback(pending.discard)
        return True

    async def _read_frame(self, conn: Connection, text: str | None) -> ParsedFrame[Any] | None:
        """The frame's request, or None after answering why it is refused."""
        if text is None:
            conn.send(reply_error(None, ParleyError.bad_request("frames must be text (JSON)")))
            return None
        session = conn.session
        try:
            frame = parse_frame(text, max_bytes=self.settings.max_frame_bytes, bound=session is not None)
        except FrameError as exc:
            error: ParleyError = exc
            asked = OPERATIONS.get(exc.operation or "")
            if asked is not None and asked.rate_limited and session is not None:
                # Every message.send counts against the rate, its fields valid or not; past the
                # rate it is answered rate_limited, else with what is wrong with its fields.
                error = await self.send_rate.exceeded(session.user_id) or exc
            FRAMES.labels("invalid", error.code.value).inc()
            conn.send(reply_error(exc.frame_id, error))
            return None
        # Counted here, as the socket's frames arrive and before anything reaches chat.
        limited = None
        if frame.operation.rate_limited and session is not None:
            limited = await self.send_rate.exceeded(session.user_id)
        if limited is not None:
            FRAMES.labels(frame.operation.name, limited.code.value).inc()
            conn.send(reply_error(frame.id, limited))
            return None
        return frame
