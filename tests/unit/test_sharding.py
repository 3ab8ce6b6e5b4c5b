"""shared/sharding.py against the indexes the services really create: each service's stores made
as its runner makes them and their indexes ensured on the MongoDB-wire server, then listed. Every
collection a store holds has a declared placement, and every unique index could exist once its
collection is sharded by the declared key. And the one index that could not (a sender's
client_msg_id across conversations) is gone from a database that still has it."""
from typing import Any

import pytest
from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection

from services.auth.service import AuthService
from services.calls.service import CallsService
from services.chat.service import ChatService
from services.chat.storage.messages import CLIENT_MSG_KEY, MessageStore
from services.files.service import FilesService
from services.push.service import PushService
from deploy import mongo_shard
from shared.declared import Runtime, Service
from shared.sharding import COLLECTIONS, unique_index_fits
from tests.unit.helpers import redis_namespace

SERVICES: tuple[type[Service], ...] = (AuthService, ChatService, FilesService, PushService, CallsService)
A = "u_alice"


def collections_held(obj: Any, depth: int = 2) -> set[str]:
    """Names of the collections a part holds, directly or in an object it holds (one level)."""
    found: set[str] = set()
    for value in vars(obj).values() if hasattr(obj, "__dict__") else ():
        if isinstance(value, AsyncCollection):
            found.add(value.name)
        elif depth > 1 and type(value).__module__.startswith("services."):
            found |= collections_held(value, depth - 1)
    return found


async def build_stores(db: Any, settings: Any) -> set[str]:
    """Every part of every service that can be made without the broker, as the runner makes it,
    with its indexes ensured; the names of the collections they hold."""
    held: set[str] = set()
    async with redis_namespace(settings) as (redis, namespace):
        rt = Runtime(settings.model_copy(update={"namespace": namespace}), db, redis)
        for service_class in SERVICES:
            service = service_class(rt)
            for declared in service_class.declared_parts():
                try:
                    made = declared.make(rt, service)
                except (LookupError, AttributeError):  # needs the broker, or a part that does
                    continue
                service.__dict__[declared.name] = made
                if (ensure := getattr(made, "ensure_indexes", None)) is not None:
                    await ensure()
                held |= collections_held(made)
    return held


async def test_every_collection_is_declared_and_every_unique_index_starts_with_its_shard_key(db, settings) -> None:
    held = await build_stores(db, settings)
    assert held == set(COLLECTIONS), (
        f"undeclared: {sorted(held - set(COLLECTIONS))}; declared but held by no store: {sorted(set(COLLECTIONS) - held)}"
    )
    existing = set(await db.list_collection_names())
    assert existing <= set(COLLECTIONS)
    assert {"messages", "files.chunks", "users"} <= existing  # the check below reads real indexes
    for name in sorted(existing):
        placement = COLLECTIONS[name]
        indexes = [index async for index in await db[name].list_indexes()]
        keys = [list(index["key"]) for index in indexes]
        for index in indexes:
            if index.get("unique") and not unique_index_fits(placement, list(index["key"])):
                pytest.fail(f"{name}: unique index {index['name']} does not start with the shard key {placement.fields}"
                            f"{' (hashed keys admit no unique index)' if placement.hashed else ''}")
        if placement.sharded and not placement.hashed:
            # A ranged key is served by an index the services make (needed to shard a non-empty collection).
            assert any(k[: len(placement.fields)] == list(placement.fields) for k in keys), f"{name}: no index serves its key"


def test_what_the_check_refuses() -> None:
    messages, devices = COLLECTIONS["messages"], COLLECTIONS["devices"]
    assert not unique_index_fits(messages, ["from_user_id", "client_msg_id"])  # the index there was
    assert unique_index_fits(messages, ["conversation_id", "from_user_id", "client_msg_id"])
    assert not unique_index_fits(devices, ["user_id"])  # hashed: no unique index but _id's
    assert unique_index_fits(devices, ["_id"])


async def test_the_sender_wide_client_msg_id_index_is_replaced_at_start_up(db) -> None:
    messages = db["messages"]
    await messages.create_index([("from_user_id", ASCENDING), ("client_msg_id", ASCENDING)], unique=True)
    await messages.insert_one({"_id": "m_1", "conversation_id": "d_1", "seq": 1, "from_user_id": A, "client_msg_id": "c1"})
    await MessageStore(db).ensure_indexes()
    keys = {tuple(index["key"]): index.get("unique", False) async for index in await messages.list_indexes()}
    assert ("from_user_id", "client_msg_id") not in keys
    assert keys[tuple(name for name, _ in CLIENT_MSG_KEY)] is True
    # The same client_msg_id in another conversation is now another message.
    await messages.insert_one({"_id": "m_2", "conversation_id": "d_2", "seq": 1, "from_user_id": A, "client_msg_id": "c1"})
    await MessageStore(db).ensure_indexes()  # again (every start): nothing to drop, nothing fails


def test_the_deploy_script_shards_what_is_declared_and_nothing_else(capsys: pytest.CaptureFixture[str]) -> None:
    mongo_shard.main(["--db", "chatdb"])
    printed = capsys.readouterr().out.splitlines()
    assert 'sh.enableSharding("chatdb")' in printed
    sharded = [line for line in printed if line.startswith("sh.shardCollection(")]
    assert 'sh.shardCollection("chatdb.messages", {"conversation_id": 1})' in sharded
    assert 'sh.shardCollection("chatdb.files.chunks", {"files_id": 1, "n": 1})' in sharded
    assert len(sharded) == sum(p.sharded for p in COLLECTIONS.values())
    assert not any('"chatdb.users"' in line for line in sharded)  # unsharded: usernames are unique


def test_the_deploy_script_wants_a_mongos(mongo_url: str) -> None:
    with pytest.raises(SystemExit, match="not a mongos"):
        mongo_shard.main(["--run", mongo_url])
