"""parley-bench --sweep: the chat load at rising offered rates, to see where latency turns.

One stack and one set of users (set up once) for every step, so that steps differ only in rate;
a pause between steps lets queues drain. A step is overloaded when fewer than 70 % of the
deliveries its rate should make (rate x fan-out) arrive per second, or its end-to-end p99 is over
2 s; the sweep stops after it, since heavier steps would only queue longer and take far longer.
"""
import asyncio
import math
import os
from typing import Any

import psutil

from bench.load import chat_step, close_all, setup, warm_up

MIN_DELIVERED_FRACTION = 0.70
MAX_P99_MS = 2_000.0
DRAIN_SECONDS = 2.0
RULE = (f"a step is overloaded, and the sweep stops after it, when deliveries/s < {MIN_DELIVERED_FRACTION:.0%} "
        f"of offered x fan-out, or end-to-end p99 > {MAX_P99_MS:,.0f} ms")
QUANTILES = ("p50", "p95", "p99")


def parse_rates(text: str) -> list[float]:
    """'100,200,500' -> [100.0, 200.0, 500.0]: positive and rising, as the stop rule assumes."""
    try:
        rates = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"--sweep takes comma-separated messages/s, like 100,200,500; got {text!r}") from None
    if not rates:
        raise ValueError("--sweep needs at least one rate")
    if not all(math.isfinite(r) and r > 0 for r in rates):
        raise ValueError(f"--sweep rates must be positive numbers; got {text!r}")
    if any(b <= a for a, b in zip(rates, rates[1:], strict=False)):
        raise ValueError(f"--sweep rates must rise from step to step; got {text!r}")
    return rates


def overload(step: dict[str, Any]) -> str | None:
    """Why this step counts as overloaded (see RULE), or None."""
    offered = step["deliveries_offered_per_second"]
    delivered = step["delivered_per_second"]
    if delivered < MIN_DELIVERED_FRACTION * offered:
        return (f"deliveries {delivered:,.1f}/s < {MIN_DELIVERED_FRACTION:.0%} of the {offered:,.1f}/s offered "
                f"({step['offered_rate']:g} msg/s x fan-out {step['fanout']:g})")
    p99 = step["latency_ms"]["p99"]
    if p99 is not None and p99 > MAX_P99_MS:
        return f"end-to-end p99 {p99:,.0f} ms > {MAX_P99_MS:,.0f} ms"
    return None


def step_line(step: dict[str, Any]) -> str:
    lat = step["latency_ms"]
    shown = {q: "-" if lat[q] is None else f"{lat[q]:,.1f}" for q in QUANTILES}
    state = f"OVERLOADED: {step['overloaded']}" if step["overloaded"] else "ok"
    return (f"  -> {step['offered_rate']:g} msg/s: delivered {step['delivered_per_second']:,.1f}/s of "
            f"{step['deliveries_offered_per_second']:,.1f}/s offered, p50/p95/p99 {shown['p50']}/{shown['p95']}/"
            f"{shown['p99']} ms, lost {step['lost']}, duplicated {step['duplicated']}; {state}")


async def run_sweep(ws_url: str, procs: dict[str, psutil.Process], rates: list[float], users: int, seconds: float,
                    group_size: int, size: int, warmup: float, ack_every: float = 0) -> dict[str, Any]:
    print(f"sweep: {len(rates)} steps of {seconds:g} s ({', '.join(f'{r:g}' for r in rates)} msg/s); {RULE}", flush=True)
    clients, senders = await setup(ws_url, users, group_size, ack_every)
    steps: list[dict[str, Any]] = []
    stopped = None
    try:
        warm = await warm_up(clients, senders, procs, rates[0], warmup, group_size, size)
        for i, rate in enumerate(rates):
            if i:
                await asyncio.sleep(DRAIN_SECONDS)
            print(f"[sweep {i + 1}/{len(rates)}] offered {rate:g} msg/s for {seconds:g} s", flush=True)
            step = await chat_step(clients, senders, procs, rate, seconds, group_size, size, label=f"{rate:g}/s")
            step["overloaded"] = overload(step)
            steps.append(step)
            print(step_line(step), flush=True)
            if step["overloaded"] and i + 1 < len(rates):
                skipped = ", ".join(f"{r:g}" for r in rates[i + 1:])
                stopped = f"stopped early after {rate:g} msg/s ({step['overloaded']}); skipped {skipped} msg/s"
                print(f"sweep {stopped}", flush=True)
                break
    finally:
        await close_all(clients)
    return {"rule": RULE, "steps": steps, "stopped": stopped, "warmup": warm}


