"""Fault-injection harness: a stack of its own, a load of clients that follow PROTOCOL.md, faults
one at a time, and the checks that say whether anything acknowledged was lost.

Used by tests/integration/test_chaos.py (`make test`, bounded), bench/chaos.py (`make chaos`)
and bench/soak.py (`make soak`).

The stack (`ChaosStack`) is private so that its faults are real and hurt nobody else:
- its own PARLEY_NAMESPACE and MongoDB database;
- its own Redis: `redis-server --save "" --appendonly no` on a free port, so "Redis restarts
  empty" is what happens when it is killed and started again on the same port;
- its own embedded MongoDB-wire server (secantusd-py) storing on disk in a temporary
  directory, on a fixed port, so `kill -9` and a restart on the same port and storage is real;
- the machine's RabbitMQ (the broker fault is `rabbitmqctl stop_app` / `start_app`: it stops
  every stack's broker for a few seconds, so only the broker scenario does it, and always
  starts it again);
- two gateways and two chat replicas (deploy.local.devstack.Stack, its class API only).

The load (`Load`): users in pairs of friends (and one small group), each one device, each
sending at a steady rate. Each device is the project's client library (clients/python,
`parley_client.ParleyClient` with reconnect=True), which does what PROTOCOL.md says: on `unavailable` or a reply timeout
they send again with the SAME client_msg_id (bounded, with backoff); when their socket closes
they reconnect to the next gateway, `auth.resume` with their token, take the sync (`message.new`
... `sync.done`) and send again what got no reply; they acknowledge (`message.ack`) the
contiguous prefix they hold, drop duplicates by (conversation_id, seq), and answer the
server's pings (the websockets library does). Every send attempt is recorded (start, end,
outcome: `ok`, an error code, `timeout`, `closed`, `offline`), and every message received (live, or
in a reconnect's sync).

After a fault (`Load.verify`): the load stops, clients reconnect and sync, then history.fetch
(paged) of every conversation is compared with what senders were told and receivers hold:
lost (acknowledged but not stored as acknowledged), stored twice (a message's text twice),
seq gaps, undelivered (acknowledged but never reached a receiver during the run, live or by a
reconnect's sync), missing even after a final forced re-sync, `internal` replies, the revoked
token still refused, and recovery times (`recovery()`).
"""
from __future__ import annotations

import asyncio
import itertools
import math
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

import parley_client
from parley_client import ParleyClient
from parley_client.models import Message, Recipient

from deploy.local.redis_cluster import RedisCluster6
from deploy.local.devstack import EMBEDDED_MONGO_OPTIONS, DevSettings, Stack, embedded_mongo_argv, free_port, wait_for_port
from shared.settings import Settings
from tests.support.infra import tuned_for_tests

PASSWORD = "correct horse battery"
ROOT = Path(__file__).resolve().parents[2]
REPLY_TIMEOUT = 6.0  # the stack's RPC timeout is 5 s: a reply later than this is not coming


# ---------------------------------------------------------------------------------------------
# The stack
# ---------------------------------------------------------------------------------------------
class RabbitUnavailable(RuntimeError):
    """rabbitmqctl is missing or does not work here: the broker scenario cannot run."""


