"""The broker layer on the real RabbitMQ: RPC answers, timeouts, dead-lettering."""
import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import aio_pika
import pytest
from prometheus_client import REGISTRY
from pymongo.errors import AutoReconnect

from shared.broker import Broker, RpcClient, dumps
from shared.contracts.base import Empty
from shared.contracts.errors import ErrorCode, ParleyError
from shared.contracts.operations import OPERATIONS
from shared.contracts.wire import Caller
from shared.periodic import Periodic
from shared.service import Router, ServiceRunner
from shared.settings import Settings
from tests.support.infra import remove_namespace, unique_namespace
from tests.support.waiting import eventually

HEALTH = OPERATIONS["files.health"]


@pytest.fixture
async def isolated(settings: Settings) -> AsyncIterator[Settings]:
    """The session's broker, in a namespace of its own, removed afterwards."""
    own = settings.model_copy(
        update={"namespace": unique_namespace(), "delivery_limit": 3, "rpc_timeout_seconds": 3, "shutdown_timeout_seconds": 3}
    )
    yield own
    await remove_namespace(own, services=("files",))


Start = Callable[[Settings, Router | None], Awaitable[tuple[Broker, RpcClient, ServiceRunner | None]]]


@pytest.fixture
async def start(isolated: Settings) -> AsyncIterator[Start]:
    """`await start(settings, router)`: a connected broker, an RPC client and, given a router, a
    runner consuming for it. Stopped and closed when the test ends, pass or fail, before
    `isolated` removes the namespace (a connection still open then would reconnect forever)."""
    opened: list[tuple[Broker, ServiceRunner | None]] = []

    async def start_(settings: Settings, router: Router | None) -> tuple[Broker, RpcClient, ServiceRunner | None]:
        broker = await Broker(settings).connect()
        runner = None
        opened.append((broker, None))
        if router is not None:
            runner = ServiceRunner(broker, router, settings)
            opened[-1] = (broker, runner)
            await runner.start()
        return broker, await RpcClient(broker, "tester").start(), runner

    yield start_
    for broker, runner in reversed(opened):
        if runner is not None:
            await runner.stop()
        await broker.close()


async def test_rpc_answers_and_errors_cross_as_codes(isolated: Settings, start: Start) -> None:
    router = Router("files")
    calls = 0

    @router.operation("files.health")
    async def health(request: Empty, caller: Caller) -> Empty:
        nonlocal calls
        calls += 1
        if caller.user_id == "refused":
            raise ParleyError.forbidden("not you")
        return Empty()

    broker, rpc, runner = await start(isolated, router)
    assert await rpc.call(HEALTH, Empty(), Caller(request_id="r1")) == Empty()
    with pytest.raises(ParleyError) as refused:
        await rpc.call(HEALTH, Empty(), Caller(request_id="r2", user_id="refused"))
    assert (refused.value.code, refused.value.message) == (ErrorCode.FORBIDDEN, "not you")
    with pytest.raises(ParleyError) as malformed:
        await rpc.exchange(HEALTH, Caller(request_id="r3"), {"unexpected": 1})
    assert malformed.value.code == ErrorCode.BAD_REQUEST
    # Many calls in flight at once, each answered to its own caller.
    answers = await asyncio.gather(*(rpc.call(HEALTH, Empty(), Caller(request_id=f"p{i}")) for i in range(100)))
    assert answers == [Empty()] * 100 and calls == 102


async def test_no_service_bound_is_unavailable_at_once(isolated: Settings, start: Start) -> None:
    broker, rpc, _ = await start(isolated, None)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ParleyError) as down:
        await rpc.call(HEALTH, Empty(), Caller(request_id="r"))
    assert down.value.code == ErrorCode.UNAVAILABLE and loop.time() - started < 2


