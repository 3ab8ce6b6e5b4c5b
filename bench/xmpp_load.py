"""The pairs and offline-sync workloads of bench/pairs.py and bench/burst.py, over XMPP (bench/xmpp.py).

Pairs: 2N users registered in-band, each logged in on a c2s connection of its own (SASL PLAIN,
bound, XEP-0198 enabled, initial presence). Both users of a pair send `<message type='chat'>` to
the other's bare JID, W outstanding per sender: a slot is freed when the friend's connection
receives the message (as in bench/pairs.py, where the delivery frees it, not the send reply;
XMPP has no per-message reply). Bodies are bench/wsclient.py's stamped texts (send time, unique
id); the stanza id is the same unique id. Receivers ack every --ack-every s (XEP-0198 `<a/>`).
Measured over the window after the warm-up, with the same definitions: deliveries received in
it per second, send -> receipt latency of the messages sent in it, CPU per process group between
its edges (CPU % and CPU-ms per delivered message); lost = sent and never received after the
drain, duplicated = one id received twice.

Offline sync: one device sends N to a friend that is registered but offline (mod_offline stores
them), waits for the server's XEP-0198 count to cover them all and checks the stored count
(`ejabberdctl get_offline_count`); then the friend logs in: connect -> every message received,
and initial presence sent (ejabberd delivers the offline spool on it) -> every message received.
"""
import asyncio
import contextlib
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import psutil

from bench.load import gather_limited
from bench.pairs import (
    DRAIN_SECONDS, RECEIPT_TIMEOUT, Flight, Tally, cpu_figures, machine_busy, quantiles, report_progress,
)
from bench.wsclient import parse_text, stamped_text
from bench.xmpp import XmppClient

PASSWORD = "bench-password"
Groups = dict[str, list[psutil.Process]]


def cpu_by_pid(groups: Groups) -> dict[str, dict[int, float]]:
    """User + system CPU seconds of every process of every group (gone ones left out)."""
    out: dict[str, dict[int, float]] = {}
    for label, procs in groups.items():
        out[label] = {}
        for p in procs:
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                out[label][p.pid] = t.user + t.system
    return out


def cpu_used(start: dict[str, dict[int, float]], end: dict[str, dict[int, float]]) -> dict[str, float]:
    """CPU seconds per group between two readings; a process first seen at the end counts whole
    (it started in between: a database connection opened on demand)."""
    return {label: sum(v - start.get(label, {}).get(pid, 0.0) for pid, v in pids.items())
            for label, pids in end.items()}


async def connect_users(port: int, domain: str, names: list[str], ack_every: float) -> list[XmppClient]:
    async def one(i: int) -> XmppClient:
        await XmppClient("127.0.0.1", port, domain).register(names[i], PASSWORD)
        client = XmppClient("127.0.0.1", port, domain)
        await client.login(names[i], PASSWORD, "bench")
        client.ack_every(ack_every)
        return client

    clients: list[XmppClient] = await gather_limited(len(names), 8, one)
    return clients


