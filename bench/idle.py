"""The gateway's memory per idle connection: N bare sockets, each having sent one ping."""
import asyncio
import gc
import resource
import time
from typing import Any

import orjson
import psutil
import websockets

KiB = 1024


def raise_nofile() -> tuple[int, int]:
    """Soft RLIMIT_NOFILE up to the hard limit (a gateway we start inherits it); the new limits."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            print(f"note: could not raise RLIMIT_NOFILE: {exc}")
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def fd_limit(process: psutil.Process) -> int | None:
    try:
        return process.rlimit(psutil.RLIMIT_NOFILE)[0]
    except (psutil.Error, AttributeError):
        return None


async def settled_rss(process: psutil.Process, seconds: float = 2.0) -> int:
    """The lowest RSS seen over a short wait (lets the gateway's allocator settle)."""
    low = process.memory_info().rss
    until = time.perf_counter() + seconds
    while time.perf_counter() < until:
        await asyncio.sleep(0.25)
        low = min(low, process.memory_info().rss)
    return low


async def idle_connections(ws_url: str, gateway: psutil.Process, count: int) -> dict[str, Any]:
    own_soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    gateway_soft = fd_limit(gateway)
    needed = count + 200
    for who, limit in (("this process", own_soft), ("the gateway", gateway_soft)):
        if limit is not None and limit < needed:
            msg = (f"RLIMIT_NOFILE of {who} is {limit}, below the {needed} descriptors {count} idle sockets need: "
                   f"raise it (ulimit -n / the service manager's LimitNOFILE) or pass a smaller --idle")
            print(f"idle connections: SKIPPED: {msg}", flush=True)
            return {"skipped": msg, "connections": count}
    print(f"idle connections: opening {count} sockets to the gateway ...", flush=True)
    gc.collect()
    before = await settled_rss(gateway)
    sockets: list[websockets.ClientConnection] = []
    failures = 0
    ping = orjson.dumps({"type": "ping", "id": "p", "data": {}}).decode()
    sem = asyncio.Semaphore(100)
    t0 = time.perf_counter()

    async def one() -> None:
        nonlocal failures
        async with sem:
            try:
                ws = await websockets.connect(ws_url, ping_interval=None, open_timeout=60)
                await ws.send(ping)
                await asyncio.wait_for(ws.recv(), 30)
                sockets.append(ws)
            except Exception:
                failures += 1

    async def progress() -> None:
        while True:
            await asyncio.sleep(1)
            print(f"[idle    ] {time.perf_counter() - t0:5.1f} s  open {len(sockets):6d} / {count}  "
                  f"failed {failures}  gateway rss {gateway.memory_info().rss / KiB / KiB:.1f} MiB", flush=True)

    ticker = asyncio.create_task(progress())
    try:
        await asyncio.gather(*(one() for _ in range(count)))
    finally:
        ticker.cancel()
    after = await settled_rss(gateway)
    opened = len(sockets)
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    per = (after - before) / opened / KiB if opened else None
    return {"connections": opened, "failed": failures, "gateway_rss_before_mib": round(before / KiB / KiB, 1),
            "gateway_rss_after_mib": round(after / KiB / KiB, 1),
            "kib_per_connection": round(per, 2) if per is not None else None,
            "open_seconds": round(time.perf_counter() - t0, 1)}
