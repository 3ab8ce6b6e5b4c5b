"""The chat load (users in pairs and groups sending at a paced rate) and the offline-sync figure."""
import contextlib
import asyncio
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import psutil

from bench.profile import profiled
from bench.stack import MiB, Watched, progress_lines
from bench.wsclient import BenchClient, befriend, parse_text, percentiles, stamped_text
from parley_client import Attempt, ReplyError, RetryPolicy

NS_PER_MS = 1_000_000
# Filling an offline friend's conversation: `unavailable`, `rate_limited` (a running stack's limit,
# with --url: wait for tokens) and timeouts are tried again, with the same client_msg_id.
FILL_POLICY = RetryPolicy(attempt_timeout=60, budget=300, max_attempts=1000,
                          retry_codes=frozenset({"unavailable", "rate_limited"}))


@dataclass
class Sender:
    client: BenchClient
    to: dict[str, str]  # {"user_id": ...} or {"group_id": ...}
    recipients: list[int]  # indexes of the clients that get its messages
    kind: str  # "pair" | "group"


@dataclass
class Tally:
    latencies_ms: list[float] = field(default_factory=list)  # send -> message.new, every delivery
    reply_ms: list[float] = field(default_factory=list)  # send -> reply, every ok send
    received: set[tuple[int, str]] = field(default_factory=set)  # (recipient index, client_msg_id)
    expected: dict[str, list[int]] = field(default_factory=dict)  # client_msg_id -> recipients (not refused)
    sent = 0
    ok = 0
    errors: dict[str, int] = field(default_factory=dict)
    last_arrival_ns = 0

    def error(self, code: str) -> None:
        self.errors[code] = self.errors.get(code, 0) + 1

    def outstanding(self) -> int:
        return sum(len(r) for r in self.expected.values()) - len(self.received)


def groups_of(members: list[int], size: int) -> list[list[int]]:
    groups = [members[i:i + size] for i in range(0, len(members), size)]
    if len(groups) > 1 and len(groups[-1]) < 2:
        groups[-2] += groups.pop()
    return [g for g in groups if len(g) >= 2]


async def gather_limited(n: int, limit: int, make: Any) -> list[Any]:
    sem = asyncio.Semaphore(limit)

    async def one(i: int) -> Any:
        async with sem:
            return await make(i)

    return await asyncio.gather(*(one(i) for i in range(n)))


async def connect_user(ws_url: str, prefix: str, device: str = "bench") -> BenchClient:
    client = await BenchClient(ws_url).connect()
    await client.register(prefix)
    synced = client.expect("sync.done")
    await client.login(device)
    await asyncio.wait_for(synced, 60)
    return client


