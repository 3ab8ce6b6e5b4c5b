"""The tests' choice of backends (tests/support/backends.py), without a Docker engine."""
import importlib
from pathlib import Path
from types import ModuleType

import pytest
from docker.errors import DockerException
from pydantic import ValidationError

from tests.support.backends import BackendSettings, choose, ping_docker, provide, redact


def answers() -> str:
    return "unix:///var/run/docker.sock"


def silent() -> str:
    raise ConnectionError("no such socket")


def never() -> str:
    raise AssertionError("the engine should not be asked")


def all_there() -> list[str]:
    return []


def none_pullable() -> list[str]:
    return ["mongo:7 (APIError: dial tcp: lookup registry-1.docker.io: no such host)"]


def test_an_engine_that_answers_means_containers() -> None:
    choice = choose(BackendSettings(test_backends="auto"), ping=answers, out_of_reach=all_there)
    assert choice.containers and choice.reason == "docker at unix:///var/run/docker.sock"


def test_an_engine_that_cannot_get_the_images_means_local_services_and_says_why() -> None:
    choice = choose(BackendSettings(test_backends="auto"), ping=answers, out_of_reach=none_pullable)
    assert not choice.containers
    assert choice.reason == (
        "the Docker engine at unix:///var/run/docker.sock cannot get "
        "mongo:7 (APIError: dial tcp: lookup registry-1.docker.io: no such host)"
    )
    with pytest.raises(RuntimeError, match="PARLEY_TEST_BACKENDS=containers, but the Docker engine at .* cannot get mongo:7"):
        choose(BackendSettings(test_backends="containers"), ping=answers, out_of_reach=none_pullable)


def test_no_engine_means_local_services_and_says_why() -> None:
    choice = choose(BackendSettings(test_backends="auto"), ping=silent)
    assert not choice.containers
    assert choice.reason == "no Docker engine: ConnectionError: no such socket"


def test_local_can_be_forced_without_asking_docker() -> None:
    choice = choose(BackendSettings(test_backends="local"), ping=never)
    assert not choice.containers and choice.reason == "PARLEY_TEST_BACKENDS=local"


def test_containers_can_be_forced_and_then_fail_loudly_without_an_engine() -> None:
    forced = BackendSettings(test_backends="containers")
    assert choose(forced, ping=answers, out_of_reach=all_there).containers
    with pytest.raises(RuntimeError, match="PARLEY_TEST_BACKENDS=containers, but no Docker engine answers"):
        choose(forced, ping=silent)


def test_the_choice_and_urls_come_from_parley_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARLEY_TEST_BACKENDS", "local")
    monkeypatch.setenv("PARLEY_AMQP_URL", "amqp://u:p@rabbit:5672/")
    settings = BackendSettings()
    assert (settings.test_backends, settings.amqp_url) == ("local", "amqp://u:p@rabbit:5672/")
    assert settings.redis_url == "redis://127.0.0.1:6379/0"  # the services' own default
    monkeypatch.setenv("PARLEY_TEST_BACKENDS", "kubernetes")
    with pytest.raises(ValidationError):
        BackendSettings()


def test_ping_fails_fast_when_docker_host_names_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:1")  # nothing listens there
    with pytest.raises(DockerException):
        ping_docker(timeout=2)


def test_environment_urls_are_used_as_given_and_logged_without_passwords(tmp_path: Path) -> None:
    settings = BackendSettings(
        test_backends="local", mongo_url="mongodb://app:s3cret@db:27017/", amqp_url="amqp://bus:hush@mq:5672/"
    )
    with provide(tmp_path, settings) as found:
        assert (found.mongo_url, found.amqp_url) == ("mongodb://app:s3cret@db:27017/", "amqp://bus:hush@mq:5672/")
        assert found.description.startswith("local services (PARLEY_TEST_BACKENDS=local)")
        assert "s3cret" not in found.description and "hush" not in found.description
    assert redact("mongodb://test:test@localhost:32768") == "mongodb://test:***@localhost:32768"
    assert redact("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


class FakeContainer:
    """Stands in for a testcontainers container: the attributes and calls backends.py uses."""

    started: list[str] = []
    port = 0

    def __init__(self, image: str):
        self.image = image
        self.username, self.password = "guest", "guest"

    def __enter__(self) -> "FakeContainer":
        FakeContainer.started.append(self.image)
        return self

    def __exit__(self, *exc: object) -> None:
        FakeContainer.started.remove(self.image)

    def get_container_host_ip(self) -> str:
        return "localhost"

    def get_exposed_port(self, port: int) -> int:
        return 30000 + port


class FakeMongo(FakeContainer):
    port = 27017

    def get_connection_url(self) -> str:
        return f"mongodb://test:test@localhost:{self.get_exposed_port(self.port)}"


class FakeRabbit(FakeContainer):
    port = 5672


class FakeRedis(FakeContainer):
    port = 6379


def containers_module(name: str) -> ModuleType:
    """Where backends.py imports it from: `testcontainers.community.<name>` (4.14+), else the old place."""
    try:
        return importlib.import_module(f"testcontainers.community.{name}")
    except ImportError:
        return importlib.import_module(f"testcontainers.{name}")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # testcontainers' own, on import
def test_containers_are_started_for_the_session_and_their_urls_handed_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(containers_module("mongodb"), "MongoDbContainer", FakeMongo)
    monkeypatch.setattr(containers_module("rabbitmq"), "RabbitMqContainer", FakeRabbit)
    monkeypatch.setattr(containers_module("redis"), "RedisContainer", FakeRedis)
    with provide(tmp_path, BackendSettings(test_backends="auto"), ping=answers, out_of_reach=all_there) as found:
        assert FakeContainer.started == ["mongo:7", "rabbitmq:3.13", "redis:7"]
        assert found.mongo_url == "mongodb://test:test@localhost:57017"
        assert found.amqp_url == "amqp://guest:guest@localhost:35672/"
        assert found.redis_url == "redis://localhost:36379/0"
        assert found.description.startswith("testcontainers (docker at unix:///var/run/docker.sock): MongoDB ")
    assert FakeContainer.started == []  # stopped with the session
