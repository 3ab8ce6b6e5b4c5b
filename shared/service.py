"""Declared consumers: a service binds operations and events to plain async handlers (a service
class does it with `@operation`/`@event`/`@periodic`, shared/declared.py, and `Service.router()`).

    router = Router("chat")

    @router.operation("history.fetch")
    async def history(request: HistoryFetch, caller: Caller) -> HistoryReply: ...

`ServiceRunner` declares the queues, consumes with manual ack (after the handler, i.e. after
the database write), replies to RPCs, dead-letters a command that keeps failing, and on
SIGTERM stops consuming and lets in-flight handlers finish. Handlers never see the broker.
"""
import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aio_pika.abc import AbstractIncomingMessage, AbstractQueue
from pydantic import BaseModel, ValidationError, create_model

from shared.broker import Broker, error_result, ok_result
from shared.contracts.base import Empty
from shared.contracts.errors import ParleyError, describe_validation_error
from shared.contracts.operations import EVENTS, OPERATIONS, Operation
from shared.contracts.wire import Caller, Command
from shared.logs import log_event, request_id_var, user_id_var
from shared.metrics import COMMAND_SECONDS, COMMANDS, COMMANDS_EXPIRED, REPLIES_DROPPED
from shared.outages import is_outage
from shared.partition_consumers import PartitionConsumers
from shared.partitions import unpartitioned
from shared.periodic import Leases, Periodic, PeriodicJobs
from shared.settings import Settings

log = logging.getLogger("parley.service")

EventHandler = Callable[[Any], Awaitable[None]]


@dataclass(frozen=True)
class AnswerFirst:
    """A handler's reply, and the work that follows it once the caller has it (the pushes and
    events of what the handler stored): the runner publishes the reply, runs `then`, and only
    then acks the command. If `then` fails the command is retried (handlers are idempotent), so
    the work is done at least once; the caller's answer never waits for it."""

    reply: BaseModel
    then: Callable[[], Awaitable[None]]


Handler = Callable[[Any, Caller], Awaitable[BaseModel | AnswerFirst | None]]


@dataclass(frozen=True)
class Verdict:
    """How one command ends: its outcome label, the reply (if any), the work that follows the
    reply (if any) and how it is settled."""

    outcome: str
    settle: str  # ack | retry (nack, requeue) | reject (dead-letter)
    reply: bytes | None = None
    attempt: int = 0
    then: Callable[[], Awaitable[None]] | None = None


@dataclass(frozen=True)
class Route:
    operation: Operation[Any, Any]
    handler: Handler
    timeout: float


class Router:
    """Binds operation names (from `shared.contracts.operations`) to handlers of one service."""

    def __init__(self, service: str, default_timeout: float = 30.0):
        self.service = service
        self.default_timeout = default_timeout
        self.routes: dict[str, Route] = {}
        self.events: dict[str, EventHandler] = {}
        # Added to the events queue's arguments (Service.events_queue_arguments).
        self.events_arguments: dict[str, Any] = {}
        self.periodics: list[Periodic] = []

    def operation(self, name: str, timeout: float | None = None) -> Callable[[Handler], Handler]:
        op = OPERATIONS[name]
        if op.service != self.service:
            raise ValueError(f"{name} belongs to {op.service}, not {self.service}")

        def bind(handler: Handler) -> Handler:
            self.routes[op.routing_key] = Route(op, handler, timeout or self.default_timeout)
            return handler

        return bind

    def health(self, check: Callable[[], Awaitable[None]]) -> None:
        """`<service>.health`: answers `{}` when `check` (say, a MongoDB ping) passes; /readyz asks it."""

        @self.operation(f"{self.service}.health", timeout=5)
        async def health(request: Empty, caller: Caller) -> Empty:
            await check()
            return Empty()

    def event(self, name: str) -> Callable[[EventHandler], EventHandler]:
        if name not in EVENTS:
            raise ValueError(f"unknown event {name}")

        def bind(handler: EventHandler) -> EventHandler:
            self.events[name] = handler
            return handler

        return bind

    def periodic(self, job: Periodic) -> None:
        """A job the runner runs beside the consumers (shared/periodic.py)."""
        if any(j.name == job.name for j in self.periodics):
            raise ValueError(f"two periodic jobs named {job.name}")
        self.periodics.append(job)

    async def run(self, routing_key: str, command: Command) -> BaseModel | AnswerFirst | None:
        """Validate and run one command's handler (the consumer's part: it runs an AnswerFirst's
        `then` itself, after replying)."""
        route = self.routes[routing_key]
        try:
            request = route.operation.request.model_validate(command.data)
        except ValidationError as exc:
            raise ParleyError.bad_request(describe_validation_error(exc)) from None
        return await asyncio.wait_for(route.handler(request, command.caller), route.timeout)

    async def dispatch(self, routing_key: str, command: Command) -> BaseModel | None:
        """One command from start to end, the work after its reply included: what tests call."""
        result = await self.run(routing_key, command)
        if isinstance(result, AnswerFirst):
            await asyncio.wait_for(result.then(), self.routes[routing_key].timeout)
            return result.reply
        return result