async def setup(ws_url: str, users: int, group_size: int, ack_every: float = 0) -> tuple[list[BenchClient], list[Sender]]:
    """Half the users (an even number) in pairs of friends, the rest in groups of `group_size`;
    with `ack_every` > 0 every client acknowledges what it received that often."""
    print(f"setting up {users} users (register, log in, befriend pairs, create groups) ...", flush=True)
    clients = await gather_limited(users, 8, lambda i: connect_user(ws_url, f"u{i}"))
    pair_users = (users // 2) // 2 * 2
    senders: list[Sender | None] = [None] * users
    for a in range(0, pair_users, 2):
        b = a + 1
        await befriend(clients[a], clients[b])
        senders[a] = Sender(clients[a], {"user_id": clients[b].user_id}, [b], "pair")
        senders[b] = Sender(clients[b], {"user_id": clients[a].user_id}, [a], "pair")
    for members in groups_of(list(range(pair_users, users)), group_size):
        owner = clients[members[0]]
        created = await owner.call(
            "groups.create", {"name": f"bench {secrets.token_hex(2)}", "member_ids": [clients[m].user_id for m in members[1:]]}
        )
        for m in members:
            senders[m] = Sender(clients[m], {"group_id": created["group_id"]}, [o for o in members if o != m], "group")
    for client in clients:
        client.ack_every(ack_every)
    return clients, [s for s in senders if s is not None]


def record_deliveries(clients: list[BenchClient], tally: Tally) -> None:
    for index, client in enumerate(clients):
        def on_message(data: dict[str, Any], now: int, index: int = index) -> None:
            try:
                stamp, cmid = parse_text(data.get("text") or "")
            except ValueError:
                return
            if cmid not in tally.expected:  # a straggler of an earlier step on the same sockets
                return
            tally.latencies_ms.append((now - stamp) / NS_PER_MS)
            tally.received.add((index, cmid))
            tally.last_arrival_ns = max(tally.last_arrival_ns, now)

        client.on_message = on_message


async def send_one(sender: Sender, size: int, tally: Tally) -> None:
    cmid = secrets.token_hex(8)
    text = stamped_text(cmid, size)
    started = time.perf_counter_ns()
    tally.sent += 1
    # Expected from the start (a message.new may arrive before the reply); dropped if refused.
    tally.expected[cmid] = sender.recipients
    try:
        reply = await sender.client.request("message.send", {"to": sender.to, "client_msg_id": cmid, "text": text})
    except (TimeoutError, ConnectionError) as exc:
        # Unknown outcome: the message may still be stored and delivered; it stays expected.
        tally.error("TimeoutError" if isinstance(exc, TimeoutError) else "ConnectionError")
        return
    if reply["ok"]:
        tally.reply_ms.append((time.perf_counter_ns() - started) / NS_PER_MS)
        tally.ok += 1
    else:
        del tally.expected[cmid]
        tally.error(reply["error"]["code"])


async def paced(sender: Sender, rate: float, phase: float, until: float, size: int, tally: Tally,
                tasks: set[asyncio.Task[None]]) -> None:
    """Open loop: the i-th send is due at start + phase + i / rate, whether or not replies came."""
    start = time.perf_counter()
    i = 0
    while True:
        due = start + phase + i / rate
        if due >= until:
            return
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(send_one(sender, size, tally))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        i += 1


def prime_cpu(procs: dict[str, psutil.Process]) -> None:
    for p in procs.values():
        with contextlib.suppress(psutil.Error):
            p.cpu_percent(None)


def cpu_and_rss(procs: dict[str, psutil.Process], watched: dict[str, Watched]) -> dict[str, dict[str, float]]:
    out = {}
    for label, p in procs.items():
        try:
            cpu = p.cpu_percent(None)
        except psutil.Error:
            cpu = float("nan")
        w = watched[label]
        w.sample()
        out[label] = {"cpu_percent": round(cpu, 1), "rss_mib": round(w.last / MiB, 1), "rss_peak_mib": round(w.peak / MiB, 1)}
    return out


async def chat_step(clients: list[BenchClient], senders: list[Sender], procs: dict[str, psutil.Process], rate: float,
                    seconds: float, group_size: int, size: int, label: str = "chat") -> dict[str, Any]:
    """One paced run on users already set up, so that a sweep reuses them from step to step."""
    tally = Tally()
    record_deliveries(clients, tally)
    duplicates_before = sum(c.duplicates for c in clients)
    watched = {name: Watched(name, p) for name, p in procs.items()}
    for w in watched.values():
        w.reset()
    per_sender = rate / len(senders)
    fanout = sum(len(s.recipients) for s in senders) / len(senders)
    print(f"sending: {len(senders)} senders x {per_sender:.2f} msg/s for {seconds:.0f} s, {size}-char texts", flush=True)
    prime_cpu(procs)
    t0 = time.perf_counter()
    t0_ns = time.perf_counter_ns()
    until = t0 + seconds
    tasks: set[asyncio.Task[None]] = set()
    pacers = [asyncio.create_task(paced(s, per_sender, i / len(senders) / per_sender, until, size, tally, tasks))
              for i, s in enumerate(senders)]

    async def progress() -> None:
        while True:
            await asyncio.sleep(1)
            for w in watched.values():
                w.sample()
            p99 = percentiles(tally.latencies_ms)["p99"]
            print(f"[{label:<8}] {time.perf_counter() - t0:5.1f} s  sent {tally.sent:7d}  delivered {len(tally.received):7d}  "
                  f"outstanding {tally.outstanding():6d}  p99 {p99 if p99 is not None else '-'} ms  "
                  f"errors {sum(tally.errors.values())}", flush=True)

    ticker = asyncio.create_task(progress())
    try:
        await asyncio.gather(*pacers)
        if tasks:
            await asyncio.wait(set(tasks), timeout=35)
        straggle_until = time.perf_counter() + 5
        while tally.outstanding() > 0 and time.perf_counter() < straggle_until:
            await asyncio.sleep(0.05)
    finally:
        ticker.cancel()
    resources = cpu_and_rss(procs, watched)
    elapsed = time.perf_counter() - t0
    expected = sum(len(r) for r in tally.expected.values())
    lost = sum(1 for cmid, rs in tally.expected.items() for r in rs if (r, cmid) not in tally.received)
    duplicates = sum(c.duplicates for c in clients) - duplicates_before
    window = max((tally.last_arrival_ns - t0_ns) / 1e9, 1e-9) if tally.received else seconds
    return {
        "users": len(clients), "senders": len(senders), "pairs_users": sum(s.kind == "pair" for s in senders),
        "group_users": sum(s.kind == "group" for s in senders), "group_size": group_size,
        "offered_rate": rate, "seconds": seconds, "text_chars": size,
        "sent": tally.sent, "sent_ok": tally.ok, "send_errors": tally.errors,
        "sent_per_second": round(tally.sent / seconds, 1),
        # Recipients per message, on average: what the offered rate should become as deliveries.
        "fanout": round(fanout, 3), "deliveries_offered_per_second": round(rate * fanout, 1),
        "deliveries_expected": expected, "delivered": len(tally.received),
        "delivered_per_second": round(len(tally.received) / window, 1),
        "lost": lost, "duplicated": duplicates,
        "latency_ms": percentiles(tally.latencies_ms), "reply_latency_ms": percentiles(tally.reply_ms),
        "elapsed_seconds": round(elapsed, 2), "processes": resources,
    }


async def close_all(clients: list[BenchClient]) -> None:
    await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


async def warm_up(clients: list[BenchClient], senders: list[Sender], procs: dict[str, psutil.Process], rate: float,
                  seconds: float, group_size: int, size: int) -> dict[str, Any] | None:
    """A first stretch at the offered rate whose latencies are not counted: connection pools,
    the database's threads and first conversation reads are opened here, not in the figures
    (a cold start showed up as ~1 s p99 in an otherwise idle run). Its losses still count."""
    if seconds <= 0:
        return None
    step = await chat_step(clients, senders, procs, rate, seconds, group_size, size, label="warm-up")
    await asyncio.sleep(1)
    return {"seconds": seconds, "lost": step["lost"], "duplicated": step["duplicated"],
            "latency_ms": step["latency_ms"]}


async def chat_run(ws_url: str, procs: dict[str, psutil.Process], users: int, rate: float, seconds: float,
                   group_size: int, size: int, warmup: float, profile_dir: str | None = None,
                   ack_every: float = 0) -> dict[str, Any]:
    clients, senders = await setup(ws_url, users, group_size, ack_every)
    try:
        warm = await warm_up(clients, senders, procs, rate, warmup, group_size, size)
        async with profiled(procs, profile_dir, seconds):
            step = await chat_step(clients, senders, procs, rate, seconds, group_size, size)
        if warm:
            step["warmup"] = warm
            step["lost"] += warm["lost"]
            step["duplicated"] += warm["duplicated"]
        step["acks"] = {"every_seconds": ack_every, "sent": sum(c.acks_sent for c in clients),
                        "errors": sum(c.ack_errors for c in clients)}
        return step
    finally:
        await close_all(clients)


async def offline_sync(ws_url: str, count: int, size: int, senders: int = 4, window: int = 16) -> dict[str, Any]:
    """`count` messages wait for one offline device (from `senders` friends); then it binds."""
    print(f"offline sync: {count} messages to one offline device ...", flush=True)
    target = await connect_user(ws_url, "off", device="phone")
    friends = await gather_limited(senders, 4, lambda i: connect_user(ws_url, f"of{i}"))
    for f in friends:
        await befriend(f, target)
    await target.close()
    shares = [count // senders + (1 if i < count % senders else 0) for i in range(senders)]
    sent_ok = 0
    errors: dict[str, int] = {}
    t0 = time.perf_counter()

    def count_error(attempt: Attempt) -> None:
        if attempt.outcome != "ok":
            code = "client_timeout" if attempt.outcome == "timeout" else attempt.outcome
            errors[code] = errors.get(code, 0) + 1

    async def fill(friend: BenchClient, n: int) -> None:
        queue = iter(range(n))

        async def lane() -> None:
            nonlocal sent_ok
            for _ in queue:
                cmid = secrets.token_hex(8)
                try:  # the outbox: the same client_msg_id every try, so a retry never stores twice
                    await friend.session.send({"user_id": target.user_id}, stamped_text(cmid, size), client_msg_id=cmid,
                                              policy=FILL_POLICY, on_attempt=count_error)
                    sent_ok += 1
                except (ReplyError, TimeoutError, ConnectionError):
                    pass  # counted by count_error

        await asyncio.gather(*(lane() for _ in range(window)))

    async with progress_lines("fill", 1, lambda: f"stored {sent_ok:6d} / {count}"):
        await asyncio.gather(*(fill(f, n) for f, n in zip(friends, shares, strict=False)))
    fill_seconds = time.perf_counter() - t0
    await asyncio.gather(*(f.close() for f in friends), return_exceptions=True)

    device = await BenchClient(ws_url).connect()
    device.username, device.user_id = target.username, target.user_id
    got = 0
    device.on_message = lambda data, now: None
    done = device.expect("sync.done")
    sent_at = time.perf_counter()
    await device.login("phone")
    replied_at = time.perf_counter()

    async def progress_sync() -> None:
        while True:
            await asyncio.sleep(1)
            print(f"[sync    ] {time.perf_counter() - replied_at:5.1f} s  received {device.received:6d} / {count}", flush=True)

    ticker = asyncio.create_task(progress_sync())
    try:
        summary = await asyncio.wait_for(done, 600)
    finally:
        ticker.cancel()
    finished = time.perf_counter()
    got = device.received
    await device.close()
    return {
        "messages": count, "stored": sent_ok, "store_errors": errors, "fill_seconds": round(fill_seconds, 2),
        "fill_per_second": round(sent_ok / fill_seconds, 1),
        "bind_to_sync_done_seconds": round(finished - replied_at, 3),
        "login_sent_to_sync_done_seconds": round(finished - sent_at, 3),
        "sync_done_count": summary.get("count"), "received_unique": got, "duplicated": device.duplicates,
        "messages_per_second": round(got / max(finished - replied_at, 1e-9), 1),
        "ok": got == count and summary.get("count") == count,
    }
