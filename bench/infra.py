"""--private-infra: a RabbitMQ node and a Redis of the benchmark's own, on free ports.

Why: the machine's RabbitMQ and Redis are shared with whatever else runs here, the test suite
above all, whose fault tests stop the broker (`rabbitmqctl stop_app`) and empty Redis: a run
that overlaps them measures the faults, and the CPU read from the shared beam.smp and
redis-server is partly theirs. A private node has the same (default) configuration as a
`make run` machine's, no plugins, and is gone with the run. It needs rabbitmq-server and
redis-server installed (deploy/local/ensure-infra.sh installs them), and the rights to run
them (root, as here, or the rabbitmq user's).
"""
import contextlib
import asyncio
import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import psutil

from bench.stack import PRIVATE_INFRA
from deploy.local.devstack import free_port, wait_for_port


def _rabbit_server() -> str:
    for candidate in ("/usr/lib/rabbitmq/bin/rabbitmq-server", shutil.which("rabbitmq-server")):
        if candidate and os.path.exists(candidate):
            return candidate
    raise SystemExit("--private-infra: rabbitmq-server is not installed")


def _beam(proc: subprocess.Popen[bytes]) -> psutil.Process:
    """The Erlang VM under the rabbitmq-server script (its CPU is the broker's)."""
    for child in psutil.Process(proc.pid).children(recursive=True):
        if child.name() == "beam.smp":
            return child
    return psutil.Process(proc.pid)


def _stop(proc: subprocess.Popen[bytes] | None, beam: psutil.Process | None = None) -> None:
    targets = [p for p in (beam,) if p is not None]
    if proc is not None and proc.poll() is None:
        targets.append(psutil.Process(proc.pid))
    for p in targets:
        with contextlib.suppress(psutil.Error):
            p.terminate()
    for p in targets:
        try:
            p.wait(30)
        except psutil.TimeoutExpired:
            p.kill()
        except psutil.Error:
            pass


@asynccontextmanager
async def private_infra() -> AsyncIterator[dict[str, psutil.Process]]:
    """Start both; PARLEY_AMQP_URL / PARLEY_REDIS_URL point at them until the block ends."""
    tmp = Path(tempfile.mkdtemp(prefix="parley-infra-"))
    saved = {k: os.environ.get(k) for k in ("PARLEY_AMQP_URL", "PARLEY_REDIS_URL")}
    redis = rabbit = None
    beam = None
    try:
        redis_port = free_port()
        redis = subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", "--bind", "127.0.0.1", "--port", str(redis_port),
             "--save", "", "--appendonly", "no", "--dir", str(tmp)],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        amqp_port, dist_port = free_port(), free_port()
        (tmp / "enabled_plugins").write_text("[].\n")
        (tmp / "rabbitmq.conf").write_text(f"listeners.tcp.default = 127.0.0.1:{amqp_port}\n")
        env = {**os.environ, "RABBITMQ_NODENAME": f"bench{amqp_port}@localhost", "RABBITMQ_NODE_PORT": str(amqp_port),
               "RABBITMQ_DIST_PORT": str(dist_port), "RABBITMQ_MNESIA_BASE": str(tmp / "mnesia"),
               "RABBITMQ_LOG_BASE": str(tmp / "log"), "RABBITMQ_ENABLED_PLUGINS_FILE": str(tmp / "enabled_plugins"),
               "RABBITMQ_CONFIG_FILE": str(tmp / "rabbitmq.conf"), "RABBITMQ_PID_FILE": str(tmp / "rabbit.pid")}
        rabbit = subprocess.Popen([_rabbit_server()], env=env, cwd=tmp, stdout=open(tmp / "rabbit.out", "wb"),
                                  stderr=subprocess.STDOUT, start_new_session=True)
        await asyncio.to_thread(wait_for_port, redis_port, 30, "the private redis-server")
        await asyncio.to_thread(wait_for_port, amqp_port, 120, "the private RabbitMQ")
        beam = _beam(rabbit)
        os.environ["PARLEY_AMQP_URL"] = f"amqp://guest:guest@127.0.0.1:{amqp_port}/"
        os.environ["PARLEY_REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"
        print(f"private infrastructure: RabbitMQ on {amqp_port} (pid {beam.pid}), Redis on {redis_port}", flush=True)
        PRIVATE_INFRA.update(rabbitmq=beam, redis=psutil.Process(redis.pid))
        yield dict(PRIVATE_INFRA)
    finally:
        PRIVATE_INFRA.clear()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _stop(rabbit, beam)
        _stop(redis)
        shutil.rmtree(tmp, ignore_errors=True)
