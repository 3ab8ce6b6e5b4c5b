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
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx

from bench.stack import MiB, Watched, own_stack, run_interruptibly, running_processes

PIECE = MiB  # what the client hands httpx at a time
SAMPLE_SECONDS = 0.2
PASSWORD = "correct horse battery"


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


async def against_running(url: str, size: int) -> bool:
    procs = running_processes(("gateway", "files"), mongo=False)
    watched = [Watched(label, p) for label, p in procs.items()]
    return await run(url.rstrip("/"), watched, size)


async def with_own_stack(size: int) -> bool:
    async with own_stack({"PARLEY_MAX_UPLOAD_BYTES": str(size + MiB)}) as stack:
        watched = [Watched("gateway", stack.processes["gateway"]), Watched("files", stack.processes["files"])]
        print(f"stack up (namespace {stack.namespace}, logs in {stack.log_path})", flush=True)
        return await run(stack.base, watched, size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=1024, help="upload size in MiB (default 1024)")
    parser.add_argument("--url", help="a running gateway (make run) instead of a stack of our own")
    args = parser.parse_args()
    size = args.mib * MiB

    ok = run_interruptibly(lambda: against_running(args.url, size) if args.url else with_own_stack(size))
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
