"""Ceilings measured in the same run: a bare aio-pika publish-and-consume round trip through the
same RabbitMQ, and a bare uvicorn WebSocket echo, each closed-loop with `concurrency` workers
(one message in flight each) and the chat run's message size."""
import asyncio
import os
import secrets
import subprocess
import sys
import time
from typing import Any

import aio_pika
import websockets

from bench.wsclient import percentiles
from deploy.local.devstack import ROOT, free_port, wait_for_port


def summary(latencies_ms: list[float], elapsed: float, concurrency: int, size: int) -> dict[str, Any]:
    return {"messages": len(latencies_ms), "messages_per_second": round(len(latencies_ms) / elapsed, 1),
            "latency_ms": percentiles(latencies_ms), "concurrency": concurrency, "message_bytes": size}


async def closed_loop(name: str, concurrency: int, seconds: float, one: Any) -> tuple[list[float], float]:
    """Each worker calls `one(worker)` back to back until `seconds` pass; latencies in ms."""
    latencies: list[float] = []
    t0 = time.perf_counter()
    until = t0 + seconds

    async def worker(w: int) -> None:
        while time.perf_counter() < until:
            started = time.perf_counter_ns()
            await one(w)
            latencies.append((time.perf_counter_ns() - started) / 1e6)

    async def progress() -> None:
        while True:
            await asyncio.sleep(1)
            p99 = percentiles(latencies)["p99"]
            print(f"[{name:8}] {time.perf_counter() - t0:5.1f} s  round trips {len(latencies):7d}  p99 {p99} ms", flush=True)

    ticker = asyncio.create_task(progress())
    try:
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
    finally:
        ticker.cancel()
    return latencies, time.perf_counter() - t0


async def amqp_ceiling(amqp_url: str, concurrency: int, seconds: float, size: int) -> dict[str, Any]:
    """Publish with confirm to a private queue; a consumer on another connection receives it."""
    pub_conn = await aio_pika.connect(amqp_url)
    sub_conn = await aio_pika.connect(amqp_url)
    try:
        pub = await pub_conn.channel(publisher_confirms=True)
        sub = await sub_conn.channel()
        await sub.set_qos(prefetch_count=max(64, concurrency * 2))
        queue = await sub.declare_queue(f"bench.ceiling.{secrets.token_hex(4)}", exclusive=True, auto_delete=True)
        waiting: dict[str, asyncio.Future[None]] = {}

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            future = waiting.pop(message.correlation_id or "", None)
            if future is not None and not future.done():
                future.set_result(None)

        await queue.consume(on_message, no_ack=True)
        body = os.urandom(size // 2).hex().encode()[:size].ljust(size, b"x")
        loop = asyncio.get_running_loop()

        async def one(_: int) -> None:
            cid = secrets.token_hex(8)
            future = loop.create_future()
            waiting[cid] = future
            await pub.default_exchange.publish(aio_pika.Message(body, correlation_id=cid), routing_key=queue.name)
            await asyncio.wait_for(future, 30)

        latencies, elapsed = await closed_loop("amqp", concurrency, seconds, one)
    finally:
        await pub_conn.close()
        await sub_conn.close()
    return summary(latencies, elapsed, concurrency, size)


async def echo_ceiling(concurrency: int, seconds: float, size: int) -> dict[str, Any]:
    """bench/echo_app.py on uvicorn in a process of its own, `concurrency` sockets."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "bench.echo_app:app", "--host", "127.0.0.1", "--port", str(port),
         "--log-level", "warning", "--no-access-log"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    sockets: list[websockets.ClientConnection] = []
    try:
        await asyncio.to_thread(wait_for_port, port, 30, "the echo server")
        sockets = [await websockets.connect(f"ws://127.0.0.1:{port}/ws", ping_interval=None) for _ in range(concurrency)]
        text = "x" * size

        async def one(w: int) -> None:
            await sockets[w].send(text)
            await sockets[w].recv()

        latencies, elapsed = await closed_loop("echo", concurrency, seconds, one)
    finally:
        for s in sockets:
            await s.close()
        server.terminate()
        server.wait(10)
    return summary(latencies, elapsed, concurrency, size)
