"""--ops N: issue 26's mixed workload. Per operation, the time from request to reply.

N pairs of friends (2N users, each on its own socket, registered, logged in and befriended over
the gateway as bench/pairs.py sets them up), each user doing one operation at a time, at a
moderate total rate (--ops-rate, operations/s over all users; each user pauses an exponential
time of mean users/rate after each operation, so no user piles requests up). Each operation is
drawn by weight (--mix, default MIX) among those the user has something to do with:

- send       message.send to the friend (one in BURN_EVERY burns after reading, for `open`)
- ack        message.ack of the conversation's last seq (the device's cursor)
- read       message.read of it (the read marker)
- edit       message.edit of one of the user's own recent texts
- react      reaction.add of an emoji the user has not put on one of the friend's recent texts
- open       message.open of a burn-after-reading message from the friend, never opened yet
- history    history.fetch, a page of 50 before a random seq
- sync       a second device of the user (its "tablet") reconnecting: a new socket, auth.resume,
             the sync of what came since its last one; timed from auth.resume to `sync.done`

Latency: perf_counter from the request going out to its reply (for sync: to `sync.done`), of the
operations started in the measured window after --warmup s; p50/p99/max and count per operation,
and errors (replies not ok) by code. CPU: every process's CPU time (psutil, user + system) over
the window, as CPU % and CPU-ms per operation (of any kind: the mix, not one operation alone).

Run it on a store that holds what a long-used one holds (--prefill 100000 --store DIR): issue 26's
slow operations were slow in proportion to the number of stored messages.
"""
import asyncio
import contextlib
import os
import random
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import psutil

from bench.load import close_all, gather_limited
from bench.pairs import cpu_figures, cpu_seconds, setup_pairs
from bench.wsclient import BenchClient
from parley_client import ParleyClient

OPERATIONS = ("send", "ack", "read", "edit", "react", "open", "history", "sync")
MIX: dict[str, float] = {"send": 30, "ack": 10, "read": 10, "edit": 10, "react": 10, "open": 10, "history": 10,
                         "sync": 5}
KIND = {"send": "message.send", "ack": "message.ack", "read": "message.read", "edit": "message.edit",
        "react": "reaction.add", "open": "message.open", "history": "history.fetch", "sync": "auth.resume -> sync.done"}
BURN_EVERY = 3  # one send in 3 burns after reading
BURN_SECONDS = 60
EMOJI = ("👍", "❤️", "😂", "🎉", "😮", "😢", "🙏", "🔥")
RECENT = 20  # own texts to edit, friend's to react to, kept per user
REQUEST_TIMEOUT = 30.0
NS_PER_MS = 1_000_000
TABLET = "tablet"


def parse_mix(text: str) -> dict[str, float]:
    """`send=30,edit=10,...`: weights for the operations named (the others 0); ValueError if wrong."""
    mix = dict.fromkeys(OPERATIONS, 0.0)
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, weight = part.partition("=")
        if not sep or name not in mix:
            raise ValueError(f"--mix: {part!r} is not op=weight with op one of {', '.join(OPERATIONS)}")
        try:
            mix[name] = float(weight)
        except ValueError:
            raise ValueError(f"--mix: {weight!r} is not a number") from None
        if mix[name] < 0:
            raise ValueError(f"--mix: {name}'s weight is negative")
    if mix["send"] <= 0:
        raise ValueError("--mix: send must have a weight (the other operations act on what is sent)")
    return mix


def choose(rng: random.Random, mix: dict[str, float], possible: set[str]) -> str:
    """An operation drawn by weight among the possible ones (`send` always is)."""
    names = [op for op in OPERATIONS if mix.get(op, 0) > 0 and (op in possible or op == "send")]
    return rng.choices(names, weights=[mix[op] for op in names])[0]


def quantiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p99": None, "max": None, "n": 0}
    v = sorted(values)
    at = {q: round(v[min(len(v) - 1, int(f * len(v)))], 1) for q, f in (("p50", .5), ("p99", .99))}
    return {**at, "max": round(v[-1], 1), "n": len(v)}


