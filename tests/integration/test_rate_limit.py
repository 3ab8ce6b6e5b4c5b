"""The per-user message.send rate, on two gateways of its own with the defaults (20 a second,
burst 50); the shared test stack runs with the limit lifted so other tests can send in bulk.

Past the rate a send is answered `rate_limited` and nothing of it is stored; every message.send
counts, its fields valid or not; other users are not held up.
"""
import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest

from deploy.local.devstack import Stack, free_port
from tests.support.client import Client, befriend, log_in_again, new_user
from tests.support.infra import wait_until_ready

RATE, BURST = 20, 50
FLOOD = 80


@pytest.fixture(scope="module")
async def limited(stack: Stack) -> AsyncIterator[list[int]]:
    """Two gateways enforcing the default limit, on the shared backend services."""
    ports = [free_port(), free_port()]
    procs = {
        f"limited{i}": stack.start_process(f"limited{i}", "gateway", {
            "PARLEY_GATEWAY_PORT": str(p), "PARLEY_SEND_RATE_PER_SECOND": str(RATE), "PARLEY_SEND_BURST": str(BURST),
        })
        for i, p in enumerate(ports, 1)
    }
    try:
        for p in ports:
            await wait_until_ready(p)
        yield ports
    finally:  # stopped even when one never got ready
        await asyncio.gather(*(asyncio.to_thread(proc.stop) for proc in procs.values()))
        for key in procs:
            stack.procs.pop(key, None)


@pytest.fixture
def port(limited: list[int]) -> int:
    return limited[0]


@pytest.fixture
def other_port(limited: list[int]) -> int:
    return limited[1]


async def send(client: Client, to_user: str, text: str, client_msg_id: str) -> dict[str, Any]:
    """The whole reply (ok or not) to one message.send."""
    return await client.reply(
        "message.send", {"to": {"user_id": to_user}, "client_msg_id": client_msg_id, "text": text}, timeout=30
    )


async def history(client: Client, conversation_id: str) -> list[dict[str, Any]]:
    page = await client.call("history.fetch", {"conversation_id": conversation_id, "limit": 200})
    assert page["has_more"] is False
    return page["messages"]


async def test_a_flood_is_cut_at_the_burst_and_only_accepted_sends_are_stored(port: int, other_port: int) -> None:
    alice, bob = await new_user(port), await new_user(other_port)
    carol = await new_user(port)
    await befriend(alice, bob)
    await befriend(carol, bob)

    # 80 sends on one socket at once: the burst gets through, most of the rest is refused.
    cmids = [f"flood-{i}-{secrets.token_hex(4)}" for i in range(FLOOD)]
    replies = await asyncio.gather(*(send(alice, bob.user_id, f"flood {i}", cmids[i]) for i in range(FLOOD)))
    accepted = {cmids[i]: r["data"] for i, r in enumerate(replies) if r["ok"]}
    refused = [cmids[i] for i, r in enumerate(replies) if not r["ok"]]
    assert all(r["error"]["code"] == "rate_limited" for r in replies if not r["ok"]), replies
    message = next(r["error"]["message"] for r in replies if not r["ok"])
    assert message == "sending faster than 20 messages a second; slow down"
    assert BURST <= len(accepted) < FLOOD - 10, (len(accepted), len(refused))

    # Someone else on the same stack is not held up by alice's flood.
    assert (await carol.send_text(bob.user_id, "carol, unhurried"))["seq"] == 1

    # Each accepted send has its seq; the history holds exactly those, 1..N without gaps.
    n = len(accepted)
    assert sorted(r["seq"] for r in accepted.values()) == list(range(1, n + 1))
    conversation_id = next(iter(accepted.values()))["conversation_id"]
    stored = await history(bob, conversation_id)
    assert [m["seq"] for m in stored] == list(range(1, n + 1))
    by_seq = {r["seq"]: r for r in accepted.values()}
    assert [m["message_id"] for m in stored] == [by_seq[m["seq"]]["message_id"] for m in stored]
    texts_of_accepted = {f"flood {cmids.index(c)}" for c in accepted}
    assert {m["text"] for m in stored} == texts_of_accepted  # none of the refused

    # Once the bucket has refilled (50 tokens at 20 a second: 2.5 s) alice sends again, and a
    # refused send was not remembered: its client_msg_id now stores a new message.
    await asyncio.sleep(BURST / RATE + 0.1)
    retried = await send(alice, bob.user_id, "flood again", refused[0])
    assert retried["ok"], retried
    assert retried["data"]["seq"] == n + 1
    again = await alice.send_text(bob.user_id, "and once more")
    assert again["seq"] == n + 2
    assert [m["text"] for m in (await history(bob, conversation_id))[-2:]] == ["flood again", "and once more"]
    for client in (alice, bob, carol):
        await client.close()


async def test_invalid_sends_count_too(port: int) -> None:
    mallory, bob = await new_user(port), await new_user(port)
    await befriend(mallory, bob)

    # 80 message.send missing a field, then 5 valid ones, all at once: the invalid ones are
    # bad_request while tokens last, then rate_limited; what they used up the valid ones lack.
    bad = {"to": {"user_id": bob.user_id}, "text": "no client_msg_id"}
    invalid = [asyncio.create_task(mallory.reply("message.send", bad)) for _ in range(FLOOD)]
    valid = [asyncio.create_task(send(mallory, bob.user_id, f"hello {i}", secrets.token_hex(8))) for i in range(5)]
    codes = [r["error"]["code"] for r in await asyncio.gather(*invalid)]
    assert set(codes) == {"bad_request", "rate_limited"}, codes
    assert BURST <= codes.count("bad_request") < FLOOD - 10
    valid_replies = await asyncio.gather(*valid)
    assert sum(not r["ok"] and r["error"]["code"] == "rate_limited" for r in valid_replies) >= 3, valid_replies

    # Other operations do not count.
    assert (await mallory.reply("friends.list"))["ok"] is True
    for client in (mallory, bob):
        await client.close()


async def test_the_limit_is_per_user_across_devices_and_gateways(port: int, other_port: int) -> None:
    phone, bob = await new_user(port, "phone"), await new_user(port)
    await befriend(phone, bob)
    laptop = await log_in_again(phone, other_port, "laptop")
    await laptop.wait_synced()

    async def flood(client: Client, device: str) -> list[dict[str, Any]]:
        return await asyncio.gather(
            *(send(client, bob.user_id, f"{device} {i}", f"{device}-{i}-{secrets.token_hex(3)}") for i in range(40))
        )

    replies = [r for both in await asyncio.gather(flood(phone, "phone"), flood(laptop, "laptop")) for r in both]
    accepted = [r for r in replies if r["ok"]]
    assert any(not r["ok"] and r["error"]["code"] == "rate_limited" for r in replies)
    assert BURST <= len(accepted) < 70  # one bucket for both devices, not 50 each
    for client in (phone, laptop, bob):
        await client.close()
