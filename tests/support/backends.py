"""Where a test session's MongoDB, RabbitMQ and Redis come from.

When a Docker engine answers and the images can be had (the engine holds them, or pulls
them), testcontainers starts throwaway ones (mongo:7, rabbitmq:3.13, redis:7), so a run needs
nothing installed but Docker. An engine that cannot get them (no registry, as on a machine
whose only network is loopback) is no reason to fail: the run falls back. Otherwise the environment's
(PARLEY_MONGO_URL, PARLEY_AMQP_URL, PARLEY_REDIS_URL) or the local services are used, with the
embedded MongoDB-wire server when no MongoDB is given. PARLEY_TEST_BACKENDS=local|containers
forces the choice (`containers` fails loudly without an engine rather than testing something
else). The choice and its reason are printed at the start of the run.
"""
import re
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.settings import Settings
from tests.support.infra import start_embedded_mongo

MONGO_IMAGE, RABBITMQ_IMAGE, REDIS_IMAGE = "mongo:7", "rabbitmq:3.13", "redis:7"
IMAGES = (MONGO_IMAGE, RABBITMQ_IMAGE, REDIS_IMAGE)
PING_TIMEOUT_SECONDS = 3
# A pull that has not finished in this long is taken as "cannot be had" (the run falls back).
PULL_TIMEOUT_SECONDS = 300


class BackendSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PARLEY_", extra="ignore")

    test_backends: Literal["auto", "local", "containers"] = "auto"
    mongo_url: str | None = None  # none given: the embedded MongoDB-wire server
    amqp_url: str = Settings.model_fields["amqp_url"].default
    redis_url: str = Settings.model_fields["redis_url"].default


@dataclass(frozen=True)
class Choice:
    containers: bool
    reason: str


def ping_docker(timeout: float = PING_TIMEOUT_SECONDS) -> str:
    """Where the Docker engine answers (DOCKER_HOST, else the default socket); raises if none does."""
    import docker  # installed with testcontainers

    client = docker.from_env(timeout=timeout)
    try:
        client.ping()
        return str(client.api.base_url)
    finally:
        client.close()


def images_out_of_reach(names: tuple[str, ...] = IMAGES, timeout: float = PULL_TIMEOUT_SECONDS) -> list[str]:
    """Those of the images the engine neither holds nor can pull, each with why ("mongo:7 (...)")."""
    import docker  # installed with testcontainers
    from docker.errors import DockerException, ImageNotFound

    client = docker.from_env(timeout=timeout)
    missing = []
    try:
        for name in names:
            try:
                client.images.get(name)
                continue
            except ImageNotFound:
                pass
            try:
                client.images.pull(name)
            except (DockerException, OSError) as exc:  # no registry, no DNS, a timeout, ...
                why = getattr(exc, "explanation", None) or str(exc)  # an APIError's own words
                missing.append(f"{name} (pull failed: {str(why).strip()[:120]})")
    finally:
        client.close()
    return missing


def _in_short(missing: list[str]) -> str:
    """"a (why), b (why)", or "a, b (why)" when every image failed for the same reason."""
    names = [m.split(" (", 1)[0] for m in missing]
    reasons = {m[len(n):] for m, n in zip(missing, names, strict=True)}
    return f"{', '.join(names)}{reasons.pop()}" if len(reasons) == 1 else ", ".join(missing)


