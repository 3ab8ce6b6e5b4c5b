"""The gateway's work: sessions on sockets, relaying commands and pushes, presence upkeep."""
import asyncio
import logging
from contextlib import suppress
from typing import Any

import aio_pika
import redis.asyncio as aioredis
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from redis.exceptions import RedisError
from starlette.types import Message
from starlette.websockets import WebSocket, WebSocketDisconnect

from services.gateway.admission import Admission, client_address, origin_allowed
from services.gateway.batching import Batcher
from services.gateway.connections import (
    CLOSE_REPLACED,
    CLOSE_RESTARTING,
    Connection,
    Hub,
    Session,
)
from services.gateway.frames import FrameError, ParsedFrame, parse_frame, reply_error, reply_ok
from services.gateway.metrics import CONNECTIONS, FRAMES, SOCKETS_REFUSED
from services.gateway.upkeep import Upkeep
from shared.broker import DELIVERIES, Broker, RpcClient
from shared.contracts import auth
from shared.contracts.batches import AckBatch, AckItem, Deliveries, ItemResult, SendBatch, SendItem
from shared.contracts.base import iso_from_timestamp
from shared.contracts.chat import DeviceBound, PresenceChanged
from shared.contracts.errors import ErrorCode, ParleyError
from shared.contracts.operations import (
    AUTH_TOKENS_REVOKED,
    CHAT_MESSAGES_ACK,
    CHAT_MESSAGES_SEND,
    CHAT_SYNC,
    Operation,
    ReplyT,
)
from shared.contracts.wire import Caller, Delivery
from shared.ids import new_id
from shared.logs import log_event, request_id_var, user_id_var
from shared.outages import is_outage
from shared.presence import Presence
from shared.ratelimit import CoalescedTakes, FailOpen, TokenBucket
from shared.settings import Settings
from shared.tokens import RevocationCheck, Revocations, TokenClaims, TokenCodec

log = logging.getLogger("parley.gateway")

# Requests of one socket handled at once; past this the gateway stops reading that socket.
MAX_IN_FLIGHT_PER_SOCKET = 64
SESSION_OPERATIONS = frozenset({"auth.login", "auth.resume", "auth.logout"})
# How long a message.send waits on the rate limiter in Redis before going through unchecked.
RATE_LIMIT_TIMEOUT_SECONDS = 0.5
# Draining: how long the close frames may take to be written, and presence removals at once.
CLOSE_WRITE_SECONDS = 2.0
FORGET_BATCH = 200


