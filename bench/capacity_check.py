"""`python -m bench.capacity --check`: one measured run, set against the capacity model.

A stack of the bench's own (bench/stack.py) with --gateways and --chats replicas, then three
windows, each process's CPU read at their edges (bench/pairs.py's cpu_seconds):
1. idle: no client connected (each replica's own upkeep);
2. --idle-sockets users registered, logged in and left idle, spread over the gateways (keepalive
   pings, presence refreshes): CPU per bound socket per second, gateway RSS per socket;
3. with those sockets still open, bench/pairs.py's workload (--pairs, --window, acks every 0.5 s),
   pairs split across gateways: CPU-ms per delivered message per process, throughput.
Then the bytes of a stored message (BSON, sampled from the store).

The model predicts each process's CPU % at the measured throughput from the inputs file (idle
share + sockets x per-socket cost + msg/s x CPU-ms per message / replicas) and the throughput at
which the cores left over (by what else ran on the machine) are used up; the error of each is
printed. `--gateways 1 --chats 1 --save-inputs` is the calibration run that writes the
`measured` section of the inputs (docs/scaling.md, "Method").

Engines: the machine's RabbitMQ and Redis (PARLEY_AMQP_URL / PARLEY_REDIS_URL), --private-infra's,
or those named by --amqp-url (comma-separated for a cluster), --redis-url (+ --redis-cluster);
their CPU is read from the processes listening on those ports (every Redis Cluster node's).
"""
import argparse
import asyncio
import datetime
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import bson
import psutil
from pymongo import AsyncMongoClient

from bench.capacity import INPUTS, load_inputs, per_message
from bench.idle import raise_nofile, settled_rss
from bench.infra import private_infra
from bench.load import close_all, connect_user, gather_limited
from bench.pairs import cpu_seconds, machine_busy, measure_pairs, others, setup_pairs
from bench.stack import BENCH_ENV, infrastructure_processes, own_stack, progress_lines, run_interruptibly
from bench.wsclient import BenchClient

MiB = 1024 * 1024
# Registering a thousand idle users should not take minutes of argon2: logins are not what is measured.
CHEAP_PASSWORDS = {"PARLEY_ARGON2_TIME_COST": "1", "PARLEY_ARGON2_MEMORY_KIB": "1024"}


def service_of(label: str) -> str:
    """`gateway2` -> gateway, `mongo` -> database, `rabbitmq3` -> rabbitmq."""
    name = re.sub(r"\d+$", "", label)
    return "database" if name in ("mongo", "mongod") else name


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def listening(port: int) -> psutil.Process | None:
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
            return psutil.Process(conn.pid)
    return None


async def redis_cluster_ports(url: str) -> list[int]:
    from redis.asyncio.cluster import RedisCluster

    cluster = RedisCluster.from_url(url)
    try:
        await cluster.initialize()
        return sorted({int(node.port) for node in cluster.get_nodes()})
    finally:
        await cluster.aclose()


async def engine_processes(args: argparse.Namespace) -> dict[str, psutil.Process]:
    """RabbitMQ and Redis processes: those listening on the named ports, else bench/stack.py's guess."""
    if not (args.amqp_url or args.redis_url):
        return infrastructure_processes()
    out: dict[str, psutil.Process] = {}
    amqp_ports = [urlsplit(u).port or 5672 for u in os.environ["PARLEY_AMQP_URL"].split(",")]
    redis_url = os.environ["PARLEY_REDIS_URL"]
    redis_ports = await redis_cluster_ports(redis_url) if args.redis_cluster else [urlsplit(redis_url).port or 6379]
    for name, ports in (("rabbitmq", amqp_ports), ("redis", redis_ports)):
        found = list({p.pid: p for p in (listening(port) for port in ports) if p is not None}.values())
        if len(found) < len(ports):
            print(f"note: {len(ports) - len(found)} of the {name} ports {ports} have no process readable here; "
                  "their CPU is not counted", flush=True)
        out.update({f"{name}{i + 1}" if len(found) > 1 else name: p for i, p in enumerate(found)})
    return out


async def idle_window(procs: dict[str, psutil.Process], seconds: float, label: str) -> dict[str, Any]:
    """CPU % per process over `seconds` with nothing sent, and the machine's other CPU %."""
    before, busy_before = cpu_seconds(procs), machine_busy()
    t0 = time.perf_counter()
    while (left := seconds - (time.perf_counter() - t0)) > 0:
        await asyncio.sleep(min(5.0, left))
        print(f"[{label:<8}] {time.perf_counter() - t0:5.1f} / {seconds:g} s", flush=True)
    after, busy_after = cpu_seconds(procs), machine_busy()
    cpu = {k: round(100 * (after[k] - before[k]) / seconds, 2) for k in procs}
    machine = 100 * (busy_after["machine"] - busy_before["machine"]) / seconds
    return {"seconds": seconds, "cpu_percent": cpu, "other_cpu_percent": round(machine - sum(cpu.values()), 1),
            "other_top": others(busy_before, busy_after, procs, seconds)}


