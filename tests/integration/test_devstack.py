"""`make run` as a user sees it (`python -m deploy.local.devstack run`, its own data dir and ports):
nothing outlives it, whatever kills it; a second one says who runs; crashes are restarted;
failures exit non-zero; left-overs of an earlier run are stopped; `make stop` stops it.

Every process of a launch is found two ways: by the pids in its state file, and by the
PARLEY_NAMESPACE in its environment (each launch has its own), which needs no state file.
"""
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from pymongo import MongoClient

from deploy.local.devstack import free_port
from shared.settings import Settings
from tests.support.infra import remove_namespace, unique_namespace

pytestmark = pytest.mark.faults

ROOT = Path(__file__).resolve().parents[2]
READY_SECONDS = 60
# A launch's processes: the embedded MongoDB-wire server, auth, chat, files, calls, push, one gateway.
PROCESSES = 7


@dataclass
class Launch:
    """One `python -m deploy.local.devstack run`, its output in a file."""

    popen: subprocess.Popen[bytes]
    env: dict[str, str]
    data_dir: Path
    port: int
    log_path: Path

    @property
    def namespace(self) -> str:
        return self.env["PARLEY_NAMESPACE"]

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def devstack_lines(self) -> str:
        return "\n".join(line for line in self.output().splitlines() if line.startswith("devstack"))

    def state(self) -> dict:
        try:
            return json.loads((self.data_dir / "stack.json").read_text())
        except (OSError, ValueError):
            return {}

    def child_pid(self, name: str) -> int | None:
        return next((c["pid"] for c in self.state().get("children", []) if c["name"] == name), None)

    def state_pids(self) -> list[int]:
        return [c["pid"] for c in self.state().get("children", [])]

    def wait_ready(self, timeout: float = READY_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        while not readyz_ok(self.port):
            assert self.popen.poll() is None, f"launcher exited with {self.popen.returncode}:\n{self.devstack_lines()}"
            assert time.monotonic() < deadline, f"not ready within {timeout} s:\n{self.devstack_lines()}"
            time.sleep(0.3)
        wait_for(lambda: len(self.state_pids()) >= PROCESSES, 5, "the state file naming every process")

    def exit_status(self, timeout: float) -> int:
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"launcher still running after {timeout} s:\n{self.devstack_lines()}")


def readyz_ok(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=3) as resp:
            return resp.status == 200
    except OSError:
        return False


def post(port: int, path: str, body: dict) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Seconds it took; fails after `timeout`."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout, f"not within {timeout} s: {what}"
        time.sleep(0.2)
    return time.monotonic() - start


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def processes_of(namespace: str) -> list[psutil.Process]:
    """Every live process whose environment says it belongs to `namespace`."""
    found = []
    for proc in psutil.process_iter():
        try:
            if (
                proc.pid != os.getpid()
                and proc.status() != psutil.STATUS_ZOMBIE
                and proc.environ().get("PARLEY_NAMESPACE") == namespace
            ):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def describe(procs: list[psutil.Process]) -> str:
    out = []
    for proc in procs:
        try:
            out.append(f"{proc.pid} {' '.join(proc.cmdline())[:100]}")
        except psutil.Error:
            out.append(str(proc.pid))
    return "; ".join(out)


def nothing_left(launch: Launch, pids: list[int], timeout: float) -> float:
    return wait_for(
        lambda: not any(alive(p) for p in pids) and not processes_of(launch.namespace), timeout,
        f"every process of the stack gone; left: {describe(processes_of(launch.namespace))}",
    )