@dataclass
class OpTally:
    """Latencies (ms) and errors per operation, of those started in the measured window."""

    start_ns: int = 0
    end_ns: int = 1 << 62
    latencies_ms: dict[str, list[float]] = field(default_factory=lambda: {op: [] for op in OPERATIONS})
    errors: dict[str, dict[str, int]] = field(default_factory=lambda: {op: {} for op in OPERATIONS})
    done = 0  # every operation answered, warm-up included (progress)

    def in_window(self, ns: int) -> bool:
        return self.start_ns <= ns < self.end_ns

    def record(self, op: str, started_ns: int, ended_ns: int, error: str | None = None) -> None:
        self.done += 1
        if not self.in_window(started_ns):
            return
        if error is not None:
            self.errors[op][error] = self.errors[op].get(error, 0) + 1
        else:
            self.latencies_ms[op].append((ended_ns - started_ns) / NS_PER_MS)

    def summary(self) -> dict[str, dict[str, Any]]:
        return {op: {**quantiles(self.latencies_ms[op]), "errors": dict(self.errors[op])} for op in OPERATIONS}

    def measured(self) -> int:
        return sum(len(v) + sum(self.errors[op].values()) for op, v in self.latencies_ms.items())


@dataclass
class Conversation:
    conversation_id: str | None = None
    last_seq: int = 0


@dataclass
class User:
    """One user's socket, their second device, and what they have to act on."""

    client: BenchClient
    friend: "User | None"
    conversation: Conversation
    tablet: ParleyClient
    mine: deque[str] = field(default_factory=lambda: deque(maxlen=RECENT))  # own texts (editable)
    theirs: deque[str] = field(default_factory=lambda: deque(maxlen=RECENT))  # friend's texts (to react to)
    sealed: deque[str] = field(default_factory=deque)  # friend's burn-after-reading, not opened
    reacted: dict[str, set[str]] = field(default_factory=dict)  # message_id -> emoji put on it
    sends = 0

    def possible(self) -> set[str]:
        out = {"send", "sync"}
        if self.conversation.conversation_id is not None:
            out |= {"ack", "read", "history"}
        if self.mine:
            out.add("edit")
        if self.theirs:
            out.add("react")
        if self.sealed:
            out.add("open")
        return out

    def react_target(self, rng: random.Random) -> tuple[str, str] | None:
        """A friend's recent text and an emoji this user has not put on it yet."""
        for message_id in rng.sample(list(self.theirs), len(self.theirs)):
            free = [e for e in EMOJI if e not in self.reacted.get(message_id, set())]
            if free:
                return message_id, rng.choice(free)
        return None


def request_for(op: str, user: User, rng: random.Random) -> tuple[str, dict[str, Any]] | None:
    """The frame (type, data) that does `op` for `user` now; None when there is nothing to do it on."""
    conversation = user.conversation
    if op == "send":
        assert user.friend is not None
        data: dict[str, Any] = {"to": {"user_id": user.friend.client.user_id}, "client_msg_id": secrets.token_hex(8),
                                "text": f"ops bench {user.sends} " + "x" * rng.randint(10, 100)}
        if user.sends % BURN_EVERY == BURN_EVERY - 1:
            data["burn_seconds"] = BURN_SECONDS
        return "message.send", data
    if op in ("ack", "read") and conversation.conversation_id is not None and conversation.last_seq:
        return f"message.{op}", {"conversation_id": conversation.conversation_id, "seq": conversation.last_seq}
    if op == "history" and conversation.conversation_id is not None:
        page: dict[str, Any] = {"conversation_id": conversation.conversation_id, "limit": 50}
        if conversation.last_seq > 1:
            page["before_seq"] = rng.randint(2, conversation.last_seq + 1)
        return "history.fetch", page
    if op == "edit" and user.mine:
        return "message.edit", {"message_id": rng.choice(list(user.mine)), "text": f"edited {secrets.token_hex(4)}"}
    if op == "react" and (target := user.react_target(rng)) is not None:
        return "reaction.add", {"message_id": target[0], "emoji": target[1]}
    if op == "open" and user.sealed:
        return "message.open", {"message_id": user.sealed.popleft()}
    return None


