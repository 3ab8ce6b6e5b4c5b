"""docker-compose.yml brought up for real on this machine, through deploy/local/docker-compose.local.yml
(host networking only, the locally built images, the MongoDB-wire stand-in for mongo:7, the host's
RabbitMQ and Redis, Debian's nginx in front; no coturn).

`docker-compose -f docker-compose.yml -f deploy/local/docker-compose.local.yml up -d --scale chat=3`
in a project, namespace and set of ports of its own; then: ready, three chat replicas running,
every container on the host's network and no network created, the protocol smoke through
nginx, every container healthy; `down -v` and the namespace's queues and keys removed.

Skipped, loudly, when no Docker engine answers, no Compose is installed or the images are missing
(`make images`). It talks to the host's RabbitMQ and Redis at 127.0.0.1, as the override does:
no backends fixture.
"""
import asyncio
import json
import os
import secrets
import shutil
import subprocess
import time
from typing import Any

import pytest

from deploy.local.devstack import free_port
from shared.settings import Settings
from tests.deploy.conftest import skip_for_missing
from tests.deploy.support import COMPOSE_FILE, ROOT, SERVICES, run_command
from tests.support.infra import remove_namespace, wait_until_ready
from tests.support.smoke import protocol_smoke

OVERRIDE = ROOT / "deploy" / "local" / "docker-compose.local.yml"
CHATS = 3
# Where the override points every service (the host's).
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
REDIS_URL = "redis://127.0.0.1:6379/0"
READY_SECONDS = 90
HEALTHY_SECONDS = 45  # the images' first health check runs 15 s after the start

pytestmark = pytest.mark.timeout(900)  # the first run of the session builds the images (tests/deploy/conftest.py)


def compose_command() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    return None


async def test_the_local_override_starts_the_stack_with_three_chats_and_passes_the_smoke(service_images: str) -> None:
    compose = compose_command()
    if compose is None:
        skip_for_missing("docker-compose", "no Compose: `make compose` (as root) installs Debian's docker-compose")
    tag = service_images  # built from this checkout by the session's fixture (tests/deploy/conftest.py)

    project = f"parleyt{secrets.token_hex(4)}"
    namespace = f"t{secrets.token_hex(4)}"
    port, proxy_port = free_port(), free_port()
    env = {
        **os.environ,
        "PARLEY_TAG": tag,
        "PARLEY_JWT_SECRET": secrets.token_hex(32),
        "PARLEY_TURN_SECRET": secrets.token_hex(32),
        "PARLEY_NAMESPACE": namespace,
        "PARLEY_LOCAL_GATEWAY_PORT": str(port),
        "PARLEY_LOCAL_HTTP_PORT": str(proxy_port),
        "PARLEY_LOCAL_MONGO_PORT": str(free_port()),
        "PARLEY_LOCAL_AUTH_METRICS_PORT": str(free_port()),
        "PARLEY_LOCAL_FILES_METRICS_PORT": str(free_port()),
        "PARLEY_LOCAL_CALLS_METRICS_PORT": str(free_port()),
        "PARLEY_LOCAL_PUSH_METRICS_PORT": str(free_port()),
    }
    base = [*compose, "-p", project, "-f", str(COMPOSE_FILE), "-f", str(OVERRIDE)]
    networks_before = set(run_command(["docker", "network", "ls", "-q"]).split())
    started = time.monotonic()
    try:
        run_command([*base, "up", "-d", "--no-build", "--scale", f"chat={CHATS}"], env=env, timeout=180)
        await wait_until_ready(port, READY_SECONDS)
        print(f"\n[compose] {project}: ready on 127.0.0.1:{port} {time.monotonic() - started:.1f} s after `up`")

        containers = run_command(["docker", "ps", "-q", "--filter", f"label=com.docker.compose.project={project}"]).split()
        described = json.loads(run_command(["docker", "inspect", *containers]))
        by_service: dict[str, list[dict[str, Any]]] = {}
        for c in described:
            by_service.setdefault(c["Config"]["Labels"]["com.docker.compose.service"], []).append(c)
        running = {s: sum(c["State"]["Running"] for c in cs) for s, cs in by_service.items()}
        expected = {"mongo": 1, "rabbitmq": 1, "redis": 1, **dict.fromkeys(SERVICES, 1), "chat": CHATS, "proxy-local": 1}
        assert running == expected, running
        assert {c["HostConfig"]["NetworkMode"] for c in described} == {"host"}
        assert set(run_command(["docker", "network", "ls", "-q"]).split()) == networks_before, "Compose created a network"

        await wait_until_ready(proxy_port, READY_SECONDS)
        await protocol_smoke(proxy_port)  # as clients would: through nginx
        print(f"[compose] protocol smoke passed through nginx on 127.0.0.1:{proxy_port} (gateway {port})")

        deadline = time.monotonic() + HEALTHY_SECONDS
        while True:
            health = {c["Name"].lstrip("/"): run_command(["docker", "inspect", "-f", "{{.State.Health.Status}}", c["Id"]])
                      for c in described}
            if set(health.values()) == {"healthy"}:
                break
            assert "unhealthy" not in health.values() and time.monotonic() < deadline, f"health: {health}"
            await asyncio.sleep(1)
        print(f"[compose] all {len(health)} containers healthy {time.monotonic() - started:.1f} s after `up`")
    except BaseException:
        print(run_command([*base, "ps"], env=env, check=False))
        print(run_command([*base, "logs", "--no-color", "--tail=30"], env=env, check=False))
        raise
    finally:
        run_command([*base, "down", "-v", "--timeout", "30"], env=env, timeout=120, check=False)
        await remove_namespace(Settings(namespace=namespace, amqp_url=AMQP_URL, redis_url=REDIS_URL))
        left = run_command(["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={project}"], check=False)
        assert not left, f"containers left after `down`: {left}"
