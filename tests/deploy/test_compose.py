"""docker-compose.yml, the Dockerfile and deploy/proxy/nginx.conf describe a stack that scales.

Structure is checked here in Python (every service, health checks, no fixed host ports or
container names on what scales, volumes, MongoDB as a replica set, the proxy's WebSocket and
streaming settings); then, where a Compose is installed (`make compose` puts Debian's
docker-compose there), `docker-compose config` parses, merges and interpolates the file as
Compose itself does. That needs no Docker daemon, and neither does anything here: the images are
not built.
"""
import json
import os
import re
import shutil
import subprocess
import tempfile
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.settings import Settings
from tests.deploy.conftest import skip_for_missing
from tests.deploy.support import (
    COMPOSE_FILE,
    DOCKERFILE,
    NGINX_CONF,
    PARLEY_VARIABLES,
    ROOT,
    BACKENDS,
    SERVICES,
    TURN_PORT,
    Directive,
    check_coturn_options,
    coturn_options,
    dockerfile_stages,
    load_yaml,
    nginx_bytes,
    nginx_seconds,
    parse_nginx,
    runnable_nginx_conf,
)

INFRASTRUCTURE = ("mongo", "rabbitmq", "redis")
# The gateway's settings on top of the shared ones: calls.ice_servers points at coturn.
GATEWAY_ONLY = {"PARLEY_STUN_URLS", "PARLEY_TURN_URLS", "PARLEY_TURN_SECRET", "PARLEY_TURN_CREDENTIAL_TTL_SECONDS"}
DATA_VOLUMES = {"mongo": "/data/db", "rabbitmq": "/var/lib/rabbitmq", "redis": "/data"}
GATEWAY_PORT = 8000  # the gateway image's PARLEY_GATEWAY_PORT
# calls keeps its state in Redis (no collection): it neither needs MongoDB nor waits for it.
NEEDS = {name: ("rabbitmq", "redis") if name == "calls" else INFRASTRUCTURE for name in SERVICES}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE_FILE)


