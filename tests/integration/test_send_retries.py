"""A message.send retried while the first is still in flight (issue 11, point 5).

After an outage, clients that retry on a timeout with the same client_msg_id used to stack a
copy of each message behind their socket's send lock, each its own round trip to chat once the
first came back. A retry now joins the send in flight: one RPC, the same reply for each.
"""
import asyncio
import re
import secrets
import signal

import httpx

from shared.devstack import Stack
from tests.support.client import befriend, new_user


async def send_rpcs(port: int) -> float:
    """How many message.send RPCs this gateway has made (its RPC histogram's count: sends go
    to chat in batches, chat.messages.send)."""
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    found = re.search(r'^parley_rpc_seconds_count\{operation="chat.messages.send"\} ([0-9.e+]+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


async def test_a_retry_of_a_send_in_flight_joins_it(stack: Stack, port: int) -> None:
    alice, bob = await new_user(port), await new_user(port)
    await befriend(alice, bob)
    before = await send_rpcs(port)
    chat = stack.procs["chat1"].popen
    assert chat is not None
    data = {"to": {"user_id": bob.user_id}, "client_msg_id": secrets.token_hex(6), "text": "sent once"}
    chat.send_signal(signal.SIGSTOP)  # chat slow: the first send waits, the client retries
    try:
        first = asyncio.create_task(alice.frame({"type": "message.send", "id": "try1", "data": data}))
        await asyncio.sleep(0.3)
        retries = [asyncio.create_task(alice.frame({"type": "message.send", "id": f"try{i}", "data": data}))
                   for i in (2, 3)]
        await asyncio.sleep(1.0)
    finally:
        chat.send_signal(signal.SIGCONT)
    replies = await asyncio.gather(first, *retries)
    assert all(r["ok"] for r in replies), replies
    assert len({(r["data"]["seq"], r["data"]["message_id"]) for r in replies}) == 1
    assert await send_rpcs(port) - before == 1
    for client in (alice, bob):
        await client.close()
