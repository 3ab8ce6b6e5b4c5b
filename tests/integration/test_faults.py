"""Crashes lose nothing: chat killed mid-stream, a gateway killed under a user's socket."""
import asyncio
import secrets

import pytest

from deploy.local.devstack import Stack
from tests.support.client import Client, ReplyError, befriend, log_in_again, new_user
from tests.support.infra import wait_until_ready
from tests.support.waiting import eventually

pytestmark = pytest.mark.faults


async def send_until_stored(client: Client, to_user: str, text: str, client_msg_id: str) -> dict:
    """What a client does with `unavailable`: retry with the same client_msg_id."""
    for _ in range(20):
        try:
            return await client.send_text(to_user, text, client_msg_id)
        except (ReplyError, asyncio.TimeoutError) as exc:
            if isinstance(exc, ReplyError) and exc.code != "unavailable":
                raise
            await asyncio.sleep(0.5)
    raise AssertionError(f"{client_msg_id} never stored")


async def test_chat_killed_while_messages_are_in_flight(stack: Stack, port: int) -> None:
    alice_phone, bob = await new_user(port, "phone"), await new_user(port)
    await befriend(alice_phone, bob)
    alice_laptop = await log_in_again(alice_phone, port, "laptop")

    total = 200
    texts = [f"m{i}-{secrets.token_hex(3)}" for i in range(total)]
    acknowledged: dict[str, dict] = {}
    refused: list[int] = []
    first_acks = asyncio.Event()

    async def sender(client: Client, indexes: range) -> None:
        for i in indexes:
            try:
                acknowledged[texts[i]] = await client.send_text(bob.user_id, texts[i], f"cm{i}")
            except (ReplyError, asyncio.TimeoutError, ConnectionError):
                refused.append(i)
            if len(acknowledged) >= 40:
                first_acks.set()

    senders = [
        asyncio.create_task(sender(alice_phone, range(0, total, 2))),
        asyncio.create_task(sender(alice_laptop, range(1, total, 2))),
    ]
    await asyncio.wait_for(first_acks.wait(), 30)
    stack.procs["chat1"].kill()  # SIGKILL: no clean shutdown, in-flight commands unacked
    stored_before_kill = len(acknowledged)
    try:
        await asyncio.sleep(1.0)  # a second without chat: the outage itself
    finally:  # the later tests of the run need chat back, whatever happens here
        stack.service("chat", 0)
    await asyncio.gather(*senders)
    await wait_until_ready(port)

    assert stored_before_kill < total - 50, "the kill should land mid-stream"
    # Sends in flight during the kill either waited in the queue for the new chat, or were
    # answered `unavailable`; the client retries those.
    for i in refused:  # the client retries what it was not told was stored
        acknowledged[texts[i]] = await send_until_stored(alice_phone, bob.user_id, texts[i], f"cm{i}")

    conversation_id = next(iter(acknowledged.values()))["conversation_id"]
    stored = []
    before = None
    while True:
        page = await bob.call("history.fetch", {"conversation_id": conversation_id, "limit": 200,
                                                **({"before_seq": before} if before else {})})
        stored = page["messages"] + stored
        if not page["has_more"]:
            break
        before = page["messages"][0]["seq"]
    # Every message stored exactly once, seq without gaps, each acknowledged reply true.
    assert sorted(m["text"] for m in stored) == sorted(texts)
    assert [m["seq"] for m in stored] == list(range(1, total + 1))
    by_text = {m["text"]: m for m in stored}
    for text, reply in acknowledged.items():
        assert (by_text[text]["seq"], by_text[text]["message_id"]) == (reply["seq"], reply["message_id"])

    # Bob, online throughout, then reconnecting: every message reaches him once as he sees it.
    await bob.close()
    again = await Client(port).connect()
    again.username = bob.username
    again.inbox = bob.inbox
    await again.login()
    await again.wait_synced()
    assert sorted(again.inbox[conversation_id]) == list(range(1, total + 1))
    assert sorted(m["text"] for m in again.inbox[conversation_id].values()) == sorted(texts)
    for client in (alice_phone, alice_laptop, again):
        await client.close()


async def test_gateway_killed_under_a_socket_user_reconnects_elsewhere_and_misses_nothing(
    stack: Stack, port: int, other_port: int
) -> None:
    alice = await new_user(port)
    bob = await new_user(other_port)  # held by the gateway about to die
    carol = await new_user(other_port)  # her only device dies with it
    await befriend(alice, bob)
    await befriend(alice, carol)

    sent = [await alice.send_text(bob.user_id, f"before {i}") for i in range(30)]
    conversation_id = sent[0]["conversation_id"]
    await eventually(lambda: len(bob.inbox[conversation_id]) == 30, "bob holding the 30 messages sent before the crash")
    await bob.ack_all()

    stack.procs["gateway2"].kill()
    try:
        await asyncio.wait_for(bob.closed.wait(), 10)
        during = asyncio.create_task(_send_many(alice, bob.user_id, "during", 40))
        # Friends hear that Bob and Carol are gone within the presence expiry (3 s in the tests).
        gone = [await alice.next_push("presence", timeout=5) for _ in range(2)]
        assert sorted((p["user_id"], p["online"]) for p in gone) == sorted(
            [(bob.user_id, False), (carol.user_id, False)]
        )
        # Sent while bob is away, all of it: his sync brings each once. (Sends racing his new
        # bind may come both live and in the sync, which the protocol allows and clients drop.)
        await during

        back = await log_in_again(bob, port)
        await back.wait_synced()
        after = [await alice.send_text(bob.user_id, f"after {i}") for i in range(10)]
        assert after[-1]["seq"] == 80
        await eventually(lambda: max(back.inbox[conversation_id], default=0) == 80, "bob's new socket reaching seq 80")
        # Together, what bob saw before the crash and after it is everything, once, in order.
        seen = {**bob.inbox[conversation_id], **back.inbox[conversation_id]}
        assert sorted(seen) == list(range(1, 81))
        assert min(back.inbox[conversation_id]) == 31  # nothing he had acknowledged came again
        assert back.duplicates == 0
    finally:  # the later tests of the run need the second gateway back, whatever happens here
        stack.service("gateway", 1)
        await wait_until_ready(other_port)
    for client in (alice, back):
        await client.close()


async def _send_many(client: Client, to_user: str, prefix: str, count: int) -> None:
    for i in range(count):
        await client.send_text(to_user, f"{prefix} {i}")