def rabbitmqctl(*args: str, timeout: float = 60) -> None:
    exe = shutil.which("rabbitmqctl")
    if exe is None:
        raise RabbitUnavailable("rabbitmqctl is not installed: the RabbitMQ outage scenario cannot run")
    if os.geteuid() != 0:
        raise RabbitUnavailable("rabbitmqctl needs root here: the RabbitMQ outage scenario cannot run")
    done = subprocess.run([exe, *args], capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RabbitUnavailable(f"rabbitmqctl {' '.join(args)} failed ({done.returncode}): "
                                f"{(done.stderr or done.stdout).strip()[:300]}")


class ChaosStack:
    """A stack of its own, with a Redis and a MongoDB-wire server it may kill."""

    def __init__(self, log_path: Path, gateways: int = 2, chats: int = 2, extra_env: dict[str, str] | None = None,
                 mongo_options: str = EMBEDDED_MONGO_OPTIONS, redis_cluster: bool = False, amqp_url: str | None = None):
        """`amqp_url`: a broker of the caller's (a cluster's node URLs, comma separated) instead
        of PARLEY_AMQP_URL or the machine's."""
        self.tmp = Path(tempfile.mkdtemp(prefix="parley-chaos-"))
        self.log_path = log_path
        self.namespace = f"c{secrets.token_hex(4)}"
        self.redis_port = free_port()
        self.mongo_port = free_port()
        self.mongo_dir = self.tmp / "mongo"
        self.mongo_dir.mkdir()
        self.redis: subprocess.Popen[bytes] | None = None
        self.mongo: subprocess.Popen[bytes] | None = None
        self.env = {
            "PARLEY_NAMESPACE": self.namespace,
            "PARLEY_MONGO_URL": f"mongodb://127.0.0.1:{self.mongo_port}/" + (f"?{mongo_options}" if mongo_options else ""),
            "PARLEY_MONGO_DB": f"parley_{self.namespace}",
            "PARLEY_AMQP_URL": amqp_url or os.environ.get("PARLEY_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"),
            "PARLEY_REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            **tuned_for_tests(),
            **(extra_env or {}),
        }
        # redis_cluster: a six-node Redis Cluster of its own instead of one Redis (fault:
        # `redis_primary_kill`); `redis` is then None.
        self.cluster = RedisCluster6(node_timeout_ms=1000) if redis_cluster else None
        if self.cluster is not None:
            self.env.update(self.cluster.env())
        self.settings = Settings(**{k.removeprefix("PARLEY_").lower(): v for k, v in self.env.items()})
        self.sink: IO[str] | None = None
        self.stack: Stack | None = None
        self.gateways, self.chats = gateways, chats
        self.gateway_ports = [free_port() for _ in range(gateways)]

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.sink = open(self.log_path, "w")
        self.start_redis()
        self.start_mongo()
        self.stack = Stack(env=self.env, dev=DevSettings(gateways=self.gateways, chats=self.chats,
                                                         ready_timeout_seconds=120, data_dir=self.tmp), sink=self.sink)
        self.stack.gateway_ports = self.gateway_ports
        self.stack.start_all()
        self.stack.wait_ready()

    async def astop(self) -> None:
        """Stop every process, remove the namespace's queues and exchanges, delete the storage."""
        try:
            if self.stack is not None:
                await asyncio.to_thread(self.stack.stop_all)
                self.stack = None
            with suppress(Exception):
                await asyncio.wait_for(self._remove_namespace(), 15)
        finally:
            for proc in (self.redis, self.mongo):
                if proc is not None and proc.poll() is None:
                    proc.kill()
                    proc.wait()
            if self.cluster is not None:
                self.cluster.stop()
            if self.sink is not None:
                self.sink.close()
                self.sink = None
            shutil.rmtree(self.tmp, ignore_errors=True)

    async def _remove_namespace(self) -> None:
        from tests.support.infra import remove_namespace

        await remove_namespace(self.settings)

    def log(self, text: str) -> None:
        if self.sink is not None:
            self.sink.write(f"{'chaos':<10}| {time.strftime('%H:%M:%S')} {text}\n")
            self.sink.flush()

    # --- processes ----------------------------------------------------------------------------
    def start_redis(self) -> None:
        if self.cluster is not None:
            self.cluster.start()
            return
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is not installed: the chaos stack needs a Redis of its own")
        self.redis = subprocess.Popen(
            [exe, "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.tmp)],
            stdout=self.sink, stderr=subprocess.STDOUT, start_new_session=True,
        )
        wait_for_port(self.redis_port, 20, "redis-server")

    def start_mongo(self) -> None:
        argv = embedded_mongo_argv(self.mongo_port, str(self.mongo_dir))
        if argv is None:
            raise RuntimeError("secantusd-py is not installed (pip install -e '.[local]')")
        self.mongo = subprocess.Popen(
            argv,
            stdout=self.sink, stderr=subprocess.STDOUT, start_new_session=True,
        )
        wait_for_port(self.mongo_port, 60, "the embedded MongoDB-wire server")

    @staticmethod
    def _kill9(proc: subprocess.Popen[bytes] | None) -> None:
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()

    def kill_redis(self) -> None:
        self.log("kill -9 redis")
        self._kill9(self.redis)

    def kill_mongo(self) -> None:
        self.log("kill -9 mongo")
        self._kill9(self.mongo)

    def kill(self, name: str, index: int) -> None:
        assert self.stack is not None
        key = f"{name}{index + 1}"
        self.log(f"kill -9 {key}")
        self.stack.procs[key].kill()

    def restart(self, name: str, index: int) -> None:
        assert self.stack is not None
        self.log(f"start {name}{index + 1}")
        self.stack.service(name, index)

    def pids(self) -> dict[str, int]:
        """label -> pid of every process of the stack (services, redis, mongo)."""
        out: dict[str, int] = {}
        if self.stack is not None:
            for key, proc in sorted(self.stack.procs.items()):
                if proc.popen is not None and proc.running:
                    out[key] = proc.popen.pid
        for label, proc in (("mongo", self.mongo), ("redis", self.redis)):
            if proc is not None and proc.poll() is None:
                out[label] = proc.pid
        if self.cluster is not None:
            out.update(self.cluster.pids())
        return out

    async def readiness_while_down(self) -> list[dict[str, Any]]:
        """/readyz of every gateway at once while a backend is away: what a load balancer sees
        (the issue: 200 with RabbitMQ down; more than 3 s with MongoDB down)."""
        return list(await asyncio.gather(*(asyncio.to_thread(self._probe_ready, p) for p in self.gateway_ports)))

    @staticmethod
    def _probe_ready(port: int) -> dict[str, Any]:
        import urllib.error
        import urllib.request

        started = time.perf_counter()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as resp:
                status = resp.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except OSError:
            status = 0
        return {"port": port, "status": status, "seconds": round(time.perf_counter() - started, 2)}

    def ready(self, port: int, timeout: float = 2) -> bool:
        import urllib.request

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=timeout) as resp:
                return resp.status == 200
        except OSError:
            return False


# ---------------------------------------------------------------------------------------------
# Faults: each returns the episodes it caused, times on time.perf_counter()
# ---------------------------------------------------------------------------------------------
@dataclass
class Episode:
    label: str
    t_fault: float
    t_back: float
    ref: str  # "back" (outage: measured from the component's return) or "fault" (a replica died)
    # /readyz of each gateway while the component was away (outages only).
    readiness: list[dict[str, Any]] = field(default_factory=list)

    @property
    def t_ref(self) -> float:
        return self.t_back if self.ref == "back" else self.t_fault


Fault = Callable[[ChaosStack], Awaitable[list[Episode]]]


def now() -> float:
    return time.perf_counter()


def rabbit_outage(seconds: float = 12.0) -> Fault:
    async def fault(stack: ChaosStack) -> list[Episode]:
        stack.log(f"rabbitmqctl stop_app for {seconds} s")
        # The fault starts when the broker starts stopping: sends fail while `stop_app` runs
        # (a second or so), and they belong to this episode, not to the one before it.
        t_fault = now()
        await asyncio.to_thread(rabbitmqctl, "stop_app")
        try:
            await asyncio.sleep(min(2.0, seconds / 2))
            readiness = await stack.readiness_while_down()
            await asyncio.sleep(max(0.0, seconds - (now() - t_fault)))
        finally:
            await asyncio.to_thread(rabbitmqctl, "start_app")
        t_back = now()
        stack.log("rabbitmqctl start_app done")
        return [Episode("rabbitmq stop_app/start_app", t_fault, t_back, "back", readiness)]

    return fault


def redis_primary_kill() -> Fault:
    """A Redis Cluster primary killed -9 (a stack with redis_cluster=True): its replica takes
    over; the episode ends when every slot is served again. The killed node is then started
    again (it rejoins as the new primary's replica), so the stack is whole for what follows."""
    async def fault(stack: ChaosStack) -> list[Episode]:
        assert stack.cluster is not None, "redis_primary_kill needs ChaosStack(redis_cluster=True)"
        victim = stack.cluster.primaries()[0]
        stack.log(f"kill -9 redis primary {victim}")
        t_fault = now()
        stack.cluster.kill9(victim)
        await asyncio.sleep(0.5)
        await asyncio.to_thread(stack.cluster.wait_ok)
        t_back = now()
        stack.log(f"redis cluster ok again after {t_back - t_fault:.1f} s; restarting {victim} as a replica")
        stack.cluster.start_node(victim)
        # Measured from the kill: what users see includes the failover itself.
        return [Episode(f"redis primary {victim} kill -9, replica promoted", t_fault, t_back, "fault")]

    return fault


def redis_restart(down: float = 2.0) -> Fault:
    async def fault(stack: ChaosStack) -> list[Episode]:
        stack.kill_redis()
        t_fault = now()
        await asyncio.sleep(down)
        await asyncio.to_thread(stack.start_redis)
        stack.log("redis started again (empty)")
        return [Episode("redis kill -9, restarted empty", t_fault, now(), "back")]

    return fault


def mongo_restart(down: float = 2.0) -> Fault:
    async def fault(stack: ChaosStack) -> list[Episode]:
        stack.kill_mongo()
        t_fault = now()
        readiness = await stack.readiness_while_down()
        await asyncio.sleep(max(0.0, down - (now() - t_fault)))
        await asyncio.to_thread(stack.start_mongo)
        stack.log("mongo started again (same port, same storage)")
        return [Episode("mongo kill -9, restarted", t_fault, now(), "back", readiness)]

    return fault


def replica_kills(name: str, times: int = 2, down: float = 1.0, between: float = 6.0) -> Fault:
    """kill -9 a replica of `name` (alternating between them), restart it `down` s later; `times` times."""

    async def fault(stack: ChaosStack) -> list[Episode]:
        episodes = []
        count = stack.gateways if name == "gateway" else stack.chats
        for k in range(times):
            if k:
                await asyncio.sleep(between)
            index = (count - 1 - k) % count
            stack.kill(name, index)
            t_fault = now()
            await asyncio.sleep(down)
            stack.restart(name, index)
            if name == "gateway":
                deadline = now() + 60
                while not await asyncio.to_thread(stack.ready, stack.gateway_ports[index]) and now() < deadline:
                    await asyncio.sleep(0.2)
            episodes.append(Episode(f"{name}{index + 1} kill -9 #{k + 1}", t_fault, now(), "fault"))
        return episodes

    return fault


# ---------------------------------------------------------------------------------------------
# The load
# ---------------------------------------------------------------------------------------------
@dataclass
class Attempt:
    sender: str
    start: float
    end: float
    outcome: str  # "ok", an error code, "timeout", "closed", "offline"


@dataclass
class Sent:
    cmid: str
    sender: str
    text: str
    to: dict[str, str]
    first_try: float
    reply: dict[str, Any] | None = None
    acked_at: float | None = None
    attempts: int = 0
    given_up: bool = False


class Device:
    """One user's one device: the client library (clients/python) with `reconnect=True` over the
    stack's gateways, starting at its own: it keeps a socket bound (next gateway, auth.resume,
    the sync), drops duplicates, acknowledges its unbroken runs every 0.5 s and retries sends
    with their client_msg_id. This layer records what arrived, and how, for the checks."""

    def __init__(self, load: "Load", name: str, index: int):
        self.load = load
        self.name = name
        first = index % len(load.ports)
        ports = load.ports[first:] + load.ports[:first]
        self.username = f"{name}_{secrets.token_hex(4)}"
        self.client = ParleyClient([f"ws://127.0.0.1:{p}/ws" for p in ports], device_id="app", reconnect=True,
                                   request_timeout=REPLY_TIMEOUT, sync_timeout=15, keep_pushes=False,
                                   open_timeout=5, ping_interval=None, close_timeout=2)
        self.client.on_message = self._keep
        self.client.on_close = lambda code: load.socket_closed(self, code)
        self.inbox: dict[str, dict[int, tuple[str, float, str]]] = defaultdict(dict)  # conv -> seq -> (text, t, how)
        self.call_errors: Counter[str] = Counter()  # error codes on set-up and check requests

    @property
    def user_id(self) -> str:
        return self.client.user_id or ""

    @property
    def token(self) -> str:
        return self.client.token or ""

    @property
    def ready(self) -> asyncio.Event:
        return self.client.ready

    @property
    def duplicates(self) -> int:
        return self.client.inbox.duplicates

    @property
    def reconnects(self) -> int:
        return self.client.stats.reconnects

    @property
    def resume_refused(self) -> int:
        return self.client.stats.resume_refused

    @property
    def close_codes(self) -> Counter[str]:
        return self.client.stats.close_codes

    @property
    def connect_failures(self) -> Counter[str]:
        return self.client.stats.connect_failures

    @property
    def other_errors(self) -> Counter[str]:
        """Error codes on acks, set-up and check requests."""
        return self.client.stats.errors + self.call_errors

    def _keep(self, m: Message, new: bool) -> None:
        if not new:
            return
        how = "final" if self.load.final_phase else ("sync" if self.client.syncing else "live")
        self.inbox[m["conversation_id"]][m["seq"]] = (m.get("text") or "", time.perf_counter(), how)
        self.load.delivered(self, m, how)

    async def call(self, kind: str, data: dict[str, Any], timeout: float = 15, retries: int = 30) -> dict[str, Any]:
        """A reply's data, retrying `unavailable`, timeouts and dropped sockets (set-up and checks)."""
        def note(attempt: parley_client.Attempt) -> None:
            if attempt.outcome not in ("ok", "timeout", "closed", "offline"):
                self.call_errors[f"{kind}:{attempt.outcome}"] += 1

        policy = parley_client.RetryPolicy(attempt_timeout=timeout, budget=math.inf, max_attempts=retries)
        return await self.client.call(kind, data, retry=policy, on_attempt=note)

    async def register_and_login(self) -> None:
        await self.client.connect()
        await self.client.register(self.username, PASSWORD)
        await self.client.login(self.username, PASSWORD)
        await self.client.wait_synced()
        self.client.start_acking(0.5)

    async def resync(self, timeout: float = 30) -> None:
        """Close the socket ourselves and wait for the reconnect's sync (the final check)."""
        await self.client.reconnect(timeout)

    async def close(self) -> None:
        await self.client.close()


@dataclass
class LoadConfig:
    pairs: int = 6
    group_size: int = 4  # members of one group (0: none); its members also send to it
    rate: float = 30.0  # messages a second, all senders together
    retry_budget: float = 40.0  # seconds one message is retried before the client gives up on it
    max_attempts: int = 40


class Load:
    """Users in pairs (and one group), every one sending at rate/len(users) a second."""

    def __init__(self, ports: list[int], config: LoadConfig, log: Callable[[str], None] = print):
        self.ports = ports
        self.config = config
        self.log = log
        self.devices: list[Device] = []
        self.friend: dict[str, Device] = {}
        self.group_id = ""
        self.group_members: list[Device] = []
        self.members: dict[str, set[str]] = {}  # conversation -> device names
        self.sent: dict[str, Sent] = {}
        self.attempts: list[Attempt] = []
        self.deliveries: list[tuple[float, float, str]] = []  # (t received perf, latency s, how)
        self.closures: list[tuple[float, int]] = []  # (loop time, code)
        self.stop_event = asyncio.Event()
        self.final_phase = False
        self.senders: list[asyncio.Task[None]] = []
        self.revoked_token = ""
        self.revoked_user = ""
        self.t0 = 0.0
        self.policy = parley_client.RetryPolicy(attempt_timeout=REPLY_TIMEOUT, wait_bound=REPLY_TIMEOUT,
                                                budget=config.retry_budget, max_attempts=config.max_attempts)

    # --- set-up ---------------------------------------------------------------------------------
    async def setup(self) -> None:
        n = self.config.pairs * 2
        self.devices = [Device(self, f"u{i}", i) for i in range(n)]
        sem = asyncio.Semaphore(4)

        async def start(d: Device) -> None:
            async with sem:
                await d.register_and_login()

        await asyncio.gather(*(start(d) for d in self.devices))
        for a, b in zip(self.devices[0::2], self.devices[1::2], strict=False):
            await a.call("friends.request", {"user_id": b.user_id})
            await b.call("friends.accept", {"user_id": a.user_id})
            self.friend[a.name], self.friend[b.name] = b, a
        if self.config.group_size >= 2:
            self.group_members = self.devices[: self.config.group_size]
            created = await self.group_members[0].call(
                "groups.create", {"name": "chaos", "member_ids": [d.user_id for d in self.group_members[1:]]})
            self.group_id = created["group_id"]
            self.members[created["conversation_id"]] = {d.name for d in self.group_members}
        # One token logged out for good: it must stay refused whatever happens.
        async with ParleyClient(f"ws://127.0.0.1:{self.ports[0]}/ws", request_timeout=30) as revoker:
            name = f"revoked_{secrets.token_hex(4)}"
            await revoker.register(name, PASSWORD)
            login = await revoker.login(name, PASSWORD)
            self.revoked_token, self.revoked_user = login["token"], login["user_id"]
            await revoker.logout()
        self.log(f"{n} users in {self.config.pairs} pairs, a group of {len(self.group_members)}, one revoked token")

    # --- callbacks from devices -------------------------------------------------------------
    def delivered(self, device: Device, m: dict[str, Any], how: str) -> None:
        text = m.get("text") or ""
        try:
            stamp = int(text.split(" ")[1]) / 1e9
        except (IndexError, ValueError):
            return
        t = time.perf_counter()
        self.deliveries.append((t, t - stamp, how))

    def sync_done(self, device: Device) -> None:
        pass

    def socket_closed(self, device: Device, code: int) -> None:
        self.closures.append((time.perf_counter(), code))

    # --- sending ----------------------------------------------------------------------------------
    def start(self) -> None:
        self.stop_event.clear()
        self.t0 = time.perf_counter()
        for d in self.devices:
            self.senders.append(asyncio.create_task(self._sender(d)))

    async def stop(self) -> None:
        """Stop sending; each sender finishes (or gives up on) the message it is on."""
        self.stop_event.set()
        await asyncio.wait(self.senders, timeout=self.config.retry_budget + REPLY_TIMEOUT + 5)
        for task in self.senders:
            task.cancel()
        self.senders = []

    async def _sender(self, d: Device) -> None:
        per_user = self.config.rate / len(self.devices)
        interval = 1.0 / per_user
        targets: list[dict[str, str]] = [{"user_id": self.friend[d.name].user_id}]
        if d in self.group_members:
            targets.append({"group_id": self.group_id})
        await asyncio.sleep(secrets.randbelow(1000) / 1000 * interval)
        next_at = time.perf_counter()
        for i in itertools.count():
            if self.stop_event.is_set():
                return
            to = targets[i % len(targets)]
            cmid = f"{d.name}-{i}-{secrets.token_hex(3)}"
            await self.send(d, to, cmid)
            next_at = max(next_at + interval, time.perf_counter())
            delay = next_at - time.perf_counter()
            if delay > 0:
                with suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.stop_event.wait(), delay)

    async def send(self, d: Device, to: dict[str, str], cmid: str) -> Sent:
        """message.send through the device's outbox: tried again with the SAME client_msg_id on
        `unavailable`, timeouts and lost sockets (PROTOCOL.md's retry rule), within the budget."""
        s = self.sent[cmid] = Sent(cmid, d.name, f"{cmid} {time.perf_counter_ns()}", to, time.perf_counter())

        def note(attempt: parley_client.Attempt) -> None:
            s.attempts += 1
            self.attempts.append(Attempt(d.name, attempt.started, attempt.ended, attempt.outcome))
            if attempt.outcome == "ok":
                s.acked_at = attempt.ended

        try:
            reply = await d.client.send(cast(Recipient, to), s.text, client_msg_id=cmid, policy=self.policy,
                                        on_attempt=note)
        except (parley_client.ParleyError, ConnectionError, TimeoutError):
            # Not retryable by the protocol's rules (`internal`, `bad_request`...), or out of budget: the app drops it.
            s.given_up = True
            return s
        s.reply = dict(reply)
        conv = reply["conversation_id"]
        if conv not in self.members:
            self.members[conv] = {d.name, self.friend[d.name].name}
        return s

    # --- after the fault ----------------------------------------------------------------------------
    async def settle(self, timeout: float = 20) -> float:
        """Every device bound again and holding what was acknowledged in its conversations
        (or `timeout` passed). Returns how long it took."""
        start = time.perf_counter()
        deadline = start + timeout
        while time.perf_counter() < deadline:
            if all(d.ready.is_set() for d in self.devices) and not self.undelivered():
                break
            await asyncio.sleep(0.2)
        return time.perf_counter() - start

    def acknowledged(self) -> list[Sent]:
        return [s for s in self.sent.values() if s.reply is not None]

    def undelivered(self) -> list[tuple[str, str, int]]:
        """(receiver, conversation, seq) acknowledged to its sender but not held by a receiver."""
        by_name = {d.name: d for d in self.devices}
        out = []
        for s in self.acknowledged():
            assert s.reply is not None
            conv, seq = s.reply["conversation_id"], s.reply["seq"]
            for name in self.members.get(conv, ()):
                if name != s.sender and seq not in by_name[name].inbox[conv]:
                    out.append((name, conv, seq))
        return out

    async def stored(self) -> dict[str, list[dict[str, Any]]]:
        """history.fetch, paged, of every conversation, by one of its members."""
        by_name = {d.name: d for d in self.devices}
        out: dict[str, list[dict[str, Any]]] = {}
        for conv, names in self.members.items():
            reader = by_name[min(names)]
            messages: list[dict[str, Any]] = []
            before: int | None = None
            while True:
                page = await reader.call("history.fetch", {"conversation_id": conv, "limit": 200,
                                                           **({"before_seq": before} if before else {})},
                                         timeout=8, retries=6)
                messages = page["messages"] + messages
                if not page["has_more"] or not page["messages"]:
                    break
                before = page["messages"][0]["seq"]
            out[conv] = messages
        return out

    async def revoked_refused(self) -> list[str]:
        """auth.resume with the logged-out token on every gateway: each answer's code (want `unauthorized`)."""
        answers = []
        for port in self.ports:
            answer = "no answer"
            for _ in range(8):
                try:
                    async with ParleyClient(f"ws://127.0.0.1:{port}/ws", request_timeout=REPLY_TIMEOUT,
                                            open_timeout=5, keep_pushes=False) as fresh:
                        reply = await fresh.request("auth.resume", {"token": self.revoked_token})
                    answer = "accepted" if reply["ok"] else reply["error"]["code"]
                except (parley_client.ParleyError, ConnectionError, TimeoutError) as exc:
                    answer = type(exc).__name__
                if answer not in ("unavailable", "RequestTimeout", "GatewayUnreachable", "ConnectionLost"):
                    break
                await asyncio.sleep(0.5)
            answers.append(answer)
        return answers

    async def close(self) -> None:
        for d in self.devices:
            await d.close()

    # --- figures --------------------------------------------------------------------------------------
    def outcomes(self, since: float = 0.0, until: float = float("inf")) -> Counter[str]:
        return Counter(a.outcome for a in self.attempts if since <= a.start < until)

    def recovery(self, ep: Episode, t_stop: float, threshold: float = 1.0) -> dict[str, Any]:
        """Seconds from the episode's reference time (the component back, or the replica killed) to:
        `first_ok` the first successful send; `all_ok` every user having sent successfully;
        `normal` the start of the first 1 s window from which every later window (until the
        load stopped or the next episode) had only successful sends with a send -> reply p99
        under `threshold` s (1 s, or 1.5x the warm-up's p99 on a machine slower than that)."""
        ref = ep.t_ref
        oks = [a for a in self.attempts if a.outcome == "ok" and a.end >= ref and a.start < t_stop]
        first_ok = min((a.end for a in oks), default=None)
        per_sender: dict[str, float] = {}
        for a in oks:
            per_sender[a.sender] = min(per_sender.get(a.sender, a.end), a.end)
        all_ok = max(per_sender.values()) if len(per_sender) == len(self.devices) else None
        windows: dict[int, list[Attempt]] = defaultdict(list)
        for a in self.attempts:
            if ref <= a.start and a.end <= t_stop:  # the next kill's casualties are the next episode's
                windows[int(a.start - ref)].append(a)
        normal: float | None = None
        for w in sorted(windows, reverse=True):
            items = windows[w]
            lat = sorted(a.end - a.start for a in items)
            p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))]
            if all(a.outcome == "ok" for a in items) and p99 < threshold:
                normal = float(w)
            else:
                break
        timeline = []  # per 1 s window from the reference: [second, attempts, not ok, p99 ms]
        for w in sorted(windows):
            lat = sorted(a.end - a.start for a in windows[w])
            timeline.append([w, len(lat), sum(a.outcome != "ok" for a in windows[w]),
                             round(lat[min(len(lat) - 1, int(0.99 * len(lat)))] * 1000)])
        return {
            "first_ok": None if first_ok is None else round(first_ok - ref, 2),
            "all_ok": None if all_ok is None else round(all_ok - ref, 2),
            "normal": normal,
            "timeline": timeline,
        }

    def send_latency(self, since: float, until: float, threshold: float = 1.0) -> dict[str, Any]:
        """send -> reply of the attempts started in [since, until): p50/p99 ms of the successful
        ones, and how many 1 s windows were "normal" (all successful, p99 under `threshold` s)."""
        items = [a for a in self.attempts if since <= a.start and a.end < until]
        lat = sorted(a.end - a.start for a in items if a.outcome == "ok")
        windows: dict[int, list[Attempt]] = defaultdict(list)
        for a in items:
            windows[int(a.start - since)].append(a)
        normal = 0
        for w in windows.values():
            ws = sorted(a.end - a.start for a in w)
            normal += all(a.outcome == "ok" for a in w) and ws[min(len(ws) - 1, int(0.99 * len(ws)))] < threshold
        return {
            "p50": round(lat[len(lat) // 2] * 1000, 1) if lat else None,
            "p99": round(lat[min(len(lat) - 1, int(0.99 * len(lat)))] * 1000, 1) if lat else None,
            "normal_windows": f"{normal}/{len(windows)}",
        }

    def latency(self, since: float, until: float) -> dict[str, float | None]:
        """send -> delivery (first arrival at a receiver) p50/p99 in ms, for deliveries in [since, until)."""
        lat = sorted(took for t, took, _ in self.deliveries if since <= t < until)
        if not lat:
            return {"p50": None, "p99": None, "n": 0}
        return {"p50": round(lat[len(lat) // 2] * 1000, 1), "p99": round(lat[min(len(lat) - 1, int(0.99 * len(lat)))] * 1000, 1),
                "n": len(lat)}


# Recovery bounds per fault, seconds: `first_ok` the first successful send, `all_ok` every user
# has sent successfully again, `normal` every later 1 s window all successful with p99 < 1 s
# (or < 1.5x the warm-up's p99 when the machine is slower than that before any fault).
# Measured from the component's return (broker, Redis, MongoDB) or from the kill (a gateway or a
# chat replica: the other replica is there all along).
BOUNDS: dict[str, dict[str, float]] = {
    "rabbitmq": {"first_ok": 10.0, "all_ok": 10.0, "normal": 10.0},  # issue 11: normal within 10 s of its return
    "redis": {"first_ok": 5.0, "all_ok": 5.0, "normal": 5.0},
    # From the kill of a primary (its replica promoted ~2-3 s later: cluster-node-timeout 1 s).
    "redis-cluster": {"first_ok": 10.0, "all_ok": 10.0, "normal": 10.0},
    "mongo": {"first_ok": 10.0, "all_ok": 10.0, "normal": 10.0},
    "gateway": {"first_ok": 2.0, "all_ok": 8.0, "normal": 8.0},
    "chat": {"first_ok": 3.0, "all_ok": 8.0, "normal": 8.0},
}

# /readyz while a backend is away: 503, within this (issue 11, point 6).
READYZ_SECONDS = 2.0


def repeated(fault: Fault, times: int, between: float) -> Fault:
    """The same fault `times` times, `between` s apart (load running throughout)."""

    async def many(stack: ChaosStack) -> list[Episode]:
        episodes: list[Episode] = []
        for k in range(times):
            if k:
                await asyncio.sleep(between)
            for ep in await fault(stack):
                ep.label = f"{ep.label} #{k + 1}" if times > 1 else ep.label
                episodes.append(ep)
        return episodes

    return many


# ---------------------------------------------------------------------------------------------
# One scenario, end to end
# ---------------------------------------------------------------------------------------------
@dataclass
class Report:
    name: str
    episodes: list[dict[str, Any]] = field(default_factory=list)
    acknowledged: int = 0
    given_up: int = 0
    attempts: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    gaps: list[str] = field(default_factory=list)
    undelivered: list[tuple[str, str, int]] = field(default_factory=list)
    missing_after_sync: list[tuple[str, str, int]] = field(default_factory=list)
    undelivered_sent: dict[str, float] = field(default_factory=dict)  # when those were acknowledged, s from the fault
    unacknowledged_stored: int = 0
    errors: dict[str, int] = field(default_factory=dict)  # message.send outcomes other than ok
    other_errors: dict[str, int] = field(default_factory=dict)  # acks, resumes...
    closed: dict[str, int] = field(default_factory=dict)  # sockets closed by the server, by code
    reconnects: int = 0
    resume_refused: int = 0
    duplicates_dropped: int = 0
    revoked: list[str] = field(default_factory=list)
    baseline_latency: dict[str, Any] = field(default_factory=dict)
    normal_threshold: float = 1.0  # seconds: send -> reply p99 counted as "normal" (see run_scenario)
    settle_seconds: float = 0.0
    check_error: str = ""
    seconds: float = 0.0

    def problems(self, bounds: dict[str, float]) -> list[str]:
        """What is wrong, in words: empty when the scenario passed."""
        out = []
        if self.check_error:
            out.append(f"could not check the stored messages: {self.check_error}")
        if self.lost:
            out.append(f"{len(self.lost)} acknowledged messages lost, e.g. {self.lost[:3]}")
        if self.duplicated:
            out.append(f"{len(self.duplicated)} messages stored twice, e.g. {self.duplicated[:3]}")
        if self.gaps:
            out.append(f"seq gaps: {self.gaps[:3]}")
        if self.undelivered:
            out.append(f"{len(self.undelivered)} acknowledged messages never reached a receiver during the run "
                       f"(live or by a reconnect's sync), e.g. {self.undelivered[:3]}; acknowledged to their senders "
                       f"between {self.undelivered_sent.get('first')} and {self.undelivered_sent.get('last')} s "
                       f"from the fault (median {self.undelivered_sent.get('median')})")
        if self.missing_after_sync:
            out.append(f"{len(self.missing_after_sync)} still missing after a forced re-sync, e.g. {self.missing_after_sync[:3]}")
        internal = {k: v for k, v in {**self.errors, **self.other_errors}.items() if k.endswith("internal")}
        if internal:
            out.append(f"`internal` replies while a backend was away (the protocol promises `unavailable`): {internal}")
        if any(r != "unauthorized" for r in self.revoked):
            out.append(f"the logged-out token was not refused: auth.resume answered {self.revoked}")
        if self.acknowledged == 0:
            out.append("no message was acknowledged at all")
        for ep in self.episodes:
            for probe in ep.get("readiness_while_down", []):
                if probe["status"] != 503 or probe["seconds"] > READYZ_SECONDS:
                    out.append(f"{ep['label']}: /readyz answered {probe['status']} in {probe['seconds']} s while the "
                               f"backend was away (want 503 within {READYZ_SECONDS} s)")
            for key, bound in bounds.items():
                value = ep["recovery"].get(key)
                if value is None or value > bound:
                    shown = "never (before the load stopped)" if value is None else f"{value} s"
                    out.append(f"{ep['label']}: {key} {shown}, bound {bound} s after the {ep['ref']}")
        return out

    def table_row(self) -> dict[str, Any]:
        return {
            "scenario": self.name,
            "acked": self.acknowledged,
            "lost": len(self.lost),
            "dup": len(self.duplicated),
            "gaps": len(self.gaps),
            "undelivered": len(self.undelivered),
            "missing after sync": len(self.missing_after_sync),
            "given up": self.given_up,
            "errors": ", ".join(f"{k} {v}" for k, v in sorted(self.errors.items())) or "-",
            "closed": ", ".join(f"{k}×{v}" for k, v in sorted(self.closed.items())) or "-",
            "revoked": "/".join(self.revoked),
            "recovery first_ok/all_ok/normal s": "; ".join(
                f"{e['recovery']['first_ok']}/{e['recovery']['all_ok']}/{e['recovery']['normal']}" for e in self.episodes),
        }


async def run_scenario(stack: ChaosStack, name: str, fault: Fault, config: LoadConfig, *, warmup: float = 5.0,
                       after: float = 12.0, settle: float = 20.0, log: Callable[[str], None] = print) -> Report:
    """Load, warm-up, the fault, `after` s of load once the component is back, stop, settle, check."""
    began = time.perf_counter()
    load = Load(stack.gateway_ports, config, log)
    report = Report(name)
    try:
        await load.setup()
        load.start()
        await asyncio.sleep(warmup)
        t_warm = time.perf_counter()
        report.baseline_latency = {"delivery": load.latency(load.t0 + 1, t_warm),
                                   "send": load.send_latency(load.t0 + 1, t_warm)}
        d, sl = report.baseline_latency["delivery"], report.baseline_latency["send"]
        # "Normal latency": send -> reply p99 under 1 s, or under 1.5x the warm-up's where this
        # machine (shared, 2 cores) is slower than that before any fault.
        threshold = report.normal_threshold = max(1.0, 1.5 * (sl["p99"] or 0) / 1000)
        log(f"[{name}] warm-up: {len(load.acknowledged())} acknowledged, delivery p50/p99 {d['p50']}/{d['p99']} ms, "
            f"send reply p50/p99 {sl['p50']}/{sl['p99']} ms, normal 1 s windows {sl['normal_windows']} "
            f"(normal: p99 < {threshold:.2f} s); injecting the fault")
        stack.log(f"scenario {name}: fault")
        episodes = await fault(stack)
        log(f"[{name}] fault over ({', '.join(e.label for e in episodes)}); load for {after} s more")
        await asyncio.sleep(after)
        t_stop = time.perf_counter()
        await load.stop()
        report.settle_seconds = round(await load.settle(settle), 1)
        for i, ep in enumerate(episodes):
            end = episodes[i + 1].t_fault if i + 1 < len(episodes) else t_stop
            report.episodes.append({"label": ep.label, "ref": "component's return" if ep.ref == "back" else "kill",
                                    "down_seconds": round(ep.t_back - ep.t_fault, 1),
                                    "readiness_while_down": ep.readiness,
                                    "recovery": load.recovery(ep, end, threshold)})
        await check(load, report, episodes[0].t_fault if episodes else None)
    finally:
        await load.close()
    report.seconds = round(time.perf_counter() - began, 1)
    log(f"[{name}] {summary(report)}")
    return report


async def check(load: Load, report: Report, t_fault: float | None = None) -> None:
    """After the load stopped and settled: the revoked token, the stored messages against what
    senders were told, a forced re-sync of every device, and the counts users saw."""
    report.undelivered = load.undelivered()
    if report.undelivered and t_fault is not None:
        # When were they sent, relative to the (first) fault: says which mechanism dropped them.
        sent_at = {(s.reply["conversation_id"], s.reply["seq"]): s.acked_at for s in load.acknowledged() if s.reply}
        times = sorted(sent_at[(c, q)] - t_fault for _, c, q in report.undelivered if sent_at.get((c, q)))
        if times:
            report.undelivered_sent = {"first": round(times[0], 2), "last": round(times[-1], 2),
                                       "median": round(times[len(times) // 2], 2)}
    report.revoked = await load.revoked_refused()
    try:
        stored = await load.stored()
    except Exception as exc:  # noqa: BLE001 - reported as a failure with its reason
        report.check_error = repr(exc)
        stored = {}
    _compare(load, stored, report, t_fault)
    report.reconnects = sum(d.reconnects for d in load.devices)  # during the run, not the re-sync below
    # Everything acknowledged must also come on a reconnect's sync (at-least-once).
    load.final_phase = True
    for d in load.devices:
        with suppress(asyncio.TimeoutError):
            await d.resync()
    report.missing_after_sync = load.undelivered()
    sends = load.attempts
    report.attempts = len(sends)
    report.errors = dict(Counter(a.outcome for a in sends if a.outcome != "ok"))
    other: Counter[str] = Counter()
    closed: Counter[str] = Counter()
    for d in load.devices:
        other.update(d.other_errors)
        other.update({f"reconnect:{k}": v for k, v in d.connect_failures.items()})
        closed.update(d.close_codes)
        report.resume_refused += d.resume_refused
        report.duplicates_dropped += d.duplicates
    report.other_errors, report.closed = dict(other), dict(closed)
    report.given_up = sum(1 for s in load.sent.values() if s.given_up)
    report.acknowledged = len(load.acknowledged())


def _compare(load: Load, stored: dict[str, list[dict[str, Any]]], report: Report, t_fault: float | None = None) -> None:
    texts: Counter[str] = Counter()
    by_conv: dict[str, dict[int, dict[str, Any]]] = {}
    for conv, messages in stored.items():
        seqs = [m["seq"] for m in messages]
        if seqs != list(range(1, len(seqs) + 1)):
            missing = sorted(set(range(1, max(seqs, default=0) + 1)) - set(seqs))
            report.gaps.append(f"{conv}: missing seq {missing[:10]} of {max(seqs, default=0)}")
        by_conv[conv] = {m["seq"]: m for m in messages}
        texts.update(m.get("text") or "" for m in messages)
    report.duplicated = [t.split(" ")[0] for t, n in texts.items() if n > 1]
    if not stored:
        return
    acked_texts = set()
    for s in load.acknowledged():
        assert s.reply is not None
        acked_texts.add(s.text)
        m = by_conv.get(s.reply["conversation_id"], {}).get(s.reply["seq"])
        if m is None or m.get("text") != s.text or m["message_id"] != s.reply["message_id"]:
            when = "" if t_fault is None or s.acked_at is None else f" (acknowledged {s.acked_at - t_fault:+.2f} s from the fault)"
            report.lost.append(f"{s.cmid} seq {s.reply['seq']}{when}")
    report.unacknowledged_stored = sum(1 for t in texts if t not in acked_texts)


def summary(r: Report) -> str:
    eps = "; ".join(f"{e['label']}: first ok {e['recovery']['first_ok']} s, every user {e['recovery']['all_ok']} s, "
                    f"normal (p99 < {r.normal_threshold:.2f} s) from {e['recovery']['normal']} s"
                    + "".join(f", /readyz while down {p['status']} in {p['seconds']} s" for p in e.get("readiness_while_down", []))
                    for e in r.episodes)
    return (f"acked {r.acknowledged} (given up {r.given_up}, attempts {r.attempts}); lost {len(r.lost)}, "
            f"stored twice {len(r.duplicated)}, gaps {len(r.gaps)}, undelivered {len(r.undelivered)}, "
            f"missing after re-sync {len(r.missing_after_sync)}; send errors {r.errors or '{}'}; "
            f"other errors {r.other_errors or '{}'}; closed {r.closed or '{}'}; reconnects {r.reconnects}; "
            f"resume refused {r.resume_refused}; revoked token: {r.revoked}; {eps}"
            + (f"; CHECK ERROR {r.check_error}" if r.check_error else ""))
