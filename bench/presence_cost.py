"""Redis CPU per bound socket for presence, and the share of it on the one global key.

Why: every gateway refreshes each bound socket every third of PARLEY_PRESENCE_TTL_SECONDS with
two ZADDs (shared/presence.py): one on the user's own set, one on the global expiry index,
`<ns>:presence:expiry`, a single key, so a single Redis shard serves it however many shards the
cluster has. (Since issue 27 part 2 that index is split into PARLEY_REDIS_BUCKETS buckets,
`<ns>:presence:{p<b>}:expiry`, one slot each: "the global key" below is the bucketed index.) With a thousand sockets (bench/capacity_check.py's idle window) that is below
the resolution of the server's CPU counter; here --sockets fake sockets are written with
Presence.restore and refreshed --rounds times with Presence.refresh, in the gateway's batches,
and the server's own CPU counter (INFO cpu) is read around them; then the same rounds with the
global key's ZADD alone. Nothing but Redis is involved, so this runs in seconds.

    python -m bench.presence_cost [--sockets 200000 --rounds 5 --redis-url redis://127.0.0.1:PORT/0]

Without --redis-url a redis-server of its own is started on a free port (the machine's is
shared: its CPU counter would count others' work). Keys live under a namespace of their own and
are deleted afterwards.
"""
import argparse
import asyncio
import secrets
import shutil
import subprocess
import tempfile
import time
from typing import Any

import redis.asyncio as aioredis

from deploy.local.devstack import free_port, wait_for_port
from shared.presence import DeviceSocket, Presence
from shared.settings import Settings

BATCH = 5_000  # sockets per refresh pipeline (a gateway refreshes all of its own in one)


async def server_cpu_ms(redis: aioredis.Redis) -> float:
    info = await redis.info("cpu")
    return 1000.0 * (float(info["used_cpu_user"]) + float(info["used_cpu_sys"]))


async def timed(redis: aioredis.Redis, rounds: int, step: Any) -> float:
    """Server CPU-ms spent over `rounds` calls of `step()`."""
    before = await server_cpu_ms(redis)
    for i in range(rounds):
        t0 = time.perf_counter()
        await step()
        print(f"  round {i + 1}/{rounds}: {time.perf_counter() - t0:.1f} s", flush=True)
    return await server_cpu_ms(redis) - before


async def measure(url: str, sockets: int, rounds: int) -> dict[str, float]:
    redis = aioredis.Redis.from_url(url)
    ns = f"prescost{secrets.token_hex(3)}"
    presence = Presence(redis, ns, Settings().presence_ttl_seconds)
    socks = [DeviceSocket(f"u{i:08d}", "phone", "gw1", f"c{i}") for i in range(sockets)]
    batches = [socks[i:i + BATCH] for i in range(0, sockets, BATCH)]
    try:
        print(f"writing {sockets:,} sockets under {ns} ...", flush=True)
        for batch in batches:
            await presence.restore(batch)

        async def refresh_all() -> None:
            for batch in batches:
                await presence.refresh(batch)

        async def global_key_only() -> None:
            expires = time.time() + presence.lifetime
            for batch in batches:
                async with redis.pipeline(transaction=False) as pipe:
                    for s in batch:
                        pipe.zadd(presence.expiry_key(s.user_id), {f"{s.user_id}|{s.member}": expires}, xx=True)
                    await pipe.execute()

        print("refresh (both ZADDs per socket):", flush=True)
        both = await timed(redis, rounds, refresh_all)
        print("the global expiry index's ZADD alone:", flush=True)
        hot = await timed(redis, rounds, global_key_only)
    finally:
        async for key in redis.scan_iter(f"{ns}:*", count=1000):
            await redis.delete(key)
        await redis.aclose()
    interval = Settings().presence_ttl_seconds / 3
    per_refresh_us = 1000 * both / (rounds * sockets)
    return {"sockets": sockets, "rounds": rounds, "refresh_interval_s": interval,
            "server_us_per_socket_refresh": round(per_refresh_us, 3),
            "global_key_share": round(hot / both, 3) if both else 0.0,
            "cpu_ms_per_socket_second": round(per_refresh_us / 1000 / interval, 6)}


async def main_async(args: argparse.Namespace) -> None:
    server = None
    tmp = tempfile.mkdtemp(prefix="parley-prescost-")
    url = args.redis_url
    try:
        if url is None:
            port = free_port()
            server = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--bind", "127.0.0.1",
                                       "--port", str(port), "--save", "", "--appendonly", "no", "--dir", tmp],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
            await asyncio.to_thread(wait_for_port, port, 30, "the redis-server of this measurement")
            url = f"redis://127.0.0.1:{port}/0"
        result = await measure(url, args.sockets, args.rounds)
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\n{result['sockets']:,} sockets, {result['rounds']} refresh rounds: "
          f"{result['server_us_per_socket_refresh']} us of Redis CPU per socket refresh, one every "
          f"{result['refresh_interval_s']:g} s = {result['cpu_ms_per_socket_second']} CPU-ms per socket per second; "
          f"{result['global_key_share']:.0%} of it on the global expiry index (one key, one shard)")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.presence_cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, default=200_000, help="fake bound sockets (default 200000)")
    parser.add_argument("--rounds", type=int, default=5, help="refresh rounds measured (default 5)")
    parser.add_argument("--redis-url", help="a Redis to measure (default: a redis-server of its own)")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