async def bytes_per_stored_message(mongo_url: str, db: str, sample: int = 2000) -> float | None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    try:
        docs = await client[db]["messages"].find({}).sort("_id", -1).limit(sample).to_list(sample)
    finally:
        await client.close()
    return round(sum(len(bson.encode(d)) for d in docs) / len(docs), 1) if docs else None


def by_service(per_process: dict[str, float]) -> dict[str, float]:
    out: dict[str, float] = {}
    for label, value in per_process.items():
        if value == value and label != "total":  # not NaN
            out[service_of(label)] = out.get(service_of(label), 0.0) + value
    return out


def replicas_of(run: dict[str, Any]) -> dict[str, int]:
    """Processes per service in the run (gateway1..3 -> gateway: 3)."""
    out: dict[str, int] = {}
    for label in run["pairs"]["cpu"]:
        if label != "total":
            out[service_of(label)] = out.get(service_of(label), 0) + 1
    return out


def measured_inputs(run: dict[str, Any]) -> dict[str, Any]:
    """The `measured` section of the inputs file from a run's figures. CPU per message is the
    marginal cost: the load window's CPU less the upkeep the idle windows measured (the replicas'
    own and the open sockets'), over the messages delivered."""
    replicas, sockets, pairs = replicas_of(run), run["idle_sockets"], run["pairs"]
    idle, loaded = by_service(run["idle"]["cpu_percent"]), by_service(run["sockets_idle"]["cpu_percent"])
    busy = by_service({k: v["cpu_percent"] for k, v in pairs["cpu"].items()})
    # CPU % -> CPU-ms per second is x 10.
    per_socket = {k: max(0.0, loaded[k] - idle.get(k, 0.0)) * 10 / sockets for k in loaded}
    open_sockets = sockets + 2 * pairs["pairs"]
    rate = pairs["delivered_per_second"]
    per_msg = {k: max(0.0, v - idle.get(k, 0.0) - per_socket.get(k, 0.0) * open_sockets / 10) * 10 / rate
               for k, v in busy.items()}
    documents = (pairs.get("db") or {}).get("per_process", {}).get("total", {})
    return {
        "source": "python -m bench.capacity --check " + re.sub(r"--inputs \S+ ?", "", " ".join(run["argv"])),
        "measured_at": run["at"], "uptime": run["uptime"],
        "other_cpu_percent": {"idle": run["idle"]["other_cpu_percent"], "pairs": pairs["other_cpu_percent"]},
        "delivered_per_second": rate,
        "cpu_ms_per_message": {k: round(v, 3) for k, v in sorted(per_msg.items())},
        "idle_cpu_ms_per_socket_second": {k: round(v, 5) for k, v in sorted(per_socket.items())},
        "idle_cpu_percent_per_replica": {k: round(v / replicas.get(k, 1), 2) for k, v in sorted(idle.items())},
        "gateway_kib_per_bound_socket": run["gateway_kib_per_bound_socket"],
        "bytes_per_stored_message": run["bytes_per_stored_message"],
        "documents_written_per_message": documents.get("written"),
        "documents_read_per_message": documents.get("read"),
    }


def predict(inputs: dict[str, Any], run: dict[str, Any], replicas: dict[str, int]) -> dict[str, Any]:
    """Each process's CPU % at the measured throughput, and the throughput the free cores allow."""
    m = inputs["measured"]
    costs = per_message(inputs, replicas.get("chat", 1), replicas.get("gateway", 1))["cpu_ms_per_message"]
    sockets = run["idle_sockets"] + 2 * run["pairs"]["pairs"]
    rate = run["pairs"]["delivered_per_second"]

    def fixed_percent(service: str) -> float:  # upkeep: the replica's own and its share of the sockets'
        per_socket = m["idle_cpu_ms_per_socket_second"].get(service, 0.0) * sockets / replicas.get(service, 1) / 10
        return m["idle_cpu_percent_per_replica"].get(service, 0.0) + per_socket

    per_process = {}
    for label in run["pairs"]["cpu"]:
        if label == "total":
            continue
        service = service_of(label)
        per_msg = costs.get(service, 0.0) / replicas.get(service, 1)
        per_process[label] = {"fixed": fixed_percent(service), "per_message_ms": per_msg,
                              "predicted": fixed_percent(service) + rate * per_msg / 10}
    cores = run["cpus"] * 100.0  # CPU % the machine has
    free = cores - run["pairs"]["other_cpu_percent"] - sum(p["fixed"] for p in per_process.values())
    throughput = free * 10 / sum(p["per_message_ms"] for p in per_process.values())
    return {"per_process": per_process, "throughput": throughput, "free_cpu_percent": free}


