"""Database operations counted as they leave each process: commands by name and collection,
and the documents they wrote and read.

Why: what a message costs the database is a number of operations, the same on any engine (the
embedded server's CPU per operation is not mongod's). `make bench` prints these per delivered
message (bench/dbops.py); in production they are the first thing to look at when the database
is busy.

Written = documents an insert stored, an update or findAndModify matched or upserted (a `$max`
that changes nothing still counts: the server found and examined the document), a delete
removed. Read = documents a find, getMore, aggregate or findAndModify returned.
"""
from collections.abc import Mapping
from typing import Any

from prometheus_client import Counter
from pymongo import monitoring

DB_COMMANDS = Counter("parley_db_commands_total", "Database commands sent", ["command", "collection"])
DB_DOCUMENTS = Counter(
    "parley_db_documents_total", "Documents written or read by database commands", ["kind", "collection"]
)

# Commands whose first value names a collection (others: admin and handshake commands).
ON_COLLECTION = frozenset({
    "insert", "update", "delete", "find", "getMore", "findAndModify", "aggregate", "count", "distinct",
    "createIndexes", "listIndexes", "dropIndexes",
})


def documents_written(command: str, reply: Mapping[str, Any]) -> int:
    if command in ("insert", "delete"):
        return int(reply.get("n", 0))
    if command == "update":
        return int(reply.get("n", 0))  # matched + upserted
    if command == "findAndModify":
        return int((reply.get("lastErrorObject") or {}).get("n", 0))
    return 0


def documents_read(command: str, reply: Mapping[str, Any]) -> int:
    if command in ("find", "aggregate"):
        return len((reply.get("cursor") or {}).get("firstBatch") or ())
    if command == "getMore":
        return len((reply.get("cursor") or {}).get("nextBatch") or ())
    if command == "findAndModify":
        return 1 if reply.get("value") is not None else 0
    return 0


class CountingListener(monitoring.CommandListener):
    """Counts each command when it starts (by collection) and its documents when it succeeds."""

    def __init__(self) -> None:
        # Cached label children: no label lookup per command.
        self._commands: dict[tuple[str, str], Any] = {}
        self._documents: dict[tuple[str, str], Any] = {}
        # request id -> collection, from start to success or failure (one entry per command in flight).
        self._in_flight: dict[int, str] = {}

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        name = event.command_name
        collection = str(event.command.get(name, "")) if name in ON_COLLECTION and name != "getMore" else ""
        if name == "getMore":
            collection = str(event.command.get("collection", ""))
        _child(self._commands, DB_COMMANDS, name, collection).inc()
        if collection:
            self._in_flight[event.request_id] = collection

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        collection = self._in_flight.pop(event.request_id, "")
        reply, name = event.reply, event.command_name
        written = documents_written(name, reply)
        if written:
            _child(self._documents, DB_DOCUMENTS, "written", collection).inc(written)
        read = documents_read(name, reply)
        if read:
            _child(self._documents, DB_DOCUMENTS, "read", collection).inc(read)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self._in_flight.pop(event.request_id, None)


def _child(cache: dict[tuple[str, str], Any], counter: Counter, first: str, second: str) -> Any:
    child = cache.get((first, second))
    if child is None:
        child = cache[first, second] = counter.labels(first, second)
    return child
