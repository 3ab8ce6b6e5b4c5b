"""Each MongoDB collection's shard key, declared once: what `python -m deploy.mongo_shard` shards
by, and what tests/unit/test_sharding.py holds the services' own indexes to (every unique index
starts with its collection's shard key; every collection a store holds is declared here).

Rules the choices follow (MongoDB's, for a sharded collection):
- a unique index must start with the whole shard key (each shard checks only its own documents);
  so a collection with a unique index besides `_id` takes a ranged key (a hashed shard key admits
  no other unique index), and one that must keep a unique index not led by a usable key stays
  unsharded;
- an upsert, and an update or delete of one document, names the shard key (or `_id`) in its filter:
  every such write in Parley filters by `_id`, which is why most keys here are `_id`;
- `_id` is unique across the cluster only where it is the shard key. Elsewhere (messages,
  files.chunks) each shard checks only its own, and Parley's `_id`s are unique by construction:
  `shared/ids.new_id` (a kind prefix, 48 bits of milliseconds and 48 random bits) or
  pymongo's ObjectId (GridFS chunks), never a counter, so no two shards make the same one.

Unsharded collections live whole on the database's primary shard: fine while small (MongoDB
recommends sharding only what outgrows one shard). docs/scaling.md "MongoDB sharding" lists which
reads each key makes targeted and which scatter.
"""
from dataclasses import dataclass
from typing import Literal

KeyKind = Literal[1, "hashed"]


@dataclass(frozen=True)
class Placement:
    """A collection's shard key (empty: the collection stays unsharded), and why."""

    key: tuple[tuple[str, KeyKind], ...]
    why: str

    @property
    def sharded(self) -> bool:
        return bool(self.key)

    @property
    def hashed(self) -> bool:
        return any(kind == "hashed" for _, kind in self.key)

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.key)

    def key_document(self) -> dict[str, KeyKind]:
        return dict(self.key)


def by(*key: tuple[str, KeyKind], why: str) -> Placement:
    return Placement(tuple(key), why)


def unsharded(why: str) -> Placement:
    return Placement((), why)


ID_HASHED: tuple[str, KeyKind] = ("_id", "hashed")

COLLECTIONS: dict[str, Placement] = {
    # --- chat ---------------------------------------------------------------------------------
    "messages": by(("conversation_id", 1), why=(
        "every read and write of messages names its conversation (the send's insert, history pages,"
        " sync, changes since a sync); unique (conversation_id, seq) and (conversation_id,"
        " from_user_id, client_msg_id) start with it. Ranged, since hashed keys admit no unique"
        " index; one conversation stays on one shard (a huge one is a jumbo chunk)"
    )),
    "conversations": unsharded(
        "one small document per conversation, read by _id, by member (the conversations list) and"
        " by group_id, whose unique index no _id-keyed sharding allows; shard it by _id once group"
        " sends reach their conversation by _id and group_id's index need not be unique"
    ),
    "cursors": by(("_id", 1), why=(
        "_id is user|device|conversation: upserted by _id on every ack, and a device's cursors are"
        " one _id prefix range (targeted). Ranged for that range read"
    )),
    "devices": by(ID_HASHED, why="_id is user|device: read and written by _id; by user_id scatters"),
    "read_markers": by(ID_HASHED, why="_id is user|conversation: upserted by _id on message.read"),
    "friendships": by(ID_HASHED, why="_id is the pair's key: checked by _id ($in) for direct sends; a user's friends list scatters"),
    "blocks": by(ID_HASHED, why="_id is blocker|blocked: checked by _id on friend requests and group adds; a blocker's list scatters"),
    "device_messages": by(("user_id", 1), ("device_id", 1), why=(
        "to-device messages (end-to-end encryption) wait for their target device: stored, read,"
        " acknowledged and bounded by (user_id, device_id); ranged for that range read"
    )),
    "group_invites": unsharded("a handful of invite links per group"),
    "group_join_requests": unsharded("pending requests of groups that ask approval: small"),
    # --- auth ---------------------------------------------------------------------------------
    "users": unsharded(
        "usernames are unique (a unique index the _id can't lead), and one document per account"
        " stays small next to messages; logins read by username, profiles by _id"
    ),
    "device_keys": by(("user_id", 1), why=(
        "a device's published keys (docs/security.md): looked up by user_id ($in) for keys.devices,"
        " written by _id with user_id; ranged, so a user's devices are one key range"
    )),
    "one_time_keys": by(("user_id", 1), ("device_id", 1), why=(
        "a device's unclaimed one-time keys: counted, claimed and replaced by (user_id, device_id);"
        " the unique (user_id, device_id, key_id) starts with it"
    )),
    "revocations": by(ID_HASHED, why="_id is the token id: checked by _id ($in) on resume"),
    # --- files ---------------------------------------------------------------------------------
    "files.files": by(ID_HASHED, why="_id is the file id: every read names it"),
    "files.chunks": by(("files_id", 1), ("n", 1), why=(
        "GridFS's own advice: a file's chunks are one key range, read and written by (files_id, n),"
        " which is also their unique index. New file ids ascend (time-ordered), so uploads write"
        " to the newest chunk range until the balancer splits it"
    )),
    "uploads": unsharded("uploads in progress only (deleted when finished or abandoned): small"),
    "stickers": unsharded("a user's own stickers, a few each: small"),
    # --- push ---------------------------------------------------------------------------------
    "push_subscriptions": by(ID_HASHED, why="_id is user|device: replaced by _id; read by user_id $in (scatter)"),
    "push_preferences": by(ID_HASHED, why="_id is the user id: read and replaced by _id"),
    "push_levels": by(ID_HASHED, why="_id is user|conversation: read ($in) and upserted by _id"),
}


def placement(collection: str) -> Placement:
    """The declared placement; a collection not declared is a mistake that says where to declare it."""
    try:
        return COLLECTIONS[collection]
    except KeyError:
        raise LookupError(f"collection {collection!r} has no shard key declared; add it to shared/sharding.py") from None


def unique_index_fits(placement: Placement, index_key: list[str]) -> bool:
    """Whether a unique index on `index_key` (field names in order) can exist in the collection
    once it is sharded: `_id` alone always can; otherwise it must start with the whole shard key,
    and the key be ranged."""
    if index_key == ["_id"] or not placement.sharded:
        return True
    return not placement.hashed and tuple(index_key[: len(placement.fields)]) == placement.fields