@pytest.fixture(scope="module")
def launcher(test_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Launch]]:
    """Starts launchers, each with its own data dir, namespace, database and ports; removes
    whatever they leave behind at the end (that is what the tests check, so it should be nothing)."""
    launches: list[Launch] = []

    def start(data_dir: Path | None = None, port: int | None = None, **extra: str | None) -> Launch:
        data_dir = data_dir or tmp_path_factory.mktemp("devstack")
        namespace = unique_namespace()
        env = {
            **os.environ, **test_env,
            "PARLEY_DEV_DATA_DIR": str(data_dir),
            "PARLEY_NAMESPACE": namespace,
            "PARLEY_MONGO_DB": f"parley_{namespace}",
            "PARLEY_GATEWAY_PORT": str(port or free_port()),
            "PARLEY_DEV_MONGO_PORT": str(free_port()),
            "PARLEY_DEV_READY_TIMEOUT_SECONDS": str(READY_SECONDS),
            "PARLEY_LOG_LEVEL": "WARNING",
        }
        env.pop("PARLEY_MONGO_URL", None)  # the launcher starts its own, on disk in data_dir
        for key, value in extra.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        log_path = data_dir.parent / f"{data_dir.name}-{len(launches)}.log"
        with open(log_path, "wb") as log:  # from the main thread: the launcher's PDEATHSIG is ours
            popen = subprocess.Popen([sys.executable, "-m", "deploy.local.devstack", "run"], env=env, cwd=ROOT,
                                     stdout=log, stderr=subprocess.STDOUT)
        launch = Launch(popen, env, data_dir, int(env["PARLEY_GATEWAY_PORT"]), log_path)
        launches.append(launch)
        return launch

    yield start
    for launch in launches:
        if launch.popen.poll() is None:
            launch.popen.send_signal(signal.SIGTERM)
            try:
                launch.popen.wait(30)
            except subprocess.TimeoutExpired:
                launch.popen.kill()
        for proc in processes_of(launch.namespace):
            proc.kill()
        settings = Settings(**{k.removeprefix("PARLEY_").lower(): v for k, v in launch.env.items()
                               if k.startswith("PARLEY_") and not k.startswith("PARLEY_DEV_")})
        try:
            asyncio.run(remove_namespace(settings))
        except Exception as exc:  # a test that failed early may have made none
            print(f"note: could not remove namespace {launch.namespace}: {exc!r}")


@pytest.fixture(scope="module")
def running(launcher: Callable[..., Launch]) -> Launch:
    """One stack shared by the checks that need one running, stopped by the last of them."""
    launch = launcher()
    launch.wait_ready()
    return launch


def test_a_second_launcher_says_who_runs_and_fails(launcher: Callable[..., Launch], running: Launch) -> None:
    second = launcher(data_dir=running.data_dir)
    assert second.exit_status(10) != 0, second.output()
    said = second.devstack_lines()
    assert str(running.popen.pid) in said and "make stop" in said, said
    assert running.popen.poll() is None and readyz_ok(running.port)


def test_a_crashed_service_is_restarted(running: Launch) -> None:
    before = running.child_pid("chat1")
    assert before is not None and alive(before)
    os.kill(before, signal.SIGKILL)
    took = wait_for(
        lambda: (after := running.child_pid("chat1")) not in (None, before) and alive(after) and readyz_ok(running.port),
        20, "chat1 started again and /readyz 200",
    )
    print(f"chat1 back and ready {took:.1f} s after kill -9")
    assert "chat1 exited (killed by SIGKILL); restarting it in 1 s" in running.devstack_lines()


def test_a_crashed_database_is_restarted_on_its_storage(running: Launch) -> None:
    account = {"username": f"keeper{os.getpid()}", "password": "a long enough password"}
    assert post(running.port, "/auth/register", account) == 201
    before, url = running.child_pid("mongo"), running.state().get("mongo_url")
    assert before is not None and url
    # The embedded server loses writes acknowledged less than ~1 s before a kill -9 (its journal
    # is flushed about once a second); what is tested here is that the restart reuses the
    # storage, so the account is put on disk first (`fsync`: a checkpoint), not left to a sleep.
    with MongoClient(url, serverSelectionTimeoutMS=10_000) as mongo:
        mongo.admin.command("fsync")
    os.kill(before, signal.SIGKILL)
    took = wait_for(
        lambda: (after := running.child_pid("mongo")) not in (None, before) and alive(after)
        and post(running.port, "/auth/login", account) == 200,
        30, "mongo started again and the account (on disk) usable",
    )
    print(f"database back, account still there, {took:.1f} s after kill -9")
    assert running.state().get("mongo_url") == url


def test_sighup_stops_every_process_and_exits_0(running: Launch) -> None:
    """Closing the terminal."""
    pids = running.state_pids()
    assert len(pids) == PROCESSES and all(alive(p) for p in pids)
    start = time.monotonic()
    running.popen.send_signal(signal.SIGHUP)
    assert running.exit_status(20) == 0, running.devstack_lines()
    nothing_left(running, pids, max(1, 20 - (time.monotonic() - start)))
    print(f"stack stopped {time.monotonic() - start:.1f} s after SIGHUP")
    assert not (running.data_dir / "stack.json").exists()


