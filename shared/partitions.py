"""Which of chat's partition queues a message.send or message.ack goes to (issue 26, "one write per
message": docs/scaling.md "Sends routed per conversation").

A conversation's sends and acks go to one partition, `crc32(conversation key) % partitions`, and
each partition is consumed by one chat replica at a time (shared/partition_consumers.py), so its
seqs come from one replica's in-memory hint (services/chat/storage/appender.py) without clashes
on the unique (conversation_id, seq) index and without catch-up reads. The hash is CRC32, not
Python's `hash()` (salted per process): every gateway and every restart must agree.

The conversation key is what both the sender's gateway (which knows the target) and an
acknowledging device's gateway (which knows the conversation id) can compute:
- a direct conversation: its id, `d_...`, derived from the pair (the same whichever side writes);
- a group: its group id; a group's conversation id is `gc_<the group id's suffix>` (since issue 26),
  mapped back to it. Groups made before then have a random conversation id: their acks land on
  another partition than their sends (correct, only a catch-up read dearer).
"""
import hashlib
import re

from shared.redis_slots import bucket_of

_PARTITION_SUFFIX = re.compile(r"\.p[0-9]+$")


def direct_conversation_id(a: str, b: str) -> str:
    """The same id for the pair whoever writes first, and opaque to clients."""
    return "d_" + hashlib.sha256("|".join(sorted((a, b))).encode()).hexdigest()[:24]


def group_conversation_id(group_id: str) -> str:
    """A new group's conversation id, derived from its group id (see the module's docstring)."""
    return "gc_" + group_id.removeprefix("g_")


def conversation_key(conversation_id: str) -> str:
    """The partition key of a conversation, from its id (message.ack)."""
    if conversation_id.startswith("gc_"):
        return "g_" + conversation_id.removeprefix("gc_")
    return conversation_id


def send_key(sender: str, to_user_id: str | None, to_group_id: str | None) -> str:
    """The partition key of a message.send: its conversation's, from the sender and the target."""
    if to_group_id is not None:
        return to_group_id
    return direct_conversation_id(sender, to_user_id or "")


def partition_of(key: str, partitions: int) -> int:
    """Stable across processes and restarts (CRC32, as Redis buckets are)."""
    return bucket_of(key, partitions)


def partition_routing_key(routing_key: str, partition: int) -> str:
    """`chat.messages.send` -> `chat.messages.send.p3`: bound only to partition 3's queue (a topic
    binding without wildcards matches one key exactly, so the service queue never sees it)."""
    return f"{routing_key}.p{partition}"


def unpartitioned(routing_key: str) -> str:
    """`chat.messages.send.p3` -> `chat.messages.send` (the handler's route)."""
    return _PARTITION_SUFFIX.sub("", routing_key)