class Gateway:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.gateway_id = settings.gateway_instance_id or new_id("gw")
        self.hub = Hub()
        self.admission = Admission(settings)
        self.upkeep = Upkeep(self)
        # message.send in flight, by (user, client_msg_id): a retry joins the first (_send_once).
        self._sends_in_flight: dict[tuple[str, str], asyncio.Future[dict[str, Any]]] = {}
        # message.send and message.ack travel to chat many to a command (batching.py).
        self.sends: Batcher[SendItem] = Batcher(
            "message.send", self._send_batch, max_items=settings.batch_max_items,
            max_in_flight=settings.batches_in_flight, one_per_socket=True,
        )
        self.acks: Batcher[AckItem] = Batcher(
            "message.ack", self._ack_batch, max_items=settings.batch_max_items,
            max_in_flight=settings.batches_in_flight, one_per_socket=False,
        )
        # Read from the hub, not counted beside it: the figure is what the gateway really holds.
        CONNECTIONS.set_function(lambda: len(self.hub.by_conn))
        self.tokens = TokenCodec(settings.jwt_secret, settings.token_ttl_seconds)
        self.broker = Broker(settings)
        self.redis: aioredis.Redis | None = None
        self.rpc: RpcClient | None = None
        self.presence: Presence | None = None
        self.revocations: RevocationCheck | None = None
        self.send_limit: CoalescedTakes | None = None
        self._send_limit_outage = FailOpen("ratelimit", log)  # logged once per Redis outage, not per send
        self._tasks: list[asyncio.Task[Any]] = []
        # Every socket's requests being answered, so that a drain can wait for them.
        self._requests: set[asyncio.Task[None]] = set()
        self.draining = False

    # --- lifecycle ---------------------------------------------------------------------------
    async def start(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self.presence = Presence(redis, self.settings.namespace, self.settings.presence_ttl_seconds)
        # One Redis call per turn of the loop for all the sockets' sends, not one per send.
        self.send_limit = CoalescedTakes(TokenBucket(
            redis, self.settings.namespace, "send", self.settings.send_rate_per_second, self.settings.send_burst
        ))
        # Redis's cache of revocations while it is known complete, else auth (from MongoDB).
        self.revocations = RevocationCheck(
            Revocations(redis, self.settings.namespace),
            ask=self._ask_revoked,
        )
        await self.broker.connect()
        self.rpc = await RpcClient(self.broker, self.gateway_id).start()
        channel = await self.broker.channel(prefetch=2000)
        exchange = await channel.declare_exchange(self.broker.names.deliver, aio_pika.ExchangeType.DIRECT, durable=True)
        queue = await channel.declare_queue(self.broker.names.deliver_queue(self.gateway_id), exclusive=True)
        await queue.bind(exchange, self.gateway_id)
        # chat's "pushes were lost" reports come on the same queue (Deliverer._report_lost).
        await queue.bind(self.broker.names.events, "deliveries.lost")
        await queue.consume(self._on_delivery, no_ack=True)
        self._tasks = self.upkeep.start()
        log_event(
            log, "gateway.started", gateway_id=self.gateway_id,
            url=f"http://{self.settings.gateway_host}:{self.settings.gateway_port}",
        )

    async def _ask_revoked(self, token_ids: list[str]) -> auth.TokensRevokedReply:
        return await self.call(AUTH_TOKENS_REVOKED, None, auth.TokensRevoked(token_ids=token_ids))

    async def drain(self) -> None:
        """SIGTERM, while the port is still open (services/gateway/main.py calls it first).

        At once: /readyz answers 503 and new sockets are refused, so a load balancer sends new
        clients elsewhere; frames arriving from here on are answered `unavailable`. The requests
        already in flight are answered (message.send is idempotent by client_msg_id, so one cut
        off anyway is safely sent again), then every socket is closed with 1012 and its presence
        removed: clients reconnect to another gateway and sync what they missed. The port stays
        open, refusing, until `gateway_drain_seconds` have passed since the signal.
        """
        if self.draining:
            return
        self.draining = True
        loop = asyncio.get_running_loop()
        started = loop.time()
        log_event(
            log, "gateway.draining", gateway_id=self.gateway_id, sockets=len(self.hub.by_conn),
            requests=len(self._requests),
        )
        unanswered = 0
        if self._requests:
            _, still = await asyncio.wait(set(self._requests), timeout=self.settings.rpc_timeout_seconds + 1)
            unanswered = len(still)
        conns = list(self.hub.by_conn.values())
        for conn in conns:
            conn.close(CLOSE_RESTARTING)
        # Presence now, not when each client answers the close: one that never does would
        # otherwise stay "online" here until its entry expires.
        for i in range(0, len(conns), FORGET_BATCH):
            await asyncio.gather(*(self.forget(c) for c in conns[i : i + FORGET_BATCH]))
        writers = [c.writer for c in conns if c.writer is not None]
        if writers:
            await asyncio.wait(writers, timeout=CLOSE_WRITE_SECONDS)
        log_event(
            log, "gateway.drained", gateway_id=self.gateway_id, sockets=len(conns), unanswered=unanswered,
            ms=round((loop.time() - started) * 1000),
        )
        await asyncio.sleep(max(0.0, self.settings.gateway_drain_seconds - (loop.time() - started)))

    async def stop(self) -> None:
        """Close what is left (normally drained already: nothing), then the connections."""
        for task in self._tasks:
            task.cancel()
        for conn in list(self.hub.by_conn.values()):
            conn.close(CLOSE_RESTARTING)
            await self.forget(conn)
        await self.broker.close()

    async def _on_delivery(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        if message.exchange == self.broker.names.events:  # deliveries.lost: resync, on the next tick
            self.upkeep.resync_reason = "chat could not push"
            return
        try:
            if message.type == DELIVERIES:
                for delivery in Deliveries.model_validate_json(message.body).items:
                    self.hub.dispatch(delivery)
            else:
                self.hub.dispatch(Delivery.model_validate_json(message.body))
        except ValidationError as exc:
            log_event(log, "delivery.malformed", logging.ERROR, error=str(exc))

    # --- a socket's life ---------------------------------------------------------------------
    async def serve_socket(self, websocket: WebSocket) -> None:
        if self.draining:
            await self._refuse(websocket, 503, ErrorCode.UNAVAILABLE, "this gateway is shutting down", CLOSE_RESTARTING)
            return
        address = client_address(websocket.client, websocket.headers, self.settings.trust_forwarded_for)
        if not origin_allowed(websocket.headers.get("origin"), websocket.headers.get("host"), self.settings.allowed_origins):
            SOCKETS_REFUSED.labels("origin").inc()
            log_event(log, "socket.refused", logging.WARNING, reason="origin", origin=websocket.headers.get("origin"))
            await self._refuse(websocket, 403, ErrorCode.FORBIDDEN, "this Origin may not open a socket here", 1008)
            return
        if refusal := self.admission.refusal(address):
            SOCKETS_REFUSED.labels("cap").inc()
            log_event(log, "socket.refused", logging.WARNING, reason=refusal, address=address)
            await self._refuse(websocket, 429, ErrorCode.RATE_LIMITED, refusal, 1008)
            return
        await websocket.accept()
        conn = Connection(new_id("c"), websocket, self.settings.outbound_queue_max_bytes, address)
        conn.unbound_since = asyncio.get_running_loop().time()
        self.admission.opened(address)
        self.hub.add(conn)
        # Requests being answered; the set's size bounds them (MAX_IN_FLIGHT_PER_SOCKET).
        pending: set[asyncio.Task[None]] = set()
        try:
            while not conn.closed and await self._take_frame(conn, await websocket.receive(), pending):
                pass
        except WebSocketDisconnect:
            pass
        finally:
            for task in pending:
                task.cancel()
            await self.forget(conn)
            self.admission.closed(conn.address, None)
            self.hub.remove(conn)
            conn.close(1000)
            await conn.wait_written()

    async def _refuse(self, websocket: WebSocket, status: int, code: ErrorCode, message: str, close_code: int) -> None:
        """Refuse the upgrade with an HTTP status and the protocol's error body (a close code where
        the server cannot answer the upgrade with a status)."""
        if "websocket.http.response" in websocket.scope.get("extensions", {}):
            error = ParleyError(code, message)
            await websocket.send_denial_response(JSONResponse(error.response(), status_code=error.http_status))
        else:
            await websocket.close(close_code)

    def _spawn(self, conn: Connection, frame: ParsedFrame) -> asyncio.Task[None]:
        task = asyncio.create_task(self._answer(conn, frame))
        self._requests.add(task)
        task.add_done_callback(self._requests.discard)
        return task

    async def _take_frame(self, conn: Connection, message: Message, pending: set[asyncio.Task[None]]) -> bool:
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
            # They change what later frames may do: finish before reading on.
            await self._spawn(conn, frame)
            return True
        while len(pending) >= MAX_IN_FLIGHT_PER_SOCKET:
            await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        task = self._spawn(conn, frame)
        pending.add(task)
        task.add_done_callback(pending.discard)
        return True

    async def _read_frame(self, conn: Connection, text: str | None) -> ParsedFrame | None:
        """The frame's request, or None after answering why it is refused."""
        if text is None:
            conn.send(reply_error(None, ParleyError.bad_request("frames must be text (JSON)")))
            return None
        try:
            frame = parse_frame(text, max_bytes=self.settings.max_frame_bytes, bound=conn.session is not None)
        except FrameError as exc:
            error: ParleyError = exc
            if exc.operation == "message.send" and conn.session is not None:
                # Every message.send counts against the rate, its fields valid or not; past the
                # rate it is answered rate_limited, else with what is wrong with its fields.
                error = await self._send_rate_exceeded(conn) or exc
            FRAMES.labels("invalid", error.code.value).inc()
            conn.send(reply_error(exc.frame_id, error))
            return None
        if frame.operation.name == "message.send":
            # Counted here, as the socket's frames arrive and before anything reaches chat.
            if limited := await self._send_rate_exceeded(conn):
                FRAMES.labels(frame.operation.name, limited.code.value).inc()
                conn.send(reply_error(frame.id, limited))
                return None
        return frame

    async def _answer(self, conn: Connection, frame: ParsedFrame) -> None:
        request_id_var.set(frame.id)
        user_id_var.set(conn.session.user_id if conn.session else None)
        try:
            data = await self._perform(conn, frame)
            if data is not None:
                conn.send(reply_ok(frame.id, data))
            FRAMES.labels(frame.operation.name, "ok").inc()
        except ParleyError as exc:
            FRAMES.labels(frame.operation.name, exc.code.value).inc()
            conn.send(reply_error(frame.id, exc))
        except Exception as exc:
            if is_outage(exc):  # Redis or the broker away: the protocol's promise is "retry"
                error = ParleyError.unavailable("a backend is unavailable; retry")
                log_event(log, "frame.unavailable", logging.WARNING, operation=frame.operation.name, error=repr(exc))
            else:
                error = ParleyError(ErrorCode.INTERNAL, "internal error")
                log_event(log, "frame.failed", logging.ERROR, operation=frame.operation.name, error=repr(exc))
            FRAMES.labels(frame.operation.name, error.code.value).inc()
            conn.send(reply_error(frame.id, error))

    async def _perform(self, conn: Connection, frame: ParsedFrame) -> dict[str, Any] | None:
        """Run one valid request; returns the reply data, or None when it already replied."""
        name = frame.operation.name
        if name == "ping":
            return {}
        if name == "auth.login":
            login: auth.LoginReply = await self.call(frame.operation, self.caller(conn, frame.id), frame.request)
            claims = self.tokens.verify(login.token)
            await self._bind(conn, claims, claims.device_id, frame.id, login.model_dump(mode="json"))
            return None
        if name == "auth.resume":
            request: auth.Resume = frame.request  # type: ignore[assignment]
            claims = await self.verify_token(request.token)
            device_id = request.device_id or claims.device_id
            reply = auth.ResumeReply(user_id=claims.user_id, expires_at=iso_from_timestamp(claims.expires_at))
            await self._bind(conn, claims, device_id, frame.id, reply.model_dump())
            return None
        if name == "auth.logout":
            await self.call(frame.operation, self.caller(conn, frame.id), frame.request)
            await self.forget(conn)
            return {}
        if name == "message.send":
            return await self._send_once(conn, frame)
        if name == "message.ack":
            item = AckItem(caller=self.caller(conn, frame.id), request=frame.request)  # type: ignore[arg-type]
            return await self.acks.submit(conn.conn_id, item)
        reply = await self.call(frame.operation, self.caller(conn, frame.id), frame.request)
        return reply.model_dump(mode="json")

    async def _send_once(self, conn: Connection, frame: ParsedFrame) -> dict[str, Any]:
        """message.send, with a retry of a send still in flight joining it instead of queueing
        behind it: after an outage, clients that retry on timeouts would otherwise pile copies
        of each message up behind their own socket's earlier batches."""
        assert conn.session is not None
        key = (conn.session.user_id, frame.request.client_msg_id)  # type: ignore[attr-defined]
        running = self._sends_in_flight.get(key)
        if running is None:
            item = SendItem(caller=self.caller(conn, frame.id), request=frame.request)  # type: ignore[arg-type]
            running = asyncio.ensure_future(self.sends.submit(conn.conn_id, item))
            self._sends_in_flight[key] = running
            running.add_done_callback(lambda _: self._sends_in_flight.pop(key, None))
        # Shielded: the first asker's socket closing must not cancel what a retry waits for.
        return await asyncio.shield(running)

    async def _send_batch(self, items: list[SendItem]) -> list[ItemResult]:
        """One command to chat for many sockets' sends (one batch per socket out at a time: a
        device's messages are stored in the order it sent them)."""
        reply = await self.call(CHAT_MESSAGES_SEND, self.caller(None, new_id("b")), SendBatch(items=items))
        return reply.results

    async def _ack_batch(self, items: list[AckItem]) -> list[ItemResult]:
        reply = await self.call(CHAT_MESSAGES_ACK, self.caller(None, new_id("b")), AckBatch(items=items))
        return reply.results

    async def _send_rate_exceeded(self, conn: Connection) -> ParleyError | None:
        """Take one of the bound user's message.send tokens; the `rate_limited` error if none is left."""
        assert self.send_limit is not None and conn.session is not None
        try:
            async with asyncio.timeout(RATE_LIMIT_TIMEOUT_SECONDS):
                allowed = await self.send_limit.take(conn.session.user_id)
        except (RedisError, OSError, TimeoutError) as exc:
            # Fail open: with Redis unreachable or slow, the send goes through unchecked. The
            # limit only shields chat from a flooding client (each socket stays bounded by
            # MAX_IN_FLIGHT_PER_SOCKET and one batch in flight meanwhile), while chat stores a message
            # without Redis (live pushes are best effort; sync catches up). Failing closed would
            # turn a Redis outage into nobody being able to send at all.
            self._send_limit_outage.failed(exc)
            return None
        self._send_limit_outage.worked()
        if allowed:
            return None
        rate = self.settings.send_rate_per_second
        return ParleyError(ErrorCode.RATE_LIMITED, f"sending faster than {rate:g} messages a second; slow down")

    def caller(self, conn: Connection | None, request_id: str, address: str | None = None) -> Caller:
        session = conn.session if conn else None
        return Caller(
            request_id=request_id,
            user_id=session.user_id if session else None,
            device_id=session.device_id if session else None,
            token_id=session.token_id if session else None,
            token_expires_at=session.expires_at if session else None,
            gateway_id=self.gateway_id,
            conn_id=conn.conn_id if conn else None,
            client_address=conn.address if conn else address,
        )

    async def call(self, operation: Operation[Any, ReplyT], caller: Caller | None, request: BaseModel) -> ReplyT:
        assert self.rpc is not None
        return await self.rpc.call(operation, request, caller)

    async def verify_token(self, token: str) -> TokenClaims:
        assert self.revocations is not None
        claims = self.tokens.verify(token)
        if await self.revocations.is_revoked(claims.token_id):
            raise ParleyError.unauthorized("token revoked; log in again")
        return claims

    # --- binding a socket to (user, device) --------------------------------------------------
    async def _bind(
        self, conn: Connection, claims: TokenClaims, device_id: str, frame_id: str, reply: dict[str, Any]
    ) -> None:
        """Bind, answer, then ask chat for the sync stream (the reply must come first)."""
        assert self.presence is not None
        await self.forget(conn)
        if not self.admission.may_bind(claims.user_id):
            raise ParleyError(
                ErrorCode.RATE_LIMITED,
                f"this user already holds {self.settings.ws_max_sockets_per_user} sockets here; close one first",
            )
        conn.session = Session(claims.user_id, device_id, claims.token_id, claims.expires_at)
        self.admission.bound(conn.address, claims.user_id)
        conn.syncing = True
        for old in self.hub.bind(conn):
            old.close(CLOSE_REPLACED)
        if await self.presence.bind(conn.socket_of(self.gateway_id)):
            await self.announce(claims.user_id, online=True)
        conn.send(reply_ok(frame_id, reply))
        await self._ask_sync(conn, frame_id)
        log_event(log, "socket.bound", user_id=claims.user_id, device_id=device_id, conn_id=conn.conn_id)

    async def _ask_sync(self, conn: Connection, request_id: str) -> None:
        """Chat streams the socket everything above its device's cursors, then `sync.done`."""
        assert conn.session is not None
        bound = DeviceBound(
            user_id=conn.session.user_id, device_id=conn.session.device_id, gateway_id=self.gateway_id,
            conn_id=conn.conn_id,
        )
        await self.broker.send_command(CHAT_SYNC, self.caller(conn, request_id), bound)

    async def resync(self, reason: str) -> None:
        """Sync every bound socket again, unasked: live pushes were lost (Redis or RabbitMQ was
        away, so chat could not find or reach the sockets) and what they carried is above the
        devices' cursors. Clients drop what they already hold by seq; until `sync.done` live
        pushes wait, as on bind, so each conversation still arrives in ascending seq."""
        conns = self.hub.bound()  # syncing ones too: their sync stream may be what was lost
        for i, conn in enumerate(conns):
            if conn.session is None or conn.closed:
                continue
            conn.syncing = True
            try:
                await self._ask_sync(conn, new_id("resync"))
            except ParleyError:  # the broker went away again: the next recovery resyncs
                conn.finish_sync()
                raise
            if i % FORGET_BATCH == FORGET_BATCH - 1:
                await asyncio.sleep(0)  # let the sockets' own traffic through
        log_event(log, "sockets.resynced", logging.WARNING, reason=reason, sockets=len(conns))

    async def forget(self, conn: Connection) -> None:
        """Unbind a socket (logout, rebind, close); announce if it was the user's last device."""
        if conn.session is None:
            return
        sock = conn.socket_of(self.gateway_id)
        self.hub.unbind(conn)
        self.admission.unbound(conn.address, sock.user_id)
        conn.unbound_since = asyncio.get_running_loop().time()
        conn.session = None
        conn.syncing = False
        conn.drop_held_back()
        assert self.presence is not None
        with suppress(Exception):  # Redis down: the sweeper announces it later
            if last_seen := await self.presence.unbind(sock):
                await self.announce(sock.user_id, online=False, last_seen=last_seen)

    async def announce(self, user_id: str, online: bool, last_seen: str | None = None) -> None:
        event = PresenceChanged(user_id=user_id, online=online, last_seen=last_seen)
        await self.broker.publish_event("presence.changed", event)
