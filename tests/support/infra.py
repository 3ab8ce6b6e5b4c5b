"""Where the tests' RabbitMQ, Redis and MongoDB come from, and how their traces are removed.

URLs come from the environment (PARLEY_AMQP_URL, PARLEY_REDIS_URL, PARLEY_MONGO_URL) where
given, else the local services; MongoDB falls back to the embedded secantusdb server, started
in memory for the session. Every run uses its own namespace, so it shares the broker and Redis
with a `make run` stack (or another test run) without seeing its traffic.
"""
import asyncio
import secrets
import subprocess
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path


from shared.amqp_nodes import connect_first
from shared.broker import Names
from shared.contracts.operations import SERVICES
from deploy.local.devstack import DevSettings, Stack, embedded_mongo_argv, embedded_mongo_url, free_port, wait_for_port
from shared.settings import Settings
from shared.stores import redis_client


# Every process log and failure screenshot of a test run ends up here.
LOG_DIR = Path(__file__).resolve().parents[2] / ".run" / "test-logs"


def tuned_for_tests() -> dict[str, str]:
    """Settings every test stack runs with, beside where its backends are: fast presence, short
    timeouts, a secret of its own, and the limits lifted that tests would trip over."""
    return {
        "PARLEY_PRESENCE_TTL_SECONDS": "3",
        "PARLEY_PRESENCE_SWEEP_SECONDS": "0.5",
        "PARLEY_RPC_TIMEOUT_SECONDS": "5",
        # Tests send in bulk; the rate limit has its own gateways (tests/integration/test_rate_limit.py).
        "PARLEY_SEND_RATE_PER_SECOND": "100000",
        "PARLEY_SEND_BURST": "100000",
        "PARLEY_LOG_LEVEL": "INFO",
        # Gateways stopped at the end answer 503 this long before closing (production: 2 s).
        "PARLEY_GATEWAY_DRAIN_SECONDS": "0.3",
        # A secret of the run's own: services refuse the built-in development one.
        "PARLEY_JWT_SECRET": secrets.token_hex(32),
        # Every test user comes from 127.0.0.1: the per-address abuse limits have their own
        # stack (tests/integration/test_abuse_limits.py).
        "PARLEY_REGISTER_PER_ADDRESS_PER_HOUR": "1000000",
        "PARLEY_REGISTER_BURST_PER_ADDRESS": "100000",
        "PARLEY_LOGIN_FREE_FAILURES_PER_ADDRESS": "100000",
        "PARLEY_WS_MAX_UNBOUND_PER_ADDRESS": "100000",
        "PARLEY_WS_MAX_SOCKETS_PER_ADDRESS": "100000",
        # Tests register and log in well over a thousand users, two argon2 hashes each: at the
        # production cost (2 passes over 19 MiB, ~45 ms of CPU a hash, more on a loaded host)
        # that was CPU taken from the services on a 2-core machine. No test here measures the
        # cost; the hasher's parameters are tested in tests/unit/test_accounts.py.
        "PARLEY_ARGON2_TIME_COST": "1",
        "PARLEY_ARGON2_MEMORY_KIB": "8192",
        # conversations.encrypt answers two of these later (production: 1 s).
        "PARLEY_ENCRYPTION_WATCH_SECONDS": "0.2",
    }


def unique_namespace() -> str:
    return f"t{secrets.token_hex(4)}"


def start_embedded_mongo(log_path: Path) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    argv = embedded_mongo_argv(port, ":memory:")
    if argv is None:
        raise RuntimeError("no MongoDB for the tests: set PARLEY_MONGO_URL or `pip install -e '.[local]'`")
    log = open(log_path, "wb")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    wait_for_port(port, 30, "the embedded MongoDB-wire server")
    return embedded_mongo_url(port), proc


async def remove_namespace(settings: Settings, services: tuple[str, ...] = SERVICES) -> None:
    """Delete the run's queues, exchanges and Redis keys."""
    names = Names(settings.namespace)
    connection = await connect_first(settings.amqp_url)  # a cluster's: any live node
    async with connection:
        channel = await connection.channel()
        partitions = [names.partition_queue("chat", p) for p in range(settings.chat_partitions)] if "chat" in services else []
        for queue in [names.service_queue(s) for s in services] + [names.events_queue(s) for s in services] + [
            names.dead_letters, *partitions
        ]:
            await channel.queue_delete(queue)
        for exchange in (names.commands, names.deliver, names.events, names.dead):
            await channel.exchange_delete(exchange)
    redis = redis_client(settings)  # one Redis or a Redis Cluster (every primary scanned)
    try:
        async for key in redis.scan_iter(f"{settings.namespace}:*"):
            await redis.delete(key)
    finally:
        await redis.aclose()


async def wait_until_ready(port: int, timeout: float = 60) -> None:
    def ready() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as resp:
                return resp.status == 200
        except OSError:
            return False

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await asyncio.to_thread(ready):
        assert loop.time() < deadline, f"gateway on {port} not ready after {timeout} s"
        await asyncio.sleep(0.3)


@asynccontextmanager
async def stack_of_its_own(
    test_env: dict[str, str], log_name: str, overrides: dict[str, str] | None = None, gateways: int = 1, chats: int = 1,
    expose_metrics: bool = False,
) -> AsyncIterator[tuple[Stack, Settings]]:
    """A whole stack in a namespace and database of its own (settings `overrides` on top of the
    run's), its gateways on free ports, its logs in LOG_DIR/<log_name>.log; removed afterwards.
    `expose_metrics`: every other process serves /metrics on a port of `stack.metrics_ports`."""
    namespace = unique_namespace()
    own = {**test_env, "PARLEY_NAMESPACE": namespace, "PARLEY_MONGO_DB": f"parley_{namespace}"}
    env = {**own, **(overrides or {})}
    # Where its traces are (namespace, database): the overrides are the processes' business
    # (and in their environment form, e.g. JSON lists, which keyword arguments do not parse).
    settings = Settings(**{k.removeprefix("PARLEY_").lower(): v for k, v in own.items()})
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    with open(LOG_DIR / f"{log_name}.log", "w") as sink:
        stack = Stack(env=env, dev=DevSettings(gateways=gateways, chats=chats, ready_timeout_seconds=90), sink=sink)
        stack.gateway_ports = [free_port() for _ in range(gateways)]
        stack.expose_metrics = expose_metrics
        stack.start_all()
        try:
            await asyncio.to_thread(stack.wait_ready)
            yield stack, settings
        finally:
            await asyncio.to_thread(stack.stop_all)
            await remove_namespace(settings)