async def test_a_silent_service_times_out_as_unavailable(isolated: Settings, start: Start) -> None:
    router = Router("files")

    answer = asyncio.Event()

    @router.operation("files.health")
    async def slow(request: Empty, caller: Caller) -> Empty:
        await answer.wait()
        return Empty()

    broker, rpc, runner = await start(isolated, router)
    with pytest.raises(ParleyError) as late:
        await rpc.call(HEALTH, Empty(), Caller(request_id="r"), timeout=1)
    answer.set()  # too late for the caller; lets the runner stop at once
    assert late.value.code == ErrorCode.UNAVAILABLE and "retry" in late.value.message


async def test_a_command_that_keeps_failing_is_dead_lettered(isolated: Settings, start: Start) -> None:
    router = Router("files")
    attempts = 0

    @router.operation("files.health")
    async def broken(request: Empty, caller: Caller) -> Empty:
        nonlocal attempts
        attempts += 1
        raise RuntimeError("bug")

    broker, rpc, runner = await start(isolated, router)
    with pytest.raises(ParleyError) as failed:
        await rpc.call(HEALTH, Empty(), Caller(request_id="poison"), timeout=10)
    assert failed.value.code == ErrorCode.INTERNAL
    assert attempts == isolated.delivery_limit

    await dead_lettered(broker, "poison")


async def dead_lettered(broker: Broker, request_id: str) -> None:
    """The command asked as `request_id` reaches the dead-letter queue (and is taken off it).
    Waited for: its caller hears `internal` before the replica rejects it, and RabbitMQ routes a
    rejected message to the dead-letter exchange after that, so one look can come too early."""
    channel = await broker.channel()
    dead = await channel.declare_queue(broker.names.dead_letters, durable=True, passive=True)
    wanted = f'"request_id":"{request_id}"'.encode()

    async def arrived() -> bool:
        while (message := await dead.get(fail=False)) is not None:
            await message.ack()
            if wanted in message.body:
                return True
        return False

    await eventually(arrived, f"the command {request_id} in the dead-letter queue")
    await channel.close()


@pytest.mark.parametrize("bug", ["KeyError", "ValidationError"])
async def test_a_bug_inside_a_handler_is_internal_not_the_clients_fault(isolated: Settings, start: Start, bug: str) -> None:
    """A `doc["..."]` that is not there, or a reply model that does not build, is a server bug:
    retried, dead-lettered and answered `internal`, never `bad_request` (which tells a client
    to drop its request as its own mistake). Only the command's own decoding is `bad_request`."""
    router = Router("files")
    attempts = 0

    @router.operation("files.health")
    async def buggy(request: Empty, caller: Caller) -> Empty:
        nonlocal attempts
        attempts += 1
        if bug == "KeyError":
            return {}["missing"]  # type: ignore[no-any-return]
        return Empty.model_validate({"not": "a field"})

    broker, rpc, runner = await start(isolated, router)
    with pytest.raises(ParleyError) as failed:
        await rpc.call(HEALTH, Empty(), Caller(request_id=f"bug-{bug}"), timeout=10)
    assert failed.value.code == ErrorCode.INTERNAL and failed.value.message == "internal error"
    assert attempts == isolated.delivery_limit
    await dead_lettered(broker, f"bug-{bug}")
    # The request's own decoding stays the client's fault: answered once, not retried.
    with pytest.raises(ParleyError) as malformed:
        await rpc.exchange(HEALTH, Caller(request_id="undecodable"), {"unexpected": 1})
    assert malformed.value.code == ErrorCode.BAD_REQUEST and attempts == isolated.delivery_limit


async def publish_health(broker: Broker, reply_to: str, *, deadline: float | None = None, n: int = 1) -> None:
    """Commands as a gateway sends them, published by hand to say where the reply goes."""
    for i in range(n):
        command = {"caller": {"request_id": f"h{i}"}, "data": {}} | ({"deadline": deadline} if deadline else {})
        await broker.publish("commands", HEALTH.routing_key, dumps(command), correlation_id=f"c{i}", reply_to=reply_to)


