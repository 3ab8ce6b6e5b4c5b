"""Chat's partitions (issue 26): which partition a send or an ack goes to, how a replica sizes its
share, and the gateway's batching per partition (results on the right futures, a socket's sends
to one conversation in order, a failed partition failing only its own items)."""
import asyncio
import os
import subprocess
import sys
from typing import Any

from services.gateway.chat_batches import ChatBatches
from services.gateway.connections import Connection, Session
from services.gateway.frames import ParsedFrame
from shared.contracts.batches import BatchReply, ItemResult
from shared.contracts.chat import MessageAck, MessageSend
from shared.contracts.errors import ParleyError
from shared.contracts.operations import CHAT_MESSAGES_ACK, CHAT_MESSAGES_SEND, OPERATIONS
from shared.partition_consumers import fair_share, first_to_try
from shared.partitions import (
    conversation_key, direct_conversation_id, group_conversation_id, partition_of, partition_routing_key, send_key,
    unpartitioned,
)
from shared.settings import Settings

A, B, C = "u_0000000000010000000000a1", "u_0000000000020000000000b2", "u_0000000000030000000000c3"
GROUP = "g_00000000000400000000g4g4"


# --- which partition ----------------------------------------------------------------------------
def test_a_direct_conversation_has_one_partition_whichever_side_writes_or_acks() -> None:
    conversation = direct_conversation_id(A, B)
    assert send_key(A, B, None) == send_key(B, A, None) == conversation_key(conversation) == conversation
    for partitions in (1, 7, 16, 1024):
        assert partition_of(send_key(A, B, None), partitions) == partition_of(send_key(B, A, None), partitions)


def test_the_partition_is_stable_across_processes_not_pythons_salted_hash() -> None:
    # CRC32: these values hold in every process, on every machine, after every restart (a change
    # of the function would send a live conversation's sends to two replicas during a rollout).
    assert partition_of("d_2f3c1e0a9b8d7c6e5f4a3b2c", 16) == 14
    assert partition_of("g_018c3f1a2b3c4d5e6f708192", 16) == 0
    keys = [direct_conversation_id(A, f"u_{i}") for i in range(20)]
    here = [partition_of(k, 16) for k in keys]
    script = f"from shared.partitions import partition_of; print([partition_of(k, 16) for k in {keys!r}])"
    for seed in ("1", "2"):  # other processes, Python's str hash salted otherwise
        out = subprocess.run([sys.executable, "-c", script], env={**os.environ, "PYTHONHASHSEED": seed},
                             capture_output=True, text=True, check=True)
        assert out.stdout.strip() == str(here)


def test_a_new_groups_sends_and_acks_share_a_partition() -> None:
    conversation = group_conversation_id(GROUP)
    assert conversation.startswith("gc_") and conversation != GROUP
    assert send_key(A, None, GROUP) == conversation_key(conversation) == GROUP


def test_partition_routing_keys_go_back_to_the_operations_route() -> None:
    for op in (CHAT_MESSAGES_SEND, CHAT_MESSAGES_ACK):
        assert op.partitioned
        key = partition_routing_key(op.routing_key, 13)
        assert key == f"{op.routing_key}.p13" and unpartitioned(key) == op.routing_key
    assert unpartitioned("chat.history.fetch") == "chat.history.fetch"
    assert [op.name for op in OPERATIONS.values() if op.partitioned] == ["chat.messages.send", "chat.messages.ack"]


def test_the_live_replicas_shares_add_up_to_every_partition_and_differ_by_one_at_most() -> None:
    for partitions in (1, 5, 16, 100):
        for count in range(1, 12):
            live = [f"chat_{i:03d}" for i in range(count)]
            shares = [fair_share(partitions, live, holder) for holder in live]
            assert sum(shares) == partitions and max(shares) - min(shares) <= 1, (partitions, count, shares)
    assert [fair_share(16, ["a", "b", "c"], h) for h in "abc"] == [6, 5, 5]
    assert fair_share(16, ["a", "b"], "c") == 5  # its own beat not seen yet: counts itself in
    ring = first_to_try("chat_1", 16)
    assert sorted(ring) == list(range(16)) and ring == first_to_try("chat_1", 16)


# --- the gateway, per partition -------------------------------------------------------------------
class FakeChat:
    """RpcClient.call as chat answers: each item's own answer, its client_msg_id (or seq) echoed."""

    def __init__(self, failing: set[str] | None = None) -> None:
        self.calls: list[tuple[str, list[Any]]] = []
        self.failing = failing or set()

    async def call(self, op: Any, request: Any, caller: Any = None, timeout: Any = None,
                   routing_key: str | None = None) -> BatchReply:
        assert routing_key is not None
        self.calls.append((routing_key, list(request.items)))
        await asyncio.sleep(0)
        if routing_key in self.failing:
            raise ParleyError.unavailable("that partition's replica is away")
        results = []
        for item in request.items:
            r = item.request
            echo = {"client_msg_id": r.client_msg_id} if isinstance(r, MessageSend) else {"seq": r.seq}
            results.append(ItemResult(ok=True, data={**echo, "user": item.caller.user_id}))
        return BatchReply(results=results)


def _socket(conn_id: str, user: str) -> Connection:
    conn = Connection(conn_id=conn_id, websocket=None, max_queued_bytes=1 << 20)  # type: ignore[arg-type]
    conn.session = Session(user_id=user, device_id="phone", token_id="t", expires_at=2**40)
    return conn