def sweep_table(steps: list[dict[str, Any]]) -> str:
    """One row per rate: throughput, latency, correctness; then the CPU% of each process."""
    head = (f"{'offered/s':>9} {'sent/s':>8} {'dlv offered/s':>13} {'delivered/s':>11} {'p50 ms':>9} {'p95 ms':>9} "
            f"{'p99 ms':>9} {'max ms':>9} {'reply p50':>9} {'reply p99':>9} {'lost':>5} {'dup':>4} {'errors':>6}  state")
    lines = [head]

    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:,.1f}"

    for s in steps:
        lat, rep = s["latency_ms"], s["reply_latency_ms"]
        lines.append(
            f"{s['offered_rate']:>9g} {s['sent_per_second']:>8,.1f} {s['deliveries_offered_per_second']:>13,.1f} "
            f"{s['delivered_per_second']:>11,.1f} {ms(lat['p50']):>9} {ms(lat['p95']):>9} {ms(lat['p99']):>9} "
            f"{ms(lat['max']):>9} {ms(rep['p50']):>9} {ms(rep['p99']):>9} {s['lost']:>5} {s['duplicated']:>4} "
            f"{sum(s['send_errors'].values()):>6}  {'OVERLOADED' if s['overloaded'] else 'ok'}")
    labels = list(steps[0]["processes"]) if steps else []
    width = max([len(label) for label in labels] + [5])
    lines += ["", "cpu% per process (100 = one core)", f"{'offered/s':>9} " + " ".join(f"{x:>{width}}" for x in labels)]
    for s in steps:
        cpus = [s["processes"].get(label, {}).get("cpu_percent", float("nan")) for label in labels]
        lines.append(f"{s['offered_rate']:>9g} " + " ".join(f"{c:>{width}.1f}" for c in cpus))
    return "\n".join(lines)


def sweep_title(steps: list[dict[str, Any]], cpus: int | None = None) -> str:
    s = steps[0]
    return (f"parley-bench --sweep: {s['users']} users ({s['pairs_users']} in pairs, {s['group_users']} in groups of "
            f"{s['group_size']}), {s['text_chars']}-char texts, {s['seconds']:g} s per step, "
            f"{cpus or os.cpu_count()} CPUs")


def plot_sweep(steps: list[dict[str, Any]], path: str, title: str) -> None:
    """Latency percentiles (log) and deliveries/s against offered load, as a PNG (Agg: no display)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    x = [s["offered_rate"] for s in steps]
    fig = Figure(figsize=(12, 5), layout="constrained")
    FigureCanvasAgg(fig)
    lat, thr = fig.subplots(1, 2)
    for q, marker in zip(QUANTILES, "os^", strict=False):
        points = [(r, s["latency_ms"][q]) for r, s in zip(x, steps, strict=False) if s["latency_ms"][q]]
        if points:
            lat.plot(*zip(*points, strict=False), marker=marker, label=f"end-to-end {q}")
    lat.axhline(MAX_P99_MS, color="grey", linestyle=":", label="p99 limit (overload rule)")
    lat.set_yscale("log")
    lat.set_ylabel("latency (ms, log scale)")
    lat.set_title("end-to-end latency (send -> message.new)")
    offered = [s["deliveries_offered_per_second"] for s in steps]
    thr.plot(x, offered, linestyle="--", color="grey", label="offered x fan-out (ideal)")
    thr.plot(x, [MIN_DELIVERED_FRACTION * o for o in offered], linestyle=":", color="grey",
             label=f"{MIN_DELIVERED_FRACTION:.0%} of ideal (overload rule)")
    thr.plot(x, [s["delivered_per_second"] for s in steps], marker="o", label="delivered (message.new/s)")
    thr.set_ylabel("deliveries/s")
    thr.set_title("throughput")
    for ax in (lat, thr):
        over = [r for r, s in zip(x, steps, strict=False) if s["overloaded"]]
        if over:
            ax.axvline(over[0], color="red", linestyle=":", label="overloaded")
        ax.set_xlabel("offered load (messages/s)")
        if len(x) > 1 and x[-1] / x[0] >= 10:
            ax.set_xscale("log")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle(title, fontsize="medium")
    fig.savefig(path, dpi=100)
