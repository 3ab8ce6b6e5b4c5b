"""A message.send retried while the first is still in flight (issue 11, point 5).

After an outage, clients that retry on a timeout with the same client_msg_id used to stack a
copy of each message behind their socket's send lock, each its own round trip to chat once the
first came back. A retry now joins the send in flight: one RPC, the same reply for each.
"""
import asyncio
import re
import secrets
import signal
from typing import Any

import httpx

from deploy.local.devstack import Stack
from tests.support.client import Client, befriend, new_user


async def send_rpcs(port: int) -> float:
    """How many message.send RPCs this gateway has made (its RPC histogram's count: sends go
    to chat in batches, chat.messages.send)."""
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    found = re.search(r'^parley_rpc_seconds_count\{operation="chat.messages.send"\} ([0-9.e+]+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


async def sent(client: Client, frame: dict[str, Any]) -> asyncio.Task[dict[str, Any]]:
    """Write `frame` now (before anything sent after this returns); its reply comes in the task.
    The task's first step, which runs at the yield below, writes the frame before it waits."""
    task = asyncio.create_task(client.frame(frame))
    await asyncio.sleep(0)
    return task


async def handed_on(client: Client) -> None:
    """Every frame written before now has reached its handler: a socket's frames are read in
    order and each handler starts (a message.send joining or starting its send at once) before
    a ping written after them is answered, which chat, stopped, has no part in."""
    await client.call("ping")


async def test_a_retry_of_a_send_in_flight_joins_it(stack: Stack, port: int) -> None:
    alice, bob = await new_user(port), await new_user(port)
    await befriend(alice, bob)
    before = await send_rpcs(port)
    chat = stack.procs["chat1"].popen
    assert chat is not None
    data = {"to": {"user_id": bob.user_id}, "client_msg_id": secrets.token_hex(6), "text": "sent once"}
    chat.send_signal(signal.SIGSTOP)  # chat slow: the first send waits, the client retries
    try:
        first = await sent(alice, {"type": "message.send", "id": "try1", "data": data})
        await handed_on(alice)  # in flight (as the first, it waits for chat)
        retries = [await sent(alice, {"type": "message.send", "id": f"try{i}", "data": data}) for i in (2, 3)]
        await handed_on(alice)  # both retries arrived while the first is still in flight
    finally:
        chat.send_signal(signal.SIGCONT)
    replies = await asyncio.gather(first, *retries)
    assert all(r["ok"] for r in replies), replies
    assert len({(r["data"]["seq"], r["data"]["message_id"]) for r in replies}) == 1
    assert await send_rpcs(port) - before == 1
    for client in (alice, bob):
        await client.close()


async def test_the_same_client_msg_id_to_another_friend_does_not_join_it(stack: Stack, port: int) -> None:
    """A client_msg_id is unique per conversation: the same one to Carol while the send to Bob is
    in flight is Carol's own message, not a retry of Bob's."""
    alice, bob, carol = await new_user(port), await new_user(port), await new_user(port)
    await befriend(alice, bob)
    await befriend(alice, carol)
    client_msg_id = secrets.token_hex(6)
    chat = stack.procs["chat1"].popen
    assert chat is not None
    chat.send_signal(signal.SIGSTOP)
    try:
        to_bob = await sent(alice, {"type": "message.send", "id": "bob", "data": {
            "to": {"user_id": bob.user_id}, "client_msg_id": client_msg_id, "text": "for bob"}})
        to_carol = await sent(alice, {"type": "message.send", "id": "carol", "data": {
            "to": {"user_id": carol.user_id}, "client_msg_id": client_msg_id, "text": "for carol"}})
        await handed_on(alice)
    finally:
        chat.send_signal(signal.SIGCONT)
    bob_reply, carol_reply = await asyncio.gather(to_bob, to_carol)
    assert bob_reply["ok"] and carol_reply["ok"], (bob_reply, carol_reply)
    assert bob_reply["data"]["conversation_id"] != carol_reply["data"]["conversation_id"]
    history = await carol.call("history.fetch", {"conversation_id": carol_reply["data"]["conversation_id"]})
    assert [m["text"] for m in history["messages"]] == ["for carol"]
    for client in (alice, bob, carol):
        await client.close()