def _send(to: dict[str, str], cmid: str) -> ParsedFrame[MessageSend]:
    request = MessageSend.model_validate({"to": to, "client_msg_id": cmid, "text": cmid})
    return ParsedFrame(id=cmid, operation=OPERATIONS["message.send"], request=request)


def _ack(conversation_id: str, seq: int) -> ParsedFrame[MessageAck]:
    request = MessageAck(conversation_id=conversation_id, seq=seq)
    return ParsedFrame(id=f"a{seq}", operation=OPERATIONS["message.ack"], request=request)


def _batches(chat: FakeChat, partitions: int = 4) -> ChatBatches:
    return ChatBatches(Settings(chat_partitions=partitions), "gw1", chat)  # type: ignore[arg-type]


async def test_sends_split_per_partition_answer_each_frame_and_keep_a_sockets_order_per_conversation() -> None:
    chat = FakeChat()
    batches = _batches(chat, partitions=4)
    a, b = _socket("c_a", A), _socket("c_b", B)
    frames = [(a, _send({"user_id": B}, f"ab{i}")) for i in range(5)] + [
        (a, _send({"user_id": C}, "ac0")), (a, _send({"group_id": GROUP}, "ag0")), (b, _send({"user_id": A}, "ba0")),
        (a, _send({"user_id": B}, "ab5")),
    ]
    futures = [batches.send_soon(conn, frame) for conn, frame in frames]
    answers = await asyncio.gather(*futures)
    assert [x["client_msg_id"] for x in answers] == [f.request.client_msg_id for _, f in frames]
    assert [x["user"] for x in answers] == [conn.session.user_id for conn, _ in frames if conn.session]

    # One command per partition touched (each partition's items in one batch here), each to its key.
    partition = {cmid: partition_of(key, 4) for cmid, key in [
        ("ab", direct_conversation_id(A, B)), ("ac", direct_conversation_id(A, C)), ("ag", GROUP),
        ("ba", direct_conversation_id(A, B)),
    ]}
    for routing_key, items in chat.calls:
        assert {partition_routing_key("chat.messages.send", partition[i.request.client_msg_id[:2]]) for i in items} == {
            routing_key
        }
    assert len(chat.calls) == len(set(partition.values()))
    # A's sends to B, and B's to A, went together, A's in the order sent.
    to_b = [i.request.client_msg_id for _, items in chat.calls for i in items if i.request.client_msg_id[:2] == "ab"]
    assert to_b == [f"ab{i}" for i in range(6)]


async def test_a_retry_joins_its_send_in_flight_on_the_same_partition() -> None:
    chat = FakeChat()
    batches = _batches(chat)
    a = _socket("c_a", A)
    first = batches.send_soon(a, _send({"user_id": B}, "m1"))
    again = batches.send_soon(_socket("c_a2", A), _send({"user_id": B}, "m1"))
    assert await first == await again
    assert sum(len(items) for _, items in chat.calls) == 1


async def test_a_failed_partition_fails_its_items_only() -> None:
    conversations = {f"{p}": direct_conversation_id(A, f"u_{p:024x}") for p in range(40)}
    by_partition: dict[int, str] = {}
    for user, conversation in conversations.items():
        by_partition.setdefault(partition_of(conversation, 4), user)
    down, up = sorted(by_partition)[:2]
    chat = FakeChat(failing={partition_routing_key("chat.messages.send", down)})
    batches = _batches(chat)
    a = _socket("c_a", A)
    lost = batches.send_soon(a, _send({"user_id": f"u_{int(by_partition[down]):024x}"}, "x1"))
    kept = batches.send_soon(a, _send({"user_id": f"u_{int(by_partition[up]):024x}"}, "y1"))
    assert (await kept)["client_msg_id"] == "y1"
    try:
        await lost
        raise AssertionError("the failed partition's item was answered ok")
    except ParleyError as exc:
        assert exc.code.value == "unavailable"


async def test_acks_go_to_their_conversations_partition() -> None:
    chat = FakeChat()
    batches = _batches(chat, partitions=8)
    a = _socket("c_a", A)
    pairs = [(direct_conversation_id(A, B), 3), (group_conversation_id(GROUP), 9), (direct_conversation_id(A, C), 4)]
    answers = await asyncio.gather(*(batches.ack_soon(a, _ack(cid, seq)) for cid, seq in pairs))
    assert [x["seq"] for x in answers] == [3, 9, 4]
    for routing_key, items in chat.calls:
        for item in items:
            expected = partition_of(conversation_key(item.request.conversation_id), 8)
            assert routing_key == partition_routing_key("chat.messages.ack", expected)


async def test_without_partitions_everything_goes_to_the_service_queue() -> None:
    class Unpartitioned(FakeChat):
        async def call(self, op: Any, request: Any, caller: Any = None, timeout: Any = None,
                       routing_key: str | None = None) -> BatchReply:
            assert routing_key is None
            return await super().call(op, request, caller, timeout, "none")

    chat = Unpartitioned()
    batches = _batches(chat, partitions=0)
    a = _socket("c_a", A)
    answers = await asyncio.gather(*(batches.send_soon(a, _send({"user_id": u}, f"m{u[-1]}")) for u in (B, C)))
    assert len(answers) == 2 and len(chat.calls) == 1
