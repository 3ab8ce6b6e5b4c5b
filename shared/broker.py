"""Our thin layer over aio-pika: topology, confirmed publishing, RPC with many calls in flight.

Exchanges (prefixed by the namespace setting):
- `<ns>.commands` (topic): routing key = operation; one durable queue per service.
- `<ns>.deliver` (direct): one queue per gateway instance, routing key = its instance id.
- `<ns>.events` (topic): domain events; a service binds its own events queue.
- `<ns>.dead` (fanout) → `<ns>.dead-letters`: commands that failed `delivery_limit` times.

They are declared in one place, `Broker.connect`; consumers (ServiceRunner, the gateway's
deliver queue) bind their queues to them by name (`Broker.names`), never declare them again.
"""
import asyncio
import contextlib
import logging
import time
import uuid
from typing import Any, TypeVar

import aio_pika
import orjson
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from aio_pika.exceptions import DeliveryError, PublishError
from pydantic import BaseModel

from shared.amqp_nodes import connect_with_retry, missing_queues
from shared.contracts.base import Contract
from shared.contracts.batches import Deliveries
from shared.contracts.errors import ErrorBody, ParleyError
from shared.contracts.operations import Operation
from shared.contracts.wire import Caller, CommandResult, Delivery
from shared.ids import new_id
from shared.logs import log_event
from shared.metrics import RPC_SECONDS
from shared.outages import is_outage
from shared.settings import Settings

log = logging.getLogger("parley.broker")

ReplyT = TypeVar("ReplyT", bound=Contract)

# The AMQP `type` of a message on `<ns>.deliver`: one Delivery, or many in a Deliveries.
DELIVERY, DELIVERIES = "delivery", "deliveries"


def dumps(value: BaseModel | dict[str, Any]) -> bytes:
    """A model as JSON by pydantic's own serializer, straight to bytes (the same bytes as orjson
    of its model_dump(mode="json"), without the Python dicts in between: issue 26)."""
    return model_json(value) if isinstance(value, BaseModel) else orjson.dumps(value)


def _delivery_dict(delivery: Delivery) -> dict[str, Any]:
    return {
        "targets": [{"user_id": t.user_id, "device_id": t.device_id} for t in delivery.targets],
        "conn_id": delivery.conn_id,
        "sync": delivery.sync,
        "pushes": [{"type": p.type, "data": p.data} for p in delivery.pushes],
    }


def delivery_json(delivery: Delivery | Deliveries) -> bytes:
    """`dumps(delivery)`, the same bytes, by orjson from the fields: pydantic's serializer infers
    the type of every value of the pushes' `data` (dict[str, Any], already JSON: made by
    model_dump(mode="json") or built so) and was ~5 of the ~7 us a delivery cost chat (issue 26)."""
    if isinstance(delivery, Deliveries):
        return orjson.dumps({"items": [_delivery_dict(d) for d in delivery.items]})
    return orjson.dumps(_delivery_dict(delivery))


def model_json(value: BaseModel, *, exclude_none: bool = False) -> bytes:
    return value.__pydantic_serializer__.to_json(value, exclude_none=exclude_none)


def command_body(caller: Caller, data: bytes, deadline: float | None = None) -> bytes:
    """A Command's JSON with its `data` already JSON: dumps(Command(...)) without a model made
    and taken apart again around data that is a request model's JSON already."""
    return b'{"caller":%b,"data":%b,"deadline":%b}' % (model_json(caller), data, orjson.dumps(deadline))


def ok_result(reply: BaseModel | None) -> bytes:
    """An RPC reply carrying `reply` (dumps(CommandResult(ok=True, data=...)), without the model)."""
    return b'{"ok":true,"data":%b,"error":null}' % (model_json(reply) if reply is not None else b"{}")


# How long after a reconnection this process checks that its exclusive queues survived it.
EXCLUSIVE_CHECK_SECONDS = 2.0


class Names:
    """Every broker name, derived from the namespace so stacks can share one RabbitMQ."""

    def __init__(self, namespace: str):
        self.ns = namespace
        self.commands = f"{namespace}.commands"
        self.deliver = f"{namespace}.deliver"
        self.events = f"{namespace}.events"
        self.dead = f"{namespace}.dead"
        self.dead_letters = f"{namespace}.dead-letters"

    def service_queue(self, service: str) -> str:
        return f"{self.ns}.{service}.commands"

    def partition_queue(self, service: str, partition: int) -> str:
        return f"{self.ns}.{service}.commands.p{partition}"

    def events_queue(self, service: str) -> str:
        return f"{self.ns}.{service}.events"

    def deliver_queue(self, gateway_id: str) -> str:
        return f"{self.ns}.deliver.{gateway_id}"

    def reply_queue(self, instance_id: str) -> str:
        return f"{self.ns}.reply.{instance_id}"


