"""message.send and message.ack frames on their way to chat, many to a command (batching.py),
and a retried send joining the one still in flight.

Each conversation's sends and acks go to one of chat's partition queues (shared/partitions.py),
so the frames are batched per partition: one Batcher per partition and kind. A socket has one
send batch in flight per partition, which keeps its sends to one conversation in order (the
order PROTOCOL.md promises: by seq, per conversation). Why not one batch split per partition and
merged back: a partition whose replica is away (a handover, up to a lease) would hold every batch
that has an item for it, and with it every socket in those batches; per partition, only the
sockets writing to that partition's conversations wait, and a failed batch fails only its own
items (and what their sockets queued behind them for that partition).

Each frame is a future here, not a task: `send_soon` and `ack_soon` queue the item and hand
back the future of its reply data, which the dispatcher answers the frame from in a callback
(a task, a coroutine and a shield per message.send were a fifth of the gateway's CPU: issue 26).
"""
import asyncio
import math
from functools import partial
from typing import Any

from services.gateway.batching import Batcher
from services.gateway.connections import Connection
from services.gateway.frames import ParsedFrame
from services.gateway.identity import caller_for
from shared.broker import RpcClient
from shared.contracts.batches import AckBatch, AckItem, ItemResult, SendBatch, SendItem
from shared.contracts.chat import MessageAck, MessageSend
from shared.contracts.errors import ParleyError
from shared.contracts.operations import CHAT_MESSAGES_ACK, CHAT_MESSAGES_SEND, Operation
from shared.ids import new_id
from shared.partitions import conversation_key, partition_of, partition_routing_key, send_key
from shared.settings import Settings


class ChatBatches:
    def __init__(self, settings: Settings, gateway_id: str, rpc: RpcClient):
        self.gateway_id = gateway_id
        self.rpc = rpc
        # message.send in flight, by (user, target, client_msg_id): a retry joins the first (send).
        # The target, because a client_msg_id is unique per conversation (the same one sent to
        # another conversation is another message).
        self._sends_in_flight: dict[tuple[str, str, str], asyncio.Future[dict[str, Any]]] = {}
        # 0: no partitions, one Batcher of each kind to chat's service queue.
        self.partitions = settings.chat_partitions
        batchers = max(1, self.partitions)
        # The gateway's commands in flight are shared out among the partitions (one each at
        # least): what piles up while a batch is out goes in the next, larger one. Each partition
        # with all of them (16 x 8) made batches ten times smaller: ten times the commands,
        # replies, deliveries and events per message (measured: docs/performance.md).
        in_flight = max(1, math.ceil(settings.batches_in_flight / batchers))
        self.sends: list[Batcher[SendItem]] = [
            Batcher(
                "message.send", partial(self._send_batch, partition), max_items=settings.batch_max_items,
                max_in_flight=in_flight, one_per_socket=True,
            )
            for partition in range(batchers)
        ]
        self.acks: list[Batcher[AckItem]] = [
            Batcher(
                "message.ack", partial(self._ack_batch, partition), max_items=settings.batch_max_items,
                max_in_flight=in_flight, one_per_socket=False,
            )
            for partition in range(batchers)
        ]

    def _partition(self, key: str) -> int:
        return partition_of(key, self.partitions) if self.partitions else 0

    def _routing_key(self, op: Operation[Any, Any], partition: int) -> str | None:
        return partition_routing_key(op.routing_key, partition) if self.partitions else None

    async def send(self, conn: Connection, frame: ParsedFrame[MessageSend]) -> dict[str, Any]:
        return await self.send_soon(conn, frame)

    async def ack(self, conn: Connection, frame: ParsedFrame[MessageAck]) -> dict[str, Any]:
        return await self.ack_soon(conn, frame)

    def send_soon(self, conn: Connection, frame: ParsedFrame[MessageSend]) -> asyncio.Future[dict[str, Any]]:
        """message.send: the future of its reply data. A retry of a send still in flight joins it
        instead of queueing behind it: after an outage, clients that retry on timeouts would
        otherwise pile copies of each message up behind their own socket's earlier batches."""
        loop = asyncio.get_running_loop()
        mine: asyncio.Future[dict[str, Any]] = loop.create_future()
        session = conn.session
        if session is None:  # logged out (or its token ended) since the frame was read
            mine.set_exception(ParleyError.unauthorized("message.send needs a logged-in socket"))
            return mine
        to = frame.request.to
        key = (session.user_id, f"g:{to.group_id}" if to.group_id is not None else f"u:{to.user_id}", frame.request.client_msg_id)
        running = self._sends_in_flight.get(key)
        if running is None:
            caller = caller_for(self.gateway_id, frame.id, session, conn_id=conn.conn_id, address=conn.address)
            partition = self._partition(send_key(session.user_id, to.user_id, to.group_id))
            running = self.sends[partition].enqueue(conn.conn_id, SendItem(caller=caller, request=frame.request))
            self._sends_in_flight[key] = running
            running.add_done_callback(lambda _: self._sends_in_flight.pop(key, None))
        # Each asker waits on a future of its own: the first asker's socket closing (which
        # cancels its future) must not cancel what a retry waits for.
        running.add_done_callback(lambda done: _pass_on(done, mine))
        return mine

    def ack_soon(self, conn: Connection, frame: ParsedFrame[MessageAck]) -> asyncio.Future[dict[str, Any]]:
        """message.ack: the future of its reply data (cancelled before its batch goes: withdrawn)."""
        caller = caller_for(self.gateway_id, frame.id, conn.session, conn_id=conn.conn_id, address=conn.address)
        partition = self._partition(conversation_key(frame.request.conversation_id))
        return self.acks[partition].enqueue(conn.conn_id, AckItem(caller=caller, request=frame.request))

    async def _send_batch(self, partition: int, items: list[SendItem]) -> list[ItemResult]:
        """One command to chat for many sockets' sends to one partition's conversations (one batch
        per socket out at a time: a device's messages are stored in the order it sent them)."""
        reply = await self.rpc.call(
            CHAT_MESSAGES_SEND, SendBatch(items=items), caller_for(self.gateway_id, new_id("b")),
            routing_key=self._routing_key(CHAT_MESSAGES_SEND, partition),
        )
        return reply.results

    async def _ack_batch(self, partition: int, items: list[AckItem]) -> list[ItemResult]:
        reply = await self.rpc.call(
            CHAT_MESSAGES_ACK, AckBatch(items=items), caller_for(self.gateway_id, new_id("b")),
            routing_key=self._routing_key(CHAT_MESSAGES_ACK, partition),
        )
        return reply.results


def _pass_on(done: asyncio.Future[dict[str, Any]], to: asyncio.Future[dict[str, Any]]) -> None:
    """`done`'s outcome to `to`, unless `to` was given up (cancelled) meanwhile."""
    if to.done():
        return
    if done.cancelled():
        to.cancel()
    elif (exc := done.exception()) is not None:
        to.set_exception(exc)
    else:
        to.set_result(done.result())
