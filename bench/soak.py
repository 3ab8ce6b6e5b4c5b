"""`make soak`: a long run at moderate load on a stack of its own (tests/support/chaos.py: 2
gateways, 2 chat replicas, its own Redis and on-disk MongoDB-wire server), no faults. Every
`--every` seconds a line: the RSS of each process (psutil) and the send -> delivery p50/p99 of
that window; at the end a JSON and a PNG of both over time, the same checks as the fault suite
(nothing lost, stored twice, gaps, undelivered), and whether RSS grew: the mean of the last
10 minutes against the mean of the 10 minutes after warm-up.

    python -m bench.soak                      # 30 min, 100 users, 30 msg/s
    python -m bench.soak --minutes 5 --users 40 --rate 20 --json out.json --plot out.png
"""
import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

import psutil

from bench.stack import run_interruptibly
from tests.support.chaos import ChaosStack, Load, LoadConfig, Report, check, summary

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / ".run" / "soak"
MiB = 1024 * 1024
GROWTH_FRACTION = 0.10  # "grew": the late mean above the early mean by more than 10 % and 8 MiB
GROWTH_MIB = 8.0


def log(line: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {line}", flush=True)


def rss_of(pids: dict[str, int]) -> dict[str, float]:
    out = {}
    for label, pid in pids.items():
        try:
            out[label] = round(psutil.Process(pid).memory_info().rss / MiB, 1)
        except psutil.Error:
            out[label] = 0.0
    return out


def growth(samples: list[dict], minutes: float, warmup_min: float) -> dict[str, dict[str, float | bool]]:
    span = min(10.0, (minutes - warmup_min) / 2)
    early = [s for s in samples if warmup_min <= s["minute"] < warmup_min + span]
    late = [s for s in samples if s["minute"] >= minutes - span]
    out: dict[str, dict[str, float | bool]] = {}
    if not early or not late:
        return out
    for label in samples[-1]["rss_mib"]:
        a = statistics.mean(s["rss_mib"].get(label, 0.0) for s in early)
        b = statistics.mean(s["rss_mib"].get(label, 0.0) for s in late)
        grew = b - a > max(GROWTH_MIB, GROWTH_FRACTION * a)
        out[label] = {"early_mib": round(a, 1), "late_mib": round(b, 1), "delta_mib": round(b - a, 1), "grew": grew}
    return out


def plot(samples: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 8), sharex=True)
    minutes = [s["minute"] for s in samples]
    for label in samples[-1]["rss_mib"]:
        top.plot(minutes, [s["rss_mib"].get(label, 0.0) for s in samples], label=label)
    top.set_ylabel("RSS (MiB)")
    top.legend(loc="upper left", ncol=4, fontsize=8)
    top.grid(alpha=0.3)
    top.set_title(title)
    for key, style in (("p50", "-"), ("p99", "--")):
        bottom.plot(minutes, [s["latency_ms"][key] for s in samples], style, label=f"send → delivery {key}")
    bottom.set_ylabel("ms (per window)")
    bottom.set_xlabel("minutes")
    bottom.set_yscale("log")
    bottom.legend(loc="upper left", fontsize=8)
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


