"""Session fixtures: real MongoDB, RabbitMQ and Redis (containers or local), and the whole stack."""
import os
from collections.abc import AsyncIterator, Iterator

import pytest
from pymongo import AsyncMongoClient

from deploy.local.devstack import DevSettings, Stack, free_port
from deploy.local.redis_cluster import RedisCluster6
from shared.settings import Settings
from tests.support import leaks
from tests.support.backends import Backends, provide
from tests.support.infra import LOG_DIR, remove_namespace, tuned_for_tests, unique_namespace

ANNOUNCED: list[str] = []
# Whether a test's own body failed (then what it left open is closed without failing it twice).
CALL_FAILED = pytest.StashKey[bool]()

leaks.install()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    report: pytest.TestReport = yield
    if report.when == "call":
        item.stash[CALL_FAILED] = report.failed
    return report


@pytest.fixture(autouse=True)
async def _closes_what_it_opens(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Every connection, WebSocket client and child process a test (and its own fixtures) opened
    is closed by its end; one left open fails the test (tests/support/leaks.py)."""
    before = leaks.snapshot()
    yield
    found = await leaks.close_leaks(before)
    if found and not request.node.stash.get(CALL_FAILED, False):
        pytest.fail("left open (closed now by the leak check):\n  " + "\n  ".join(found), pytrace=False)


@pytest.fixture(scope="session", autouse=True)
async def _session_closes_what_it_opens() -> AsyncIterator[None]:
    """What session and module fixtures opened is closed once they are all torn down."""
    before = leaks.snapshot()
    yield
    found = await leaks.close_leaks(before)
    if found:
        pytest.fail("the session's fixtures left open (closed now):\n  " + "\n  ".join(found), pytrace=False)


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
        "PARLEY_GATEWAY_PORT": str(free_port()),
        **tuned_for_tests(),
    }


@pytest.fixture(scope="session")
def settings(test_env: dict[str, str]) -> Settings:
    return Settings(**{k.removeprefix("PARLEY_").lower(): v for k, v in test_env.items()})


@pytest.fixture(scope="session")
def redis_cluster(pytestconfig: pytest.Config) -> Iterator[RedisCluster6]:
    """A Redis Cluster of the run's own (six nodes on loopback, three primaries with a replica
    each), started once, on the first test that asks (tests/unit/helpers.py `on_redis`)."""
    with RedisCluster6() as cluster:
        announce(pytestconfig, f"[parley tests] Redis Cluster on 127.0.0.1:{cluster.ports[0]}-{cluster.ports[-1]}")
        leaks.keep(cluster)  # started in the first test that asks, it outlives that test
        yield cluster
        leaks.release(cluster)


@pytest.fixture(params=["redis", "redis-cluster"])
def redis_settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """`settings`, the test run once on one Redis and once on the run's Redis Cluster: the
    stores' tests ask for it (their keys' hash tags keep every script and transaction on one
    slot; without them the cluster refuses with CROSSSLOT)."""
    if request.param == "redis":
        return settings
    cluster: RedisCluster6 = request.getfixturevalue("redis_cluster")
    updated: Settings = settings.model_copy(update={"redis_url": cluster.url, "redis_cluster": True})
    return updated


@pytest.fixture(scope="session")
def stack(test_env: dict[str, str], settings: Settings) -> Iterator[Stack]:
    """auth, chat, files, calls, push and two gateways, as separate processes, logging to .run/test-logs."""
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