def after_send(user: User, data: dict[str, Any], reply: dict[str, Any]) -> None:
    """What a stored message gives both users to act on."""
    assert user.friend is not None
    user.sends += 1
    user.conversation.conversation_id = reply["conversation_id"]
    user.conversation.last_seq = max(user.conversation.last_seq, int(reply["seq"]))
    if "burn_seconds" in data:
        user.friend.sealed.append(reply["message_id"])
    else:
        user.mine.append(reply["message_id"])
        user.friend.theirs.append(reply["message_id"])


class OpRefused(Exception):
    """A reply that was not ok (its code)."""


async def sync_tablet(user: User) -> tuple[int, int]:
    """The user's tablet reconnects: (auth.resume sent, sync.done) in perf_counter ns. Then it
    acknowledges what it holds and goes away again (not timed)."""
    tablet = user.tablet
    await tablet.connect()
    try:
        started = time.perf_counter_ns()
        reply = await tablet.request("auth.resume", {"token": user.client.session.token or "", "device_id": TABLET},
                                     REQUEST_TIMEOUT)
        if not reply["ok"]:
            raise OpRefused(reply.get("error", {}).get("code", "error"))
        await tablet.wait_synced(REQUEST_TIMEOUT)
        ended = time.perf_counter_ns()
        await tablet.ack()
        return started, ended
    finally:
        await tablet.close()


async def one_op(op: str, user: User, rng: random.Random, tally: OpTally) -> None:
    if op == "sync":
        try:
            started, ended = await sync_tablet(user)
        except OpRefused as exc:
            tally.record(op, time.perf_counter_ns(), time.perf_counter_ns(), str(exc))
        except Exception as exc:
            tally.record(op, time.perf_counter_ns(), time.perf_counter_ns(), type(exc).__name__)
        else:
            tally.record(op, started, ended)
        return
    frame = request_for(op, user, rng)
    if frame is None:
        return
    kind, data = frame
    started = time.perf_counter_ns()
    try:
        reply = await user.client.request(kind, data, REQUEST_TIMEOUT)
    except Exception as exc:  # timeout, socket gone
        tally.record(op, started, time.perf_counter_ns(), type(exc).__name__)
        return
    ended = time.perf_counter_ns()
    if not reply["ok"]:
        tally.record(op, started, ended, reply.get("error", {}).get("code", "error"))
        return
    tally.record(op, started, ended)
    if op == "send":
        after_send(user, data, reply.get("data") or {})
    elif op == "react":
        user.reacted.setdefault(data["message_id"], set()).add(data["emoji"])


async def user_loop(user: User, mix: dict[str, float], mean_pause: float, rng: random.Random, tally: OpTally,
                    stop: asyncio.Event) -> None:
    await asyncio.sleep(rng.uniform(0, mean_pause))  # not all at once
    while not stop.is_set():
        await one_op(choose(rng, mix, user.possible()), user, rng, tally)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), rng.expovariate(1 / mean_pause))


async def setup_users(ws_url: str, pairs: int) -> list[User]:
    clients = await setup_pairs(ws_url, pairs, 0)
    users: list[User] = []
    for a in range(0, len(clients), 2):
        conversation = Conversation()
        first, second = (User(c, None, conversation, ParleyClient(ws_url, device_id=TABLET, request_timeout=REQUEST_TIMEOUT,
                                                                  keep_pushes=False, ping_interval=None, open_timeout=60))
                         for c in clients[a:a + 2])
        first.friend, second.friend = second, first
        users += [first, second]
    # Each tablet's first sync (a new device: all there is) is not the reconnect measured.
    await gather_limited(len(users), 8, lambda i: sync_tablet(users[i]))
    return users


async def ops_run(ws_url: str, procs: dict[str, psutil.Process], pairs: int, rate: float, seconds: float,
                  warmup: float, mix: dict[str, float], seed: int = 26) -> dict[str, Any]:
    users = await setup_users(ws_url, pairs)
    try:
        return await measure_ops(users, procs, rate, seconds, warmup, mix, seed)
    finally:
        await close_all([u.client for u in users])
        await asyncio.gather(*(u.tablet.close() for u in users), return_exceptions=True)


