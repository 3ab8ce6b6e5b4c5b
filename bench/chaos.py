"""`make chaos`: the fault suite, longer than in `make test`. Each fault on a stack of its own
(tests/support/chaos.py: 2 gateways, 2 chat replicas, its own Redis and on-disk MongoDB-wire
server, the machine's RabbitMQ), under a heavier load, each fault repeated; a table per fault:
lost, stored twice, gaps, undelivered, errors by code, sockets closed by code, recovery seconds.

    python -m bench.chaos                         # every fault
    python -m bench.chaos --only gateway,chat --repeat 3 --pairs 20 --rate 60 --json out.json

Exit status 1 when any scenario broke a promise (see Report.problems and BOUNDS).
"""
import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

from bench.stack import run_interruptibly
from tests.support.chaos import (
    BOUNDS, ChaosStack, LoadConfig, RabbitUnavailable, Report, mongo_restart, rabbit_outage, rabbitmqctl,
    redis_restart, repeated, replica_kills, run_scenario,
)

ROOT = Path(__file__).resolve().parent.parent
LOG_DIR = ROOT / ".run" / "chaos"
SCENARIOS = ("rabbitmq", "redis", "mongo", "gateway", "chat")


def faults(repeat: int, broker_seconds: float):
    return {
        # The broker is shared by everyone on this machine: stopped twice at most.
        "rabbitmq": repeated(rabbit_outage(broker_seconds), min(repeat, 2), between=20.0),
        "redis": repeated(redis_restart(3.0), repeat, between=12.0),
        "mongo": repeated(mongo_restart(3.0), repeat, between=15.0),
        "gateway": replica_kills("gateway", times=repeat, down=2.0, between=10.0),
        "chat": replica_kills("chat", times=repeat, down=2.0, between=10.0),
    }


def log(line: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {line}", flush=True)


def table(reports: list[Report]) -> str:
    head = ("fault", "acked", "lost", "twice", "gaps", "undeliv.", "miss.sync", "given up", "send errors by code",
            "closed by code", "revoked", "recovery s (first ok / every user / normal) per repetition", "normal = p99 under", "verdict")
    rows = []
    for r in reports:
        problems = r.problems(BOUNDS[r.name])
        rows.append((
            r.name, r.acknowledged, len(r.lost), len(r.duplicated), len(r.gaps), len(r.undelivered),
            len(r.missing_after_sync), r.given_up,
            ", ".join(f"{k} {v}" for k, v in sorted(r.errors.items())) or "-",
            ", ".join(f"{k}×{v}" for k, v in sorted(r.closed.items())) or "-",
            "refused" if all(x == "unauthorized" for x in r.revoked) else "/".join(r.revoked),
            "; ".join(f"{e['recovery']['first_ok']}/{e['recovery']['all_ok']}/{e['recovery']['normal']}"
                      for e in r.episodes),
            f"{r.normal_threshold:.2f} s",
            "pass" if not problems else "FAIL",
        ))
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> bool:
    chosen = [s.strip() for s in args.only.split(",")] if args.only else list(SCENARIOS)
    config = LoadConfig(pairs=args.pairs, group_size=args.group, rate=args.rate, retry_budget=45.0, max_attempts=60)
    all_faults = faults(args.repeat, args.broker_seconds)
    reports: list[Report] = []
    skipped: dict[str, str] = {}
    log(f"chaos: {', '.join(chosen)}; {args.pairs * 2} users, {args.rate} msg/s, each fault x{args.repeat}; "
        f"logs in {LOG_DIR}")
    for name in chosen:
        if name == "rabbitmq":
            try:
                await asyncio.to_thread(rabbitmqctl, "status", timeout=30)
            except (RabbitUnavailable, OSError) as exc:
                skipped[name] = str(exc)
                log(f"SKIPPED rabbitmq: {exc}")
                continue
        stack = ChaosStack(LOG_DIR / f"{name}.log")
        try:
            log(f"[{name}] starting a stack of its own ...")
            await asyncio.to_thread(stack.start)
            report = await run_scenario(stack, name, all_faults[name], config, warmup=args.warmup,
                                        after=args.after, settle=30.0, log=log)
            reports.append(report)
            for ep in report.episodes:  # second after the reference: attempts/not ok/p99 ms
                log(f"[{name}] {ep['label']} timeline (s: sends/failed/p99 ms): " + " ".join(
                    f"{w}:{n}/{bad}/{p99}" for w, n, bad, p99 in ep["recovery"].get("timeline", [])))
            for problem in report.problems(BOUNDS[name]):
                log(f"[{name}] PROBLEM: {problem}")
        except Exception as exc:  # noqa: BLE001 - one broken scenario does not hide the others
            log(f"[{name}] scenario crashed: {exc!r} (log: {stack.log_path})")
            skipped[name] = f"crashed: {exc!r}"
        finally:
            await stack.astop()
    print()
    print(table(reports))
    for name, why in skipped.items():
        print(f"\n{name}: not measured: {why}")
    print("\nbounds (s):", json.dumps({k: BOUNDS[k] for k in chosen}))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({
            "config": vars(args), "bounds": BOUNDS, "skipped": skipped,
            "reports": [{**r.__dict__, "problems": r.problems(BOUNDS[r.name])} for r in reports],
        }, indent=1, default=str))
        print(f"wrote {args.json}")
    return not skipped and all(not r.problems(BOUNDS[r.name]) for r in reports)


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="", help=f"comma-separated subset of {','.join(SCENARIOS)}")
    parser.add_argument("--pairs", type=int, default=20, help="pairs of friends (users = 2x)")
    parser.add_argument("--group", type=int, default=6, help="members of the one group")
    parser.add_argument("--rate", type=float, default=40.0, help="messages a second, all senders together")
    parser.add_argument("--repeat", type=int, default=3, help="times each fault is injected")
    parser.add_argument("--broker-seconds", type=float, default=15.0, help="how long RabbitMQ stays stopped")
    parser.add_argument("--warmup", type=float, default=8.0)
    parser.add_argument("--after", type=float, default=20.0, help="seconds of load after the last fault")
    parser.add_argument("--json", default=str(LOG_DIR / "chaos.json"))
    ok = run_interruptibly(lambda: main(parser.parse_args()))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    cli()
