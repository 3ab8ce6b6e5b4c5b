"""--pairs N: issue 12's workload. N pairs of friends online, W messages outstanding per sender.

Each user has a WebSocket of its own, registered, logged in and befriended over the gateway
(as bench/load.py sets users up). Both users of a pair send to each other: each is a sender
with W messages outstanding to its friend, and the receiver of the friend's W, so a pair has
2W in flight (--one-way: only the first user of each pair sends; W per pair). Both directions
is what a conversation is, and what the issue's ejabberd comparison ran.

Outstanding = sent and not yet received by the recipient: a sender's window slot is freed by
the delivery (`message.new` on the friend's socket), so W = 1 is a closed loop. Closed loop,
not paced: it measures what the stack can deliver and the latency at that throughput, where an
offered rate past capacity would only measure a growing queue. Receivers acknowledge their
contiguous prefix per conversation every --ack-every s (message.ack), as apps do, so the
cursor writes are part of the load.

A send answered `unavailable` or `rate_limited`, or not answered within SEND_TIMEOUT, goes
again with the same client_msg_id (docs/protocol.md); its slot stays taken meanwhile.

Measured over a window after --warmup s: deliveries whose receipt falls in it (delivered/s),
latency send -> message.new of the messages first sent in it (retries included), send -> reply
of those, and every process's CPU (psutil cpu_times, user + system) between its edges, as CPU %
and CPU-ms per delivered message. Then senders stop and up to DRAIN_SECONDS wait for what is
outstanding: lost = answered ok but never received; duplicated = one (conversation, seq) twice
on a socket. Both a retry and a sync the gateway starts unasked (when it fears pushes were lost)
push messages again by design, dropped by seq: `retries` and `unrequested syncs` tell which.
--profile DIR: py-spy on chat, gateway and the database over the window (bench/profile.py).

--encrypted: each pair's conversation is end-to-end encrypted first (conversations.encrypt), and
every message carries an `encrypted` envelope instead of `text`: two ciphertexts (the friend's
device and a second device of the sender's), each the stamped text padded to what an Olm
ciphertext of it weighs (base64 of a JSON payload, ~1.4 times the text plus ~150 characters).
Stand-ins, not Olm: the server never decrypts, so its CPU per message is what this compares
with the plain run (issue 28: unchanged within noise).
"""
import asyncio
import contextlib
import math
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psutil

from bench.dbops import db_counts, db_figures, db_table
from bench.load import close_all, connect_user, gather_limited
from bench.profile import profiled
from bench.wsclient import BenchClient, befriend, parse_text, stamped_text
from shared.contracts.e2e import ALGORITHM
from parley_client import Attempt, ReplyError, RetryPolicy

NS_PER_MS = 1_000_000
SEND_TIMEOUT = 30.0  # the gateway answers `unavailable` after its own RPC timeout (10 s) first
ATTEMPTS = 6
# `unavailable`, `rate_limited` and timeouts again (same client_msg_id), pausing 0.1 s doubling to 2 s (1 s
# at least after `rate_limited`); the socket closing ends it (no reconnect here).
POLICY = RetryPolicy(attempt_timeout=SEND_TIMEOUT, budget=math.inf, max_attempts=ATTEMPTS, first_backoff=0.1,
                     retry_codes=frozenset({"unavailable", "rate_limited"}))
OUTCOMES = {"timeout": "client_timeout", "closed": "connection_closed"}  # as this report has always named them
RECEIPT_TIMEOUT = 60.0  # an ok send not received by then frees its slot (and will count as lost)
DRAIN_SECONDS = 60.0
SENDER_KEY = "A" * 43  # an identity key's shape (the server checks only that)


@dataclass
class Flight:
    recipient: int
    stamp_ns: int
    received: "asyncio.Future[int]"
    ok: bool | None = None  # the reply: ok, refused, or unknown (gave up)