async def main(args: argparse.Namespace) -> bool:
    # The embedded MongoDB-wire server (development only) keeps a record of every retryable write
    # for 30 min, up to 10,000, and scans (and sorts) them all on each write: with retryable
    # writes on, its throughput falls from ~21 to ~4 sends a second within 5 minutes of this load,
    # which measures that server, not Parley. A real MongoDB has no such cost; the soak turns
    # them off unless --retryable-writes (no faults here, so nothing needs a retry).
    stack = ChaosStack(OUT / "stack.log", extra_env={"PARLEY_LOG_LEVEL": "WARNING"},
                       mongo_options="" if args.retryable_writes else "retryWrites=false")
    samples: list[dict] = []
    report = Report("soak")
    pids: dict[str, int] = {}
    try:
        log(f"soak: starting a stack of its own (log {stack.log_path}) ...")
        await asyncio.to_thread(stack.start)
        pids = stack.pids()
        load = Load(stack.gateway_ports, LoadConfig(pairs=args.users // 2, group_size=args.group, rate=args.rate,
                                                    retry_budget=45.0, max_attempts=60), log)
        try:
            await load.setup()
            log(f"{args.users} users online, {args.rate} msg/s, receivers acking every 0.5 s; "
                f"{args.minutes} min, a line every {args.every:.0f} s")
            load.start()
            began = time.perf_counter()
            end = began + args.minutes * 60
            last = began
            while time.perf_counter() < end:
                await asyncio.sleep(min(args.every, end - time.perf_counter()))
                t = time.perf_counter()
                lat = load.latency(last, t)
                outcomes = load.outcomes(last, t)
                sample = {"minute": round((t - began) / 60, 2), "rss_mib": rss_of(pids), "latency_ms": lat,
                          "sends": dict(outcomes)}
                samples.append(sample)
                dead = [k for k, pid in pids.items() if not psutil.pid_exists(pid)]
                log(f"t={sample['minute']:5.1f} min  sends {dict(outcomes)}  delivery p50 {lat['p50']} ms "
                    f"p99 {lat['p99']} ms (n={lat['n']})  RSS MiB "
                    + " ".join(f"{k}={v}" for k, v in sample["rss_mib"].items())
                    + (f"  DEAD: {dead}" if dead else ""))
                last = t
            await load.stop()
            report.settle_seconds = round(await load.settle(30), 1)
            await check(load, report)
            report.acknowledged = len(load.acknowledged())
        finally:
            await load.close()
    finally:
        await stack.astop()
    warmup = min(5.0, args.minutes / 6)
    grown = growth(samples, args.minutes, warmup)
    all_lat = [s["latency_ms"] for s in samples if s["latency_ms"]["n"]]
    result = {
        "config": vars(args), "samples": samples, "growth": grown, "warmup_minutes": warmup,
        "checks": {k: v for k, v in report.__dict__.items() if k not in ("episodes",)},
        "problems": report.problems({}),
        "latency_ms_over_windows": {
            "p50_median": statistics.median(w["p50"] for w in all_lat) if all_lat else None,
            "p99_median": statistics.median(w["p99"] for w in all_lat) if all_lat else None,
            "p99_worst": max(w["p99"] for w in all_lat) if all_lat else None,
        },
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=1, default=str))
    if samples:
        plot(samples, Path(args.plot), f"soak: {args.users} users, {args.rate} msg/s, {args.minutes} min")
    print()
    log(f"checks: {summary(report)}")
    for label, g in grown.items():
        log(f"RSS {label:<9} {g['early_mib']:>7} MiB (min {warmup:.0f}-) -> {g['late_mib']:>7} MiB (last) "
            f"{g['delta_mib']:+.1f} MiB {'GREW' if g['grew'] else 'flat'}")
    log(f"latency over windows: {result['latency_ms_over_windows']}")
    log(f"wrote {args.json} and {args.plot}")
    return not report.problems({}) and not any(g["grew"] for g in grown.values())


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--users", type=int, default=100, help="users online (in pairs of friends)")
    parser.add_argument("--group", type=int, default=6, help="members of the one group (they also write to it)")
    parser.add_argument("--rate", type=float, default=30.0, help="messages a second, all senders together")
    parser.add_argument("--every", type=float, default=30.0, help="seconds between progress lines / samples")
    parser.add_argument("--retryable-writes", action="store_true",
                        help="keep pymongo's retryable writes on (the embedded server slows down with them; see above)")
    parser.add_argument("--json", default=str(OUT / "soak.json"))
    parser.add_argument("--plot", default=str(OUT / "soak.png"))
    ok = run_interruptibly(lambda: main(parser.parse_args()))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    cli()
