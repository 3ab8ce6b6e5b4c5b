"""The whole system as local processes: `make run`, and the integration tests' fixture.

Starts the embedded MongoDB-wire server (unless PARLEY_MONGO_URL is set), then auth, chat,
files and the gateway(s), each its own process with its own name on every log line; waits
for /readyz; on Ctrl-C or SIGTERM stops them in order (gateways first, so sockets drain).

    python -m shared.devstack run        # PARLEY_DEV_GATEWAYS=2 PARLEY_DEV_CHATS=3 to scale
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent


class DevSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PARLEY_DEV_", extra="ignore")

    gateways: int = 1
    chats: int = 1
    auths: int = 1
    files: int = 1
    data_dir: Path = ROOT / ".run"
    ready_timeout_seconds: float = 120.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _pump(stream: IO[bytes], prefix: str, sink: IO[str]) -> None:
    for line in iter(stream.readline, b""):
        sink.write(f"{prefix}{line.decode(errors='replace')}")
        sink.flush()


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
        self.popen = subprocess.Popen(
            self.argv, env=self.env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the launcher only; it stops children in order
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
        self.sink = sink
        self.mongo: Proc | None = None
        self.procs: dict[str, Proc] = {}
        base = int(self.env.get("PARLEY_GATEWAY_PORT", "8000"))
        self.gateway_ports = [base + i for i in range(self.dev.gateways)]

    # --- processes -------------------------------------------------------------------------
    def start_mongo(self, in_memory: bool = False) -> None:
        if "PARLEY_MONGO_URL" in self.env:
            self.log(f"using MongoDB at {self.env['PARLEY_MONGO_URL']}")
            return
        server = shutil.which("secantusd-py", path=str(Path(sys.executable).parent)) or shutil.which("secantusd-py")
        if server is None:
            raise SystemExit(
                "no MongoDB: set PARLEY_MONGO_URL to a running mongod, or install the embedded "
                "server with `pip install -e '.[local]'` (make run does this)"
            )
        port = 27017 if port_is_free(27017) and not in_memory else free_port()
        storage = ":memory:"
        if not in_memory:
            storage_dir = self.dev.data_dir / "mongo"
            storage_dir.mkdir(parents=True, exist_ok=True)
            storage = str(storage_dir)
        self.mongo = Proc(
            "mongo", [server, "--host", "127.0.0.1", "--port", str(port), "--storage-path", storage,
                      "--log-level", "WARNING"], self.env, self.sink,
        ).start()
        self.env["PARLEY_MONGO_URL"] = f"mongodb://127.0.0.1:{port}/"
        wait_for_port(port, 30, "the embedded MongoDB-wire server")
        self.log(f"embedded MongoDB-wire server on 127.0.0.1:{port} (storage: {storage})")

    def service(self, name: str, index: int = 0) -> Proc:
        """Start (or restart) one replica: `auth`, `chat`, `files` or `gateway`."""
        key = f"{name}{index + 1}" if index or name in ("gateway", "chat") else name
        overrides = {"PARLEY_GATEWAY_PORT": str(self.gateway_ports[index])} if name == "gateway" else {}
        return self.start_process(key, name, overrides)

    def start_process(self, key: str, service: str, overrides: dict[str, str]) -> Proc:
        """One process of `service` under the name `key`, with settings of its own on top."""
        env = {**self.env, **overrides}
        proc = Proc(key, [sys.executable, "-m", f"services.{service}.main"], env, self.sink).start()
        self.procs[key] = proc
        return proc

    def start_all(self) -> None:
        for name, count in (("auth", self.dev.auths), ("chat", self.dev.chats), ("files", self.dev.files)):
            for i in range(count):
                self.service(name, i)
        for i in range(self.dev.gateways):
            self.service("gateway", i)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + self.dev.ready_timeout_seconds
        for port in self.gateway_ports:
            url = f"http://127.0.0.1:{port}/readyz"
            while True:
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
                    raise RuntimeError(f"{url} did not turn 200 within {self.dev.ready_timeout_seconds:.0f} s")
                time.sleep(0.3)
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
        self.sink.write(f"{'devstack':<10}| {text}\n")
        self.sink.flush()


def wait_for_port(port: int, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{what} did not open port {port} within {timeout:.0f} s")


def run() -> None:
    stack = Stack()
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    try:
        stack.start_mongo()
        stack.start_all()
        stack.wait_ready()
        stack.log("press Ctrl-C to stop")
        while not stopping.wait(1):
            dead = [p.name for p in stack.procs.values() if not p.running]
            if dead:
                stack.log(f"exited: {', '.join(dead)}; stopping the rest")
                break
    except RuntimeError as exc:
        stack.log(f"error: {exc}")
        stopping.set()
    finally:
        stack.log("stopping ...")
        stack.stop_all()
        stack.log("stopped")


if __name__ == "__main__":
    if sys.argv[1:] != ["run"]:
        raise SystemExit("usage: python -m shared.devstack run")
    run()