@dataclass
class Tally:
    start_ns: int = 0  # the measured window
    end_ns: int = 1 << 62
    flights: dict[str, Flight] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    # The same split at the message's sent_at (chat's clock when it took the send up; same
    # machine): send -> chat, chat -> received. Says whether time goes before chat or after.
    to_store_ms: list[float] = field(default_factory=list)
    to_push_ms: list[float] = field(default_factory=list)
    reply_ms: list[float] = field(default_factory=list)
    delivered_in_window = 0
    delivered = 0
    sent = 0
    sent_in_window = 0
    repeated = 0  # one flight received twice by its recipient
    retries = 0
    gave_up = 0
    resyncs = 0  # sync.done pushes nobody asked for (the gateway resyncs when pushes may be lost)
    errors: dict[str, int] = field(default_factory=dict)

    def in_window(self, ns: int) -> bool:
        return self.start_ns <= ns < self.end_ns

    def receive(self, recipient: int, text: str, now: int) -> Flight | None:
        """A message whose text carries a flight's stamp reached `recipient`: counted, its
        latency kept if sent in the window; the flight, or None when the text is not one of ours,
        reached someone else, or came again (`repeated`)."""
        try:
            _, cmid = parse_text(text)
        except ValueError:
            return None
        flight = self.flights.get(cmid)
        if flight is None or flight.recipient != recipient:
            return None
        if flight.received.done():
            self.repeated += 1
            return None
        flight.received.set_result(now)
        self.delivered += 1
        if self.in_window(now):
            self.delivered_in_window += 1
        if self.in_window(flight.stamp_ns):
            self.latencies_ms.append((now - flight.stamp_ns) / NS_PER_MS)
        return flight

    def error(self, code: str) -> None:
        self.errors[code] = self.errors.get(code, 0) + 1


def quantiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p90": None, "p99": None, "max": None, "n": 0}
    v = sorted(values)
    at = {q: round(v[min(len(v) - 1, int(f * len(v)))], 2) for q, f in (("p50", .5), ("p90", .9), ("p99", .99))}
    return {**at, "max": round(v[-1], 2), "n": len(v)}


async def send_retrying(client: BenchClient, data: dict[str, Any], tally: Tally) -> tuple[bool | None, dict[str, Any]]:
    """message.send through the client's outbox until answered ok, refused for good, or ATTEMPTS
    used: (True, reply data), (False, {}) when refused, (None, {}) when the outcome is unknown
    (it may be stored)."""
    def note(attempt: Attempt) -> None:
        if attempt.outcome != "ok":
            tally.error(OUTCOMES.get(attempt.outcome, attempt.outcome))
            tally.retries += attempt.retrying

    try:
        if "encrypted" in data:
            return True, await client.session.call("message.send", data, retry=POLICY, on_attempt=note)
        reply = await client.session.send(data["to"], data["text"], client_msg_id=data["client_msg_id"], policy=POLICY,
                                          on_attempt=note)
        return True, dict(reply)
    except ReplyError as exc:
        if exc.code not in POLICY.retry_codes:
            return False, {}
    except ConnectionError:
        return None, {}  # the socket is gone (this load does not reconnect)
    except TimeoutError:
        pass
    tally.gave_up += 1
    return None, {}


def record_receipts(clients: list[BenchClient], tally: Tally) -> None:
    wall_offset_ns = time.time_ns() - time.perf_counter_ns()
    for index, client in enumerate(clients):
        def on_message(data: dict[str, Any], now: int, index: int = index) -> None:
            flight = tally.receive(index, carried_text(data), now)
            if flight is not None and tally.in_window(flight.stamp_ns):
                try:
                    stored_ns = int(datetime.fromisoformat(data["sent_at"]).timestamp() * 1e9) - wall_offset_ns
                except (KeyError, ValueError):
                    return
                tally.to_store_ms.append((stored_ns - flight.stamp_ns) / NS_PER_MS)
                tally.to_push_ms.append((now - stored_ns) / NS_PER_MS)

        def on_sync_done(data: dict[str, Any], now: int) -> None:
            tally.resyncs += 1

        client.on_message = on_message
        client.on_sync_done = on_sync_done


def carried_text(message: dict[str, Any]) -> str:
    """The stamped text a message carries: its `text`, or (--encrypted) its first ciphertext."""
    if "encrypted" in message:
        return str(message["encrypted"]["ciphertexts"][0]["body"])
    return str(message.get("text") or "")


def sealed(text: str, sender: str, recipient: str) -> dict[str, Any]:
    """An `encrypted` envelope of about an Olm ciphertext's weight, for the friend's device and a
    second device of the sender's, each carrying the stamped text."""
    body = text + " " + "x" * (int(0.4 * len(text)) + 150)
    return {"algorithm": ALGORITHM, "sender_key": SENDER_KEY, "ciphertexts": [
        {"user_id": recipient, "device_id": "bench", "type": 1, "body": body},
        {"user_id": sender, "device_id": "second", "type": 1, "body": body},
    ]}


