"""Profiles of the hot path: py-spy samples chosen processes while the measured chat step runs.

`parley-bench --profile DIR` attaches `py-spy record` (sampling, from outside: the processes
run unchanged) to the chat, gateway and database processes for the measured step only, and
writes per process the collapsed stacks (DIR/<label>.folded, for flamegraph.pl, inferno or
speedscope) and a summary of the functions with the most samples, inclusive and self
(DIR/<label>.txt, also printed). py-spy needs ptrace rights over those processes: root, or
the same user with kernel.yama.ptrace_scope=0, or CAP_SYS_PTRACE in a container.
"""
import asyncio
import shutil
import sys
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import psutil

PROFILED = ("chat", "gateway", "mongo")
ROWS = 25


def frame_name(frame: str) -> str:
    """`send_message (services/chat/domain/messaging.py:63)` -> `send_message messaging.py`."""
    name, _, where = frame.partition(" (")
    file = where.split(":")[0].rsplit("/", 1)[-1] if where else ""
    return f"{name} {file}".strip()


def summarise(folded: str, rows: int = ROWS) -> str:
    """The functions on most samples (inclusive: anywhere on the stack; self: on top)."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in folded.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n, frames = int(count), [frame_name(f) for f in stack.split(";")]
        total += n
        for name in set(frames):
            inclusive[name] += n
        own[frames[-1]] += n
    if not total:
        return "no samples"
    lines = [f"{total} samples"]
    for title, counter in (("inclusive", inclusive), ("self", own)):
        lines.append(f"-- {title}")
        lines += [f"{100 * n / total:5.1f}%  {name}" for name, n in counter.most_common(rows)]
    return "\n".join(lines)


def py_spy() -> str | None:
    return shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")


@asynccontextmanager
async def profiled(procs: dict[str, psutil.Process], out_dir: str | None, seconds: float) -> AsyncIterator[None]:
    """Sample the PROFILED processes for `seconds` while the body runs (nothing if out_dir is None)."""
    exe = py_spy() if out_dir else None
    if out_dir and exe is None:
        print("profile: py-spy not found (pip install py-spy, or `make venv`): running without profiles", flush=True)
    if not out_dir or exe is None:
        yield
        return
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    targets = {label: p for label, p in procs.items() if label.split("-")[0] in PROFILED}
    runs = {
        label: await asyncio.create_subprocess_exec(
            exe, "record", "--pid", str(p.pid), "--duration", str(max(1, int(seconds))), "--rate", "200",
            "--format", "raw", "--output", str(out / f"{label}.folded"), "--nonblocking",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )
        for label, p in targets.items()
    }
    print(f"profile: py-spy sampling {', '.join(runs)} for {seconds:.0f} s into {out}/", flush=True)
    try:
        yield
    finally:
        for label, run in runs.items():
            _, err = await run.communicate()
            folded = out / f"{label}.folded"
            if run.returncode != 0 or not folded.exists():
                print(f"profile: py-spy on {label} failed: {err.decode(errors='replace').strip()[-300:]}", flush=True)
                continue
            summary = summarise(folded.read_text())
            (out / f"{label}.txt").write_text(summary + "\n")
            print(f"\nprofile of {label} ({folded}):\n" + "\n".join(summary.splitlines()[: ROWS + 2]), flush=True)
