"""The service images, built and run for real on this machine (issue 17).

Built by deploy/local/build-images.sh on the Debian base deploy/local/make-base-image.sh makes
(no registry needed), run with `--network host` against this run's RabbitMQ, Redis and
MongoDB-wire server, driven through the protocol, then stopped with `docker stop`: each must
stop by itself within its grace period and lose nothing. Skipped, loudly, when no Docker engine
answers (`make images` installs and starts one as root).
"""
import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from deploy.local.devstack import free_port
from shared.settings import Settings
from tests.deploy.support import SERVICES, run_command
from tests.support.infra import remove_namespace, unique_namespace, wait_until_ready
from tests.support.smoke import collect_offline_messages, leave_offline_messages, protocol_smoke

GRACE_SECONDS = 30  # docker stop -t: SIGTERM, then SIGKILL after this long
# (websockets is a runtime dependency: uvicorn[standard] serves WebSockets with it.)
DEV_PACKAGES = ("pytest", "secantusdb", "playwright", "hypothesis", "ruff", "mypy", "httpx", "testcontainers")

pytestmark = pytest.mark.timeout(900)  # a first run makes the base image with debootstrap


def docker(*args: str, timeout: float = 120, check: bool = True) -> str:
    return run_command(["docker", *args], timeout=timeout, check=check)


@pytest.fixture(scope="module")
def images(service_images: str) -> dict[str, str]:
    return {service: f"parley/{service}:{service_images}" for service in SERVICES}


@dataclass
class Running:
    names: dict[str, str]  # service -> container name
    port: int  # the gateway's


def service_env(test_env: dict[str, str], namespace: str, gateway_port: int) -> dict[str, str]:
    return {
        **test_env,
        "PARLEY_NAMESPACE": namespace,
        "PARLEY_MONGO_DB": f"parley_{namespace}",
        "PARLEY_GATEWAY_HOST": "127.0.0.1",
        "PARLEY_GATEWAY_PORT": str(gateway_port),
        "PARLEY_JWT_SECRET": secrets.token_hex(32),
        "PARLEY_TURN_SECRET": secrets.token_hex(32),
        "PARLEY_SHUTDOWN_TIMEOUT_SECONDS": "20",
        "PARLEY_GATEWAY_DRAIN_SECONDS": "1",
    }


@pytest.fixture(scope="module")
async def running(images: dict[str, str], test_env: dict[str, str]) -> AsyncIterator[Running]:
    namespace, port = unique_namespace(), free_port()
    env = service_env(test_env, namespace, port)
    names = {service: f"parley-test-{namespace}-{service}" for service in SERVICES}
    try:
        for service in SERVICES:
            own = {**env, "PARLEY_METRICS_PORT": str(free_port())} if service != "gateway" else env
            flags = [f"--env={k}={v}" for k, v in own.items() if k.startswith("PARLEY_")]
            docker("run", "--detach", "--network", "host", "--name", names[service], *flags, images[service])
        await wait_until_ready(port, 90)
        yield Running(names, port)
    finally:
        for name in names.values():
            docker("rm", "--force", name, check=False)
        await remove_namespace(Settings(**{"namespace": namespace, "amqp_url": env["PARLEY_AMQP_URL"],
                                           "redis_url": env["PARLEY_REDIS_URL"]}))


def test_the_images_run_as_a_user_and_hold_no_dev_extras(images: dict[str, str]) -> None:
    for service, image in images.items():
        assert docker("image", "inspect", "-f", "{{.Config.User}}", image) == "10001:10001", service
        uid = docker("run", "--rm", "--network", "host", "--entrypoint", "id", image, "-u")
        assert uid == "10001", f"{service} runs as uid {uid}"
    probe = f"import importlib.util as u; print([m for m in {DEV_PACKAGES!r} if u.find_spec(m)])"
    found = docker("run", "--rm", "--network", "host", "--entrypoint", "python", images["gateway"], "-c", probe)
    assert found == "[]", f"dev packages in the image: {found}"


async def test_the_running_images_pass_the_protocol_smoke_and_their_health_checks(running: Running) -> None:
    await protocol_smoke(running.port)
    deadline = time.monotonic() + 60  # the first health check runs 15 s after the start
    while True:
        states = {s: docker("inspect", "-f", "{{.State.Health.Status}}", n) for s, n in running.names.items()}
        if all(state == "healthy" for state in states.values()):
            break
        assert "unhealthy" not in states.values() and time.monotonic() < deadline, f"health: {states}"
        await asyncio.sleep(1)


async def test_docker_stop_is_graceful_and_nothing_acknowledged_is_lost(running: Running) -> None:
    waiting = await leave_offline_messages(running.port)
    await waiting.sender.close()
    for service in ("gateway", "calls", "push", "chat", "files", "auth"):  # the way traffic flows: the entry first
        started = time.monotonic()
        docker("stop", "-t", str(GRACE_SECONDS), running.names[service], timeout=GRACE_SECONDS + 30)
        took = time.monotonic() - started
        code = docker("inspect", "-f", "{{.State.ExitCode}}", running.names[service])
        assert code == "0" and took < GRACE_SECONDS, f"{service}: exit code {code} after {took:.1f} s"
        print(f"[images] docker stop {service}: exit code {code} after {took:.1f} s")
    for service in SERVICES:
        docker("start", running.names[service])
    await wait_until_ready(running.port, 90)
    await collect_offline_messages(running.port, waiting)