async def send(client: BenchClient, data: dict[str, Any], flight: Flight, tally: Tally) -> None:
    """One message.send (with its retries); settles the flight's `ok`. Its own coroutine, not a
    closure in the lane: the lane moves on to its next message when the delivery comes first."""
    flight.ok, _ = await send_retrying(client, data, tally)  # (the library holds the sender's own seq: acks pass it)
    if flight.ok and tally.in_window(flight.stamp_ns):
        tally.reply_ms.append((time.perf_counter_ns() - flight.stamp_ns) / NS_PER_MS)


async def lane(client: BenchClient, to: dict[str, str], recipient: int, size: int, tally: Tally,
               stop: asyncio.Event, background: set[asyncio.Task[Any]], encrypted: bool = False) -> None:
    """One of a sender's W slots: send, wait for the delivery (or a refusal), send the next."""
    while not stop.is_set():
        cmid = secrets.token_hex(8)
        text = stamped_text(cmid, size)
        stamp, _ = parse_text(text)
        flight = Flight(recipient, stamp, asyncio.get_running_loop().create_future())
        tally.flights[cmid] = flight
        tally.sent += 1
        if tally.in_window(stamp):
            tally.sent_in_window += 1

        content = {"encrypted": sealed(text, client.user_id or "", to["user_id"])} if encrypted else {"text": text}
        sending = asyncio.create_task(send(client, {"to": to, "client_msg_id": cmid, **content}, flight, tally))
        background.add(sending)
        sending.add_done_callback(background.discard)
        await asyncio.wait({flight.received, sending}, return_when=asyncio.FIRST_COMPLETED)
        if flight.received.done() or not flight.ok:
            continue  # delivered; or refused / given up (its reply said so)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(flight.received), RECEIPT_TIMEOUT)


async def report_progress(tally: Tally, t0: int, extra: Callable[[], str] = lambda: "") -> None:
    """Every second until cancelled: the phase, time since `t0`, sent and delivered (and per
    second), and `extra()`."""
    last = 0
    while True:
        await asyncio.sleep(1)
        now = time.perf_counter_ns()
        phase = "warm-up" if now < tally.start_ns else "measure" if now < tally.end_ns else "drain"
        print(f"[{phase:<8}] {(now - t0) / 1e9:5.1f} s  sent {tally.sent:7d}  delivered {tally.delivered:7d} "
              f"(+{tally.delivered - last}/s){extra()}", flush=True)
        last = tally.delivered


def cpu_seconds(procs: dict[str, psutil.Process]) -> dict[str, float]:
    out = {}
    for label, p in procs.items():
        try:
            t = p.cpu_times()
            out[label] = t.user + t.system
        except psutil.Error:
            out[label] = float("nan")
    return out


def machine_busy() -> dict[str, float]:
    """CPU seconds the whole machine spent busy so far (all cores), and each process's: to see
    what else ran beside the stack (a test suite, another benchmark) and took cores from it."""
    t = psutil.cpu_times()
    out = {"machine": t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0),
           "kernel irq+softirq": getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)}
    for proc in psutil.process_iter(["name", "cpu_times"]):
        times = proc.info["cpu_times"]
        if times is not None:
            out[f"{proc.info['name']}[{proc.pid}]"] = times.user + times.system
    return out


def others(start: dict[str, float], end: dict[str, float], ours: dict[str, psutil.Process],
           seconds: float) -> dict[str, float]:
    """The busiest CPU users that are not the stack's processes, as CPU %."""
    mine = {p.pid for p in ours.values()}
    used = {k: end[k] - start.get(k, 0.0) for k in end if k != "machine"}
    used = {k: v for k, v in used.items() if not (k.endswith("]") and int(k.rsplit("[", 1)[1][:-1]) in mine)}
    top = sorted(used.items(), key=lambda kv: -kv[1])[:4]
    return {k: round(100 * v / seconds, 1) for k, v in top if v > 0.01 * seconds}


def cpu_figures(before: dict[str, float], after: dict[str, float], seconds: float, delivered: int) -> dict[str, Any]:
    per = {}
    for label in before:
        used = after[label] - before[label]
        per[label] = {"cpu_seconds": round(used, 2), "cpu_percent": round(100 * used / seconds, 1),
                      "cpu_ms_per_message": round(1000 * used / delivered, 3) if delivered else None}
    total = sum(v["cpu_seconds"] for v in per.values() if v["cpu_seconds"] == v["cpu_seconds"])
    per["total"] = {"cpu_seconds": round(total, 2), "cpu_percent": round(100 * total / seconds, 1),
                    "cpu_ms_per_message": round(1000 * total / delivered, 3) if delivered else None}
    return per


