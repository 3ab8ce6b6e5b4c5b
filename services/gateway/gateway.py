"""The gateway's composition and lifecycle: everything built once Redis and the broker are there
(Gateway.start), the drain on SIGTERM, the stop. The work itself is in the collaborators:

sockets.py (a socket's life, reading frames) → dispatch.py (a handler per operation) →
chat_batches.py (message.send/ack to chat) and sessions.py (binding, presence); deliveries.py
(pushes from chat to the sockets); upkeep.py (heartbeat, sweep, presence watch, login deadline);
readiness.py (/readyz); file_routes.py (POST /files, GET /files/{id}).
"""
import asyncio
import logging
from dataclasses import dataclass

from shared.redis_slots import RedisClient
from starlette.websockets import WebSocket

from services.gateway.admission import Admission
from services.gateway.chat_batches import ChatBatches
from services.gateway.connections import CLOSE_RESTARTING, Hub
from services.gateway.deliveries import DeliveryConsumer
from services.gateway.dispatch import Dispatcher
from services.gateway.file_routes import FileTransfer
from services.gateway.ice_servers import IceServers
from services.gateway.identity import TokenCheck
from services.gateway.metrics import CONNECTIONS
from services.gateway.readiness import Readiness
from services.gateway.send_rate import SendRate
from services.gateway.sessions import PendingResync, Sessions
from services.gateway.sockets import SocketServer
from services.gateway.upkeep import Heartbeat, LoginDeadline, PresenceWatch, Sweeper
from shared.broker import Broker, RpcClient
from shared.contracts import auth
from shared.contracts.operations import AUTH_TOKENS_REVOKED
from shared.ids import new_id
from shared.logs import log_event
from shared.presence import Presence
from shared.ratelimit import TokenBucket
from shared.settings import Settings
from shared.tokens import RevocationCheck, Revocations, TokenCodec

log = logging.getLogger("parley.gateway")

# Draining: how long the close frames may take to be written, and presence removals at once.
CLOSE_WRITE_SECONDS = 2.0
FORGET_BATCH = 200


@dataclass(eq=False)
class Gateway:
    """A started gateway: its parts, each built complete by `start` (none is filled in later)."""

    settings: Settings
    gateway_id: str
    broker: Broker
    rpc: RpcClient
    hub: Hub
    sessions: Sessions
    sockets: SocketServer
    readiness: Readiness
    transfers: FileTransfer
    tasks: list[asyncio.Task[None]]

    @classmethod
    async def start(cls, settings: Settings, redis: RedisClient) -> "Gateway":
        """Connect to the broker, build every part on Redis and the broker, consume, start the loops."""
        gateway_id = settings.gateway_instance_id or new_id("gw")
        broker = await Broker(settings).connect()
        rpc = await RpcClient(broker, gateway_id).start()

        async def ask_revoked(token_ids: list[str]) -> auth.TokensRevokedReply:
            return await rpc.call(AUTH_TOKENS_REVOKED, auth.TokensRevoked(token_ids=token_ids))

        hub = Hub()
        # Read from the hub, not counted beside it: the figure is what the gateway really holds.
        CONNECTIONS.set_function(lambda: len(hub.by_conn))
        admission = Admission(settings)
        presence = Presence(redis, settings.namespace, settings.presence_ttl_seconds, settings.redis_buckets)
        # Redis's cache of revocations while it is known complete, else auth (from MongoDB).
        revocations = RevocationCheck(Revocations(redis, settings.namespace), ask=ask_revoked)
        tokens = TokenCheck(TokenCodec(settings.jwt_secret, settings.token_ttl_seconds), revocations)
        sessions = Sessions(settings, gateway_id, hub, admission, presence, broker)
        send_rate = SendRate(
            TokenBucket(
                redis, settings.namespace, "send", settings.send_rate_per_second, settings.send_burst,
                settings.redis_buckets,
            ),
            settings.send_rate_per_second,
        )
        dispatcher = Dispatcher(
            gateway_id, rpc, tokens, sessions, ChatBatches(settings, gateway_id, rpc), IceServers.from_settings(settings)
        )
        resync = PendingResync()
        await DeliveryConsumer(broker, gateway_id, hub, resync).start()
        watch = PresenceWatch(gateway_id, hub, presence, broker, sessions, resync)
        loops = [
            Heartbeat(settings.presence_ttl_seconds / 3, gateway_id, hub, presence, revocations, sessions, watch).run,
            Sweeper(settings.presence_sweep_seconds, presence, sessions).run,
            watch.run,
            LoginDeadline(settings.ws_login_deadline_seconds, hub).run,
        ]
        gateway = cls(
            settings=settings,
            gateway_id=gateway_id,
            broker=broker,
            rpc=rpc,
            hub=hub,
            sessions=sessions,
            sockets=SocketServer(settings, hub, admission, sessions, send_rate, dispatcher),
            readiness=Readiness(broker, redis, rpc),
            transfers=FileTransfer(settings, gateway_id, rpc, tokens),
            tasks=[asyncio.create_task(loop()) for loop in loops],
        )
        log_event(
            log, "gateway.started", gateway_id=gateway_id, url=f"http://{settings.gateway_host}:{settings.gateway_port}"
        )
        return gateway

    @property
    def draining(self) -> bool:
        return self.sockets.draining

    async def serve_socket(self, websocket: WebSocket) -> None:
        await self.sockets.serve_socket(websocket)

    async def drain(self) -> None:
        """SIGTERM, while the port is still open (services/gateway/main.py calls it first).

        At once: /readyz answers 503 and new sockets are refused, so a load balancer sends new
        clients elsewhere; frames arriving from here on are answered `unavailable`. The requests
        already in flight are answered (message.send is idempotent by client_msg_id, so one cut
        off anyway is safely sent again), then every socket is closed with 1012 and its presence
        removed: clients reconnect to another gateway and sync what they missed. The port stays
        open, refusing, until `gateway_drain_seconds` have passed since the signal.
        """
        if self.sockets.draining:
            return
        self.sockets.draining = True
        loop = asyncio.get_running_loop()
        started = loop.time()
        requests = self.sockets.requests
        log_event(
            log, "gateway.draining", gateway_id=self.gateway_id, sockets=len(self.hub.by_conn), requests=len(requests)
        )
        unanswered = 0
        if requests:
            _, still = await asyncio.wait(set(requests), timeout=self.settings.rpc_timeout_seconds + 1)
            unanswered = len(still)
        conns = list(self.hub.by_conn.values())
        for conn in conns:
            conn.close(CLOSE_RESTARTING)
        # Presence now, not when each client answers the close: one that never does would
        # otherwise stay "online" here until its entry expires.
        for i in range(0, len(conns), FORGET_BATCH):
            await asyncio.gather(*(self.sessions.forget(c) for c in conns[i : i + FORGET_BATCH]))
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
        for task in self.tasks:
            task.cancel()
        for conn in list(self.hub.by_conn.values()):
            conn.close(CLOSE_RESTARTING)
            await self.sessions.forget(conn)
        await self.broker.close()

