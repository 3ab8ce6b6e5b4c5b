"""Which failures mean "a backend is away" (answered `unavailable`: safe to retry) rather
than a bug (`internal`): the broker, MongoDB or Redis unreachable, closed or timing out."""
import asyncio

import aiormq.exceptions
import redis.exceptions
from aio_pika.exceptions import ChannelInvalidStateError
from pymongo.errors import ConnectionFailure

OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    aiormq.exceptions.AMQPConnectionError,
    aiormq.exceptions.ChannelInvalidStateError,
    ChannelInvalidStateError,
    aiormq.exceptions.ConnectionClosed,
    aiormq.exceptions.ChannelClosed,
    ConnectionFailure,  # AutoReconnect, ServerSelectionTimeoutError, NetworkTimeout
    redis.exceptions.ConnectionError,  # BusyLoadingError too: a Redis still loading its data
    redis.exceptions.TimeoutError,
    # A Redis Cluster failing over: CLUSTERDOWN / MASTERDOWN / TRYAGAIN while a replica takes over
    # or slots move, no node serving a slot, no node reachable. Retrying is safe.
    redis.exceptions.ClusterDownError,
    redis.exceptions.TryAgainError,
    redis.exceptions.SlotNotCoveredError,
    redis.exceptions.RedisClusterUnreachableError,
    ConnectionError,
    OSError,
    asyncio.TimeoutError,
)


def is_outage(exc: BaseException) -> bool:
    return isinstance(exc, OUTAGE_ERRORS)
