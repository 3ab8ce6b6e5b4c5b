"""The broker connection over one RabbitMQ node or a cluster's several (issue 27).

`PARLEY_AMQP_URL` is one URL or several separated by commas, one per node of a cluster
(`amqp://u:p@rabbit-1:5672/,amqp://u:p@rabbit-2:5672/,...`). The process connects to the first
that answers and, when that node dies, reconnects to the next live one: aio-pika's robust
connection takes one URL, so `ClusterConnection` moves it to the next node before each attempt
to connect after the first. The robust connection then restores its channels on the new node:
exchanges and durable queues are declared again (the same arguments: a no-op on the cluster),
exclusive queues (RPC replies, a gateway's deliveries: they died with the node they lived on)
are declared afresh on the new node, and every consumer is started again.
"""
import asyncio
import logging
import random
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import aio_pika
from aio_pika import RobustConnection
from aio_pika.abc import AbstractConnection, AbstractRobustConnection
from yarl import URL

from shared.logs import log_event

log = logging.getLogger("parley.broker")

# What a robust connection waits between two attempts to connect (aio-pika's default is 5 s):
# recovery time after a broker outage or a node's loss is what users wait through.
RECONNECT_INTERVAL = 1.0


def amqp_urls(value: str) -> list[str]:
    """The node URLs in PARLEY_AMQP_URL (one, or several separated by commas)."""
    urls = [u.strip() for u in value.split(",") if u.strip()]
    if not urls:
        raise ValueError("PARLEY_AMQP_URL is empty: set it to amqp://user:pass@host:5672/ (several, comma separated, for a cluster)")
    return urls


def redact(url: URL | str) -> str:
    url = URL(url)
    return str(url.with_password("******") if url.password else url)


class ClusterConnection(RobustConnection):
    """A robust connection that tries the next node's URL on each attempt after the first, so
    it reconnects to a live node of the cluster (within RECONNECT_INTERVAL per dead node tried)."""

    def __init__(self, urls: Sequence[str], first: int = 0, **kwargs: Any):
        self.urls = [URL(u) for u in urls]
        self._next = first
        super().__init__(self.urls[first % len(self.urls)], **kwargs)

    # aio-pika's RobustConnection opens every transport here (its connection factory: the first
    # connect and each reconnect), reading `self.url`; tests/unit/test_amqp_nodes.py fails if an
    # aio-pika upgrade renames it.
    async def _RobustConnection__connect_transport(self) -> None:
        self.url = self.urls[self._next % len(self.urls)]
        self._next += 1
        await super()._RobustConnection__connect_transport()  # type: ignore[misc]


def node_order(urls: list[str], start_anywhere: bool, pick: Callable[[int], int] = random.randrange) -> list[str]:
    """The order a process tries the nodes in: the list rotated to start at a node picked at
    random (`start_anywhere`), so that the processes' connections, and the quorum queues'
    leaders they declare (RabbitMQ places a new queue's leader on the declaring connection's
    node), spread over the cluster instead of all sitting on the first node; else as given."""
    first = pick(len(urls)) if start_anywhere and len(urls) > 1 else 0
    return urls[first:] + urls[:first]


async def connect_with_retry(amqp_url: str, deadline_seconds: float, start_anywhere: bool = False) -> AbstractRobustConnection:
    """Wait for RabbitMQ at start-up (it may come up after us), trying every node in turn (from a
    random one with `start_anywhere`); robust reconnects, to any live node, after that."""
    urls = node_order(amqp_urls(amqp_url), start_anywhere)
    started = time.monotonic()
    delay = 0.2
    attempt = -1
    while True:
        attempt += 1
        connection = ClusterConnection(urls, first=attempt, client_properties={"connection_name": "parley"},
                                       reconnect_interval=RECONNECT_INTERVAL)
        try:
            await connection.connect()
        except (OSError, aio_pika.exceptions.AMQPConnectionError) as exc:
            await connection.close()
            url = redact(urls[attempt % len(urls)])
            # Every node was tried at least once, and the start-up allowance is spent.
            if attempt + 1 >= len(urls) and time.monotonic() - started > deadline_seconds:
                where = ", ".join(redact(u) for u in urls)
                raise RuntimeError(
                    f"RabbitMQ is not reachable at {where} ({exc}); start it (rabbitmq-server -detached) "
                    "or set PARLEY_AMQP_URL (one URL, or a cluster's, comma separated)"
                ) from exc
            log_event(log, "broker.waiting", logging.WARNING, url=url, error=str(exc))
            if (attempt + 1) % len(urls) == 0:  # a round over every node: wait before the next
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
            continue
        _watch(connection)
        return connection


def _watch(connection: ClusterConnection) -> None:
    """Log each loss of the connection and each reconnection, with the node it went to."""

    def lost(_: Any, exc: BaseException | None = None) -> None:
        if not connection.close_called:
            log_event(log, "broker.connection_lost", logging.WARNING, url=redact(connection.url), error=repr(exc))

    def back(_: Any) -> None:
        log_event(log, "broker.reconnected", logging.WARNING, url=redact(connection.url))

    connection.close_callbacks.add(lost)
    connection.reconnect_callbacks.add(back)


async def connect_first(amqp_url: str) -> AbstractConnection:
    """A plain (not robust) connection to the first node that answers: scripts and tests."""
    error: Exception | None = None
    for url in amqp_urls(amqp_url):
        connection = aio_pika.Connection(URL(url))
        try:
            await connection.connect()
            return connection
        except (OSError, aio_pika.exceptions.AMQPConnectionError) as exc:
            await connection.close()
            error = exc
    raise RuntimeError(f"no RabbitMQ node answers at {', '.join(redact(u) for u in amqp_urls(amqp_url))}: {error}")


async def missing_queues(connection: AbstractRobustConnection, names: Iterable[str]) -> list[str]:
    """Which of these queues do not exist. In a cluster, a process that reconnects within
    milliseconds of its node's death can be handed back its old exclusive queue's record (the
    other nodes had not yet removed the dead node's queues), which is removed right after: its
    replies or pushes would go nowhere for as long as the connection lives (seen once in five
    kills: tests/integration/test_rabbit_cluster.py). The Broker checks after each reconnection."""
    missing = []
    channel = await connection.channel()
    for name in sorted(names):
        try:
            await channel.declare_queue(name, passive=True)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            missing.append(name)
            channel = await connection.channel()  # a 404 closes the channel
    if not channel.is_closed:
        await channel.close()
    return missing