def comparison(inputs: dict[str, Any], run: dict[str, Any], replicas: dict[str, int]) -> str:
    pred = predict(inputs, run, replicas)
    pairs = run["pairs"]
    measured_rate = pairs["delivered_per_second"]
    lines = [f"{'process':<14}{'measured CPU %':>16}{'model CPU %':>13}{'error':>9}"]
    totals: dict[str, list[float]] = {}
    for label, p in pred["per_process"].items():
        got = pairs["cpu"][label]["cpu_percent"]
        lines.append(f"{label:<14}{got:>16.1f}{p['predicted']:>13.1f}{error(got, p['predicted']):>9}")
        total = totals.setdefault(service_of(label), [0.0, 0.0])
        total[0] += got
        total[1] += p["predicted"]
    lines.append("by service:")
    for service, (got, want) in totals.items():
        lines.append(f"  {service:<12}{got:>16.1f}{want:>13.1f}{error(got, want):>9}")
    lines.append(f"throughput: measured {measured_rate:,.1f} msg/s, model {pred['throughput']:,.1f} msg/s "
                 f"({error(measured_rate, pred['throughput'])}; the model's: {pred['free_cpu_percent']:.0f} % of "
                 f"{run['cpus'] * 100} % CPU left by other work and upkeep, all spent on messages)")
    lines.append(f"machine: {run['uptime']}; CPU of other work during the load {pairs['other_cpu_percent']} %")
    return "\n".join(lines)


def error(measured: float, predicted: float) -> str:
    """The model's error relative to the measurement: + means the model predicted more."""
    return f"{100 * (predicted - measured) / measured:+.0f}%" if measured else "-"


async def open_idle(urls: list[str], count: int) -> list[BenchClient]:
    """`count` users registered and logged in (sync done), spread over the gateways, with progress."""
    print(f"opening {count} idle bound sockets over {len(urls)} gateway(s) ...", flush=True)
    opened = [0]

    async def one(i: int) -> BenchClient:
        client = await connect_user(urls[i % len(urls)], f"idle{i}")
        opened[0] += 1
        return client

    async with progress_lines("opening", 5, lambda: f"open {opened[0]} / {count}"):
        clients: list[BenchClient] = await gather_limited(count, 16, one)
    return clients