class Broker:
    """One connection per process: a confirmed publishing channel and the shared exchanges."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.names = Names(settings.namespace)
        self.connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchanges: dict[str, AbstractExchange] = {}
        # Reconnections so far, each counted once its channels, queues and consumers are restored.
        self.reconnections = 0
        self._replacing = asyncio.Lock()
        # This process's exclusive queues (RPC replies, a gateway's deliveries), checked after each reconnection.
        self.exclusive_queues: set[str] = set()
        self._checking: asyncio.Task[list[str]] | None = None

    async def connect(self) -> "Broker":
        s = self.settings
        self.connection = await connect_with_retry(s.amqp_url, s.connect_retry_seconds, s.amqp_start_anywhere)
        self.connection.reconnect_callbacks.add(self._reconnected)
        self._channel = await self.connection.channel(publisher_confirms=True, on_return_raises=True)
        await self.declare_exchanges(self._channel)
        return self

    def _reconnected(self, _: Any) -> None:
        self.reconnections += 1
        if self.exclusive_queues:
            self._checking = asyncio.get_running_loop().create_task(self.check_exclusive_queues(EXCLUSIVE_CHECK_SECONDS))

    async def check_exclusive_queues(self, after: float = 0.0) -> list[str]:
        """`after` s after a reconnection: a queue of ours found missing (shared/amqp_nodes.py,
        missing_queues, says how) makes us reconnect, which declares them all afresh."""
        await asyncio.sleep(after)
        if self.connection is None or not self.connected:
            return []
        missing = await missing_queues(self.connection, self.exclusive_queues)
        if missing:
            log_event(log, "broker.exclusive_queue_lost", logging.WARNING, queues=missing, action="reconnecting")
            await self.connection.reconnect()
        return missing

    async def declare_exchanges(self, channel: AbstractChannel) -> None:
        """Every exchange, here only (so their types and flags cannot disagree between processes)."""
        n = self.names
        topic, direct = aio_pika.ExchangeType.TOPIC, aio_pika.ExchangeType.DIRECT
        self._exchanges["commands"] = await channel.declare_exchange(n.commands, topic, durable=True)
        self._exchanges["deliver"] = await channel.declare_exchange(n.deliver, direct, durable=True)
        self._exchanges["events"] = await channel.declare_exchange(n.events, topic, durable=True)
        await channel.declare_exchange(n.dead, aio_pika.ExchangeType.FANOUT, durable=True)
        await self._declare_dead_letters()

    async def _declare_dead_letters(self) -> None:
        """The dead-letter queue, bounded in count, bytes and age (oldest dropped first): commands
        that failed `delivery_limit` times and RPC commands that expired unread land here, and
        an outage must not turn them into an unbounded heap.

        A queue declared unbounded or of the other type by an older Parley cannot be redeclared
        (RabbitMQ refuses changed arguments): then it is used as it is, with a warning saying what to do.
        """
        assert self.connection is not None
        n, s = self.names, self.settings
        arguments = {
            "x-max-length": s.dead_letter_max_messages,
            "x-max-length-bytes": s.dead_letter_max_bytes,
            "x-message-ttl": s.dead_letter_ttl_seconds * 1000,
            "x-overflow": "drop-head",
        }
        if s.queue_type == "quorum":  # replicated; quorum queues take all four bounds (RabbitMQ >= 3.10)
            arguments["x-queue-type"] = "quorum"
        channel = await self.connection.channel()
        try:
            queue = await channel.declare_queue(n.dead_letters, durable=True, arguments=arguments)
            await queue.bind(n.dead)
        except aio_pika.exceptions.ChannelPreconditionFailed:
            log_event(
                log, "broker.dead_letters_unbounded", logging.WARNING, queue=n.dead_letters,
                queue_type=s.queue_type,
                action=f"delete it once (rabbitmqctl delete_queue {n.dead_letters}) or bound it with a policy",
            )
        finally:
            if not channel.is_closed:
                await channel.close()

    async def channel(self, prefetch: int | None = None) -> AbstractChannel:
        """A fresh channel for a consumer, with its own prefetch bound."""
        assert self.connection is not None, "connect() first"
        channel = await self.connection.channel()
        if prefetch:
            await channel.set_qos(prefetch_count=prefetch)
        return channel

    async def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        persistent: bool = True,
        mandatory: bool = False,
        **properties: Any,
    ) -> None:
        """Publish and wait for the broker's confirm; unroutable mandatory messages raise."""
        message = aio_pika.Message(
            body,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT if persistent else aio_pika.DeliveryMode.NOT_PERSISTENT,
            **properties,
        )
        channel = self._channel
        try:
            await self._exchanges[exchange].publish(message, routing_key=routing_key, mandatory=mandatory)
        except DeliveryError as exc:
            if not isinstance(exc, PublishError):  # nacked (not returned unroutable)
                await self._replace_channel(channel)
            raise

    async def _replace_channel(self, nacked: AbstractChannel | None) -> None:
        """A fresh publishing channel for one whose publish was nacked. On RabbitMQ 3.10 a channel
        that published to a quorum queue while it had no leader (its node killed; issue 27) was
        seen nacking every publish to it for 8 s after a new leader was elected, while fresh
        channels published at once; the caller is told `unavailable` and its retry goes through
        the new channel. Once per stuck channel, however many publishes it nacked."""
        async with self._replacing:
            if self.connection is None or nacked is not self._channel or not self.connected:
                return
            channel = await self.connection.channel(publisher_confirms=True, on_return_raises=True)
            await self.declare_exchanges(channel)  # on it, so that it restores them after a reconnection
            self._channel = channel
        log_event(log, "broker.channel_replaced", logging.WARNING, reason="a publish was nacked")
        if nacked is not None:
            with contextlib.suppress(Exception):  # its publishes still waiting fail (`unavailable`)
                await nacked.close()

    async def publish_event(self, name: str, event: BaseModel) -> None:
        await self.publish("events", name, dumps(event))

    async def deliver(self, gateway_id: str, delivery: Delivery | Deliveries) -> None:
        """Pushes for sockets held by one gateway; transient: what is lost comes back on sync.
        The message's `type` says which of the two the body is."""
        kind = DELIVERIES if isinstance(delivery, Deliveries) else DELIVERY
        await self.publish("deliver", gateway_id, delivery_json(delivery), persistent=False, type=kind)

    async def send_command(self, op: Operation[Any, Any], caller: Caller, data: BaseModel) -> None:
        """A one-way command (no reply), durable until a replica of its service takes it."""
        await self.publish_command(op, command_body(caller, model_json(data, exclude_none=True)))

    async def publish_command(
        self, op: Operation[Any, Any], body: bytes, routing_key: str | None = None, **properties: Any
    ) -> None:
        """A Command's JSON (`command_body`) onto `<ns>.commands`, confirmed; `unavailable` when no
        replica's queue is bound (the service is not running) or the broker is away: what a caller
        may safely retry. `routing_key`: the operation's, or a partition's of it (shared/partitions.py)."""
        try:
            await self.publish("commands", routing_key or op.routing_key, body, mandatory=True, **properties)
        except PublishError as exc:  # returned: no queue bound to its routing key
            raise ParleyError.unavailable(f"the {op.service} service is not running") from exc
        except DeliveryError as exc:  # nacked: say, its queue's leader died and a new one is not elected yet
            raise ParleyError.unavailable("the message broker did not take the command; retry") from exc
        except Exception as exc:
            if is_outage(exc):
                raise ParleyError.unavailable("the message broker is unreachable; retry") from exc
            raise

    @property
    def connected(self) -> bool:
        """The connection is up now (a robust connection stays "open" while it reconnects)."""
        return self.connection is not None and not self.connection.is_closed and self.connection.connected.is_set()

    async def reply(self, reply_to: str, correlation_id: str | None, body: bytes) -> None:
        """An RPC answer, straight to the asker's reply queue through the default exchange.

        Raises when the queue is gone (its gateway died: the publish is mandatory) or the
        broker is away; the caller drops the reply then (nobody can receive it).
        """
        assert self._channel is not None
        await self._channel.default_exchange.publish(
            aio_pika.Message(body, content_type="application/json", correlation_id=correlation_id),
            routing_key=reply_to,
        )

    async def close(self) -> None:
        if self.connection is not None:
            await self.connection.close()


