"""`make run` and `make stop`: one local stack per data dir, nothing left behind, crashes survived.

- One launcher per data dir: it holds an flock on <data_dir>/stack.lock for its whole life and
  describes its processes in <data_dir>/stack.json. A second launcher sees the lock and says
  who holds it; a launcher that died without cleaning up leaves the lock free, and whatever it
  left running (named in stack.json) is stopped before starting again.
- Children die with the launcher (Proc.start sets PDEATHSIG), and the launcher with `make`.
- A crashed process (a service or the embedded database) is started again, 1 s after its
  crash, doubling up to 30 s while it keeps crashing; 60 s up resets that.
- Exit status: 0 after a requested stop (Ctrl-C, SIGTERM, SIGHUP, `make stop`), else 1.

Tests and benchmarks use deploy.local.devstack.Stack directly and none of this.
"""
import contextlib
import fcntl
import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from deploy.local.devstack import DevSettings, Interrupted, Proc, Stack, die_with_parent, port_is_free

FIRST_DELAY = 1.0
MAX_DELAY = 30.0
STABLE_SECONDS = 60.0
STOP_WAIT_SECONDS = 60.0  # `make stop`: services drain (up to 20 s), then the database stops
Log = Callable[[str], None]


class RunFiles:
    """<data_dir>/stack.lock (held by the live launcher, with its pid) and stack.json."""

    def __init__(self, data_dir: Path):
        data_dir.mkdir(parents=True, exist_ok=True)
        self.lock_path = data_dir / "stack.lock"
        self.state_path = data_dir / "stack.json"
        self._fd: int | None = None

    def lock(self) -> bool:
        """Take the lock (kept until release() or exit); False while a launcher holds it."""
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by children
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def holder(self) -> int | None:
        """The pid the lock file names (the launcher holding it, when it is held)."""
        try:
            return int(self.lock_path.read_text().strip())
        except (OSError, ValueError):
            return None

    def read_state(self) -> dict[str, Any]:
        try:
            state: dict[str, Any] = json.loads(self.state_path.read_text())
            return state
        except (OSError, ValueError):
            return {}

    def write_state(self, stack: Stack) -> None:
        """Atomically, so that a reader never sees half of it."""
        children = ([("mongo", stack.mongo)] if stack.mongo else []) + list(stack.procs.items())
        state = {
            "launcher": identify(os.getpid()),
            "gateway_ports": stack.gateway_ports,
            "mongo_url": stack.env.get("PARLEY_MONGO_URL"),
            "children": [
                {"name": name, **identify(proc.popen.pid)} for name, proc in children if proc.popen is not None
            ],
        }
        tmp = self.state_path.with_name(f".stack.json.{os.getpid()}")
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        os.replace(tmp, self.state_path)

    def clear_state(self) -> None:
        self.state_path.unlink(missing_ok=True)


# --- processes we may not have started -------------------------------------------------------
def identify(pid: int) -> dict[str, Any]:
    """pid and start time: a pid alone may belong to another process by the time it is read."""
    import psutil

    try:
        return {"pid": pid, "create_time": psutil.Process(pid).create_time()}
    except psutil.Error:
        return {"pid": pid, "create_time": None}