async def test_replies_nobody_can_receive_never_stall_the_service(isolated: Settings, start: Start) -> None:
    """A gateway that died under its requests: its reply queue is gone, the replies cannot be
    published. Each command is settled all the same, so the replica's prefetch slots stay free
    and the next caller is answered (before: one slot held per such command, until the
    replica stopped answering anyone)."""
    own = isolated.model_copy(update={"prefetch": 4})
    router = Router("files")

    async def always_healthy() -> None:
        return None

    router.health(always_healthy)
    broker, rpc, runner = await start(own, router)
    dropped_before = REGISTRY.get_sample_value("parley_replies_dropped_total", {"operation": HEALTH.routing_key}) or 0
    await publish_health(broker, broker.names.reply_queue("a-gateway-that-died"), n=3 * own.prefetch)
    assert await rpc.call(HEALTH, Empty(), Caller(request_id="after"), timeout=5) == Empty()

    def dropped() -> float:
        return (REGISTRY.get_sample_value("parley_replies_dropped_total", {"operation": HEALTH.routing_key}) or 0) - dropped_before

    # The last few may still be settling beside the answer to "after" (prefetch runs them at once).
    await eventually(lambda: dropped() >= 3 * own.prefetch, "every reply to the dead gateway dropped")
    assert dropped() == 3 * own.prefetch
    channel = await broker.channel()
    queue = await channel.declare_queue(broker.names.service_queue("files"), durable=True, passive=True)
    assert queue.declaration_result.message_count == 0


async def test_a_command_past_its_deadline_is_dropped_unrun(isolated: Settings, start: Start) -> None:
    """After an outage the queue holds commands whose callers gave up long ago: they are not
    worked through (they would delay every caller still waiting); the caller's retry is."""
    router = Router("files")
    runs = 0

    @router.operation("files.health")
    async def counted(request: Empty, caller: Caller) -> Empty:
        nonlocal runs
        runs += 1
        return Empty()

    broker, rpc, runner = await start(isolated, router)
    await publish_health(broker, rpc.reply_queue_name, deadline=time.time() - 1, n=20)
    assert await rpc.call(HEALTH, Empty(), Caller(request_id="fresh"), timeout=5) == Empty()
    assert runs == 1


async def test_a_backend_away_is_unavailable_at_once_not_internal(isolated: Settings, start: Start) -> None:
    """MongoDB unreachable inside a handler: the caller hears `unavailable` (safe to retry) at
    once, not `internal` after the retries (a client following the protocol would drop the
    message on `internal`)."""
    router = Router("files")
    attempts = 0

    @router.operation("files.health")
    async def database_away(request: Empty, caller: Caller) -> Empty:
        nonlocal attempts
        attempts += 1
        raise AutoReconnect("connection refused")

    broker, rpc, runner = await start(isolated, router)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ParleyError) as away:
        await rpc.call(HEALTH, Empty(), Caller(request_id="r"), timeout=5)
    assert away.value.code == ErrorCode.UNAVAILABLE and attempts == 1 and loop.time() - started < 2


async def test_the_dead_letter_queue_is_bounded(isolated: Settings, start: Start) -> None:
    """Letters past the bound push the oldest out: an outage cannot grow it without limit."""
    own = isolated.model_copy(update={"dead_letter_max_messages": 5})
    broker, _, _ = await start(own, None)
    channel = await broker.channel()
    for i in range(12):
        await channel.default_exchange.publish(aio_pika.Message(f"letter {i}".encode()), routing_key=broker.names.dead_letters)
    dead = await channel.declare_queue(broker.names.dead_letters, passive=True)
    assert dead.declaration_result.message_count == 5
    oldest = await dead.get(timeout=5)
    assert oldest.body == b"letter 7"


async def test_a_periodic_job_runs_with_the_consumers_and_stops_with_them(isolated: Settings, start: Start) -> None:
    router = Router("files")
    runs = 0

    async def count() -> None:
        nonlocal runs
        runs += 1

    router.periodic(Periodic("count", every=0.05, run=count))
    _, _, runner = await start(isolated, router)
    await eventually(lambda: runs >= 3, "the job run by the runner")
    assert runner is not None
    await runner.stop()
    stopped_at = runs
    await asyncio.sleep(0.3)  # six periods: no run after the stop
    assert runs == stopped_at
