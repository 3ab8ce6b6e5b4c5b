"""Memory of a big upload and download: the gateway and files processes' RSS while N MiB pass.

The gateway re-cuts an upload into CHUNK_SIZE pieces with at most a few in flight, and the
files service writes each piece as one GridFS chunk, so neither process should grow with the
file's size. This streams an N-MiB upload (default 1024) from an async generator (chunked, no
Content-Length), samples both processes' RSS every 0.2 s, then downloads the file streaming,
checks its sha256 and samples again. It prints progress lines and, per phase, baseline RSS,
peak RSS, peak minus baseline and throughput.

Two ways to run it (`make bench-upload` runs the first; `ARGS='--mib 256'` passes options):

    python -m bench.upload_memory [--mib N]
        Starts a stack of its own: an embedded MongoDB-wire server (secantusdb) storing in a
        temporary directory, unless PARLEY_MONGO_URL names a MongoDB; auth, chat, files and one
        gateway under a fresh namespace, on the RabbitMQ and Redis of the environment
        (PARLEY_AMQP_URL / PARLEY_REDIS_URL, else localhost), with
        PARLEY_MAX_UPLOAD_BYTES set above N MiB. Everything is stopped and removed at the end.

    python -m bench.upload_memory --url http://127.0.0.1:8000 [--mib N]
        Uses a running stack (`make run`); its processes are found by their command line
        (services.gateway.main, services.files.main) on this machine. Its upload limit
        (PARLEY_MAX_UPLOAD_BYTES, default 100 MiB) must be at least N MiB.
"""
import argparse
import asyncio
import hashlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from shared.devstack import DevSettings, Stack, free_port, wait_for_port
from shared.settings import Settings

MiB = 1024 * 1024
PIECE = MiB  # what the client hands httpx at a time
SAMPLE_SECONDS = 0.2
PASSWORD = "correct horse battery"


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
class Phase:
    name: str
    watched: list[Watched]
    total: int
    moved: int = 0
    started: float = field(default_factory=time.perf_counter)
    ended: float | None = None

    def elapsed(self) -> float:
        return (self.ended or time.perf_counter()) - self.started


def mib(n: float) -> str:
    return f"{n / MiB:8.1f} MiB"


async def sampler(phase: Phase) -> None:
    """Every 0.2 s: sample each process; about once a second: a progress line."""
    ticks = 0
    while True:
        for w in phase.watched:
            w.sample()
        ticks += 1
        if ticks % 5 == 0:
            rss = "  ".join(f"{w.label} rss {mib(w.last)}" for w in phase.watched)
            print(f"[{phase.name:8}] {phase.elapsed():6.1f} s  {mib(phase.moved)} / {mib(phase.total)}  {rss}", flush=True)
        await asyncio.sleep(SAMPLE_SECONDS)


@contextmanager
def sampling(phase: Phase) -> Iterator[None]:
    for w in phase.watched:
        w.reset()
    task = asyncio.get_event_loop().create_task(sampler(phase))
    try:
        yield
    finally:
        phase.ended = time.perf_counter()
        task.cancel()
        for w in phase.watched:
            w.sample()


def report(phase: Phase) -> None:
    seconds = phase.elapsed()
    print(f"\n== {phase.name}: {phase.moved / MiB:.0f} MiB in {seconds:.1f} s = {phase.moved / MiB / seconds:.1f} MiB/s")
    for w in phase.watched:
        print(
            f"   {w.label:<8} baseline {mib(w.baseline)}   peak {mib(w.peak)}   "
            f"peak - baseline {mib(w.peak - w.baseline)}"
        )
    print(flush=True)


async def generated(total: int, phase: Phase, digest: "hashlib._Hash") -> AsyncIterator[bytes]:
    """`total` bytes of varying content, 1 MiB at a time, hashed as they are handed out."""
    block = os.urandom(PIECE)
    sent = 0
    i = 0
    while sent < total:
        piece = (i.to_bytes(8, "big") + block[8:])[: total - sent]
        digest.update(piece)
        sent += len(piece)
        phase.moved = sent
        i += 1
        yield piece


async def login(base: str) -> str:
    username = f"bench_{secrets.token_hex(4)}"
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        reply = await http.post("/auth/register", json={"username": username, "password": PASSWORD})
        reply.raise_for_status()
        reply = await http.post("/auth/login", json={"username": username, "password": PASSWORD})
        reply.raise_for_status()
        return reply.json()["token"]