def still_alive(entries: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    """(name, psutil.Process) of the entries whose process still runs (the same one: same start time)."""
    import psutil

    alive = []
    for entry in entries:
        try:
            proc = psutil.Process(entry["pid"])
            started = entry.get("create_time")
            if (started is None or abs(proc.create_time() - started) < 0.05) and running(proc):
                alive.append((entry.get("name", "?"), proc))
        except (psutil.Error, KeyError, TypeError):
            continue
    return alive


def terminate(procs: list[Any], timeout: float) -> tuple[int, int]:
    """SIGTERM, then SIGKILL what is left after `timeout`: (stopped, killed)."""
    import psutil

    def signal_all(group: list[Any], sig: int) -> None:
        for proc in group:
            with contextlib.suppress(psutil.Error):
                proc.send_signal(sig)

    def wait_gone(group: list[Any], seconds: float) -> list[Any]:
        deadline = time.monotonic() + seconds
        while True:
            left = [p for p in group if running(p)]
            if not left or time.monotonic() >= deadline:
                return left
            time.sleep(0.1)

    signal_all(procs, signal.SIGTERM)
    left = wait_gone(procs, timeout)
    signal_all(left, signal.SIGKILL)
    wait_gone(left, 5)
    return len(procs) - len(left), len(left)


def running(proc: Any) -> bool:
    """Alive and not a zombie (one nobody reaps, where PID 1 does not, is gone for us)."""
    import psutil

    try:
        return bool(proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def stop_leftovers(files: RunFiles, storage: Path, log: Log) -> int:
    """Stop what an earlier launcher that died without cleaning up left running: the processes
    its state file names, and any embedded database still using our storage (it would hold the
    WiredTiger lock). Call with the lock held. Returns how many were found."""
    import psutil

    state = files.read_state()
    found = still_alive(state.get("children", []))
    pids = {proc.pid for _, proc in found}
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if any("secantusd" in part for part in cmdline[:2]) and str(storage) in cmdline and proc.pid not in pids:
            found.append(("mongo", proc))
    if found:
        launcher = state.get("launcher", {}).get("pid", "unknown")
        names = ", ".join(f"{name} (pid {proc.pid})" for name, proc in found)
        log(f"found processes left over from an earlier run whose launcher (pid {launcher}) is gone: {names}; "
            "stopping them (SIGTERM, SIGKILL after 10 s)")
        stopped, killed = terminate([proc for _, proc in found], 10)
        log(f"left-over processes stopped: {stopped} exited, {killed} killed")
    files.clear_state()
    return len(found)


def port_holder(port: int) -> str:
    """Who listens on 127.0.0.1:`port`, as far as we may see ("" if we cannot tell)."""
    import psutil

    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
                proc = psutil.Process(conn.pid)
                return f"pid {conn.pid} ({' '.join(proc.cmdline())[:120]})"
    except (psutil.Error, OSError):
        pass
    return ""


# --- restarts ---------------------------------------------------------------------------------
@dataclass
class Backoff:
    started: float  # monotonic time of the last start
    delay: float = FIRST_DELAY  # before the next restart
    due: float | None = None  # when the scheduled restart is due


class Supervisor:
    """Starts crashed processes again (same name, command, port and storage) with backoff."""

    def __init__(self, stack: Stack, on_restart: Callable[[], None]):
        self.stack = stack
        self.on_restart = on_restart
        now = time.monotonic()
        self.backoff = {name: Backoff(now) for name in self.processes()}

    def processes(self) -> dict[str, Proc]:
        return {**({"mongo": self.stack.mongo} if self.stack.mongo else {}), **self.stack.procs}

    def tick(self, now: float) -> None:
        for name, proc in self.processes().items():
            state = self.backoff.setdefault(name, Backoff(now))
            if proc.running:
                continue
            if state.due is None:
                if now - state.started >= STABLE_SECONDS:
                    state.delay = FIRST_DELAY
                state.due = now + state.delay
                self.stack.log(f"{name} exited ({describe_exit(proc)}); restarting it in {state.delay:.0f} s")
                state.delay = min(state.delay * 2, MAX_DELAY)
            elif now >= state.due:
                state.due, state.started = None, now
                try:
                    proc.start()
                except OSError as exc:
                    self.stack.log(f"{name} could not be started: {exc}; trying again")
                    continue
                assert proc.popen is not None
                self.stack.log(f"{name} restarted (pid {proc.popen.pid})")
                self.on_restart()

    def watch(self, stop: Any) -> None:
        """Until `stop` (a threading.Event) is set."""
        while not stop.wait(0.5):
            self.tick(time.monotonic())


def describe_exit(proc: Proc) -> str:
    code = proc.popen.returncode if proc.popen is not None else None
    if code is not None and code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit status {code}"


# --- the commands -----------------------------------------------------------------------------
def run() -> int:
    """`make run`."""
    die_with_parent(os.getppid())  # `make` killed: SIGTERM, an orderly stop
    stack = Stack()
    data_dir = stack.dev.data_dir
    files = RunFiles(data_dir)
    if not files.lock():
        pid = files.read_state().get("launcher", {}).get("pid") or files.holder()
        ports = files.read_state().get("gateway_ports") or stack.gateway_ports
        stack.log(f"error: a stack is already running from {data_dir} (launcher pid {pid}, gateway "
                  f"http://127.0.0.1:{ports[0]}); use it, or stop it with `make stop` (or kill {pid})")
        return 1
    stop_leftovers(files, data_dir / "mongo", stack.log)
    for port in stack.gateway_ports:
        if not port_is_free(port):
            holder = port_holder(port)
            stack.log(f"error: gateway port {port} is taken{' by ' + holder if holder else ''}; stop that "
                      "process, or choose another port (PARLEY_GATEWAY_PORT=8100 make run)")
            return 1

    received: list[str] = []

    def on_signal(signum: int, _frame: Any) -> None:
        received.append(signal.Signals(signum).name)  # logged by the main thread: no I/O in here
        stack.interrupt.set()

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    try:
        stack.start_mongo()
        stack.start_all()
        files.write_state(stack)
        stack.wait_ready()
        stack.log(f"running from {data_dir} (launcher pid {os.getpid()}); press Ctrl-C or run `make stop` to stop")
        Supervisor(stack, on_restart=lambda: files.write_state(stack)).watch(stack.interrupt)
        stack.log(f"{received[0] if received else 'stop'} received")
        return 0
    except Interrupted:
        stack.log(f"{received[0] if received else 'stop'} received during start-up")
        return 0
    except (RuntimeError, OSError) as exc:
        stack.log(f"error: {exc}; stopping (exit status 1)")
        return 1
    finally:
        stack.log("stopping: gateways, then services, then the database ...")
        stack.stop_all()
        files.clear_state()
        stack.log("stopped")
        files.release()


def stop() -> int:
    """`make stop`: SIGTERM to the launcher, which stops everything in order; wait for it."""
    dev = DevSettings()
    files = RunFiles(dev.data_dir)

    def log(text: str) -> None:
        print(f"{'devstack':<10}| {text}", flush=True)
    if files.lock():
        try:
            if not stop_leftovers(files, dev.data_dir / "mongo", log):
                log(f"no stack is running from {dev.data_dir}; nothing to stop")
        finally:
            files.release()
        return 0
    state = files.read_state()
    pid = state.get("launcher", {}).get("pid") or files.holder()
    if pid is None:
        log(f"error: {files.lock_path} is locked but names no process; find it with `fuser {files.lock_path}`")
        return 1
    log(f"stopping the stack of launcher pid {pid} (gateways, then services, then the database) ...")
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_WAIT_SECONDS
    while time.monotonic() < deadline:
        if files.lock():
            files.release()
            log(f"stopped (launcher pid {pid})")
            return 0
        time.sleep(0.2)
    survivors = still_alive([{"name": "launcher", **state.get("launcher", {"pid": pid})}] + state.get("children", []))
    _, killed = terminate([proc for _, proc in survivors], 0)
    log(f"error: the stack did not stop within {STOP_WAIT_SECONDS:.0f} s; killed {killed} process(es) "
        f"that were still running: {', '.join(name for name, _ in survivors) or 'none'}")
    return 1
