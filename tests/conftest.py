"""Session fixtures: real RabbitMQ, Redis and a MongoDB-wire server, and the whole stack."""
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from pymongo import AsyncMongoClient

from shared.devstack import DevSettings, Stack, free_port
from shared.settings import Settings
from tests.support.infra import remove_namespace, start_embedded_mongo, unique_namespace

LOG_DIR = Path(__file__).resolve().parent.parent / ".run" / "test-logs"


@pytest.fixture(scope="session")
def mongo_url() -> Iterator[str]:
    if url := os.environ.get("PARLEY_MONGO_URL"):
        print(f"\n[parley tests] MongoDB from PARLEY_MONGO_URL: {url}")
        yield url
        return
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    url, proc = start_embedded_mongo(LOG_DIR / "mongo.log")
    print(f"\n[parley tests] embedded MongoDB-wire server (secantusdb) at {url}")
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="session")
def test_env(mongo_url: str) -> dict[str, str]:
    """PARLEY_* for everything this run starts: its own namespace and database, fast presence."""
    namespace = unique_namespace()
    return {
        "PARLEY_NAMESPACE": namespace,
        "PARLEY_MONGO_URL": mongo_url,
        "PARLEY_MONGO_DB": f"parley_{namespace}",
        "PARLEY_PRESENCE_TTL_SECONDS": "3",
        "PARLEY_PRESENCE_SWEEP_SECONDS": "0.5",
        "PARLEY_RPC_TIMEOUT_SECONDS": "5",
        "PARLEY_GATEWAY_PORT": str(free_port()),
        # Tests send in bulk; the rate limit has its own gateways (tests/integration/test_rate_limit.py).
        "PARLEY_SEND_RATE_PER_SECOND": "100000",
        "PARLEY_SEND_BURST": "100000",
        "PARLEY_LOG_LEVEL": "INFO",
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