async def measure_ops(users: list[User], procs: dict[str, psutil.Process], rate: float, seconds: float,
                      warmup: float, mix: dict[str, float], seed: int) -> dict[str, Any]:
    tally, stop = OpTally(), asyncio.Event()
    mean_pause = len(users) / rate
    print(f"ops: {len(users)} users, {rate:g} operations/s in all (a pause of {mean_pause:.2f} s on average after "
          f"each), {warmup:g} s warm-up + {seconds:g} s measured; mix "
          + ", ".join(f"{op} {w:g}" for op, w in mix.items() if w), flush=True)
    t0 = time.perf_counter_ns()
    tally.start_ns, tally.end_ns = t0 + int(warmup * 1e9), t0 + int((warmup + seconds) * 1e9)
    loops = [asyncio.create_task(user_loop(u, mix, mean_pause, random.Random(seed * 1000 + i), tally, stop))
             for i, u in enumerate(users)]

    async def progress() -> None:
        last = 0
        while True:
            await asyncio.sleep(2)
            now = time.perf_counter_ns()
            phase = "warm-up" if now < tally.start_ns else "measure" if now < tally.end_ns else "finish"
            print(f"[{phase:<8}] {(now - t0) / 1e9:5.1f} s  operations {tally.done:6d} (+{(tally.done - last) / 2:.1f}/s)",
                  flush=True)
            last = tally.done

    ticker = asyncio.create_task(progress())
    try:
        await asyncio.sleep(max(0.0, (tally.start_ns - time.perf_counter_ns()) / 1e9))
        cpu_start, load_start = cpu_seconds(procs), os.getloadavg()
        await asyncio.sleep(max(0.0, (tally.end_ns - time.perf_counter_ns()) / 1e9))
        cpu_end, load_end = cpu_seconds(procs), os.getloadavg()
        stop.set()
        await asyncio.wait(loops, timeout=REQUEST_TIMEOUT + 5)
    finally:
        ticker.cancel()
        for t in loops:
            t.cancel()
    measured = tally.measured()
    return {
        "users": len(users), "rate": rate, "seconds": seconds, "warmup": warmup, "mix": mix,
        "operations": tally.summary(), "measured": measured, "per_second": round(measured / seconds, 1),
        "cpu": cpu_figures(cpu_start, cpu_end, seconds, measured),
        "loadavg_start": [round(x, 2) for x in load_start], "loadavg_end": [round(x, 2) for x in load_end],
        "cpus": os.cpu_count(),
    }


def ops_table(r: dict[str, Any], ceiling_ms: float = 50.0) -> str:
    """Per operation: p50 / p99 / max (ms), count, errors; the CPU per operation per process."""
    lines = [
        f"ops: {r['users']} users, {r['per_second']:g} operations/s answered (offered {r['rate']:g}), {r['seconds']:g} s "
        f"measured after {r['warmup']:g} s warm-up; load average {r['loadavg_start'][0]} -> {r['loadavg_end'][0]} "
        f"on {r['cpus']} CPUs",
        f"  {'operation':<10}{'frame':<26}{'p50 ms':>8}{'p99 ms':>8}{'max ms':>9}{'count':>7}  errors",
    ]
    for op, f in r["operations"].items():
        if not f["n"] and not f["errors"]:
            continue
        shown = [("-" if f[q] is None else f"{f[q]:.1f}") for q in ("p50", "p99", "max")]
        over = f"  p99 over {ceiling_ms:g} ms" if f["p99"] is not None and f["p99"] > ceiling_ms else ""
        errors = ", ".join(f"{k} {v}" for k, v in f["errors"].items()) or "0"
        lines.append(f"  {op:<10}{KIND[op]:<26}{shown[0]:>8}{shown[1]:>8}{shown[2]:>9}{f['n']:>7}  {errors}{over}")
    lines.append(f"  {'process':<14}{'CPU %':>8}{'CPU-ms/op':>11}   (an operation of the mix)")
    for label, c in r["cpu"].items():
        per = "-" if c["cpu_ms_per_message"] is None else f"{c['cpu_ms_per_message']:.2f}"
        lines.append(f"  {label:<14}{c['cpu_percent']:>8.1f}{per:>11}")
    return "\n".join(lines)


def slow_operations(r: dict[str, Any], ceiling_ms: float = 50.0) -> list[str]:
    """The operations whose p99 is above the ceiling."""
    return [op for op, f in r["operations"].items() if f["p99"] is not None and f["p99"] > ceiling_ms]