async def run(base: str, watched: list[Watched], size: int) -> bool:
    token = await login(base)
    headers = {"Authorization": f"Bearer {token}", "X-File-Name": "bench.bin", "Content-Type": "application/octet-stream"}
    timeout = httpx.Timeout(600, connect=10)

    print(f"uploading {size // MiB} MiB to {base} ...", flush=True)
    up = Phase("upload", watched, size)
    sent_digest = hashlib.sha256()
    async with httpx.AsyncClient(base_url=base, timeout=timeout) as http:
        with sampling(up):
            reply = await http.post("/files", content=generated(size, up, sent_digest), headers=headers)
    if reply.status_code != 201:
        print(f"upload failed: {reply.status_code} {reply.text}", file=sys.stderr)
        return False
    info = reply.json()
    report(up)
    ok = info["size"] == size and info["sha256"] == sent_digest.hexdigest()
    print(f"stored {info['file_id']}: size {info['size']}, sha256 {'matches' if ok else 'DIFFERS'}")

    print("downloading ...", flush=True)
    down = Phase("download", watched, size)
    got_digest = hashlib.sha256()
    async with httpx.AsyncClient(base_url=base, timeout=timeout) as http:
        with sampling(down):
            async with http.stream("GET", f"/files/{info['file_id']}", headers={"Authorization": headers["Authorization"]}) as got:
                got.raise_for_status()
                async for piece in got.aiter_bytes():
                    got_digest.update(piece)
                    down.moved += len(piece)
    report(down)
    same = down.moved == size and got_digest.hexdigest() == info["sha256"]
    print(f"downloaded {down.moved} bytes, sha256 {'matches' if same else 'DIFFERS'}")
    return ok and same


def find(fragment: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if fragment in " ".join(proc.info["cmdline"] or []):
            found.append(proc)
    return found


async def against_running(url: str, size: int) -> bool:
    watched = []
    for label, fragment in (("gateway", "services.gateway.main"), ("files", "services.files.main")):
        procs = find(fragment)
        if not procs:
            raise SystemExit(f"no process running {fragment} on this machine")
        if len(procs) > 1:
            print(f"note: {len(procs)} {label} processes; watching each (one of them takes the traffic)")
        watched += [Watched(f"{label}{i + 1}" if len(procs) > 1 else label, p) for i, p in enumerate(procs)]
    return await run(url.rstrip("/"), watched, size)


async def with_own_stack(size: int) -> bool:
    tmp = Path(tempfile.mkdtemp(prefix="parley-bench-"))
    namespace = f"bench{secrets.token_hex(3)}"
    port = free_port()
    env = {
        "PARLEY_NAMESPACE": namespace,
        "PARLEY_MONGO_DB": f"parley_{namespace}",
        "PARLEY_GATEWAY_PORT": str(port),
        "PARLEY_MAX_UPLOAD_BYTES": str(size + MiB),
        "PARLEY_LOG_LEVEL": "WARNING",
    }
    mongo: subprocess.Popen[bytes] | None = None
    if "PARLEY_MONGO_URL" not in os.environ:
        server = shutil.which("secantusd-py", path=str(Path(sys.executable).parent)) or shutil.which("secantusd-py")
        if server is None:
            raise SystemExit("no MongoDB: set PARLEY_MONGO_URL or `pip install -e '.[local]'`")
        mongo_port = free_port()
        (tmp / "mongo").mkdir()
        mongo = subprocess.Popen(
            [server, "--host", "127.0.0.1", "--port", str(mongo_port), "--storage-path", str(tmp / "mongo"),
             "--log-level", "WARNING"],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )
        wait_for_port(mongo_port, 30, "the embedded MongoDB-wire server")
        env["PARLEY_MONGO_URL"] = f"mongodb://127.0.0.1:{mongo_port}/"
    sink = open(tmp / "stack.log", "w")
    stack = Stack(env=env, dev=DevSettings(gateways=1, ready_timeout_seconds=90, data_dir=tmp), sink=sink)
    try:
        stack.start_all()
        await asyncio.to_thread(stack.wait_ready)
        watched = [
            Watched("gateway", psutil.Process(stack.procs["gateway1"].popen.pid)),  # type: ignore[union-attr]
            Watched("files", psutil.Process(stack.procs["files"].popen.pid)),  # type: ignore[union-attr]
        ]
        print(f"stack up (namespace {namespace}, logs in {tmp / 'stack.log'})", flush=True)
        return await run(f"http://127.0.0.1:{port}", watched, size)
    finally:
        stack.stop_all()
        sink.close()
        if mongo is not None:
            mongo.terminate()
            mongo.wait(10)
        settings = Settings(**{k.removeprefix("PARLEY_").lower(): v for k, v in env.items()})
        try:
            from tests.support.infra import remove_namespace

            await remove_namespace(settings)
        except Exception as exc:
            print(f"note: could not remove namespace {namespace}: {exc!r}")
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=1024, help="upload size in MiB (default 1024)")
    parser.add_argument("--url", help="a running gateway (make run) instead of a stack of our own")
    args = parser.parse_args()
    size = args.mib * MiB

    async def interruptible() -> bool:
        # SIGTERM (and SIGINT, even where a shell started us with it ignored) cancel the run, so
        # that the stack of our own is still stopped and its namespace removed.
        task = asyncio.current_task()
        assert task is not None
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, task.cancel)
        try:
            return await (against_running(args.url, size) if args.url else with_own_stack(size))
        except asyncio.CancelledError:
            print("interrupted", file=sys.stderr)
            return False

    ok = asyncio.run(interruptible())
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
