"""--decay 0,100000,1000000: the same pairs run on a fresh store and on stores holding more.

Why: issue 12's third cause is a stack that slows down as its database fills (the embedded
server once re-sorted a record per retryable write on every write). The target is "within 20 %
of a fresh store" at 100,000 and 1,000,000 stored messages, so the run is repeated per level and
printed as a table with each level's ratio to the fresh one.

Each level gets a stack of its own (every cache cold alike). Level 0 stores in a fresh
temporary directory; the other levels share one store (--store DIR, else a temporary one),
topped up to each level in turn by bench/prefill.py, so the levels must rise. That store also
keeps what the earlier levels' runs sent: the table's `stored` column says what it held.
"""
import argparse
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from bench.pairs import pairs_run
from bench.prefill import prefill
from bench.stack import BENCH_ENV, infrastructure_processes, own_stack


def parse_levels(text: str) -> list[int]:
    try:
        levels = [int(float(part)) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"--decay takes comma-separated message counts, like 0,100000,1000000; got {text!r}") from None
    if not levels or any(b <= a for a, b in zip(levels, levels[1:], strict=False)) or levels[0] < 0:
        raise ValueError(f"--decay levels must be >= 0 and rise; got {text!r}")
    return levels


async def decay_run(args: argparse.Namespace, levels: list[int],
                    on_row: Callable[[list[dict[str, Any]]], None] = lambda rows: None) -> list[dict[str, Any]]:
    """One row per level; `on_row` sees the rows so far after each (an interrupted run keeps them)."""
    shared_store = Path(args.store) if args.store else Path(tempfile.mkdtemp(prefix="parley-decay-"))
    rows = []
    try:
        for level in levels:
            fresh = Path(tempfile.mkdtemp(prefix="parley-fresh-")) if level == 0 else None
            store = fresh or shared_store
            try:
                async with own_stack(BENCH_ENV, store=store) as stack:
                    print(f"\n=== decay level {level:,}: stack up (store {store}) ===", flush=True)
                    filled = await prefill(stack.mongo_url, stack.mongo_db, level, None if fresh else store)
                    procs = {**stack.processes, **infrastructure_processes(), "bench-clients": psutil.Process()}
                    run = await pairs_run(stack.base.replace("http://", "ws://") + "/ws", procs, args.pairs,
                                          args.window, args.seconds, args.warmup, args.ack_every, args.size,
                                          args.one_way, metrics=stack.metrics)
                rows.append({"level": level, "stored_messages": filled["stored"]["messages"],
                             "fill_seconds": filled.get("seconds"), "run": run})
                on_row(rows)
            finally:
                if fresh is not None:
                    shutil.rmtree(fresh, ignore_errors=True)
    finally:
        if not args.store:
            shutil.rmtree(shared_store, ignore_errors=True)
    return rows


def decay_table(rows: list[dict[str, Any]]) -> str:
    base = rows[0]["run"]["delivered_per_second"] if rows else 0
    lines = [f"{'level':>10} {'stored':>10} {'msg/s':>9} {'/first':>7} {'p50 ms':>9} {'p99 ms':>9} "
             f"{'lost':>5} {'dup':>5} {'CPU-ms/msg':>11} {'load':>5}"]
    for row in rows:
        r = row["run"]
        ratio = f"{r['delivered_per_second'] / base:.2f}" if base else "-"
        per = r["cpu"]["total"]["cpu_ms_per_message"]
        lines.append(f"{row['level']:>10,} {row['stored_messages']:>10,} {r['delivered_per_second']:>9,.1f} {ratio:>7} "
                     f"{r['latency_ms']['p50'] or '-':>9} {r['latency_ms']['p99'] or '-':>9} {r['lost']:>5} "
                     f"{r['duplicated']:>5} {per if per is not None else '-':>11} {r['loadavg_end'][0]:>5}")
    return "\n".join(lines)
