"""parley-bench: chat throughput, latency, loss, offline sync and idle-socket memory, with ceilings.

Users connect over real WebSockets, register and log in over the gateway; half of them chat in
pairs of friends, half in groups of --group-size. Each sends at its share of --rate (paced, open
loop) for --seconds, texts carrying their send time (perf_counter: every client is in this one
process) and a unique client_msg_id. Recipients record `message.new`; after up to 5 s for
stragglers the run counts lost deliveries (an ok send not received by a recipient) and
duplicates (the same conversation_id+seq twice on one socket), both of which must be 0.

Then: --sync-messages (default 10,000) wait for one offline device, which binds; the time from
its login reply to `sync.done`. --idle (default 5,000) bare sockets, one ping each: the gateway's
RSS growth per connection. Ceilings in the same run: a bare aio-pika publish (confirmed) and
consume round trip through the same RabbitMQ, and a bare uvicorn WebSocket echo
(bench/echo_app.py), closed loop with as many workers as there are senders and messages the size
of the chat run's `message.send` frame; every chat figure is also printed as a ratio to them.

    parley-bench [--users 20 --rate 200 --seconds 10 --group-size 4 --json out.json]
        starts a stack of its own (as bench/upload_memory.py does) with the send rate limit lifted
    parley-bench --url http://127.0.0.1:8000
        uses a running stack (`make run`); its processes are found by command line on this
        machine; its send rate limit (default 20/s, burst 50, per user) applies
    parley-bench --sweep 100,200,500,1000 [--seconds 5 --plot bench-sweep.png --json out.json]
        the chat load once per offered rate (instead of --rate), same stack and users, to see where
        latency turns (bench/sweep.py); a row per rate and a PNG of latency percentiles and
        deliveries/s against offered load (default ./bench-sweep.png). It stops early after an
        overloaded step (deliveries/s < 70 % of offered x fan-out, or p99 > 2 s). Offline sync,
        idle sockets and ceilings are skipped unless asked: --sync-messages N, --idle N, --ceilings.
    parley-bench --profile prof/ [--rate 200 --sync-messages 0 --idle 0]
        py-spy profiles of chat, the gateway and the database during the measured step
        (bench/profile.py): collapsed stacks and the top functions per process.

Issue 12's workloads (any of --pairs, --burst, --decay replaces the paced chat load above, and
turns offline sync, idle sockets and ceilings off unless asked for):
    parley-bench --pairs 100 --window 10 --ack-every 0.5 --seconds 20 [--one-way] [--encrypted]
        N pairs of friends each keeping W messages outstanding to the other, receivers acking
        every 0.5 s; delivered msg/s, latency, lost/duplicated, CPU % and CPU-ms per delivered
        message per process (bench/pairs.py). --window 1 is the closed loop.
    parley-bench --prefill 100000 [--store DIR]
        first fill the stack's database with N messages by insert_many (bench/prefill.py, about
        2,000-3,000 messages/s on the embedded server); with --store DIR the embedded server
        keeps its data in DIR, and a later run with the same DIR fills only what is missing.
    parley-bench --burst 2000
        one device sends N back to back (64 in flight) to an offline friend, who then logs in
        (bench/burst.py). --sync-messages 10000: the offline sync, login reply -> sync.done.
    parley-bench --ops 20 --ops-rate 40 --seconds 30 --prefill 100000 --store DIR
        issue 26: N pairs of users doing a mix of send, ack, read, edit, react, open (burn after
        reading), history page and sync (a second device reconnecting) at a moderate total rate;
        p50/p99/max per operation from request to reply, CPU-ms per operation per process
        (bench/ops.py). Fails when an operation's p99 is over --ops-ceiling-ms (default 50).
    parley-bench --decay 0,100000,1000000 --pairs 100 --window 10 [--store DIR]
        the pairs run per stored-message level, a stack each, as a table (bench/decay.py).
    parley-bench --peer ejabberd --pairs 100 --window 10 --seconds 20 --prefill 100000 --private-infra
        then the same pairs and a 2,000-message offline sync (--burst) on Debian's ejabberd, routing
        only and with mod_mam on PostgreSQL (bench/peer_ejabberd.py), and one table of the three.
    --private-infra: a RabbitMQ node and a Redis of the run's own (bench/infra.py), not the machine's
    shared ones (the test suite's fault tests stop those); --stack-log FILE keeps the stack's log.
"""
import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import orjson
import psutil

