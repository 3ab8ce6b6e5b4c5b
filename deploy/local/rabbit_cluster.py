"""A three-node RabbitMQ cluster on loopback ports, from Debian's rabbitmq-server (issue 27).

    python -m deploy.local.rabbit_cluster                        # start it, print PARLEY_AMQP_URL, wait for Ctrl-C
    python -m deploy.local.rabbit_cluster -- python -m deploy.local.devstack run
                                                                 # ... and run a command on it (`make rabbit-cluster`)

Each node is `parley-rN@localhost` (with a suffix in tests) with its own AMQP and Erlang
distribution port, its own database and logs under one directory, and no plugins; the three share
an Erlang cookie through HOME/.erlang.cookie in that directory. They start in parallel (an Erlang
VM takes 10-20 s to boot on a busy 2-core machine), then nodes 2 and 3 join node 1. The machine's
own RabbitMQ (rabbit@localhost on 5672) and epmd are shared, never touched.

`RabbitCluster` is what tests/integration/test_rabbit_cluster.py and the fault suite drive: they
kill -9 a node (`kill`), start it again on the same ports and database (`start_node`: it rejoins
the cluster by itself), and ask which node leads a quorum queue (`leaders`).
It needs root (or the rabbitmq user's rights) and rabbitmq-server installed
(deploy/local/ensure-infra.sh installs it).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from deploy.local.devstack import free_port, wait_for_port

SBIN = Path("/usr/lib/rabbitmq/bin")  # Debian's scripts (the /usr/sbin wrappers su to the rabbitmq user)


class ClusterError(RuntimeError):
    """A node did not start, or a rabbitmqctl command failed."""


class ClusterUnavailable(ClusterError):
    """rabbitmq-server is missing or cannot run here (not root): no cluster at all."""


def _tool(name: str) -> str:
    path = SBIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if found is None:
        raise ClusterUnavailable(f"{name} is not installed: apt-get install rabbitmq-server (deploy/local/ensure-infra.sh)")
    return found


@dataclass
class Node:
    index: int
    name: str  # parley-r1@localhost
    amqp_port: int
    dist_port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class RabbitCluster:
    """Three nodes (or `size`) under `base` (a temporary directory when None, removed by stop())."""

    def __init__(self, base: Path | None = None, size: int = 3, ports: list[int] | None = None, suffix: str | None = None,
                 start_timeout: float = 180.0):
        self.own_dir = base is None
        self.base = Path(tempfile.mkdtemp(prefix="parley-rabbit-cluster-")) if base is None else base.resolve()
        self.start_timeout = start_timeout
        tag = f"-{suffix}" if suffix else ""
        amqp = ports or [free_port() for _ in range(size)]
        # Erlang's distribution ports: fixed ones beside fixed AMQP ports (make), else free ones.
        dist = [p + 20000 for p in amqp] if ports else [free_port() for _ in range(size)]
        self.nodes = [Node(i, f"parley-r{i + 1}{tag}@localhost", amqp[i], dist[i]) for i in range(size)]

    # --- addresses ----------------------------------------------------------------------------
    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    @property
    def amqp_url(self) -> str:
        """PARLEY_AMQP_URL for the cluster: every node, comma separated."""
        return ",".join(self.urls)

    # --- lifecycle ----------------------------------------------------------------------------
    def _env(self, node: Node) -> dict[str, str]:
        d = self.base / f"r{node.index + 1}"
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith("RABBITMQ_")},
            "HOME": str(self.base),  # .erlang.cookie: the same for the nodes and rabbitmqctl
            "RABBITMQ_CONF_ENV_FILE": str(self.base / "rabbitmq-env.conf"),  # not /etc/rabbitmq's
            "RABBITMQ_NODENAME": node.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(node.amqp_port),
            "RABBITMQ_DIST_PORT": str(node.dist_port),
            "RABBITMQ_MNESIA_BASE": str(d / "mnesia"),
            "RABBITMQ_LOG_BASE": str(d / "log"),
            "RABBITMQ_PID_FILE": str(d / "rabbit.pid"),
            "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    def _prepare(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        cookie = self.base / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(secrets.token_hex(16).upper())
            cookie.chmod(0o400)
        (self.base / "rabbitmq-env.conf").write_text("")
        (self.base / "enabled_plugins").write_text("[].\n")  # no management, no prometheus: no more ports
        for node in self.nodes:
            d = self.base / f"r{node.index + 1}"
            d.mkdir(exist_ok=True)
            (d / "rabbitmq.conf").write_text(f"listeners.tcp.default = 127.0.0.1:{node.amqp_port}\n")

    def start_node(self, index: int) -> None:
        """Start (or start again, on its database: it rejoins the cluster) one node; back once it takes AMQP."""
        node = self.nodes[index]
        if node.running:
            return
        with open(self.base / f"r{index + 1}" / "server.out", "ab") as out:
            node.proc = subprocess.Popen([_tool("rabbitmq-server")], env=self._env(node), cwd=self.base, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for_port(node.amqp_port, self.start_timeout, f"RabbitMQ node {node.name}")
        except RuntimeError as exc:
            raise ClusterError(f"{exc}; its output: {self.base / f'r{index + 1}' / 'server.out'}") from None
        if node.proc.poll() is not None:
            raise ClusterError(f"{node.name} exited during start-up: see {self.base / f'r{index + 1}'}")

    def start(self) -> RabbitCluster:
        """Every node at once, then the others join the first: back when the cluster has them all."""
        if os.geteuid() != 0:
            raise ClusterUnavailable("starting RabbitMQ nodes needs root here (their files, epmd)")
        _tool("rabbitmq-server")
        self._prepare()
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            list(pool.map(self.start_node, range(len(self.nodes))))
        # One join at a time: two nodes joining at once race on the first's schema (seen in CI on
        # RabbitMQ 3.10: start_app failed with {badmatch,{error,{normal,{mnesia_app,start,...}}}}).
        for node in self.nodes[1:]:
            self._join_first(node)
        running = self.running_nodes(0)
        if sorted(running) != sorted(n.name for n in self.nodes):
            raise ClusterError(f"the cluster formed with {running} only")
        return self

    def _join_first(self, node: Node, attempts: int = 3) -> None:
        """Join node 1; a join that fails (mnesia refusing to start after it) is reset and tried again."""
        first = self.nodes[0].name
        if first in self.running_nodes(node.index):
            return  # a cluster started before in this directory
        for attempt in range(1, attempts + 1):
            try:
                self.ctl(node.index, "stop_app")
                self.ctl(node.index, "join_cluster", first)
                self.ctl(node.index, "start_app")
                return
            except ClusterError as exc:
                if attempt == attempts:
                    raise
                print(f"rabbit-cluster: {node.name} did not join ({exc}); resetting it, attempt {attempt + 1}",
                      file=sys.stderr, flush=True)
                with contextlib.suppress(ClusterError):
                    self.ctl(node.index, "stop_app")
                try:
                    self.ctl(node.index, "reset")
                except ClusterError:  # half joined: node 1 forgets it, then its own database is wiped
                    with contextlib.suppress(ClusterError):
                        self.ctl(0, "forget_cluster_node", node.name)
                    self.ctl(node.index, "force_reset")
                time.sleep(1)

    def kill(self, index: int) -> None:
        """kill -9 the node's Erlang VM (and the script above it)."""
        node = self.nodes[index]
        if node.proc is None:
            return
        try:
            procs = [psutil.Process(node.proc.pid), *psutil.Process(node.proc.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            procs = []
        with contextlib.suppress(ProcessLookupError):
            os.killpg(node.proc.pid, signal.SIGKILL)
        node.proc.wait()
        psutil.wait_procs(procs, timeout=10)  # the VM itself, not only the script: its ports are free after
        node.proc = None

    def stop(self) -> None:
        for node in self.nodes:
            if node.running:
                assert node.proc is not None
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(node.proc.pid, signal.SIGTERM)
        for node in self.nodes:
            if node.proc is not None:
                try:
                    node.proc.wait(30)
                except subprocess.TimeoutExpired:
                    self.kill(node.index)
                node.proc = None
        if self.own_dir:
            shutil.rmtree(self.base, ignore_errors=True)

    # --- questions ----------------------------------------------------------------------------
    def ctl(self, index: int, *args: str, tool: str = "rabbitmqctl", timeout: float = 90) -> str:
        node = self.nodes[index]
        done = subprocess.run([_tool(tool), "-n", node.name, *args], env=self._env(node), capture_output=True,
                              text=True, timeout=timeout)
        if done.returncode != 0:
            raise ClusterError(f"{tool} -n {node.name} {' '.join(args)} failed ({done.returncode}): "
                                     f"{(done.stderr or done.stdout).strip()[:400]}")
        return done.stdout

    def running_nodes(self, index: int) -> list[str]:
        status = json.loads(self.ctl(index, "cluster_status", "--formatter", "json"))
        return list(status.get("running_nodes", []))

    def live_index(self) -> int:
        for node in self.nodes:
            if node.running:
                return node.index
        raise ClusterError("no node of the cluster is running")

    def quorum_queues(self, prefix: str = "") -> dict[str, dict[str, Any]]:
        """Quorum queue name -> its `leader` and `members` (node names), for queues named `prefix`..."""
        out = self.ctl(self.live_index(), "list_queues", "name", "type", "leader", "members", "--formatter", "json", "-q")
        return {q["name"]: q for q in json.loads(out) if q.get("type") == "quorum" and q["name"].startswith(prefix)}

    def leaders(self, prefix: str = "") -> dict[str, str]:
        """Quorum queue name -> the node leading it (queues named `prefix`...)."""
        return {name: q["leader"] for name, q in self.quorum_queues(prefix).items()}

    def pids(self) -> dict[str, int]:
        """Node name -> pid of the script that runs it (the Erlang VM is its child)."""
        return {n.name: n.proc.pid for n in self.nodes if n.proc is not None and n.running}

    def index_of(self, node_name: str) -> int:
        return next(n.index for n in self.nodes if n.name == node_name)


def _restart_dead(cluster: RabbitCluster, after: float) -> None:
    """A node found dead is started again `after` s later (on its database: it rejoins the cluster)."""
    while True:
        time.sleep(1)
        for node in cluster.nodes:
            if node.proc is None or node.proc.poll() is None:
                continue
            print(f"rabbit-cluster: {node.name} died (exit {node.proc.returncode}); starting it again in {after:.0f} s",
                  flush=True)
            node.proc = None
            time.sleep(after)
            try:
                cluster.start_node(node.index)
                print(f"rabbit-cluster: {node.name} is back: kill -9 -- -{cluster.pids()[node.name]}", flush=True)
            except ClusterError as exc:
                print(f"rabbit-cluster: {node.name} did not come back: {exc}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=Path(".run/rabbit-cluster"), help="the nodes' databases and logs")
    parser.add_argument("--ports", default="5681,5682,5683", help="AMQP ports (distribution: each + 20000)")
    parser.add_argument("--restart-after", type=float, default=10.0,
                        help="start a node that died (say, killed -9 by hand) again after this many seconds; 0: never")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="run this with PARLEY_AMQP_URL set, then stop")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    cluster = RabbitCluster(args.dir, ports=[int(p) for p in args.ports.split(",")])
    print(f"starting RabbitMQ nodes {', '.join(n.name for n in cluster.nodes)} under {cluster.base} ...", flush=True)
    started = time.monotonic()

    def stop(*_: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    code = 0
    try:
        cluster.start()
        env = {"PARLEY_AMQP_URL": cluster.amqp_url, "PARLEY_QUEUE_TYPE": "quorum"}
        print(f"cluster of {len(cluster.nodes)} up in {time.monotonic() - started:.0f} s; use it with\n  "
              + " ".join(f"{k}={v}" for k, v in env.items()), flush=True)
        for node in cluster.nodes:
            print(f"  {node.name}: AMQP {node.amqp_port}, logs {cluster.base / f'r{node.index + 1}' / 'log'}; fail it: "
                  f"kill -9 -- -{cluster.pids()[node.name]}", flush=True)
        if args.restart_after > 0:
            threading.Thread(target=_restart_dead, args=(cluster, args.restart_after), daemon=True).start()
        print("Ctrl-C stops " + ("the command, then " if command else "") + "the cluster", flush=True)
        if command:
            child = subprocess.Popen(command, env={**os.environ, **env})
            # Ctrl-C reaches the command from the terminal (it stops itself, in order); then ours.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, lambda *_: child.terminate())
            code = child.wait()
        else:
            signal.pause()
    except ClusterError as exc:
        print(f"rabbit-cluster: {exc}", file=sys.stderr, flush=True)
        code = 1
    except KeyboardInterrupt:
        pass
    finally:
        print("stopping the cluster ...", flush=True)
        cluster.stop()
    sys.exit(code)


if __name__ == "__main__":
    main()