def choose(
    settings: BackendSettings,
    ping: Callable[[], str] = ping_docker,
    out_of_reach: Callable[[], list[str]] = images_out_of_reach,
) -> Choice:
    """Containers when forced, or when an engine answers and has (or can pull) the images; local
    services otherwise."""
    if settings.test_backends == "local":
        return Choice(False, "PARLEY_TEST_BACKENDS=local")
    forced = settings.test_backends == "containers"
    try:
        where = ping()
    except Exception as exc:  # ImportError (no testcontainers), refused socket, timeout, ...
        why = f"{type(exc).__name__}: {exc}".strip()[:160]
        if forced:
            raise RuntimeError(f"PARLEY_TEST_BACKENDS=containers, but no Docker engine answers ({why})") from exc
        return Choice(False, f"no Docker engine: {why}")
    missing = out_of_reach()
    if missing:
        why = f"the Docker engine at {where} cannot get {_in_short(missing)}"
        if forced:
            raise RuntimeError(f"PARLEY_TEST_BACKENDS=containers, but {why}")
        return Choice(False, why)
    return Choice(True, f"docker at {where}{', forced by PARLEY_TEST_BACKENDS' if forced else ''}")


@dataclass(frozen=True)
class Backends:
    mongo_url: str
    amqp_url: str
    redis_url: str
    description: str


def redact(url: str) -> str:
    """The URL with its password hidden, for the log line."""
    return re.sub(r"(//[^:/@]+:)[^@/]*@", r"\1***@", url)


@contextmanager
def containers() -> Iterator[tuple[str, str, str]]:
    """Start MongoDB, RabbitMQ and Redis containers; their URLs as seen from this host."""
    try:  # testcontainers >= 4.14 moved the modules under `community`
        from testcontainers.community.mongodb import MongoDbContainer
        from testcontainers.community.rabbitmq import RabbitMqContainer
        from testcontainers.community.redis import RedisContainer
    except ImportError:
        from testcontainers.mongodb import MongoDbContainer  # type: ignore[no-redef]
        from testcontainers.rabbitmq import RabbitMqContainer  # type: ignore[no-redef]
        from testcontainers.redis import RedisContainer  # type: ignore[no-redef]

    with ExitStack() as started:
        mongo = started.enter_context(MongoDbContainer(MONGO_IMAGE))
        rabbit = started.enter_context(RabbitMqContainer(RABBITMQ_IMAGE))
        redis = started.enter_context(RedisContainer(REDIS_IMAGE))
        amqp_host, amqp_port = rabbit.get_container_host_ip(), rabbit.get_exposed_port(rabbit.port)
        redis_host, redis_port = redis.get_container_host_ip(), redis.get_exposed_port(redis.port)
        yield (
            mongo.get_connection_url(),
            f"amqp://{rabbit.username}:{rabbit.password}@{amqp_host}:{amqp_port}/",
            f"redis://{redis_host}:{redis_port}/0",
        )


@contextmanager
def provide(
    log_dir: Path,
    settings: BackendSettings | None = None,
    ping: Callable[[], str] = ping_docker,
    out_of_reach: Callable[[], list[str]] = images_out_of_reach,
) -> Iterator[Backends]:
    """The session's backends, up for the duration of the `with`."""
    settings = settings or BackendSettings()
    choice = choose(settings, ping, out_of_reach)
    if choice.containers:
        with containers() as (mongo_url, amqp_url, redis_url):
            urls = f"MongoDB {redact(mongo_url)}, RabbitMQ {redact(amqp_url)}, Redis {redact(redis_url)}"
            yield Backends(mongo_url, amqp_url, redis_url, f"testcontainers ({choice.reason}): {urls}")
        return
    local = f"local services ({choice.reason}): RabbitMQ {redact(settings.amqp_url)}, Redis {redact(settings.redis_url)}"
    if settings.mongo_url:
        yield Backends(settings.mongo_url, settings.amqp_url, settings.redis_url,
                       f"{local}, MongoDB from PARLEY_MONGO_URL {redact(settings.mongo_url)}")
        return
    url, proc = start_embedded_mongo(log_dir / "mongo.log")
    try:
        yield Backends(url, settings.amqp_url, settings.redis_url,
                       f"{local}, embedded MongoDB-wire server (secantusdb) at {url}")
    finally:
        # In memory, nothing to write out: SIGKILL. SIGTERM cost the end of every run 2 s (the
        # server waits 2 s for its accept thread before it exits).
        proc.kill()
        proc.wait(10)