async def setup_pairs(ws_url: str | list[str], pairs: int, ack_every: float) -> list[BenchClient]:
    """2 x `pairs` users, each on its own socket, logged in (sync done), pairs befriended. Given
    several gateways' URLs, user i connects to the (i mod n)th, so with n >= 2 the two users of a
    pair sit on different gateways and every delivery crosses from one gateway to another."""
    urls = [ws_url] if isinstance(ws_url, str) else ws_url
    print(f"setting up {pairs} pairs ({2 * pairs} users: register, log in, befriend) on {len(urls)} gateway(s) ...",
          flush=True)
    t0 = time.perf_counter()
    clients = await gather_limited(2 * pairs, 8, lambda i: connect_user(urls[i % len(urls)], f"p{i}"))
    await gather_limited(pairs, 8, lambda i: befriend(clients[2 * i], clients[2 * i + 1]))
    for c in clients:
        c.ack_every(ack_every)
    print(f"set up in {time.perf_counter() - t0:.1f} s", flush=True)
    return clients


async def pairs_run(ws_url: str | list[str], procs: dict[str, psutil.Process], pairs: int, window: int, seconds: float,
                    warmup: float, ack_every: float, size: int = 100, one_way: bool = False,
                    profile_dir: str | None = None, metrics: dict[str, str] | None = None,
                    encrypted: bool = False) -> dict[str, Any]:
    clients = await setup_pairs(ws_url, pairs, ack_every)
    try:
        if encrypted:
            await gather_limited(pairs, 8, lambda i: clients[2 * i].session.call(
                "conversations.encrypt", {"to": {"user_id": clients[2 * i + 1].user_id}}))
        return await measure_pairs(clients, procs, window, seconds, warmup, ack_every, size, one_way, profile_dir,
                                   metrics or {}, encrypted)
    finally:
        await close_all(clients)


async def measure_pairs(clients: list[BenchClient], procs: dict[str, psutil.Process], window: int, seconds: float,
                        warmup: float, ack_every: float, size: int, one_way: bool,
                        profile_dir: str | None = None, metrics: dict[str, str] | None = None,
                        encrypted: bool = False) -> dict[str, Any]:
    """`metrics`: label -> prometheus endpoint of the stack's processes, for database operations."""
    tally, stop = Tally(), asyncio.Event()
    background: set[asyncio.Task[Any]] = set()
    record_receipts(clients, tally)
    dup_before = sum(c.duplicates for c in clients)
    directions = [(a, a + 1) for a in range(0, len(clients), 2)]
    if not one_way:
        directions += [(b, a) for a, b in directions]
    print(f"pairs: {len(clients) // 2} pairs, {len(directions)} senders x {window} outstanding, "
          f"acks every {ack_every:g} s, {warmup:g} s warm-up + {seconds:g} s measured", flush=True)
    t0 = time.perf_counter_ns()
    tally.start_ns, tally.end_ns = t0 + int(warmup * 1e9), t0 + int((warmup + seconds) * 1e9)
    lanes = [asyncio.create_task(lane(clients[s], {"user_id": clients[r].user_id or ""}, r, size, tally, stop, background,
                                      encrypted))
             for s, r in directions for _ in range(window)]

    def outstanding_and_errors() -> str:
        outstanding = sum(1 for f in tally.flights.values() if not f.received.done() and f.ok is not False)
        return f"  outstanding {outstanding:5d}  errors {sum(tally.errors.values())}"

    ticker = asyncio.create_task(report_progress(tally, t0, outstanding_and_errors))
    try:
        await asyncio.sleep(max(0.0, (tally.start_ns - time.perf_counter_ns()) / 1e9))
        load_start, cpu_start, busy_start = os.getloadavg(), cpu_seconds(procs), machine_busy()
        db_start = await db_counts(metrics or {})
        async with profiled(procs, profile_dir, seconds):  # py-spy over the window (--profile DIR)
            await asyncio.sleep(max(0.0, (tally.end_ns - time.perf_counter_ns()) / 1e9))
            cpu_end, load_end, busy_end = cpu_seconds(procs), os.getloadavg(), machine_busy()
            db_end = await db_counts(metrics or {})
            stop.set()
        drained_by = time.perf_counter() + DRAIN_SECONDS
        await asyncio.wait(lanes, timeout=DRAIN_SECONDS)
        if background:
            await asyncio.wait(set(background), timeout=max(1.0, drained_by - time.perf_counter()))
    finally:
        ticker.cancel()
        for t in lanes:
            t.cancel()
    delivered = tally.delivered_in_window
    cpu = cpu_figures(cpu_start, cpu_end, seconds, delivered)
    machine = 100 * (busy_end["machine"] - busy_start["machine"]) / seconds
    lost = sum(1 for f in tally.flights.values() if f.ok and not f.received.done())
    unknown = sum(1 for f in tally.flights.values() if f.ok is None and not f.received.done())
    return {
        "pairs": len(clients) // 2, "senders": len(directions), "window": window, "one_way": one_way,
        "encrypted": encrypted,
        "ack_every": ack_every, "warmup": warmup, "seconds": seconds, "text_chars": size,
        "sent": tally.sent, "sent_in_window": tally.sent_in_window, "delivered_in_window": delivered,
        "delivered_per_second": round(delivered / seconds, 1),
        "latency_ms": quantiles(tally.latencies_ms), "reply_latency_ms": quantiles(tally.reply_ms),
        "send_to_stored_ms": quantiles(tally.to_store_ms), "stored_to_received_ms": quantiles(tally.to_push_ms),
        "lost": lost, "unknown_outcome": unknown, "duplicated": sum(c.duplicates for c in clients) - dup_before,
        "retries": tally.retries, "gave_up": tally.gave_up, "errors": tally.errors, "resyncs": tally.resyncs,
        "acks": {"sent": sum(c.acks_sent for c in clients), "errors": sum(c.ack_errors for c in clients)},
        "loadavg_start": [round(x, 2) for x in load_start], "loadavg_end": [round(x, 2) for x in load_end],
        "cpu": cpu, "db": db_figures(db_start, db_end, delivered), "machine_cpu_percent": round(machine, 1), "cpus": os.cpu_count(),
        # Busy CPU of the machine not in the processes above (other work running here, py-spy).
        "other_cpu_percent": round(machine - cpu["total"]["cpu_percent"], 1),
        "other_top": others(busy_start, busy_end, procs, seconds),
    }


