"""Shard Parley's collections by the keys shared/sharding.py declares.

    python -m deploy.mongo_shard                       # print the mongosh commands (review, then paste)
    python -m deploy.mongo_shard --db parley --run mongodb://mongos-0.example:27017/

Printing needs no database. `--run` sends the same commands to a mongos: sharding enabled for the
database, then each declared collection sharded by its key (a hashed key's index made first, as a
non-empty collection needs it; a ranged key is served by an index the services make at start-up,
so start them once before sharding collections that already hold documents). A collection sharded
already by its key is left alone; sharded by another key, it is reported (reshardCollection is
an operator's decision, not this script's). Unsharded collections stay on the primary shard.
"""
import argparse
import json
import sys
from typing import Any

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from shared.settings import Settings
from shared.sharding import COLLECTIONS, Placement


def js(value: Any) -> str:
    return json.dumps(value)


def commands(db: str) -> list[str]:
    """The mongosh lines that shard `db` as declared, with why as comments."""
    lines = [f"// Parley's shard keys (shared/sharding.py) for the database {js(db)}; run in mongosh against a mongos.",
             f"sh.enableSharding({js(db)})"]
    for name, placement in COLLECTIONS.items():
        lines.append(f"// {name}: {placement.why}")
        if not placement.sharded:
            lines.append("//   (stays unsharded)")
            continue
        if placement.hashed:
            lines.append(f"db.getSiblingDB({js(db)}).getCollection({js(name)}).createIndex({js(placement.key_document())})")
        lines.append(f"sh.shardCollection({js(f'{db}.{name}')}, {js(placement.key_document())})")
    return lines


def _shard_one(client: MongoClient[dict[str, Any]], db: str, name: str, placement: Placement) -> str:
    namespace = f"{db}.{name}"
    key = placement.key_document()
    existing = client["config"]["collections"].find_one({"_id": namespace, "dropped": {"$ne": True}})
    if existing is not None:
        if dict(existing["key"]) == key:
            return f"{namespace}: sharded already by {js(key)}"
        raise SystemExit(
            f"{namespace} is sharded by {js(dict(existing['key']))}, not the declared {js(key)}: "
            "reshard it (sh.reshardCollection) or change shared/sharding.py, then run this again"
        )
    if placement.hashed:
        client[db][name].create_index(list(key.items()))
    client.admin.command("shardCollection", namespace, key=key)
    return f"{namespace}: sharded by {js(key)}"


def run(url: str, db: str) -> list[str]:
    """Shard `db` through the mongos at `url`; what was done, a line per collection."""
    client: MongoClient[dict[str, Any]] = MongoClient(url, serverSelectionTimeoutMS=10000)
    try:
        if client.admin.command("hello").get("msg") != "isdbgrid":
            raise SystemExit(f"{url} is not a mongos: give --run the URL of a mongos router of the sharded cluster")
        client.admin.command("enableSharding", db)
        done = [f"{db}: sharding enabled"]
        for name, placement in COLLECTIONS.items():
            done.append(_shard_one(client, db, name, placement) if placement.sharded else f"{db}.{name}: unsharded")
        return done
    finally:
        client.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", default=Settings().mongo_db, help="the database (default: PARLEY_MONGO_DB, else parley)")
    parser.add_argument("--run", metavar="MONGOS_URL", help="send the commands to this mongos instead of printing them")
    args = parser.parse_args(argv)
    if args.run is None:
        print("\n".join(commands(args.db)))
        return
    try:
        print("\n".join(run(args.run, args.db)))
    except PyMongoError as exc:
        raise SystemExit(f"sharding through {args.run} failed: {exc}; check the URL names a reachable mongos") from exc


if __name__ == "__main__":
    main(sys.argv[1:])