class RpcClient:
    """Request/reply over `<ns>.commands` with any number of calls in flight.

    Replies come back on this instance's own exclusive queue, matched by correlation id.
    """

    def __init__(self, broker: Broker, instance_id: str):
        self.broker = broker
        self.instance_id = instance_id
        self.reply_queue_name = broker.names.reply_queue(instance_id)
        # A CommandResult as JSON, by correlation id (read as plain JSON: a batch's results are
        # built into their models once, by the caller, not twice).
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._queue: AbstractQueue | None = None

    async def start(self) -> "RpcClient":
        channel = await self.broker.channel(prefetch=1000)
        self._queue = await channel.declare_queue(self.reply_queue_name, exclusive=True, auto_delete=True)
        self.broker.exclusive_queues.add(self.reply_queue_name)
        await self._queue.consume(self._on_reply, no_ack=True)
        assert self.broker.connection is not None
        self.broker.connection.close_callbacks.add(self._connection_lost)
        return self

    def _connection_lost(self, _: Any, exc: BaseException | None = None) -> None:
        """The reply queue is exclusive: it died with the connection (its node, in a cluster), and
        no reply in flight can reach it. Their callers hear `unavailable` now (a retry is safe:
        handlers are idempotent), not at their timeout; calls from now on wait for the reconnection."""
        lost = ParleyError.unavailable("the message broker connection was lost; retry")
        for future in self._pending.values():
            if not future.done():
                future.set_exception(lost)

    async def _on_reply(self, message: AbstractIncomingMessage) -> None:
        future = self._pending.pop(message.correlation_id or "", None)
        if future is not None and not future.done():
            try:
                result = orjson.loads(message.body)
            except orjson.JSONDecodeError as exc:  # its caller times out (`unavailable`)
                log_event(log, "rpc.malformed_reply", logging.ERROR, error=repr(exc))
                return
            future.set_result(result)

    async def call(
        self,
        op: Operation[Any, ReplyT],
        request: BaseModel,
        caller: Caller | None = None,
        timeout: float | None = None,
        routing_key: str | None = None,
    ) -> ReplyT:
        """The operation's reply model, or ParleyError with the service's code (`unavailable` on
        timeout). `caller` is whoever the call is made for; a service's own call has none.
        `routing_key`: a partition's (shared/partitions.py) instead of the operation's."""
        if op.reply is None:
            raise ValueError(f"{op.name} is one-way: Broker.send_command, not call")
        caller = caller or Caller(request_id=new_id("r"))
        data = model_json(request, exclude_none=True)
        return op.reply.model_validate(await self.exchange(op, caller, data, timeout, routing_key))

    async def exchange(
        self, op: Operation[Any, Any], caller: Caller, data: dict[str, Any] | bytes, timeout: float | None = None,
        routing_key: str | None = None,
    ) -> dict[str, Any]:
        """Publish the command and wait for its reply's data: `call` below its models (tests send
        data no request model allows through it). `data` may be JSON already."""
        timeout = timeout or self.broker.settings.rpc_timeout_seconds
        deadline = time.time() + timeout
        correlation_id = uuid.uuid4().hex
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[correlation_id] = future
        started = time.perf_counter()
        try:
            # One budget for the publish (which waits for the broker's confirm, or for a
            # reconnection) and the answer: the caller is told `unavailable` when it runs out.
            async with asyncio.timeout(timeout):
                await self.broker.publish_command(
                    op,
                    command_body(caller, data if isinstance(data, bytes) else orjson.dumps(data), deadline),
                    routing_key=routing_key,
                    correlation_id=correlation_id,
                    reply_to=self.reply_queue_name,
                    # A request nobody took in time is worthless to its caller.
                    expiration=timeout,
                )
                result = await future
        except TimeoutError:
            raise ParleyError.unavailable(f"the {op.service} service did not answer in time; retry") from None
        finally:
            self._pending.pop(correlation_id, None)
            RPC_SECONDS.labels(op.name).observe(time.perf_counter() - started)
        if result.get("ok") is not True:
            error = ErrorBody.model_validate(result.get("error"))
            raise ParleyError(error.code, error.message)
        data_out: dict[str, Any] = result.get("data") or {}
        return data_out


def error_result(error: ParleyError) -> bytes:
    """An RPC reply carrying `error`."""
    return dumps(CommandResult(ok=False, error=error.body()))
