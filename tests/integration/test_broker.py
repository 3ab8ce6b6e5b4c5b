"""The broker layer on the real RabbitMQ: RPC answers, timeouts, dead-lettering."""
import asyncio
from collections.abc import AsyncIterator

import pytest

from shared.broker import Broker, RpcClient
from shared.contracts.base import Empty
from shared.contracts.errors import ErrorCode, ParleyError
from shared.contracts.operations import OPERATIONS
from shared.contracts.wire import Caller
from shared.service import Router, ServiceRunner
from shared.settings import Settings
from tests.support.infra import remove_namespace, unique_namespace

HEALTH = OPERATIONS["files.health"]


@pytest.fixture
async def isolated(settings: Settings) -> AsyncIterator[Settings]:
    """The session's broker, in a namespace of its own, removed afterwards."""
    own = settings.model_copy(update={"namespace": unique_namespace(), "delivery_limit": 3, "rpc_timeout_seconds": 3})
    yield own
    await remove_namespace(own, services=("files",))


async def start(settings: Settings, router: Router | None) -> tuple[Broker, RpcClient, ServiceRunner | None]:
    broker = await Broker(settings).connect()
    runner = None
    if router is not None:
        runner = ServiceRunner(broker, router, settings)
        await runner.start()
    return broker, await RpcClient(broker, "tester").start(), runner


async def test_rpc_answers_and_errors_cross_as_codes(isolated: Settings) -> None:
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
    assert await rpc.call(HEALTH, Caller(request_id="r1"), {}) == {}
    with pytest.raises(ParleyError) as refused:
        await rpc.call(HEALTH, Caller(request_id="r2", user_id="refused"), {})
    assert (refused.value.code, refused.value.message) == (ErrorCode.FORBIDDEN, "not you")
    with pytest.raises(ParleyError) as malformed:
        await rpc.call(HEALTH, Caller(request_id="r3"), {"unexpected": 1})
    assert malformed.value.code == ErrorCode.BAD_REQUEST
    # Many calls in flight at once, each answered to its own caller.
    answers = await asyncio.gather(*(rpc.call(HEALTH, Caller(request_id=f"p{i}"), {}) for i in range(100)))
    assert answers == [{}] * 100 and calls == 102
    await runner.stop()
    await broker.close()


async def test_no_service_bound_is_unavailable_at_once(isolated: Settings) -> None:
    broker, rpc, _ = await start(isolated, None)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ParleyError) as down:
        await rpc.call(HEALTH, Caller(request_id="r"), {})
    assert down.value.code == ErrorCode.UNAVAILABLE and loop.time() - started < 2
    await broker.close()


async def test_a_silent_service_times_out_as_unavailable(isolated: Settings) -> None:
    router = Router("files")

    @router.operation("files.health")
    async def slow(request: Empty, caller: Caller) -> Empty:
        await asyncio.sleep(10)
        return Empty()

    broker, rpc, runner = await start(isolated, router)
    with pytest.raises(ParleyError) as late:
        await rpc.call(HEALTH, Caller(request_id="r"), {}, timeout=1)
    assert late.value.code == ErrorCode.UNAVAILABLE and "retry" in late.value.message
    await broker.close()


async def test_a_command_that_keeps_failing_is_dead_lettered(isolated: Settings) -> None:
    router = Router("files")
    attempts = 0

    @router.operation("files.health")
    async def broken(request: Empty, caller: Caller) -> Empty:
        nonlocal attempts
        attempts += 1
        raise RuntimeError("bug")

    broker, rpc, runner = await start(isolated, router)
    with pytest.raises(ParleyError) as failed:
        await rpc.call(HEALTH, Caller(request_id="poison"), {}, timeout=10)
    assert failed.value.code == ErrorCode.INTERNAL
    assert attempts == isolated.delivery_limit

    channel = await broker.channel()
    dead = await channel.declare_queue(broker.names.dead_letters, durable=True, passive=True)
    message = await dead.get(timeout=5, fail=False)
    assert message is not None and b'"request_id":"poison"' in message.body
    await message.ack()
    await runner.stop()
    await broker.close()