def pairs_table(r: dict[str, Any]) -> str:
    lat, rep = r["latency_ms"], r["reply_latency_ms"]
    direction = ("one way" if r["one_way"] else "both ways") + (", end-to-end encrypted" if r.get("encrypted") else "")
    lines = [
        f"pairs {r['pairs']} ({direction}), {r['window']} outstanding per sender, acks every {r['ack_every']:g} s, "
        f"{r['seconds']:g} s measured after {r['warmup']:g} s warm-up",
        f"  delivered msg/s          {r['delivered_per_second']:>10,.1f}   ({r['delivered_in_window']:,} in window)",
        "  latency ms  p50/p90/p99/max  " + " / ".join(f"{lat[q]}" for q in ("p50", "p90", "p99", "max")),
        "  send->reply ms  p50/p99     " + " / ".join(f"{rep[q]}" for q in ("p50", "p99")),
        "  split at sent_at, p50/p99 ms: send->chat " + " / ".join(f"{r['send_to_stored_ms'][q]}" for q in ("p50", "p99"))
        + ",  chat->received " + " / ".join(f"{r['stored_to_received_ms'][q]}" for q in ("p50", "p99")),
        f"  lost {r['lost']}  unknown {r['unknown_outcome']}  duplicated {r['duplicated']}  retries {r['retries']}  "
        f"unrequested syncs {r['resyncs']}  errors {r['errors'] or 0}",
        f"  acks {r['acks']['sent']:,} (errors {r['acks']['errors']})",
        f"  machine CPU busy {r['machine_cpu_percent']}% of {100 * r['cpus']}%, of which not this stack's "
        f"{r['other_cpu_percent']}%; load average at start / end {r['loadavg_start'][0]} / {r['loadavg_end'][0]}",
        "  busiest others (CPU %): " + (", ".join(f"{k} {v}" for k, v in r.get("other_top", {}).items()) or "none"),
        f"  {'process':<14}{'CPU %':>8}{'CPU-ms/msg':>12}",
    ]
    for label, c in r["cpu"].items():
        per = "-" if c["cpu_ms_per_message"] is None else f"{c['cpu_ms_per_message']:.3f}"
        lines.append(f"  {label:<14}{c['cpu_percent']:>8.1f}{per:>12}")
    lines += db_table(r.get("db") or {})
    return "\n".join(lines)
