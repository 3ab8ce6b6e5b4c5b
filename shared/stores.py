"""MongoDB and Redis clients, made the same way by every service."""
import asyncio
import logging
import time
from typing import Any
from urllib.parse import parse_qsl

import redis.asyncio as aioredis
from pymongo import AsyncMongoClient, WriteConcern
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError
from redis.asyncio.cluster import RedisCluster

from shared.dbmetrics import CountingListener
from shared.logs import log_event
from shared.redis_slots import RedisClient
from shared.settings import Settings

log = logging.getLogger("parley.stores")

# What the services' stores hold and are handed: documents as plain dicts (storage turns them
# into each service's typed records).
Document = dict[str, Any]
MongoClient = AsyncMongoClient[Document]
Database = AsyncDatabase[Document]
Collection = AsyncCollection[Document]


def mongo_client(settings: Settings) -> MongoClient:
    # Fail fast (and let the broker redeliver) rather than hang a handler for 30 s.
    # journal: a write is acknowledged once it is in the database's journal, so what a sender
    # was told is stored survives the database crashing right after (without it the embedded
    # server lost ~6 % of the writes of its last second to a kill -9; mongod loses up to its
    # commit interval). On a replica set, w=majority on top (mongo_write_concern).
    w = configured_w(settings)
    options: dict[str, Any] = {} if w is None else {"w": w}
    return AsyncMongoClient(
        settings.mongo_url, serverSelectionTimeoutMS=5000, connectTimeoutMS=5000, tz_aware=True,
        journal=settings.mongo_journal, event_listeners=[CountingListener()], **options,
    )


def configured_w(settings: Settings) -> str | int | None:
    """The `w` the settings call for: PARLEY_MONGO_WRITE_CONCERN if set, else majority when the
    URL names a replica set (and no `w` of its own); None: decided once connected (mongo_database)."""
    if settings.mongo_write_concern:
        return int(settings.mongo_write_concern) if settings.mongo_write_concern.isdigit() else settings.mongo_write_concern
    query = settings.mongo_url.split("?", 1)[1] if "?" in settings.mongo_url else ""
    options = {name.lower() for name, _ in parse_qsl(query)}
    return "majority" if "replicaset" in options and "w" not in options else None


def replicated(client: MongoClient) -> bool:
    """Whether the client is connected to a replica set (or a mongos, whose shards are replica
    sets), as its discovery of the servers found (after a first command)."""
    topology = client.topology_description
    if topology.topology_type_name in ("ReplicaSetWithPrimary", "ReplicaSetNoPrimary", "Sharded"):
        return True
    return any(server.replica_set_name for server in topology.server_descriptions().values())


# How long closing the MongoDB client may take at shutdown. Closing sends endSessions, which
# first waits for a server for up to serverSelectionTimeoutMS (5 s): with the database gone
# (killed with the rest of a stack, or down during a rollout) every service took 5 s more to
# stop. endSessions is best effort (drivers ignore its errors; the server expires idle sessions
# by itself), so past this the close is cut short.
MONGO_CLOSE_SECONDS = 1.0


async def close_mongo(client: MongoClient, timeout: float = MONGO_CLOSE_SECONDS) -> None:
    """Close the client; a close that waits for an unreachable server is cut off after `timeout`."""
    try:
        await asyncio.wait_for(client.close(), timeout)
    except TimeoutError:
        log_event(log, "mongo.close_cut", logging.WARNING, seconds=timeout,
                  reason="no server answered the close's endSessions")


def mongo_database(client: MongoClient, settings: Settings) -> Database:
    """The service's database; with w=majority when nothing set `w` and the server (reached by
    now: wait_for_mongo) is a replica set's: a write acknowledged by a primary alone is rolled
    back if that primary fails before a secondary has it."""
    if configured_w(settings) is None and "w" not in client.write_concern.document and replicated(client):
        log_event(log, "mongo.write_concern", w="majority", why="the server is a replica set member or a mongos")
        return client.get_database(settings.mongo_db, write_concern=WriteConcern(w="majority", j=settings.mongo_journal))
    return client[settings.mongo_db]


def redis_client(settings: Settings) -> RedisClient:
    """The one way a process gets its Redis: a Redis Cluster client when PARLEY_REDIS_CLUSTER is
    set (redis_url is then any node of it, the client finds the others), else one Redis."""
    # Timeouts: a Redis that hangs (rather than refusing) must fail calls, not stall them forever.
    if settings.redis_cluster:
        # A primary killed: the client re-reads the slots and retries a command for up to about
        # cluster-node-timeout plus the election (docs/reliability.md "Redis Cluster"); what
        # fails past that fails as if Redis were away (limits fail open, revocations ask auth).
        # max_connections: the cluster client's default is 100 per node, past which a call
        # fails at once (MaxConnectionsError) instead of waiting: 300 concurrent logins failed
        # open that way. One Redis's pool has no such bound; neither has this one.
        return RedisCluster.from_url(
            settings.redis_url, decode_responses=True, socket_connect_timeout=2, socket_timeout=5,
            health_check_interval=30, max_connections=2**31,
        )
    return aioredis.Redis.from_url(
        settings.redis_url, decode_responses=True, health_check_interval=30, socket_connect_timeout=2,
        socket_timeout=5,
    )


async def mongo_ping(client: MongoClient) -> None:
    await client.admin.command("ping")


async def wait_for_mongo(client: MongoClient, settings: Settings) -> None:
    """Wait at start-up for MongoDB (it may come up after us), saying what we wait for."""
    started = time.monotonic()
    while True:
        try:
            await mongo_ping(client)
            return
        except PyMongoError as exc:
            if time.monotonic() - started > settings.connect_retry_seconds:
                raise RuntimeError(
                    f"MongoDB is not reachable at {settings.mongo_url}; start it or set PARLEY_MONGO_URL"
                ) from exc
            log_event(log, "mongo.waiting", logging.WARNING, url=settings.mongo_url, error=str(exc)[:200])
            await asyncio.sleep(1)


async def update_then_read(
    collection: Collection, key: Any, update: Document, where: Document | None = None,
    projection: Document | None = None,
) -> Document | None:
    """`update` the document whose `_id` is `key` if it also matches `where`; then the document
    as it is after, read by `_id` (None when nothing matched, or it was deleted in between).

    In place of find_one_and_update(..., return_document=AFTER), which on the embedded
    MongoDB-wire server (secantusdb 0.7) does its write with the filter `{_id, $and: [query]}`,
    and its write planner takes no index for a filter with a top-level operator: every one
    loaded and matched the whole collection (0.4-1 s at 50,000 messages; issue 26). update_one by
    `_id` (plus conditions) is a point lookup there, as on mongod.

    The two steps are not one: another write may land between them, and the document returned
    then shows it too. Each write is still applied atomically by the server and none is lost;
    the reply is the document in a state at least as new as this update (never older), which
    callers must accept (a message recalled just after an edit reads recalled). Reads go to the
    primary (the default), so the read sees the write it follows."""
    result = await collection.update_one({"_id": key, **(where or {})}, update)
    if result.matched_count == 0:
        return None
    doc: Document | None = await collection.find_one({"_id": key}, projection)
    return doc
