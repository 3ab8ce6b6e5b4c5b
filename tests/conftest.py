"""Session fixtures: real MongoDB, RabbitMQ and Redis (containers or local), and the whole stack."""
import os
import secrets
from collections.abc import AsyncIterator, Iterator

import pytest
from pymongo import AsyncMongoClient

from shared.devstack import DevSettings, Stack, free_port
from shared.settings import Settings
from tests.support.backends import Backends, provide
from tests.support.infra import LOG_DIR, remove_namespace, unique_namespace

ANNOUNCED: list[str] = []


@pytest.fixture(scope="session")
def backends(pytestconfig: pytest.Config) -> Iterator[Backends]:
    """MongoDB, RabbitMQ and Redis: containers when Docker answers, else local (tests/support/backends.py)."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    with provide(LOG_DIR) as found:
        announce(pytestconfig, f"[parley tests] backends: {found.description}")
        yield found


def announce(config: pytest.Config, line: str) -> None:
    """A line on the terminal even while output is captured, and again in the summary."""
    ANNOUNCED.append(line)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        print(line)
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(f"\n{line}")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in ANNOUNCED:
        terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def mongo_url(backends: Backends) -> str:
    return backends.mongo_url


@pytest.fixture(scope="session")
def test_env(backends: Backends, mongo_url: str) -> dict[str, str]:
    """PARLEY_* for everything this run starts: its own namespace and database, fast presence."""
    namespace = unique_namespace()
    return {
        "PARLEY_NAMESPACE": namespace,
        "PARLEY_MONGO_URL": mongo_url,
        "PARLEY_AMQP_URL": backends.amqp_url,
        "PARLEY_REDIS_URL": backends.redis_url,
        "PARLEY_MONGO_DB": f"parley_{namespace}",
        "PARLEY_PRESENCE_TTL_SECONDS": "3",
        "PARLEY_PRESENCE_SWEEP_SECONDS": "0.5",
        "PARLEY_RPC_TIMEOUT_SECONDS": "5",
        "PARLEY_GATEWAY_PORT": str(free_port()),
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
    }


@pytest.fixture(scope="session")
def settings(test_env: dict[str, str]) -> Settings:
    return Settings(**{k.removeprefix("PARLEY_").lower(): v for k, v in test_env.items()})


@pytest.fixture(scope="session")
def stack(test_env: dict[str, str], settings: Settings) -> Iterator[Stack]:
    """auth, chat, files and two gateways, as separate processes, logging to .run/test-logs."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    second = free_port()
    sink = open(LOG_DIR / "stack.log", "w")
    stack = Stack(env=test_env, dev=DevSettings(gateways=2, chats=1, ready_timeout_seconds=90), sink=sink)
    stack.gateway_ports = [settings.gateway_port, second]
    stack.start_all()
    try:
        stack.wait_ready()
    except RuntimeError:
        stack.stop_all()
        raise
    yield stack
    stack.stop_all()
    sink.close()


@pytest.fixture(scope="session", autouse=True)
async def _remove_traces(settings: Settings) -> AsyncIterator[None]:
    yield
    await remove_namespace(settings)


@pytest.fixture
async def db(mongo_url: str, settings: Settings):
    """A fresh database for one unit test."""
    client = AsyncMongoClient(mongo_url, tz_aware=True)
    name = f"unit_{unique_db_suffix()}"
    yield client[name]
    await client.drop_database(name)
    await client.close()


def unique_db_suffix() -> str:
    return os.urandom(4).hex()
