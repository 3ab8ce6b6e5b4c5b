"""The tests' own leak check (tests/support/leaks.py) finds what a test left open, and closes it."""
import subprocess
import sys

import aio_pika
import psutil
from parley_client import ParleyClient
from websockets.asyncio.server import ServerConnection, serve

from shared.settings import Settings
from shared.stores import redis_client
from tests.support import leaks


async def test_a_connection_left_open_is_found_and_closed(settings: Settings) -> None:
    before = leaks.snapshot()
    robust = await aio_pika.connect_robust(settings.amqp_url)
    redis = redis_client(settings)
    await redis.ping()
    found = await leaks.close_leaks(before)
    assert len(found) == 2 and found[0] == "a RabbitMQ connection (RobustConnection, connected)"
    assert found[1].startswith("a Redis connection (")
    assert robust.is_closed
    assert await leaks.close_leaks(before) == []
    await redis.aclose()


async def test_a_socket_of_the_client_library_left_open_is_found_and_closed() -> None:
    async def held(ws: ServerConnection) -> None:
        async for _ in ws:
            pass

    async with serve(held, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        before = leaks.snapshot()
        client = await ParleyClient(f"ws://127.0.0.1:{port}/ws").connect()
        found = await leaks.close_leaks(before)
        assert found == [f"a WebSocket of the client library to ws://127.0.0.1:{port}/ws"]
        assert not client.is_open
        assert await leaks.close_leaks(before) == []


async def test_a_child_process_left_running_is_killed() -> None:
    before = leaks.snapshot()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    found = await leaks.close_leaks(before)
    assert len(found) == 1 and found[0].startswith(f"a child process, pid {child.pid}: ")
    child.wait(5)  # raises TimeoutExpired unless the check ended it (it would sleep 60 s)


async def test_what_was_open_before_is_not_the_tests(settings: Settings) -> None:
    """A connection older than the snapshot (a session fixture's) is left alone."""
    older = await aio_pika.connect(settings.amqp_url)
    before = leaks.snapshot()
    assert await leaks.close_leaks(before) == []
    assert not older.is_closed
    await older.close()


async def test_a_process_ending_while_listed_does_not_empty_the_snapshot(monkeypatch) -> None:
    """A renderer that exits between the listing and its status check is skipped; the snapshot
    keeps the others (an empty one made every process of the session look new, and killed)."""
    staying = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    ending = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    status = psutil.Process.status

    def ended_meanwhile(process: psutil.Process) -> str:
        if process.pid == ending.pid:
            raise psutil.NoSuchProcess(process.pid)
        return status(process)

    monkeypatch.setattr(psutil.Process, "status", ended_meanwhile)
    try:
        pids = leaks.snapshot().pids
        assert staying.pid in pids and ending.pid not in pids
    finally:
        for child in (staying, ending):
            child.kill()
            child.wait(5)