@pytest.fixture(scope="module")
def stages() -> dict[str, list[str]]:
    return dockerfile_stages(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def nginx() -> Directive:
    return parse_nginx(NGINX_CONF.read_text())


def seconds(duration: str) -> float:
    """A Compose duration (`40s`, `1m30s`) in seconds."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(n) * units[u] for n, u in parts)


# --- docker-compose.yml ----------------------------------------------------------------------------
def test_every_service_is_there(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {*INFRASTRUCTURE, *SERVICES, "proxy", "coturn"}


def test_only_the_proxy_publishes_a_port(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if name != "proxy":
            assert "ports" not in service, f"{name} publishes a port: it could not be scaled, nor stay private"
        # coturn alone is on the host's network (its relay ports must be the host's).
        assert ("network_mode" in service) == (name == "coturn"), name
    (mapping,) = compose["services"]["proxy"]["ports"]
    assert re.fullmatch(r"(\$\{PARLEY_HTTP_PORT:-8000\}|8000):8000", mapping)


def test_parley_services_can_be_scaled(compose: dict[str, Any], stages: dict[str, list[str]]) -> None:
    for name in SERVICES:
        service = compose["services"][name]
        assert "container_name" not in service, f"{name}: a fixed container name forbids --scale"
        assert "hostname" not in service
        assert service["build"] == {"context": ".", "target": name}, f"{name}: its own Dockerfile stage"
        assert name in stages
        assert service["image"].startswith(f"parley/{name}:")
        assert service["restart"] == "unless-stopped"
        # A service drains within 30 s (shared/service.py), a gateway within some 25 s.
        assert seconds(service["stop_grace_period"]) >= 35
        assert service["depends_on"] == {d: {"condition": "service_healthy"} for d in NEEDS[name]}, name


def test_parley_services_share_one_configuration(compose: dict[str, Any]) -> None:
    environments = [compose["services"][name]["environment"] for name in SERVICES]
    shared = environments[0]
    for name, env in zip(SERVICES, environments, strict=True):
        extra = GATEWAY_ONLY if name == "gateway" else set()
        assert env.keys() - extra == shared.keys() and set(env) >= extra, f"{name}: the shared settings (+ the gateway's TURN ones)"
        assert all(env[k] == shared[k] for k in shared), f"{name}: the same settings for every service"
        for variable in env:
            assert variable in PARLEY_VARIABLES, f"{variable} is no setting of shared/settings.py"
    env = shared
    assert "PARLEY_TURN_SECRET" not in env, "only the gateway (and coturn) hold the TURN secret"
    assert env["PARLEY_JWT_SECRET"].startswith("${PARLEY_JWT_SECRET:?"), "no default secret: it must be set"
    for url, host in (("PARLEY_MONGO_URL", "mongo"), ("PARLEY_AMQP_URL", "rabbitmq"), ("PARLEY_REDIS_URL", "redis")):
        assert f"@{host}:" in env[url] or f"//{host}:" in env[url], f"{url} points at the {host} service"


def test_infrastructure_is_health_checked_and_keeps_its_data(compose: dict[str, Any]) -> None:
    assert set(compose["volumes"]) == {f"{name}-data" for name in INFRASTRUCTURE}
    for name in INFRASTRUCTURE:
        service = compose["services"][name]
        assert service["healthcheck"]["test"][0] == "CMD"
        assert service["volumes"] == [f"{name}-data:{DATA_VOLUMES[name]}"]
        assert service["restart"] == "unless-stopped"


def test_mongo_is_a_single_node_replica_set(compose: dict[str, Any]) -> None:
    mongo = compose["services"]["mongo"]
    assert mongo["image"] == "mongo:7"
    command = mongo["command"]
    replica_set = command[command.index("--replSet") + 1]
    check = mongo["healthcheck"]["test"][-1]
    assert "rs.initiate" in check and f"_id:'{replica_set}'" in check and "host:'mongo:27017'" in check
    url = compose["services"]["auth"]["environment"]["PARLEY_MONGO_URL"]
    assert f"replicaSet={replica_set}" in url


def test_the_proxy_fronts_the_gateways(compose: dict[str, Any]) -> None:
    proxy = compose["services"]["proxy"]
    assert proxy["image"] == "nginx:1.27-alpine"
    assert proxy["volumes"] == ["./deploy/proxy/nginx.conf:/etc/nginx/nginx.conf:ro"]
    assert (COMPOSE_FILE.parent / "deploy/proxy/nginx.conf").is_file()
    assert proxy["depends_on"] == {"gateway": {"condition": "service_healthy"}}
    assert "healthcheck" in proxy


def test_the_usage_comment_shows_scaling() -> None:
    head = COMPOSE_FILE.read_text().split("\nx-parley-env", 1)[0]
    assert "docker compose up --build --scale chat=3 --scale gateway=2" in head
    assert "PARLEY_JWT_SECRET" in head
    assert "export PARLEY_TURN_SECRET=$(openssl rand -hex 32)" in head


# --- coturn ----------------------------------------------------------------------------------------
def test_coturn_relays_on_the_hosts_network_with_the_gateways_secret(compose: dict[str, Any]) -> None:
    coturn = compose["services"]["coturn"]
    assert coturn["image"].startswith("coturn/coturn:")
    assert coturn["network_mode"] == "host", "relay ports must be the host's, reachable by clients"
    assert coturn["restart"] == "unless-stopped"
    options = coturn_options(coturn["command"])
    check_coturn_options(options, "docker-compose.yml coturn")
    # The very same secret as the gateway signs credentials with, and no default for it.
    (secret,) = options["--static-auth-secret"]
    gateway = compose["services"]["gateway"]["environment"]
    assert secret == gateway["PARLEY_TURN_SECRET"]
    assert secret.startswith("${PARLEY_TURN_SECRET:?"), "no default TURN secret: it must be set"


def test_the_gateway_hands_out_coturn(compose: dict[str, Any]) -> None:
    env = compose["services"]["gateway"]["environment"]
    stun, turn = json.loads(env["PARLEY_STUN_URLS"]), json.loads(env["PARLEY_TURN_URLS"])
    host = "${PARLEY_TURN_HOST:-127.0.0.1}"
    assert stun == [f"stun:{host}:{TURN_PORT}"]
    assert turn == [f"turn:{host}:{TURN_PORT}?transport=udp", f"turn:{host}:{TURN_PORT}?transport=tcp"]
    assert int(env["PARLEY_TURN_CREDENTIAL_TTL_SECONDS"]) >= 60


# --- the Dockerfile --------------------------------------------------------------------------------
def test_each_service_has_its_own_stage(stages: dict[str, list[str]]) -> None:
    assert list(stages) == ["builder", "web-vendor", "runtime", *BACKENDS, "gateway"], "gateway last: the default target"
    vendor = stages["web-vendor"]
    assert "RUN bash deploy/local/web-vendor.sh" in vendor, "the web client's olm.js/olm.wasm from package-lock.json"
    assert any(i.startswith("COPY --from=web-vendor ") and "vendor/dist" in i for i in stages["gateway"])
    for name in SERVICES:
        instructions = stages[name]
        assert instructions[0] == f"FROM runtime AS {name}"
        assert f'CMD ["python", "-m", "services.{name}.main"]' in instructions, f"{name}: exec form, the service is PID 1"
        assert (ROOT / "services" / name / "main.py").is_file()
        (healthcheck,) = [i for i in instructions if i.startswith("HEALTHCHECK")]
        assert " CMD [" in healthcheck
        assert ("/healthz" if name == "gateway" else "/metrics") in healthcheck
        assert not any(i.startswith("USER") for i in instructions), "the runtime's non-root user"
    for name in BACKENDS:
        assert "ENV PARLEY_METRICS_PORT=9100" in stages[name], f"{name}: metrics on, so that the health check has something to ask"


def test_images_run_as_non_root_without_dev_or_local_extras(stages: dict[str, list[str]]) -> None:
    runtime = stages["runtime"]
    users = [i for i in runtime if i.startswith("USER")]
    assert users == ["USER 10001:10001"]
    assert any(i.startswith("COPY services ") for i in runtime), "services/ (and services/gateway/web/) in the image"
    for instructions in stages.values():
        for instruction in instructions:
            if "pip install" in instruction:
                assert "[" not in instruction, f"extras installed: {instruction}"
                assert "-e " not in instruction


def test_dockerignore_keeps_what_the_image_needs() -> None:
    patterns = [
        line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#") and not line.startswith("!")
    ]
    needed = ["pyproject.toml", "shared/settings.py", "services/gateway/main.py", "services/gateway/web/index.html", "services/gateway/web/js/main.js"]
    for path in needed:
        for pattern in patterns:
            prefix = pattern.rstrip("/")
            assert not (fnmatch(path, prefix) or path.startswith(prefix + "/")), f".dockerignore's {pattern} drops {path}"
    for excluded in (".venv", ".git", "tests"):
        assert excluded in patterns


# --- deploy/proxy/nginx.conf -----------------------------------------------------------------------
def test_the_proxy_resolves_gateway_replicas_through_docker_dns(nginx: Directive) -> None:
    http = nginx.one("http")
    assert http.one("resolver").args[0] == "127.0.0.11"
    server = http.one("server")
    assert server.value("listen") == "8000"
    variable, upstream = server.one("set").args
    assert upstream == f"http://gateway:{GATEWAY_PORT}"
    locations = server.all("location")
    assert locations
    for location in locations:
        # A variable makes nginx resolve `gateway` per request (at most `valid=` old) rather than once.
        assert location.value("proxy_pass") == variable


def test_the_proxy_passes_websocket_upgrades(nginx: Directive) -> None:
    http = nginx.one("http")
    mapping = http.one("map", "$http_upgrade", "$connection_upgrade")
    # An upgrade request gets "Connection: upgrade", any other "Connection: close" ('' is no header).
    assert mapping.one("default").args == ["upgrade"]
    assert mapping.one("").args == ["close"]
    server = http.one("server")
    assert server.value("proxy_http_version") == "1.1"
    headers = {d.args[0]: d.args[1] for d in server.all("proxy_set_header")}
    assert headers["Upgrade"] == "$http_upgrade"
    assert headers["Connection"] == "$connection_upgrade"
    # The browser's host and port: the gateway puts it in the page's Content-Security-Policy.
    assert headers["Host"] == "$http_host"
    for location in server.all("location"):
        assert not location.all("proxy_set_header"), "a location's own proxy_set_header drops the server's (Upgrade, Host)"
        assert not location.all("proxy_http_version")
    ws = server.one("location", "=", "/ws")
    assert nginx_seconds(ws.value("proxy_read_timeout")) >= 3600, "idle sockets are not cut"


def test_the_proxy_streams_files_up_to_the_upload_limit(nginx: Directive, compose: dict[str, Any]) -> None:
    server = nginx.one("http").one("server")
    files = server.one("location", "/files")
    assert files.value("proxy_request_buffering") == "off"
    assert files.value("proxy_buffering") == "off"
    limit = nginx_bytes(files.value("client_max_body_size"))
    assert limit == int(compose["services"]["gateway"]["environment"]["PARLEY_MAX_UPLOAD_BYTES"])
    assert limit == Settings.model_fields["max_upload_bytes"].default


# --- Compose itself -----------------------------------------------------------------------------------
def compose_command() -> list[str] | None:
    if executable := shutil.which("docker-compose"):
        return [executable]
    if docker := shutil.which("docker"):
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=60)
        if probe.returncode == 0:
            return [docker, "compose"]
    return None


def run_compose_config(env_extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = compose_command()
    if command is None:
        skip_for_missing(
            "docker-compose",
            "`docker-compose config` was not run on docker-compose.yml. Install Debian's docker-compose "
            "(`sudo apt-get install --no-install-recommends docker-compose`, or `make compose` as root), "
            "or the Docker Compose plugin, then run `make test` again.",
        )
        raise AssertionError  # not reached
    # Only what this test sets: no PARLEY_* (nor a .env's) from the caller's environment.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PARLEY_", "COMPOSE_"))} | env_extra
    return subprocess.run(
        [*command, "--project-directory", str(ROOT), "-f", str(COMPOSE_FILE), "config"],
        capture_output=True, text=True, env=env, timeout=120,
    )


def test_compose_accepts_the_file() -> None:
    secret, turn_secret = "a-test-secret-" + "0" * 40, "ab" * 32
    result = run_compose_config({"PARLEY_JWT_SECRET": secret, "PARLEY_TURN_SECRET": turn_secret, "PARLEY_TURN_HOST": "turn.example.org"})
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    assert set(config["services"]) == {*INFRASTRUCTURE, *SERVICES, "proxy", "coturn"}
    # The gateway and coturn, as Compose resolved them: one secret, coturn's address handed out.
    gateway = config["services"]["gateway"]["environment"]
    assert gateway["PARLEY_TURN_SECRET"] == turn_secret
    assert json.loads(gateway["PARLEY_TURN_URLS"])[0] == "turn:turn.example.org:3478?transport=udp"
    assert all("PARLEY_TURN_SECRET" not in config["services"][name]["environment"] for name in BACKENDS)
    coturn = config["services"]["coturn"]
    assert f"--static-auth-secret={turn_secret}" in coturn["command"]
    assert coturn["network_mode"] == "host"
    # As Compose resolved the anchors and merges: private services, one published port.
    for name, service in config["services"].items():
        assert ("ports" in service) == (name == "proxy"), name
        assert "container_name" not in service
    for name in SERVICES:
        service = config["services"][name]
        assert service["environment"]["PARLEY_JWT_SECRET"] == secret
        assert service["build"]["target"] == name
        assert set(service["depends_on"]) == set(NEEDS[name])
    assert set(config["volumes"]) == {f"{name}-data" for name in INFRASTRUCTURE}


def test_compose_refuses_to_start_without_a_jwt_secret() -> None:
    result = run_compose_config({"PARLEY_TURN_SECRET": "ab" * 32})
    assert result.returncode != 0
    assert "PARLEY_JWT_SECRET" in result.stderr


def test_compose_refuses_to_start_without_a_turn_secret() -> None:
    result = run_compose_config({"PARLEY_JWT_SECRET": "a-test-secret-" + "0" * 40})
    assert result.returncode != 0
    assert "PARLEY_TURN_SECRET" in result.stderr


# --- nginx itself, when it is installed ---------------------------------------------------------------
def test_nginx_accepts_the_proxy_config() -> None:
    nginx = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)
    if nginx is None:
        skip_for_missing(
            "nginx",
            "deploy/proxy/nginx.conf was checked by structure only, not by nginx. "
            "`sudo apt-get install --no-install-recommends nginx-light` runs `nginx -t` and the proxy tests too.",
        )
    with tempfile.TemporaryDirectory() as directory:
        conf = runnable_nginx_conf(Path(directory), listen=18000, upstream=f"http://127.0.0.1:{GATEWAY_PORT}")
        result = subprocess.run(
            [nginx, "-t", "-q", "-e", "stderr", "-p", directory, "-c", str(conf)], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
