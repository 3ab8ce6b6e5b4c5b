"""A Redis Cluster on loopback for development, tests, the fault suite and benchmarks: six
redis-server processes (three primaries, a replica each), no persistence, in a temporary
directory of their own.

    python -m deploy.local.redis_cluster [--base-port 7300] [--node-timeout-ms 1500]

starts one (`make redis-cluster`), prints the settings that point Parley at it and runs until
Ctrl-C. From Python: `with RedisCluster6() as cluster: ... cluster.url ... cluster.kill9(port)`.

Ports: six consecutive client ports from --base-port (7300) and their cluster-bus ports (+10000);
when any is taken the next block of ten is tried, so several clusters (other checkouts, a test
run beside `make redis-cluster`) can run at once.
"""
import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from deploy.local.devstack import port_is_free

NODES = 6
DEFAULT_BASE_PORT = 7300
# How long a primary may be unreachable before its replica is promoted (Redis's default is
# 15 s; a loopback cluster can afford a small one, which bounds what a failover costs users).
DEFAULT_NODE_TIMEOUT_MS = 1500


def free_base_port(start: int = DEFAULT_BASE_PORT, tries: int = 50) -> int:
    """The first block of NODES client ports (and their bus ports) all free, from `start`."""
    for base in range(start, start + 10 * tries, 10):
        if all(port_is_free(p) and port_is_free(p + 10000) for p in range(base, base + NODES)):
            return base
    raise RuntimeError(f"no {NODES} free consecutive ports from {start}; pass another --base-port")


def _cli(port: int, *args: str, timeout: float = 10) -> str:
    exe = shutil.which("redis-cli")
    if exe is None:
        raise RuntimeError("redis-cli is not installed (apt-get install redis-tools)")
    done = subprocess.run([exe, "-p", str(port), *args], capture_output=True, text=True, timeout=timeout)
    return done.stdout + done.stderr


class RedisCluster6:
    """Six nodes, three primaries with one replica each, created and torn down by this object."""

    def __init__(self, base_port: int | None = None, node_timeout_ms: int = DEFAULT_NODE_TIMEOUT_MS):
        self.base_port = base_port if base_port is not None else free_base_port()
        self.node_timeout_ms = node_timeout_ms
        self.ports = list(range(self.base_port, self.base_port + NODES))
        self.dir = Path(tempfile.mkdtemp(prefix="parley-redis-cluster-"))
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        """The seed address (PARLEY_REDIS_URL): any node; the client learns the others."""
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def env(self) -> dict[str, str]:
        return {"PARLEY_REDIS_URL": self.url, "PARLEY_REDIS_CLUSTER": "true"}

    def start(self) -> "RedisCluster6":
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server): it runs the cluster")
        for port in self.ports:
            self.start_node(port)
        for port in self.ports:
            self._wait_answers(port)
        created = _cli(
            self.ports[0], "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
            "--cluster-replicas", "1", "--cluster-yes", timeout=60,
        )
        if "[OK] All 16384 slots covered" not in created:
            self.stop()
            raise RuntimeError(f"redis-cli --cluster create failed:\n{created[-2000:]}")
        self.wait_ok()
        return self

    def start_node(self, port: int) -> None:
        """Start (or start again, empty: no persistence) the node on `port`."""
        node_dir = self.dir / str(port)
        node_dir.mkdir(exist_ok=True)
        exe = shutil.which("redis-server") or "redis-server"
        self.procs[port] = subprocess.Popen(
            [exe, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
             "--cluster-config-file", str(node_dir / "nodes.conf"), "--cluster-node-timeout", str(self.node_timeout_ms),
             "--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", str(node_dir),
             "--logfile", str(node_dir / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )

    def _wait_answers(self, port: int, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while "PONG" not in _cli(port, "ping", timeout=2):
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on {port} did not answer within {timeout} s (log: {self.dir / str(port)})")
            time.sleep(0.05)

    def wait_ok(self, timeout: float = 30) -> None:
        """Until every live node says cluster_state:ok (all slots served) and every replica has
        its primary's data (a replica that never synced refuses to take over: "Disconnected
        from master for longer than allowed")."""
        deadline = time.monotonic() + timeout
        while True:
            live = [p for p in self.ports if self.alive(p)]
            if all("cluster_state:ok" in _cli(p, "cluster", "info", timeout=2) for p in live) and all(
                "master_link_status:up" in info or "role:master" in info
                for info in (_cli(p, "info", "replication", timeout=2) for p in live)
            ):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Redis Cluster on {self.ports} is not ok after {timeout} s")
            time.sleep(0.1)

    def alive(self, port: int) -> bool:
        proc = self.procs.get(port)
        return proc is not None and proc.poll() is None

    def primaries(self) -> list[int]:
        """Ports of the nodes that are primaries now (as a live node sees it)."""
        seen = next(p for p in self.ports if self.alive(p))
        found = []
        for line in _cli(seen, "cluster", "nodes").splitlines():
            parts = line.split()
            if len(parts) > 2 and "master" in parts[2] and "fail" not in parts[2]:
                found.append(int(parts[1].split("@")[0].rsplit(":", 1)[1]))
        return sorted(found)

    def primary_of(self, key: str) -> int:
        """The port of the primary serving `key`'s slot now."""
        slot = int(_cli(self.ports[0] if self.alive(self.ports[0]) else self.primaries()[0], "cluster", "keyslot", key))
        seen = next(p for p in self.ports if self.alive(p))
        for line in _cli(seen, "cluster", "nodes").splitlines():
            parts = line.split()
            if len(parts) > 8 and "master" in parts[2] and "fail" not in parts[2]:
                for span in parts[8:]:
                    low, _, high = span.partition("-")
                    if low.isdigit() and int(low) <= slot <= int(high or low):
                        return int(parts[1].split("@")[0].rsplit(":", 1)[1])
        raise RuntimeError(f"no primary serves slot {slot}")

    def pids(self) -> dict[str, int]:
        """label -> pid of every node process running now."""
        return {f"redis-{port}": proc.pid for port, proc in self.procs.items() if proc.poll() is None}

    def kill9(self, port: int) -> None:
        proc = self.procs[port]
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()

    def stop(self) -> None:
        """Kill every node (nothing is kept: SIGTERM would have each primary wait for its
        replicas, up to Redis's shutdown-timeout of 10 s) and delete their directory."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
        for proc in self.procs.values():
            proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "RedisCluster6":
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-port", type=int, default=DEFAULT_BASE_PORT,
                        help="first client port (six consecutive; the next free block of ten if taken)")
    parser.add_argument("--node-timeout-ms", type=int, default=DEFAULT_NODE_TIMEOUT_MS,
                        help="cluster-node-timeout: how long before a dead primary's replica takes over")
    args = parser.parse_args()
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})  # for sigwait below
    cluster = RedisCluster6(free_base_port(args.base_port), args.node_timeout_ms)
    cluster.start()
    try:
        print(f"Redis Cluster up: nodes 127.0.0.1:{cluster.ports[0]}-{cluster.ports[-1]}, primaries {cluster.primaries()}")
        print("point Parley at it with:")
        for name, value in cluster.env().items():
            print(f"  export {name}={value}")
        print("Ctrl-C stops it (its data goes with it)")
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