async def measured_run(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    env = {**BENCH_ENV, **CHEAP_PASSWORDS, **dict(kv.split("=", 1) for kv in args.env)}
    if args.redis_cluster:
        env["PARLEY_REDIS_CLUSTER"] = "true"
    run: dict[str, Any] = {"argv": argv, "at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                           "gateways": args.gateways, "chats": args.chats, "cpus": os.cpu_count()}
    async with own_stack(env, prefix="cap", gateways=args.gateways, chats=args.chats) as stack:
        print(f"stack up: {args.gateways} gateway(s), {args.chats} chat(s), namespace {stack.namespace}, "
              f"log {stack.log_path}", flush=True)
        procs = {**stack.processes, **await engine_processes(args), "bench-clients": psutil.Process()}
        if "mongo" not in procs and (mongod := listening(urlsplit(stack.mongo_url.split(",")[0]).port or 27017)):
            procs["mongo"] = mongod  # PARLEY_MONGO_URL names a server on this machine: count its CPU
        urls = [b.replace("http://", "ws://") + "/ws" for b in stack.bases]
        gateways = [p for label, p in procs.items() if service_of(label) == "gateway"]
        run["idle"] = await idle_window(procs, args.idle_seconds, "idle")
        rss_before = sum([await settled_rss(g) for g in gateways])
        idle_clients = await open_idle(urls, args.idle_sockets)
        try:
            rss_after = sum([await settled_rss(g) for g in gateways])
            run["idle_sockets"] = len(idle_clients)
            run["gateway_kib_per_bound_socket"] = round((rss_after - rss_before) / len(idle_clients) / 1024, 2)
            run["sockets_idle"] = await idle_window(procs, args.idle_seconds, "sockets")
            clients = await setup_pairs(urls, args.pairs, args.ack_every)
            try:
                run["pairs"] = await measure_pairs(clients, procs, args.window, args.seconds, args.warmup,
                                                   args.ack_every, 100, False, metrics=stack.metrics)
            finally:
                await close_all(clients)
        finally:
            await close_all(idle_clients)
        run["bytes_per_stored_message"] = await bytes_per_stored_message(stack.mongo_url, stack.mongo_db)
    run["uptime"] = uptime()
    return run


async def check(args: argparse.Namespace, argv: list[str]) -> bool:
    if args.amqp_url:
        os.environ["PARLEY_AMQP_URL"] = args.amqp_url
    if args.redis_url:
        os.environ["PARLEY_REDIS_URL"] = args.redis_url
    print(f"before: {uptime()}", flush=True)
    if args.private_infra:
        async with private_infra():
            run = await measured_run(args, argv)
    else:
        run = await measured_run(args, argv)
    if args.json:
        Path(args.json).write_text(json.dumps(run, indent=2, default=str))
        print(f"JSON written to {args.json} (--recompute it against other inputs)")
    return report(args, run)


def report(args: argparse.Namespace, run: dict[str, Any]) -> bool:
    """Print the comparison with the model; with --save-inputs first make this run the inputs."""
    inputs = load_inputs(args.inputs)
    figures = measured_inputs(run)
    print("this run's marginal CPU-ms per message: "
          + ", ".join(f"{k} {v}" for k, v in figures["cpu_ms_per_message"].items()), flush=True)
    if args.save_inputs:
        # One of each: the base figures. Several of one: what spreading over them adds (the model
        # adds the difference, scaled to the replicas it plans).
        chats, gateways = replicas_of(run).get("chat", 1), replicas_of(run).get("gateway", 1)
        if chats > 1 and gateways > 1:
            raise SystemExit("--save-inputs takes runs with several chats or several gateways, not both: "
                             "that layout is the check")
        if chats == gateways == 1:
            inputs["measured"] = figures
            where = "measured"
        else:
            where = "spread.chats" if chats > 1 else "spread.gateways"
            inputs.setdefault("spread", {})[where.split(".")[1]] = {"replicas": max(chats, gateways), **figures}
        args.inputs.write_text(json.dumps(inputs, indent=2) + "\n")
        print(f"measured inputs written to {args.inputs} ({where})", flush=True)
    print("\n" + comparison(inputs, run, replicas_of(run)), flush=True)
    pairs = run["pairs"]
    return bool(pairs["lost"] == 0 and pairs["duplicated"] == 0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.capacity --check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=Path, default=INPUTS, help="the model's inputs (default %(default)s)")
    parser.add_argument("--gateways", type=int, default=3, help="gateway replicas (default 3)")
    parser.add_argument("--chats", type=int, default=3, help="chat replicas (default 3)")
    parser.add_argument("--pairs", type=int, default=100, help="pairs of users chatting (default 100)")
    parser.add_argument("--window", type=int, default=10, help="messages outstanding per sender (default 10)")
    parser.add_argument("--seconds", type=float, default=15, help="measured seconds of the pairs load (default 15)")
    parser.add_argument("--warmup", type=float, default=5, help="warm-up seconds before it (default 5)")
    parser.add_argument("--ack-every", type=float, default=0.5, help="receivers' ack interval (default 0.5 s)")
    parser.add_argument("--idle-sockets", type=int, default=1000, help="idle bound sockets held open (default 1000)")
    parser.add_argument("--idle-seconds", type=float, default=20,
                        help="each idle window; >= 10 covers a presence refresh round (default 20)")
    parser.add_argument("--private-infra", action="store_true", help="a RabbitMQ node and a Redis of the run's own")
    parser.add_argument("--amqp-url", help="RabbitMQ URL(s), comma-separated for a cluster (PARLEY_AMQP_URL)")
    parser.add_argument("--redis-url", help="Redis URL (PARLEY_REDIS_URL); a seed node with --redis-cluster")
    parser.add_argument("--redis-cluster", action="store_true", help="Redis Cluster (PARLEY_REDIS_CLUSTER=true)")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="more settings for the stack, e.g. PARLEY_QUEUE_TYPE=quorum (repeatable)")
    parser.add_argument("--save-inputs", action="store_true", help="write this run's figures as the inputs' `measured`")
    parser.add_argument("--json", help="write every figure of the run to this file")
    parser.add_argument("--recompute", metavar="JSON", help="no run: compare a run --json saved with the inputs")
    argv = list(argv if argv is not None else sys.argv[1:])
    args = parser.parse_args(argv)
    if args.recompute:
        raise SystemExit(0 if report(args, json.loads(Path(args.recompute).read_text())) else 1)
    if args.private_infra and (args.amqp_url or args.redis_url):
        parser.error("--private-infra starts its own engines: not with --amqp-url / --redis-url")
    if any("=" not in kv for kv in args.env):
        parser.error("--env takes KEY=VALUE")
    soft, _ = raise_nofile()
    if soft < args.idle_sockets + 4 * args.pairs + 200:
        parser.error(f"RLIMIT_NOFILE {soft} is too low for {args.idle_sockets} idle sockets: raise ulimit -n")
    raise SystemExit(0 if run_interruptibly(lambda: check(args, argv)) else 1)


if __name__ == "__main__":
    main()