from bench.burst import burst_run, burst_table
from bench.ceilings import amqp_ceiling, echo_ceiling
from bench.decay import decay_run, decay_table, parse_levels
from bench.idle import idle_connections, raise_nofile
from bench.infra import private_infra
from bench.load import chat_run, offline_sync
from bench.ops import ops_run, ops_table, parse_mix, slow_operations
from bench.pairs import pairs_run, pairs_table
from bench.peer_ejabberd import ejabberd_peer, ensure_installed, side_by_side, summary
from bench.prefill import prefill
from bench.stack import BENCH_ENV, infrastructure_processes, own_stack, run_interruptibly, running_processes
from bench.sweep import parse_rates, plot_sweep, run_sweep, sweep_table, sweep_title
from shared.settings import Settings


def frame_bytes(size: int) -> int:
    """Bytes of a message.send frame carrying a `size`-char text, as the clients send it."""
    frame = {"type": "message.send", "id": "r123", "data": {"to": {"user_id": "u" * 24},
                                                            "client_msg_id": "0" * 16, "text": "x" * size}}
    return len(orjson.dumps(frame))


def ratio(value: float | None, ceiling: float | None) -> str:
    if value is None or not ceiling:
        return "-"
    return f"{value / ceiling:.2f}"


def table(result: dict[str, Any]) -> str:
    chat = result.get("chat") or {}
    amqp = result.get("ceilings", {}).get("amqp") or {}
    echo = result.get("ceilings", {}).get("echo") or {}
    lines = [f"{'figure':<46}{'value':>12}  {'/amqp':>8}  {'/echo':>8}   (ratio = figure / ceiling)"]

    def row(name: str, value: Any, a: Any = None, e: Any = None, unit: str = "") -> None:
        shown = "-" if value is None else f"{value:,.2f}" if isinstance(value, float) else f"{value:,}"
        lines.append(f"{name:<46}{shown + unit:>12}  {ratio(value, a):>8}  {ratio(value, e):>8}")

    if amqp or echo:
        c = amqp or echo
        lines.append(f"(ceilings: closed loop, {c['concurrency']} workers with one message in flight each, "
                     f"{c['message_bytes']}-byte messages)")
    if chat:
        lat, rep = chat["latency_ms"], chat["reply_latency_ms"]
        al, el = amqp.get("latency_ms", {}), echo.get("latency_ms", {})
        row("deliveries/s (message.new received)", chat["delivered_per_second"], amqp.get("messages_per_second"), echo.get("messages_per_second"))
        row("sends/s (offered)", chat["sent_per_second"])
        lines.append(f"{'deliveries received / expected':<46}{chat['delivered']:>12,} / {chat['deliveries_expected']:,}")
        for q in ("p50", "p95", "p99", "max"):
            row(f"end-to-end latency {q} (ms)", lat[q], al.get(q), el.get(q))
        for q in ("p50", "p95", "p99", "max"):
            row(f"sender reply latency {q} (ms)", rep[q], al.get(q), el.get(q))
        row("lost deliveries (must be 0)", chat["lost"])
        row("duplicated deliveries (must be 0)", chat["duplicated"])
        row("send errors", sum(chat["send_errors"].values()))
        if (acks := chat.get("acks") or {}).get("every_seconds"):
            row(f"acks sent (every {acks['every_seconds']:g} s per client)", acks["sent"])
            row("ack errors", acks["errors"])
        for label, figures in chat["processes"].items():
            lines.append(f"{'  ' + label + ' cpu% / rss MiB (peak)':<46}{figures['cpu_percent']:>11.1f}%  "
                         f"{figures['rss_mib']:.1f} ({figures['rss_peak_mib']:.1f})")
    for name, ceiling in (("amqp publish+consume", amqp), ("uvicorn ws echo", echo)):
        if ceiling:
            row(f"ceiling {name} round trips/s", ceiling["messages_per_second"])
            for q in ("p50", "p99"):
                row(f"ceiling {name} {q} (ms)", ceiling["latency_ms"][q])
    sync = result.get("offline_sync")
    if sync:
        row(f"offline sync of {sync['messages']:,}: login reply->sync.done s", sync["bind_to_sync_done_seconds"])
        row("offline sync: login sent->sync.done s", sync["login_sent_to_sync_done_seconds"])
        row("offline sync messages received", sync["received_unique"])
        row("offline sync duplicates", sync["duplicated"])
        row("offline fill: messages stored/s (4 senders)", sync["fill_per_second"])
        row("offline sync.done count", sync["sync_done_count"])
    idle = result.get("idle")
    if idle and not idle.get("skipped"):
        row(f"gateway KiB per idle socket ({idle['connections']:,})", idle["kib_per_connection"])
    elif idle:
        lines.append(f"{'idle sockets':<46}{'skipped':>12}  ({idle['skipped']})")
    return "\n".join(lines)


