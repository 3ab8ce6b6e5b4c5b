"""What a test opens, it closes: RabbitMQ connections, Redis connections, WebSocket clients (the
tests' `Client`s, and every socket of the client library under them, the fault suite's devices
and the library's own tests) and child processes are noted as they are made, and whatever a
test leaves open is found at its end.

A leak is not harmless: a robust aio-pika connection whose namespace was removed keeps
reconnecting every second for the rest of the run (each attempt logging, once breaking an
unrelated test's `caplog`); a forgotten child process holds ports and CPU. The check closes what
it finds and fails the test that left it (a test that failed already is not failed twice); at
the end of the session whatever a session or module fixture left open fails the run.
"""
import asyncio
import contextlib
import os
import weakref
from dataclasses import dataclass
from typing import Any

import aio_pika.connection
import parley_client.connection
import psutil
import redis.asyncio.connection

from deploy.local.devstack import Stack
from tests.support import client as ws_client

_amqp: "weakref.WeakSet[aio_pika.connection.Connection]" = weakref.WeakSet()
_redis: "weakref.WeakSet[redis.asyncio.connection.AbstractConnection]" = weakref.WeakSet()
_stacks: "weakref.WeakSet[Stack]" = weakref.WeakSet()
_sockets: "weakref.WeakSet[parley_client.connection.Connection]" = weakref.WeakSet()
# What runs across tests on purpose and is restarted piecemeal by them (test_chaos's stack: its
# Redis and MongoDB-wire server come back as new processes after a fault): objects with a
# `pids()` ({label: pid}) whose processes are never strays while they are kept.
_kept: "weakref.WeakSet[Any]" = weakref.WeakSet()


def keep(owner: Any) -> None:
    """`owner.pids()` are its fixture's, not the running test's, until `release(owner)`."""
    _kept.add(owner)


def release(owner: Any) -> None:
    _kept.discard(owner)


def _note_instances(cls: type, made: "weakref.WeakSet[Any]") -> None:
    """Make `cls.__init__` add every new instance to `made` (once per class)."""
    init = cls.__init__
    if getattr(init, "_noted", False):
        return

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        made.add(self)

    __init__._noted = True  # type: ignore[attr-defined]
    cls.__init__ = __init__  # type: ignore[misc]


def install() -> None:
    """Note every connection made in this process from now on (robust ones are Connections too)."""
    _note_instances(aio_pika.connection.Connection, _amqp)
    _note_instances(redis.asyncio.connection.AbstractConnection, _redis)
    _note_instances(Stack, _stacks)
    _note_instances(parley_client.connection.Connection, _sockets)


def _open_amqp() -> list[aio_pika.connection.Connection]:
    return [c for c in list(_amqp) if not c.is_closed]


def _open_redis() -> list[redis.asyncio.connection.AbstractConnection]:
    return [c for c in list(_redis) if c.is_connected]


def _open_clients() -> list[ws_client.Client]:
    return [c for c in list(ws_client.MADE) if c.is_open]


def _open_sockets() -> list[parley_client.connection.Connection]:
    return [c for c in list(_sockets) if c.is_open]


# Linux lists each thread's children in /proc/<pid>/task/<tid>/children: reading our own
# subtree there costs a few files, where psutil's children(recursive=True) reads the stat file of
# every process on the machine (~10 ms a call on a shared host, twice a test, a thousand tests).
_PROC_CHILDREN = os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children")


def _child_pids(pid: int) -> list[int]:
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:  # gone meanwhile
        return []
    found: list[int] = []
    for tid in tasks:
        with contextlib.suppress(OSError, ValueError), open(f"/proc/{pid}/task/{tid}/children") as listed:
            found += map(int, listed.read().split())
    return found