def test_a_killed_launcher_takes_its_children_along(launcher: Callable[..., Launch]) -> None:
    """kill -9 of the launcher; also: with no PARLEY_JWT_SECRET, one is made for the checkout."""
    launch = launcher(PARLEY_JWT_SECRET=None)
    launch.wait_ready()
    secret_file = launch.data_dir / "jwt-secret"
    assert secret_file.stat().st_mode & 0o777 == 0o600
    secret = secret_file.read_text().strip()
    assert len(secret) == 64
    pids = launch.state_pids()
    assert all(psutil.Process(p).environ().get("PARLEY_JWT_SECRET") == secret for p in pids)
    launch.popen.kill()
    launch.popen.wait(5)
    # Each child gets SIGTERM (PDEATHSIG), all at once rather than in `make stop`'s order: the
    # database stops in ~2 s (its stop waits 2 s for its accept thread, then for its connections,
    # then closes its storage); a service that closes its MongoDB client after the database is
    # gone gives up ending its sessions after 1 s (shared.stores.close_mongo; it waited out its
    # 5 s server selection before). Once, in a full run, over 10 s for the database and a
    # gateway. The launcher itself allows a child 15 s to stop (Proc.stop).
    took = nothing_left(launch, pids, 20)
    print(f"every child gone {took:.1f} s after kill -9 of the launcher")


def test_a_taken_gateway_port_fails_at_once(launcher: Callable[..., Launch]) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        launch = launcher(port=port)
        status = launch.exit_status(15)
    said = launch.devstack_lines()
    assert status != 0, said
    assert f"port {port} is taken" in said and str(os.getpid()) in said, said
    nothing_left(launch, [], 5)


def test_left_overs_are_stopped_then_make_stop_stops_the_stack(launcher: Callable[..., Launch],
                                                                tmp_path_factory: pytest.TempPathFactory) -> None:
    """An earlier launcher died without cleaning up: its state file names a process still running,
    and its database still holds the storage (a WiredTiger lock). Both are stopped, the stack
    starts on that storage, and `make stop` (python -m deploy.local.devstack stop) stops it."""
    data_dir = tmp_path_factory.mktemp("devstack")
    server = shutil.which("secantusd-py", path=str(Path(sys.executable).parent))
    assert server is not None
    (data_dir / "mongo").mkdir()
    # Started in the background of a shell that exits at once: orphans, as a dead launcher's are.
    orphan = detached(["sleep", "300"])
    old_mongo = detached([server, "--host", "127.0.0.1", "--port", str(free_port()),
                          "--storage-path", str(data_dir / "mongo")])
    try:
        wait_for(lambda: bool(psutil.Process(old_mongo).net_connections()), 15, "the old database listening")
        state = {"launcher": {"pid": 999999, "create_time": 0}, "gateway_ports": [1], "children": [
            {"name": "chat1", "pid": orphan, "create_time": psutil.Process(orphan).create_time()}]}
        (data_dir / "stack.json").write_text(json.dumps(state))
        launch = launcher(data_dir=data_dir)
        launch.wait_ready()
        assert not alive(orphan) and not alive(old_mongo)
        said = launch.devstack_lines()
        assert "left over from an earlier run" in said and f"pid {orphan})" in said and f"pid {old_mongo})" in said, said

        pids = launch.state_pids()
        stop = subprocess.run([sys.executable, "-m", "deploy.local.devstack", "stop"], env=launch.env, cwd=ROOT,
                              capture_output=True, text=True, timeout=60)
        assert stop.returncode == 0 and f"launcher pid {launch.popen.pid}" in stop.stdout, stop.stdout + stop.stderr
        assert launch.exit_status(5) == 0
        nothing_left(launch, pids, 5)

        again = subprocess.run([sys.executable, "-m", "deploy.local.devstack", "stop"], env=launch.env, cwd=ROOT,
                               capture_output=True, text=True, timeout=30)
        assert again.returncode == 0 and "nothing to stop" in again.stdout, again.stdout + again.stderr
    finally:
        for pid in (orphan, old_mongo):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def detached(argv: list[str]) -> int:
    """Starts `argv` as a process whose parent is gone; its pid."""
    shell = subprocess.run(["sh", "-c", '"$@" >/dev/null 2>&1 </dev/null & echo $!', "sh", *argv],
                           capture_output=True, text=True, timeout=10, start_new_session=True)
    return int(shell.stdout.strip())