async def measure(args: argparse.Namespace, base: str, procs: dict[str, Any], mongo: tuple[str, str],
                  metrics: dict[str, str] | None = None) -> dict[str, Any]:
    ws_url = base.replace("http://", "ws://").replace("https://", "wss://").rstrip("/") + "/ws"
    result: dict[str, Any] = {"gateway": base, "options": vars(args), "cpus": os.cpu_count()}
    # This process too: every client runs in it, on the same cores as the stack.
    procs = {**procs, **infrastructure_processes(), "bench-clients": psutil.Process()}
    if args.prefill:
        result["prefill"] = await prefill(*mongo, args.prefill, Path(args.store) if args.store else None)
    chats: list[dict[str, Any]] = []
    if args.ops:
        result["ops"] = await ops_run(ws_url, procs, args.ops, args.ops_rate, args.seconds, args.warmup, args.mix)
    elif args.pairs:
        result["pairs"] = await pairs_run(ws_url, procs, args.pairs, args.window, args.seconds, args.warmup,
                                          args.ack_every, args.size, args.one_way, args.profile, metrics,
                                          encrypted=args.encrypted)
    elif args.sweep:
        sweep = await run_sweep(ws_url, procs, args.sweep, args.users, args.seconds, args.group_size, args.size,
                                args.warmup, args.ack_every)
        result.update(sweep=sweep["steps"], sweep_rule=sweep["rule"], sweep_stopped=sweep["stopped"],
                      sweep_warmup=sweep["warmup"])
        chats = sweep["steps"]
    elif not args.burst and not args.ops:
        result["chat"] = await chat_run(ws_url, procs, args.users, args.rate, args.seconds, args.group_size, args.size,
                                        args.warmup, args.profile, args.ack_every)
        chats = [result["chat"]]
    if args.burst:
        result["burst"] = await burst_run(ws_url, args.burst, args.size)
    if args.ceilings:
        concurrency = chats[0]["senders"] if chats else result["pairs"]["senders"] if args.pairs else 64
        size = frame_bytes(args.size)
        seconds = args.ceiling_seconds or min(args.seconds, 5)
        print(f"ceilings: {concurrency} workers, {size}-byte messages, {seconds:.0f} s each", flush=True)
        result["ceilings"] = {
            "amqp": await amqp_ceiling(Settings().amqp_url, concurrency, seconds, size),
            "echo": await echo_ceiling(concurrency, seconds, size),
        }
    if args.sync_messages:
        result["offline_sync"] = await offline_sync(ws_url, args.sync_messages, args.size)
    if args.idle:
        gateways = [p for label, p in procs.items() if label.startswith("gateway")]
        if len(gateways) != 1:
            result["idle"] = {"skipped": f"{len(gateways)} gateway processes found; needs exactly one"}
        else:
            result["idle"] = await idle_connections(ws_url, gateways[0], args.idle)
    return result


async def bench(args: argparse.Namespace) -> bool:
    if args.peer:
        ensure_installed()  # before Parley's run: a missing package fails in seconds, not after it
    if args.private_infra:
        async with private_infra():
            ok, result = await bench_on_infra(args)
    else:
        ok, result = await bench_on_infra(args)
    if args.peer:
        ok = await peer(args, result) and ok
    return ok