def _descendants() -> list[psutil.Process]:
    if not _PROC_CHILDREN:
        return psutil.Process().children(recursive=True)
    found: list[psutil.Process] = []
    todo = [os.getpid()]
    while todo:
        for pid in _child_pids(todo.pop()):
            todo.append(pid)
            with contextlib.suppress(psutil.Error):
                found.append(psutil.Process(pid))
    return found


def _children() -> list[psutil.Process]:
    """Our living descendants. One that ends while this looks (a browser's renderers come and
    go all the time) is skipped, not allowed to empty the list: an empty snapshot before a test
    would make every process of the session look new, and be killed, after it."""
    alive = []
    for process in _descendants():
        with contextlib.suppress(psutil.Error):
            if process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process)
    return alive


@dataclass(frozen=True)
class Snapshot:
    """What was open before a test (or the session) began: ids of objects, pids of processes."""

    amqp: frozenset[int]
    redis: frozenset[int]
    clients: frozenset[int]
    sockets: frozenset[int]
    stacks: frozenset[int]
    pids: frozenset[int]


def snapshot() -> Snapshot:
    return Snapshot(
        amqp=frozenset(map(id, _open_amqp())),
        redis=frozenset(map(id, _open_redis())),
        clients=frozenset(map(id, _open_clients())),
        sockets=frozenset(map(id, _open_sockets())),
        stacks=frozenset(map(id, _stacks)),
        pids=frozenset(p.pid for p in _children()),
    )


def _command_line(process: psutil.Process) -> str:
    with contextlib.suppress(psutil.Error):
        return " ".join(process.cmdline())[:120]
    return "?"


def _stray_processes(before: Snapshot) -> list[psutil.Process]:
    """Processes started since `before` that nothing older owns: not a replica that a stack of
    before restarted (a fault test's kill and restart), not a child of a process of before (a
    browser's renderer, still exiting after its page closed)."""
    owned = {
        proc.popen.pid
        for stack in list(_stacks) if id(stack) in before.stacks
        for proc in [*stack.procs.values(), stack.mongo] if proc is not None and proc.popen is not None
    }
    for owner in list(_kept):
        with contextlib.suppress(Exception):
            owned.update(owner.pids().values())
    ours = os.getpid()
    older = before.pids | owned
    strays = []
    for process in _children():
        if process.pid in older:  # most are: no need to walk up its parents
            continue
        with contextlib.suppress(psutil.Error):
            lineage = {p.pid for p in process.parents()} - {ours}
            if not lineage & older:
                strays.append(process)
    return strays


async def close_leaks(before: Snapshot) -> list[str]:
    """Close everything opened since `before` and still open; what was found, in words."""
    found: list[str] = []
    for client in [c for c in _open_clients() if id(c) not in before.clients]:
        found.append(f"a WebSocket client of {client.username or 'a user not logged in'} on port {client.port}")
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.close(), 5)
    for socket in [c for c in _open_sockets() if id(c) not in before.sockets]:  # (a Client's is closed above)
        found.append(f"a WebSocket of the client library to {socket.url}")
        with contextlib.suppress(Exception):
            await asyncio.wait_for(socket.close(), 5)
    for connection in [c for c in _open_amqp() if id(c) not in before.amqp]:
        up = getattr(connection, "connected", None)
        state = "connected" if up is None or up.is_set() else "reconnecting"
        found.append(f"a RabbitMQ connection ({type(connection).__name__}, {state})")
        with contextlib.suppress(Exception):
            await asyncio.wait_for(connection.close(), 5)
    for conn in [c for c in _open_redis() if id(c) not in before.redis]:
        found.append(f"a Redis connection ({conn!r})")
        with contextlib.suppress(Exception):
            await conn.disconnect()
    strays = _stray_processes(before)
    for process in strays:
        found.append(f"a child process, pid {process.pid}: {_command_line(process)}")
        with contextlib.suppress(psutil.Error):
            process.kill()
    if strays:
        await asyncio.to_thread(psutil.wait_procs, strays, 10)
    return found
