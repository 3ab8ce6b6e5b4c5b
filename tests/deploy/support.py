"""What the deployment checks share: paths, YAML, the PARLEY_* names that exist, nginx.conf."""
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE_FILE = ROOT / "docker-compose.yml"
NGINX_CONF = ROOT / "deploy" / "proxy" / "nginx.conf"
K8S_BASE = ROOT / "deploy" / "k8s" / "base"
K8S_OVERLAY = ROOT / "deploy" / "k8s" / "overlays" / "example"
# coturn: its own base and the example's overlay of it (a namespace of its own: hostNetwork).
K8S_TURN = ROOT / "deploy" / "k8s" / "turn"
K8S_TURN_OVERLAY = K8S_OVERLAY / "turn"

SERVICES = ("auth", "chat", "files", "calls", "push", "gateway")
# The services without HTTP: their work comes from RabbitMQ; probes and health checks ask /metrics.
BACKENDS = tuple(s for s in SERVICES if s != "gateway")
# Every environment variable shared/settings.py reads.
PARLEY_VARIABLES = frozenset(f"PARLEY_{name.upper()}" for name in Settings.model_fields)


# coturn, the same in docker-compose.yml and deploy/k8s/turn (deploy/README.md says to open these).
TURN_PORT = 3478
RELAY_PORTS = (49160, 49200)
PRIVATE_PEER_RANGES = (
    "10.0.0.0-10.255.255.255", "172.16.0.0-172.31.255.255", "192.168.0.0-192.168.255.255",
    "100.64.0.0-100.127.255.255", "169.254.0.0-169.254.255.255",
)
# Flags every coturn here runs with: shared-secret credentials only, no admin CLI, no TCP relays
# (browsers relay UDP), no multicast peers, no config file.
COTURN_FLAGS = ("--use-auth-secret", "--no-cli", "--no-tcp-relay", "--no-multicast-peers", "-n")


def coturn_options(arguments: list[str]) -> dict[str, list[str]]:
    """turnserver's `--name=value` / `--flag` arguments: name -> every value given ('' for a flag)."""
    options: dict[str, list[str]] = {}
    for argument in arguments:
        name, _, value = argument.partition("=")
        options.setdefault(name, []).append(value)
    return options


def check_coturn_options(options: dict[str, list[str]], where: str) -> None:
    for flag in COTURN_FLAGS:
        assert options.get(flag) == [""], f"{where}: {flag}"
    assert "--lt-cred-mech" not in options and "--user" not in options, f"{where}: no static users, only the gateways' credentials"
    assert options["--listening-port"] == [str(TURN_PORT)], where
    assert (int(options["--min-port"][0]), int(options["--max-port"][0])) == RELAY_PORTS, f"{where}: the relay range deploy/README.md opens"
    assert options["--realm"][0], where
    assert set(PRIVATE_PEER_RANGES) <= set(options["--denied-peer-ip"]), f"{where}: the relay reaches no private network"
    assert "--allow-loopback-peers" not in options, where


def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    with path.open() as f:
        return [doc for doc in yaml.safe_load_all(f) if doc is not None]


def load_yaml(path: Path) -> Any:
    documents = load_yaml_documents(path)
    assert len(documents) == 1, f"{path}: expected one YAML document, found {len(documents)}"
    return documents[0]


def dockerfile_stages(text: str) -> dict[str, list[str]]:
    """Stage name -> its instructions (continuation lines joined, comments dropped)."""
    instructions: list[str] = []
    current = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        instructions.append(current + stripped)
        current = ""
    stages: dict[str, list[str]] = {}
    name = None
    for instruction in instructions:
        words = instruction.split()
        if words[0].upper() == "FROM":
            assert len(words) == 4 and words[2].upper() == "AS", f"unnamed stage: {instruction}"
            name = words[3]
            stages[name] = [instruction]
        elif name is not None:
            stages[name].append(instruction)
    return stages


# --- nginx.conf --------------------------------------------------------------------------------
_NGINX_TOKEN = re.compile(r"#[^\n]*|\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|[{};]|[^\s{};\"']+")


@dataclass
class Directive:
    name: str
    args: list[str]
    block: list["Directive"] | None = None

    def all(self, name: str) -> list["Directive"]:
        assert self.block is not None, f"{self.name} has no block"
        return [d for d in self.block if d.name == name]

    def one(self, name: str, *args: str) -> "Directive":
        found = [d for d in self.all(name) if list(d.args[: len(args)]) == list(args)]
        assert len(found) == 1, f"expected one `{name} {' '.join(args)}` in `{self.name} {' '.join(self.args)}`, found {len(found)}"
        return found[0]

    def value(self, name: str) -> str:
        (arg,) = self.one(name).args
        return arg


def parse_nginx(text: str) -> Directive:
    """nginx's configuration syntax (directives, blocks, comments, quotes) as a tree."""
    tokens = [t for t in _NGINX_TOKEN.findall(text) if not t.startswith("#")]
    position = 0

    def block(closed_by: str | None) -> list[Directive]:
        nonlocal position
        directives: list[Directive] = []
        words: list[str] = []
        while position < len(tokens):
            token = tokens[position]
            position += 1
            if token == ";":
                directives.append(Directive(words[0], words[1:]))
                words = []
            elif token == "{":
                directives.append(Directive(words[0], words[1:], block("}")))
                words = []
            elif token == "}":
                assert closed_by == "}" and not words, "unbalanced } in nginx.conf"
                return directives
            else:
                words.append(token.strip("'\"") if token[0] in "'\"" else token)
        assert closed_by is None and not words, "nginx.conf ends inside a block or a directive"
        return directives

    return Directive("main", [], block(None))


def nginx_bytes(size: str) -> int:
    units = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
    match = re.fullmatch(r"(\d+)([kmg]?)", size.lower())
    assert match, size
    return int(match.group(1)) * units[match.group(2)]


def nginx_seconds(time: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "": 1}
    total = 0.0
    for number, unit in re.findall(r"(\d+)(ms|s|m|h|d|)", time):
        total += int(number) * units[unit]
    return total


def runnable_nginx_conf(directory: Path, listen: int, upstream: str) -> Path:
    """deploy/proxy/nginx.conf made runnable here, changing only what is about the container:
    no `user` (root in a container drops to it; elsewhere there may be no such user), the pid
    and temporary files under `directory`, listening on 127.0.0.1:`listen`, and the gateways
    at `upstream` (an address: Docker's DNS, 127.0.0.11, is not here)."""
    text = NGINX_CONF.read_text()
    replacements = [
        (r"(?m)^user [^;]+;\n", ""),
        (r"(?m)^pid [^;]+;", f"pid {directory}/nginx.pid;"),
        (r"(?m)^(\s*)listen 8000;", rf"\g<1>listen 127.0.0.1:{listen};"),
        (r"set \$gateway http://gateway:8000;", f"set $gateway {upstream};"),
        (
            r"(?m)^http \{\n",
            "http {\n"
            + "".join(
                f"    {name}_temp_path {directory}/{name};\n"
                for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
            ),
        ),
    ]
    for pattern, replacement in replacements:
        text, count = re.subn(pattern, replacement, text)
        assert count == 1, f"nginx.conf no longer has one match of {pattern!r}: update runnable_nginx_conf"
    path = directory / "nginx.conf"
    path.write_text(text)
    return path


def run_command(argv: list[str], timeout: float = 120, env: dict[str, str] | None = None, check: bool = True) -> str:
    """`argv`'s output, run in the checkout; with `check`, a failure fails the test showing its output."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return done.stdout.strip()