async def peer(args: argparse.Namespace, result: dict[str, Any]) -> bool:
    """--peer ejabberd: the same pairs and offline sync on ejabberd (two modes), after Parley's stack
    is down; one table of all three (bench/peer_ejabberd.py)."""
    runs = await ejabberd_peer(args)
    rows = [summary("parley", result.get("pairs"), result.get("burst")),
            *(summary(r["system"], r.get("pairs"), r.get("burst")) for r in runs)]
    print(f"\n{side_by_side(rows)}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({**result, "peer": runs, "side_by_side": rows}, f, indent=2, default=str)
        print(f"JSON written to {args.json}")
    return all(r.get("lost") == 0 and r.get("duplicated") == 0 and r.get("sync_ok", True) for r in rows[1:])


async def bench_on_infra(args: argparse.Namespace) -> tuple[bool, dict[str, Any]]:
    if args.decay:
        return await decay(args), {}
    if args.url:
        procs = running_processes()
        settings = Settings()  # --prefill writes where the running stack's settings say
        result = await measure(args, args.url, procs, (settings.mongo_url, settings.mongo_db))
    else:
        async with own_stack(BENCH_ENV, store=Path(args.store) if args.store else None,
                             keep_log=Path(args.stack_log) if args.stack_log else None) as stack:
            print(f"stack up (namespace {stack.namespace}, logs in {stack.log_path}, "
                  f"database {stack.mongo_db} at {stack.mongo_url})", flush=True)
            result = await measure(args, stack.base, dict(stack.processes), (stack.mongo_url, stack.mongo_db),
                                   stack.metrics)
    for key, shown in (("pairs", pairs_table), ("burst", burst_table), ("ops", ops_table)):
        if key in result:
            print("\n" + shown(result[key]), flush=True)
    if "prefill" in result:
        f = result["prefill"]
        print(f"\nprefill: {f['messages']:,} filled in {f['seconds']} s; the store holds {f['stored']}", flush=True)
    if args.sweep:
        print(f"\n{sweep_table(result['sweep'])}\n{result['sweep_rule']}", flush=True)
        if result["sweep_stopped"]:
            print(f"sweep {result['sweep_stopped']}")
        if set(result) & {"ceilings", "offline_sync", "idle"}:
            print("\n" + table(result), flush=True)
    elif set(result) & {"chat", "ceilings", "offline_sync", "idle"}:
        print("\n" + table(result), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2, default=str)
        print(f"\nJSON written to {args.json}")
    if args.sweep:
        plot_sweep(result["sweep"], args.plot, sweep_title(result["sweep"], result["cpus"]))
        print(f"plot written to {args.plot}")
    chats, sync = result.get("sweep") or ([result["chat"]] if "chat" in result else []), result.get("offline_sync")
    if result.get("sweep_warmup"):
        chats = [*chats, result["sweep_warmup"]]
    if "pairs" in result:
        chats = [*chats, result["pairs"]]
    ok = (all(c["lost"] == 0 and c["duplicated"] == 0 for c in chats) and (sync is None or sync["ok"])
          and result.get("burst", {}).get("ok", True))
    if not ok:
        print("FAILED: lost or duplicated messages, or an incomplete offline sync", file=sys.stderr)
    if "ops" in result and (slow := slow_operations(result["ops"], args.ops_ceiling_ms)):
        print(f"FAILED: p99 over {args.ops_ceiling_ms:g} ms: {', '.join(slow)}", file=sys.stderr)
        ok = False
    return ok, result


async def decay(args: argparse.Namespace) -> bool:
    def show(rows: list[dict[str, Any]]) -> None:  # after every level: a long run keeps what it measured
        print(f"\n{pairs_table(rows[-1]['run'])}\n\n{decay_table(rows)}", flush=True)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"options": vars(args), "cpus": os.cpu_count(), "decay": rows}, f, indent=2, default=str)
            print(f"JSON written to {args.json}", flush=True)

    rows = await decay_run(args, args.decay, show)
    return all(r["run"]["lost"] == 0 and r["run"]["duplicated"] == 0 for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(prog="parley-bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running gateway (make run) instead of a stack of our own")
    parser.add_argument("--users", type=int, default=20, help="connected users (default 20)")
    parser.add_argument("--rate", type=float, default=200, help="total messages/s offered (default 200)")
    parser.add_argument("--seconds", type=float, default=10, help="sending time (default 10)")
    parser.add_argument("--warmup", type=float, default=3,
                        help="seconds sent at the (first) rate before measuring, not in the latencies; 0 skips (default 3)")
    parser.add_argument("--group-size", type=int, default=4, help="members per group (default 4)")
    parser.add_argument("--size", type=int, default=100, help="characters per text (default 100)")
    parser.add_argument("--sync-messages", type=int, help="offline sync size; 0 skips (default 10000, with --sweep 0)")
    parser.add_argument("--idle", type=int, help="idle sockets; 0 skips (default 5000, with --sweep 0)")
    parser.add_argument("--ceiling-seconds", type=float, default=0, help="per ceiling (default min(--seconds, 5))")
    parser.add_argument("--ceilings", action=argparse.BooleanOptionalAction,
                        help="the aio-pika and echo ceilings (default on, with --sweep off)")
    parser.add_argument("--sweep", metavar="RATES", help="comma-separated offered rates (msg/s), one chat run each, "
                        "e.g. 100,200,500,1000")
    parser.add_argument("--plot", help="with --sweep: the PNG to write (default bench-sweep.png)")
    parser.add_argument("--ack-every", type=float, metavar="SECONDS",
                        help="clients acknowledge (message.ack) what they received this often, as apps do; 0: never "
                        "(default 0, with --pairs 0.5)")
    parser.add_argument("--pairs", type=int, default=0, help="issue 12's pairs workload with N pairs instead of the "
                        "paced chat load (bench/pairs.py)")
    parser.add_argument("--window", type=int, default=10, help="with --pairs: messages outstanding per sender (default 10)")
    parser.add_argument("--one-way", action="store_true", help="with --pairs: only the first of each pair sends")
    parser.add_argument("--encrypted", action="store_true", help="with --pairs: end-to-end encrypted conversations, "
                        "messages carrying ciphertext stand-ins instead of text (bench/pairs.py)")
    parser.add_argument("--ops", type=int, default=0, metavar="N",
                        help="issue 26's mixed operations with N pairs of users instead of the chat load (bench/ops.py)")
    parser.add_argument("--ops-rate", type=float, default=40, help="with --ops: operations/s over all users (default 40)")
    parser.add_argument("--mix", default="send=30,ack=10,read=10,edit=10,react=10,open=10,history=10,sync=5",
                        help="with --ops: weights per operation (default %(default)s)")
    parser.add_argument("--ops-ceiling-ms", type=float, default=50,
                        help="with --ops: fail when an operation's p99 is above this (default 50)")
    parser.add_argument("--prefill", type=int, default=0, metavar="N",
                        help="first insert N messages straight into the database (bench/prefill.py)")
    parser.add_argument("--store", metavar="DIR", help="the embedded database's data in DIR, kept for later runs")
    parser.add_argument("--burst", type=int, default=0, metavar="N",
                        help="one device sends N messages (64 in flight) to an offline friend, who then logs in")
    parser.add_argument("--decay", metavar="LEVELS", help="the --pairs run on stores holding each number of messages, "
                        "e.g. 0,100000,1000000 (bench/decay.py)")
    parser.add_argument("--peer", choices=["ejabberd"], help="with --pairs: the same pairs and a --burst (default "
                        "2000) offline sync on Debian's ejabberd, routing only and with mod_mam on PostgreSQL, "
                        "then one table of the three (bench/peer_ejabberd.py)")
    parser.add_argument("--private-infra", action="store_true", help="a RabbitMQ node and a Redis of the run's own "
                        "(bench/infra.py): the machine's are shared with the test suite, whose fault tests stop them")
    parser.add_argument("--stack-log", metavar="FILE", help="keep the stack's log (every process's lines) in FILE")
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--profile", metavar="DIR",
                        help="py-spy the chat, gateway and database processes during the measured step (bench/profile.py)")
    args = parser.parse_args()
    if args.users < 2:
        parser.error("--users must be at least 2")
    if args.sweep is not None:
        try:
            args.sweep = parse_rates(args.sweep)
        except ValueError as exc:
            parser.error(str(exc))
    elif args.plot:
        parser.error("--plot goes with --sweep")
    if args.decay is not None:
        try:
            args.decay = parse_levels(args.decay)
        except ValueError as exc:
            parser.error(str(exc))
        if args.url or not args.pairs:
            parser.error("--decay needs --pairs, and a stack of its own (no --url)")
    if args.url and (args.private_infra or args.stack_log):
        parser.error("--private-infra and --stack-log are for a stack of our own (no --url)")
    if args.store and args.url:
        parser.error("--store is the data of a stack of our own; with --url the running stack's database is used")
    try:
        args.mix = parse_mix(args.mix)
    except ValueError as exc:
        parser.error(str(exc))
    if args.ops < 0 or args.ops_rate <= 0:
        parser.error("--ops must be >= 0 and --ops-rate > 0")
    if args.ops and (args.pairs or args.sweep or args.burst or args.decay):
        parser.error("--ops replaces the chat load: not with --pairs, --sweep, --burst or --decay")
    if args.pairs < 0 or args.window < 1:
        parser.error("--pairs must be >= 0 and --window >= 1")
    if args.peer and (not args.pairs or args.decay or args.url):
        parser.error("--peer needs --pairs, and a stack of our own (no --url, no --decay)")
    if args.peer and not args.burst:
        args.burst = 2000
    issue12 = bool(args.pairs or args.burst or args.decay or args.ops)
    args.ack_every = (0.5 if args.pairs else 0.0) if args.ack_every is None else args.ack_every
    # A sweep, or issue 12's workloads, measure their load alone unless told otherwise.
    full = not args.sweep and not issue12
    args.sync_messages = (10_000 if full else 0) if args.sync_messages is None else args.sync_messages
    args.idle = (5_000 if full else 0) if args.idle is None else args.idle
    args.ceilings = full if args.ceilings is None else args.ceilings
    args.plot = args.plot or ("bench-sweep.png" if args.sweep else None)
    soft, hard = raise_nofile()
    print(f"RLIMIT_NOFILE {soft} (hard {hard})", flush=True)
    raise SystemExit(0 if run_interruptibly(lambda: bench(args)) else 1)


if __name__ == "__main__":
    main()