class ServiceRunner:
    """Runs a Router against RabbitMQ until SIGTERM/SIGINT: its consumers and its periodic jobs
    (those run once across replicas take a lease in Redis: `leases`)."""

    def __init__(self, broker: Broker, router: Router, settings: Settings, leases: Leases | None = None):
        self.broker = broker
        self.router = router
        self.settings = settings
        self._consumers: list[tuple[AbstractQueue, str]] = []
        self._in_flight: set[asyncio.Task[Any]] = set()
        self._stopping = asyncio.Event()
        self.jobs = PeriodicJobs(router.periodics, leases)
        partitioned = [r.operation for r in router.routes.values() if r.operation.partitioned]
        # The partitioned operations' queues (shared/partition_consumers.py); with no partitions
        # set they come through the service queue like the rest.
        self.partitions = (
            PartitionConsumers(
                broker, router.service, partitioned, settings.chat_partitions, settings.chat_partition_lease_seconds,
                leases, self._on_command,
            )
            if partitioned and settings.chat_partitions
            else None
        )
        # Per routing key: a Command whose `data` is the operation's request model (_parse_command).
        self._typed_commands: dict[str, type[Command]] = {}

    async def start(self) -> None:
        names = self.broker.names
        arguments: dict[str, Any] = {"x-dead-letter-exchange": names.dead}
        if self.settings.queue_type == "quorum":
            arguments |= {"x-queue-type": "quorum", "x-delivery-limit": self.settings.delivery_limit}
        channel = await self.broker.channel(prefetch=self.settings.prefetch)
        # The exchanges are the Broker's (declared in Broker.connect, the one place): bound by name.
        queue = await channel.declare_queue(names.service_queue(self.router.service), durable=True, arguments=arguments)
        # Every operation, the partitioned ones too: a gateway without partitions (or of an
        # older Parley, during a rolling upgrade) sends them here, and any replica takes them.
        for routing_key in self.router.routes:
            await queue.bind(names.commands, routing_key)
        if self.partitions is not None:
            await self.partitions.start(arguments, self.settings.prefetch)
        self._consumers.append((queue, await queue.consume(self._on_command)))
        if self.router.events:
            equeue = await channel.declare_queue(
                names.events_queue(self.router.service), durable=True,
                arguments=arguments | self.router.events_arguments,
            )
            for name in self.router.events:
                await equeue.bind(names.events, name)
            self._consumers.append((equeue, await equeue.consume(self._on_event)))
        self.jobs.start()
        log_event(
            log, "service.consuming", service=self.router.service, operations=sorted(self.router.routes),
            jobs=[j.name for j in self.router.periodics],
        )

    def _track(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    def _failures_before(self, message: AbstractIncomingMessage) -> int:
        count = (message.headers or {}).get("x-delivery-count")
        if isinstance(count, int):
            return count
        return 1 if message.redelivered else 0

    async def _on_command(self, message: AbstractIncomingMessage) -> None:
        """Run one command and settle it: every path ends in exactly one ack, nack or reject.

        The reply is published first when there is one; a reply nobody can receive (the
        asking gateway died and its reply queue with it) is dropped and counted, and the
        command is settled all the same: an unsettled command would hold one of this
        replica's prefetch slots for as long as its connection lives.
        """
        self._track()
        started = time.perf_counter()
        routing_key = message.routing_key or ""
        if routing_key not in self.router.routes:  # from a partition queue: `<operation>.p<n>`
            routing_key = unpartitioned(routing_key)
        verdict = await self._run_command(message, routing_key)
        if verdict.reply is not None and message.reply_to:
            await self._reply(message, routing_key, verdict.reply)
        if verdict.then is not None:
            verdict = await self._follow_up(message, routing_key, verdict)
        if verdict.settle == "retry":
            await asyncio.sleep(min(0.2 * verdict.attempt, 2.0))
        await self._settle(message, routing_key, verdict.settle)
        elapsed = time.perf_counter() - started
        COMMANDS.labels(routing_key, verdict.outcome).inc()
        if verdict.outcome not in ("expired", "failed"):
            COMMAND_SECONDS.labels(routing_key).observe(elapsed)
        log_event(
            log, "command.handled", logging.DEBUG, routing_key=routing_key, outcome=verdict.outcome,
            ms=round(elapsed * 1000, 2),
        )

    async def _run_command(self, message: AbstractIncomingMessage, routing_key: str) -> Verdict:
        """What to answer and how to settle; never raises (but for cancellation)."""
        try:
            command = self._parse_command(message.body, routing_key)
        except ValidationError as exc:
            log_event(log, "command.malformed", logging.ERROR, routing_key=routing_key, error=str(exc))
            return Verdict("malformed", "ack", error_result(ParleyError.bad_request("malformed command")))
        request_id_var.set(command.caller.request_id)
        user_id_var.set(command.caller.user_id)
        if command.expired(time.time()):
            # Its caller has given up (and retries, if it still cares): doing it now only
            # delays the work that still has someone waiting.
            COMMANDS_EXPIRED.labels(routing_key).inc()
            log_event(log, "command.expired", logging.DEBUG, routing_key=routing_key)
            return Verdict("expired", "ack")
        # Only the decoding of the command (above, and its request in Router.dispatch) is the
        # client's fault; a ValidationError or KeyError from inside a handler is a bug of ours,
        # answered `internal` once retries are spent, never `bad_request`.
        try:
            result = await self.router.run(routing_key, command)
            reply, then = (result.reply, result.then) if isinstance(result, AnswerFirst) else (result, None)
            return Verdict("ok", "ack", ok_result(reply), then=then)
        except ParleyError as exc:
            return Verdict(exc.code.value, "ack", error_result(exc))
        except Exception as exc:
            return self._failure(message, routing_key, exc)

    def _parse_command(self, body: bytes, routing_key: str) -> Command:
        """The command, its data read straight into the operation's request model when it fits
        (one pass over the JSON instead of a dict of it validated again: issue 26); else as a
        dict, for Router.run to refuse with the request model's own error message."""
        typed = self._typed_commands.get(routing_key)
        if typed is None:
            route = self.router.routes.get(routing_key)
            if route is None:
                return Command.model_validate_json(body)
            typed = self._typed_commands[routing_key] = create_model(
                f"{route.operation.request.__name__}Command", __base__=Command, data=(route.operation.request, ...)
            )
        try:
            return typed.model_validate_json(body)
        except ValidationError:
            return Command.model_validate_json(body)

    def _failure(self, message: AbstractIncomingMessage, routing_key: str, exc: Exception) -> Verdict:
        """A backend away, or a bug.

        An RPC whose backend is away is answered `unavailable` at once (its caller retries,
        which is safe: handlers are idempotent) rather than retried here while the caller's
        deadline runs out. A one-way command is retried, then dead-lettered; so is a bug,
        whose caller hears `internal` once the retries are spent.
        """
        attempt = self._failures_before(message) + 1
        if is_outage(exc) and message.reply_to:
            log_event(log, "command.unavailable", logging.WARNING, routing_key=routing_key, error=repr(exc))
            return Verdict("unavailable", "ack", error_result(ParleyError.unavailable("a backend is unavailable; retry")))
        give_up = attempt >= self.settings.delivery_limit
        log_event(
            log, "command.failed", logging.ERROR, exc=exc, routing_key=routing_key, attempt=attempt,
            dead_lettered=give_up, error=repr(exc),
        )
        if not give_up:
            return Verdict("failed", "retry", attempt=attempt)
        return Verdict("failed", "reject", error_result(ParleyError.internal()), attempt)

    async def _follow_up(self, message: AbstractIncomingMessage, routing_key: str, verdict: Verdict) -> Verdict:
        """The work after the reply. Failed (the broker away for the events it publishes, a bug):
        the command is retried, and its idempotent handler answers again and repeats the work."""
        assert verdict.then is not None
        try:
            await asyncio.wait_for(verdict.then(), self.router.routes[routing_key].timeout)
            return verdict
        except Exception as exc:
            attempt = self._failures_before(message) + 1
            give_up = attempt >= self.settings.delivery_limit
            log_event(
                log, "command.follow_up_failed", logging.ERROR, exc=None if is_outage(exc) else exc,
                routing_key=routing_key, attempt=attempt, dead_lettered=give_up, error=repr(exc),
            )
            return Verdict("follow_up_failed", "reject" if give_up else "retry", attempt=attempt)

    async def _reply(self, message: AbstractIncomingMessage, routing_key: str, body: bytes) -> None:
        assert message.reply_to is not None
        try:
            await self.broker.reply(message.reply_to, message.correlation_id, body)
        except Exception as exc:  # its asker is gone (or the broker is): nobody can receive it
            REPLIES_DROPPED.labels(routing_key).inc()
            log_event(
                log, "reply.dropped", logging.WARNING, routing_key=routing_key, reply_to=message.reply_to,
                error=repr(exc),
            )

    async def _settle(self, message: AbstractIncomingMessage, routing_key: str, settle: str) -> None:
        try:
            if settle == "ack":
                await message.ack()
            elif settle == "retry":
                await message.nack(requeue=True)
            else:
                await message.reject(requeue=False)
        except Exception as exc:
            # The channel closed under us: the broker hands the command out again (handlers are
            # idempotent), and this replica's prefetch slot went with the channel.
            log_event(log, "command.unsettled", logging.WARNING, routing_key=routing_key, settle=settle, error=repr(exc))

    async def _on_event(self, message: AbstractIncomingMessage) -> None:
        self._track()
        name = message.routing_key or ""
        try:
            event = EVENTS[name].model_validate_json(message.body)
            await self.router.events[name](event)
        except Exception as exc:
            failures = self._failures_before(message) + 1
            log_event(log, "event.failed", logging.ERROR, event_name=name, attempt=failures, error=repr(exc))
            await self._settle(message, name, "retry" if failures < self.settings.delivery_limit else "reject")
            return
        await self._settle(message, name, "ack")

    async def stop(self) -> None:
        """Stop taking new work, let what is in flight finish (and be acked), then return.

        What this replica had taken but not finished by `shutdown_timeout_seconds` stays unacked:
        RabbitMQ hands it to another replica once the connection closes (handlers are idempotent).
        """
        log_event(log, "service.stopping", service=self.router.service, in_flight=len(self._in_flight))
        if self.partitions is not None:
            await self.partitions.stop_consuming()
        await self.jobs.stop(self.settings.shutdown_timeout_seconds)
        for queue, tag in self._consumers:
            with contextlib.suppress(Exception):  # the connection may already be gone
                await queue.cancel(tag)
        # Deliveries that arrived before the cancel have handler tasks created but maybe not
        # yet started (so not yet tracked): let them start.
        await asyncio.sleep(0)
        unfinished = 0
        if self._in_flight:
            _, still = await asyncio.wait(set(self._in_flight), timeout=self.settings.shutdown_timeout_seconds)
            unfinished = len(still)
        if self.partitions is not None:  # now that their commands are done (and acked)
            await self.partitions.release()
        log_event(log, "service.stopped", service=self.router.service, unfinished=unfinished)

    async def run_until_signalled(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopping.set)
        await self.start()
        await self._stopping.wait()
        await self.stop()
