"""`make test-repeat N=3`: the whole suite N times, each from a fresh clone, as a new user runs it.

Each run clones the checkout's HEAD (committed work only) into a directory of its own and runs
`make test` there, venv install included, so a missing install step or a test that passes only
on a warm checkout shows up. One line of progress per run while it goes, then a table: each
run's counts, pytest's time and the wall time, and the tests that failed. Exit status 1 when any
run was not green. The logs stay in .run/test-repeat/.

    python -m tests.repeat --runs 3 [--pytest-args "-x"] [--keep]
"""
import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOGS = ROOT / ".run" / "test-repeat"
# pytest's closing line, e.g. "== 1 failed, 751 passed, 6 skipped in 742.10s (0:12:22) =="
SUMMARY = re.compile(r"^=+ (?P<counts>.+?) in (?P<seconds>[\d.]+)s\b.*=+$")
PROGRESS = re.compile(r"\[\s*(\d+)%\]\s*$")
OUTCOME = re.compile(r"^(FAILED|ERROR) (\S+)")


@dataclass
class Run:
    number: int
    log: Path
    exit_code: int = -1
    wall_seconds: float = 0.0
    pytest_seconds: float | None = None
    counts: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    @property
    def green(self) -> bool:
        return self.exit_code == 0 and not self.counts.get("failed") and not self.counts.get("error", 0)


def parse_counts(text: str) -> dict[str, int]:
    """'1 failed, 751 passed, 6 skipped, 2 errors' -> {'failed': 1, 'passed': 751, ...}."""
    counts: dict[str, int] = {}
    for number, word in re.findall(r"(\d+) (\w+)", text):
        counts[word.rstrip("s") if word in ("errors", "warnings") else word] = int(number)
    return counts


def minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"


def run_once(number: int, total: int, pytest_args: str, keep: bool) -> Run:
    run = Run(number, LOGS / f"run-{number}.log")
    clone = Path(tempfile.mkdtemp(prefix=f"parley-repeat-{number}-"))
    started = time.monotonic()
    try:
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        command = ["make", "test"] + ([f"PYTEST_ARGS={pytest_args}"] if pytest_args else [])
        with open(run.log, "w") as log, subprocess.Popen(
            command, cwd=clone, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        ) as make:
            assert make.stdout is not None
            shown = ""
            for line in make.stdout:
                log.write(line)
                if match := SUMMARY.match(line.strip()):
                    run.counts = parse_counts(match["counts"])
                    run.pytest_seconds = float(match["seconds"])
                elif match := OUTCOME.match(line):
                    run.failures.append(f"{match[1]} {match[2]}")
                progress = PROGRESS.search(line)
                stage = f"{progress[1]} %" if progress else (shown or "setting up")
                if stage != shown:
                    shown = stage
                    print(f"\rrun {number}/{total}: {stage:<12} {minutes(time.monotonic() - started)}", end="", flush=True)
            run.exit_code = make.wait()
    finally:
        run.wall_seconds = time.monotonic() - started
        if keep:
            print(f"\n  clone kept at {clone}")
        else:
            shutil.rmtree(clone, ignore_errors=True)
    verdict = "green" if run.green else "NOT GREEN"
    print(f"\rrun {number}/{total}: {verdict}, {run.counts or 'no pytest summary'}, {minutes(run.wall_seconds)} wall "
          f"(log: {run.log.relative_to(ROOT)})")
    return run


def table(runs: list[Run]) -> str:
    lines = ["run  result     passed  failed  errors  skipped  pytest        wall"]
    for r in runs:
        pytest_time = minutes(r.pytest_seconds) if r.pytest_seconds is not None else "-"
        lines.append(
            f"{r.number:<4} {'green' if r.green else 'NOT GREEN':<10} {r.counts.get('passed', 0):>6}  "
            f"{r.counts.get('failed', 0):>6}  {r.counts.get('error', 0):>6}  {r.counts.get('skipped', 0):>7}  "
            f"{pytest_time:<12}  {minutes(r.wall_seconds)}"
        )
        lines += [f"     {failure}" for failure in dict.fromkeys(r.failures)]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pytest-args", default="", help="passed to make test as PYTEST_ARGS")
    parser.add_argument("--keep", action="store_true", help="keep each run's clone (and its .run/test-logs)")
    args = parser.parse_args()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    if dirty:
        print("note: uncommitted changes are not in the clones; each run tests HEAD "
              f"({subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=ROOT, capture_output=True, text=True).stdout.strip()})")
    LOGS.mkdir(parents=True, exist_ok=True)
    runs = [run_once(i, args.runs, args.pytest_args, args.keep) for i in range(1, args.runs + 1)]
    print()
    print(table(runs))
    return 0 if all(r.green for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
