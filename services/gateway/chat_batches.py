"""message.send and message.ack frames on their way to chat, many to a command (batching.py),
and a retried send joining the one still in flight.

Each frame is a future here, not a task: `send_soon` and `ack_soon` queue the item and hand
back the future of its reply data, which the dispatcher answers the frame from in a callback
(a task, a coroutine and a shield per message.send were a fifth of the gateway's CPU: issue 26).
"""
import asyncio
from typing import Any

from services.gateway.batching import Batcher
from services.gateway.connections import Connection
from services.gateway.frames import ParsedFrame
from services.gateway.identity import caller_for
from shared.broker import RpcClient
from shared.contracts.batches import AckBatch, AckItem, ItemResult, SendBatch, SendItem
from shared.contracts.chat import MessageAck, MessageSend
from shared.contracts.errors import ParleyError
from shared.contracts.operations import CHAT_MESSAGES_ACK, CHAT_MESSAGES_SEND
from shared.ids import new_id
from shared.settings import Settings


class ChatBatches:
    def __init__(self, settings: Settings, gateway_id: str, rpc: RpcClient):
        self.gateway_id = gateway_id
        self.rpc = rpc
        # message.send in flight, by (user, target, client_msg_id): a retry joins the first (send).
        # The target, because a client_msg_id is unique per conversation (the same one sent to
        # another conversation is another message).
        self._sends_in_flight: dict[tuple[str, str, str], asyncio.Future[dict[str, Any]]] = {}
        self.sends: Batcher[SendItem] = Batcher(
            "message.send", self._send_batch, max_items=settings.batch_max_items,
            max_in_flight=settings.batches_in_flight, one_per_socket=True,
        )
        self.acks: Batcher[AckItem] = Batcher(
            "message.ack", self._ack_batch, max_items=settings.batch_max_items,
            max_in_flight=settings.batches_in_flight, one_per_socket=False,
        )

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
            running = self.sends.enqueue(conn.conn_id, SendItem(caller=caller, request=frame.request))
            self._sends_in_flight[key] = running
            running.add_done_callback(lambda _: self._sends_in_flight.pop(key, None))
        # Each asker waits on a future of its own: the first asker's socket closing (which
        # cancels its future) must not cancel what a retry waits for.
        running.add_done_callback(lambda done: _pass_on(done, mine))
        return mine

    def ack_soon(self, conn: Connection, frame: ParsedFrame[MessageAck]) -> asyncio.Future[dict[str, Any]]:
        """message.ack: the future of its reply data (cancelled before its batch goes: withdrawn)."""
        caller = caller_for(self.gateway_id, frame.id, conn.session, conn_id=conn.conn_id, address=conn.address)
        return self.acks.enqueue(conn.conn_id, AckItem(caller=caller, request=frame.request))

    async def _send_batch(self, items: list[SendItem]) -> list[ItemResult]:
        """One command to chat for many sockets' sends (one batch per socket out at a time: a
        device's messages are stored in the order it sent them)."""
        reply = await self.rpc.call(CHAT_MESSAGES_SEND, SendBatch(items=items), caller_for(self.gateway_id, new_id("b")))
        return reply.results

    async def _ack_batch(self, items: list[AckItem]) -> list[ItemResult]:
        reply = await self.rpc.call(CHAT_MESSAGES_ACK, AckBatch(items=items), caller_for(self.gateway_id, new_id("b")))
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