async def xmpp_pairs(port: int, domain: str, groups: Callable[[], Groups], pairs: int, window: int, seconds: float,
                     warmup: float, ack_every: float, size: int = 100, tag: str = "p") -> dict[str, Any]:
    print(f"xmpp: {pairs} pairs ({2 * pairs} users: register in-band, log in) ...", flush=True)
    t_setup = time.perf_counter()
    names = [f"{tag}{i}" for i in range(2 * pairs)]
    clients = await connect_users(port, domain, names, ack_every)
    print(f"set up in {time.perf_counter() - t_setup:.1f} s", flush=True)
    tally, stop = Tally(), asyncio.Event()
    for index, client in enumerate(clients):
        def on_message(_id: str, _frm: str, body: str, now: int, index: int = index) -> None:
            tally.receive(index, body, now)

        client.on_message = on_message
    directions = [(a, a + 1) for a in range(0, len(clients), 2)]
    directions += [(b, a) for a, b in directions]
    loop = asyncio.get_running_loop()

    async def lane(sender: int, recipient: int) -> None:
        to = f"{names[recipient]}@{domain}"
        while not stop.is_set():
            cmid = secrets.token_hex(8)
            body = stamped_text(cmid, size)
            flight = Flight(recipient, parse_text(body)[0], loop.create_future())
            tally.flights[cmid] = flight
            tally.sent += 1
            clients[sender].send_message(to, cmid, body)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(flight.received), RECEIPT_TIMEOUT)

    print(f"xmpp pairs: {len(directions)} senders x {window} outstanding, acks every {ack_every:g} s, "
          f"{warmup:g} s warm-up + {seconds:g} s measured", flush=True)
    t0 = time.perf_counter_ns()
    tally.start_ns, tally.end_ns = t0 + int(warmup * 1e9), t0 + int((warmup + seconds) * 1e9)
    lanes = [asyncio.create_task(lane(s, r)) for s, r in directions for _ in range(window)]

    ticker = asyncio.create_task(report_progress(tally, t0))
    try:
        await asyncio.sleep(max(0.0, (tally.start_ns - time.perf_counter_ns()) / 1e9))
        cpu_start, busy_start = cpu_by_pid(groups()), machine_busy()
        await asyncio.sleep(max(0.0, (tally.end_ns - time.perf_counter_ns()) / 1e9))
        cpu_end, busy_end = cpu_by_pid(groups()), machine_busy()
        stop.set()
        await asyncio.wait(lanes, timeout=DRAIN_SECONDS)
    finally:
        ticker.cancel()
        for t in lanes:
            t.cancel()
    delivered = tally.delivered_in_window
    cpu = cpu_figures({label: 0.0 for label in cpu_end}, cpu_used(cpu_start, cpu_end), seconds, delivered)
    machine = 100 * (busy_end["machine"] - busy_start["machine"]) / seconds
    lost = sum(1 for f in tally.flights.values() if not f.received.done())
    result = {
        "pairs": pairs, "senders": len(directions), "window": window, "ack_every": ack_every, "warmup": warmup,
        "seconds": seconds, "text_chars": size, "sent": tally.sent, "delivered_in_window": delivered,
        "delivered_per_second": round(delivered / seconds, 1), "latency_ms": quantiles(tally.latencies_ms),
        "lost": lost, "duplicated": tally.repeated, "acks": {"sent": sum(c.acks_sent for c in clients)},
        "cpu": cpu, "machine_cpu_percent": round(machine, 1), "cpus": os.cpu_count(),
        "other_cpu_percent": round(machine - cpu["total"]["cpu_percent"], 1),
    }
    await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
    return result


async def xmpp_offline_sync(port: int, domain: str, count: int, stored: Callable[[str], Awaitable[int]],
                            size: int = 100, tag: str = "b") -> dict[str, Any]:
    """`stored(user)`: how many offline messages the server holds for `user`."""
    print(f"xmpp burst: one device sends {count:,} messages to an offline friend ...", flush=True)
    sender_name, friend_name = f"{tag}s", f"{tag}f"
    await XmppClient("127.0.0.1", port, domain).register(friend_name, PASSWORD)
    sender = (await connect_users(port, domain, [sender_name], 0))[0]
    t0 = time.perf_counter()
    ids = [secrets.token_hex(8) for _ in range(count)]
    for n, cmid in enumerate(ids, 1):
        sender.send_message(f"{friend_name}@{domain}", cmid, stamped_text(cmid, size))
        if n % 256 == 0:
            await asyncio.sleep(0)  # let the socket drain
    # The server's XEP-0198 count covers a stanza once its c2s process has routed it (stored it offline).
    target = count + 1  # + the initial presence
    while sender.server_handled < target and not sender.closed.is_set():
        sender.request_ack()
        await asyncio.wait_for(sender.server_ack.wait(), 120)
        sender.server_ack.clear()
    send_seconds = time.perf_counter() - t0
    await sender.close()
    held = await stored(friend_name)
    for _ in range(20):
        if held >= count:
            break
        await asyncio.sleep(0.5)
        held = await stored(friend_name)

    friend = XmppClient("127.0.0.1", port, domain)
    got: set[str] = set()
    dups = 0
    all_in: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    def on_message(msg_id: str, _frm: str, _body: str, _now: int) -> None:
        nonlocal dups
        if msg_id in got:
            dups += 1
        got.add(msg_id)
        if len(got) >= count and not all_in.done():
            all_in.set_result(time.perf_counter())

    friend.on_message = on_message
    t_connect = time.perf_counter()
    await friend.login(friend_name, PASSWORD, "phone", presence=False)
    t_presence = time.perf_counter()
    friend.send_presence()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(all_in), 600)
    done = all_in.result() if all_in.done() else None
    await friend.close()
    return {
        "messages": count, "send_seconds": round(send_seconds, 3), "stored": held,
        "stored_per_second": round(count / max(send_seconds, 1e-9), 1),
        "connect_to_all_delivered_seconds": round(done - t_connect, 3) if done else None,
        "login_to_all_delivered_seconds": round(done - t_presence, 3) if done else None,
        "received_unique": len(got & set(ids)), "duplicated": dups, "ok": done is not None and held >= count,
    }
