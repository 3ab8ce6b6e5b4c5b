"""Calls over real sockets (docs/protocol.md "Calls"), on a stack of their own: two gateways (one
is killed in the last test), a short ring time and presence expiry so that timeouts are seen.

The SDP and candidates are opaque strings here: Parley routes them, browsers (tests/browser)
make real ones."""
import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from deploy.local.devstack import Stack
from tests.support.client import Client, befriend, log_in_again, new_user
from tests.support.infra import stack_of_its_own

RING_SECONDS = 3.0
PRESENCE_TTL_SECONDS = 4.0
OFFER = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
ANSWER = OFFER.replace("o=- 1 2", "o=- 3 4")
CANDIDATE = {"candidate": "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host", "sdp_mid": "0", "sdp_mline_index": 0}


@pytest.fixture(scope="module")
async def calls_stack(test_env: dict[str, str]) -> AsyncIterator[Stack]:
    overrides = {
        "PARLEY_CALL_RING_SECONDS": str(RING_SECONDS),
        "PARLEY_CALL_CHECK_SECONDS": "0.3",
        "PARLEY_PRESENCE_TTL_SECONDS": str(PRESENCE_TTL_SECONDS),
        "PARLEY_PRESENCE_SWEEP_SECONDS": "0.5",
        "PARLEY_CALL_INVITE_BURST": "20",
    }
    async with stack_of_its_own(test_env, "calls", overrides, gateways=2) as (stack, _):
        yield stack


@pytest.fixture
def ports(calls_stack: Stack) -> list[int]:
    return calls_stack.gateway_ports


async def friends(port: int, other_port: int | None = None) -> tuple[Client, Client]:
    alice, bob = await new_user(port), await new_user(other_port or port)
    await befriend(alice, bob)
    return alice, bob


async def invite(caller: Client, callee: Client, media: str = "video") -> dict[str, Any]:
    return await caller.call("call.invite", {"user_id": callee.user_id, "media": media, "sdp": OFFER})


async def call_message(client: Client, peer: Client) -> dict[str, Any]:
    """The newest message of the pair's conversation as the client's history shows it."""
    listed = (await client.call("conversations.list"))["conversations"]
    (entry,) = [c for c in listed if c.get("peer", {}).get("user_id") == peer.user_id]
    history = await client.call("history.fetch", {"conversation_id": entry["conversation_id"]})
    return history["messages"][-1]


async def gone_offline(watcher: Client, user: Client) -> None:
    """Until the watcher (a friend) hears the user go offline: their socket is off presence, so
    an invite from now on finds nobody to ring."""
    while True:
        heard = await watcher.next_push("presence", timeout=15)
        if heard["user_id"] == user.user_id and heard["online"] is False:
            return


async def close(*clients: Client) -> None:
    for client in clients:
        await client.close()


async def test_a_video_call_rings_is_answered_carries_candidates_and_leaves_one_message(ports: list[int]) -> None:
    alice, bob = await friends(ports[0], ports[1])  # on two gateways
    ringing = await invite(alice, bob)
    assert ringing["state"] == "ringing" and ringing["ring_until"]
    incoming = await bob.next_push("call.incoming")
    assert incoming["call_id"] == ringing["call_id"] and incoming["from_user_id"] == alice.user_id
    assert incoming["media"] == "video" and incoming["sdp"] == OFFER
    # The caller's candidates while it rings are kept for the device that answers.
    await alice.call("call.ice", {"call_id": ringing["call_id"], "candidate": CANDIDATE})
    await bob.call("call.accept", {"call_id": ringing["call_id"], "sdp": ANSWER})
    accepted = await alice.next_push("call.accepted")
    assert accepted == {"call_id": ringing["call_id"], "sdp": ANSWER, "device_id": "default"}
    assert (await bob.next_push("call.ice"))["candidate"] == CANDIDATE
    await bob.call("call.ice", {"call_id": ringing["call_id"], "candidate": CANDIDATE | {"sdp_mid": "1"}})
    from_bob = await alice.next_push("call.ice")
    assert from_bob["from_user_id"] == bob.user_id and from_bob["candidate"]["sdp_mid"] == "1"

    await asyncio.sleep(1.2)
    await bob.call("call.hangup", {"call_id": ringing["call_id"]})
    ended = await alice.next_push("call.ended")
    assert ended["reason"] == "hangup" and ended["by_user_id"] == bob.user_id and ended["duration_seconds"] >= 1
    # A hang-up crossing the other side's is no error.
    assert await alice.call("call.hangup", {"call_id": ringing["call_id"]}) == {}
    for client in (alice, bob):
        message = (await client.next_push("message.new"))
        assert message["from_user_id"] == alice.user_id
        assert message["call"] == {"call_id": ringing["call_id"], "media": "video", "outcome": "completed",
                                   "duration_seconds": ended["duration_seconds"]}
        assert (await call_message(client, alice if client is bob else bob))["call"] == message["call"]
    await close(alice, bob)


async def test_the_callees_other_device_stops_ringing_when_one_answers(ports: list[int]) -> None:
    alice, bob = await friends(ports[0])
    bob_phone = await log_in_again(bob, ports[1], device_id="phone")
    await bob_phone.wait_synced()
    ringing = await invite(alice, bob, media="audio")
    for device in (bob, bob_phone):
        assert (await device.next_push("call.incoming"))["media"] == "audio"
    await bob_phone.call("call.accept", {"call_id": ringing["call_id"], "sdp": ANSWER})
    assert (await alice.next_push("call.accepted"))["device_id"] == "phone"
    stopped = await bob.next_push("call.ended")
    assert stopped["reason"] == "answered_elsewhere"
    # Too late on the first device; and the device not in the call may not signal in it.
    late = await bob.reply("call.accept", {"call_id": ringing["call_id"], "sdp": ANSWER})
    assert late["error"]["code"] == "conflict"
    other_device = await bob.reply("call.ice", {"call_id": ringing["call_id"], "candidate": CANDIDATE})
    assert other_device["error"]["code"] == "forbidden"
    await alice.call("call.hangup", {"call_id": ringing["call_id"]})
    assert (await bob_phone.next_push("call.ended"))["reason"] == "hangup"
    await close(alice, bob, bob_phone)


async def test_declined_busy_cancelled_and_offline_each_end_as_they_should(ports: list[int]) -> None:
    alice, bob = await friends(ports[0])
    carol = await new_user(ports[1])
    await befriend(carol, bob)
    # Declined.
    ringing = await invite(alice, bob)
    await bob.next_push("call.incoming")
    await bob.call("call.decline", {"call_id": ringing["call_id"]})
    assert (await alice.next_push("call.ended"))["reason"] == "declined"
    assert (await alice.next_push("message.new"))["call"]["outcome"] == "declined"
    # Busy: bob is in a call with carol.
    with_carol = await invite(carol, bob, media="audio")
    await bob.next_push("call.incoming")
    busy = await invite(alice, bob)
    assert busy == {"call_id": busy["call_id"], "state": "ended", "reason": "busy"}
    assert (await alice.next_push("message.new"))["call"]["outcome"] == "busy"
    # A caller already in a call cannot place another.
    again = await carol.reply("call.invite", {"user_id": bob.user_id, "media": "audio", "sdp": OFFER})
    assert again["error"]["code"] == "conflict"
    # Cancelled by the caller while ringing: bob stops ringing, his timeline says missed.
    await carol.call("call.cancel", {"call_id": with_carol["call_id"]})
    assert (await bob.next_push("call.ended"))["reason"] == "cancelled"
    cancelled = await bob.next_push("message.new")
    assert cancelled["call"]["outcome"] == "cancelled" and cancelled["from_user_id"] == carol.user_id
    # Offline: nobody to ring.
    await bob.close()
    await gone_offline(alice, bob)
    offline = await invite(alice, bob)
    assert offline["state"] == "ended" and offline["reason"] == "offline"
    assert (await alice.next_push("message.new"))["call"]["outcome"] == "missed"
    await close(alice, carol)


async def test_an_unanswered_call_times_out_and_is_a_missed_call(ports: list[int]) -> None:
    alice, bob = await friends(ports[0], ports[1])
    started = time.monotonic()
    ringing = await invite(alice, bob, media="audio")
    await bob.next_push("call.incoming")
    for client in (alice, bob):
        ended = await client.next_push("call.ended", timeout=RING_SECONDS + 5)
        assert ended["reason"] == "timeout" and "by_user_id" not in ended
    assert RING_SECONDS - 0.5 <= time.monotonic() - started <= RING_SECONDS + 3
    missed = await bob.next_push("message.new")
    assert missed["call"] == {"call_id": ringing["call_id"], "media": "audio", "outcome": "missed"}
    unread = (await bob.call("conversations.list"))["conversations"][0]
    assert unread["unread"] == 1 and unread["last_message"]["call"]["outcome"] == "missed"
    await close(alice, bob)


async def test_strangers_and_bystanders_are_refused_and_bad_signals_change_nothing(ports: list[int]) -> None:
    alice, bob = await friends(ports[0])
    stranger = await new_user(ports[0])
    refused = await stranger.reply("call.invite", {"user_id": alice.user_id, "media": "video", "sdp": OFFER})
    assert refused["error"]["code"] == "forbidden"
    ringing = await invite(alice, bob)
    for kind, data in [
        ("call.accept", {"call_id": ringing["call_id"], "sdp": ANSWER}),
        ("call.hangup", {"call_id": ringing["call_id"]}),
        ("call.ice", {"call_id": ringing["call_id"], "candidate": CANDIDATE}),
    ]:
        assert (await stranger.reply(kind, data))["error"]["code"] == "forbidden"
    unknown = await alice.reply("call.hangup", {"call_id": "call_nosuchcall"})
    assert unknown["error"]["code"] == "not_found"
    too_big = await bob.reply("call.accept", {"call_id": ringing["call_id"], "sdp": "a" * (16 * 1024 + 1)})
    assert too_big["error"]["code"] == "too_large"
    long_candidate = CANDIDATE | {"candidate": "c" * 1025}
    assert (await alice.reply("call.ice", {"call_id": ringing["call_id"], "candidate": long_candidate}))["error"][
        "code"
    ] == "too_large"
    assert (await alice.reply("call.invite", {"media": "video", "sdp": OFFER}))["error"]["code"] == "bad_request"
    assert (await alice.reply("call.accept", {"call_id": ringing["call_id"], "sdp": ANSWER}))["error"]["code"] == (
        "forbidden"
    )
    # Nothing of that changed the call: bob still answers it.
    await bob.call("call.accept", {"call_id": ringing["call_id"], "sdp": ANSWER})
    assert (await alice.next_push("call.accepted"))["sdp"] == ANSWER
    await alice.call("call.hangup", {"call_id": ringing["call_id"]})
    await close(alice, bob, stranger)


async def test_invites_are_rate_limited(ports: list[int]) -> None:
    alice, bob = await friends(ports[0])
    await bob.close()  # each invite ends at once (offline), so alice is never busy
    await gone_offline(alice, bob)  # not one ringing while his socket is still being let go
    codes = []
    for _ in range(25):
        reply = await alice.reply("call.invite", {"user_id": bob.user_id, "media": "audio", "sdp": OFFER})
        codes.append("ok" if reply["ok"] else reply["error"]["code"])
    assert codes[:20] == ["ok"] * 20 and "rate_limited" in codes[20:]
    await close(alice)


async def test_a_gateway_killed_mid_call_ends_it_for_the_other_side(calls_stack: Stack) -> None:
    ports = calls_stack.gateway_ports
    alice, bob = await friends(ports[0], ports[1])  # bob on the gateway about to die
    ringing = await invite(alice, bob)
    await bob.next_push("call.incoming")
    await bob.call("call.accept", {"call_id": ringing["call_id"], "sdp": ANSWER})
    await alice.next_push("call.accepted")
    killed_at = time.monotonic()
    calls_stack.procs["gateway2"].kill()
    ended = await alice.next_push("call.ended", timeout=PRESENCE_TTL_SECONDS + 10)
    took = time.monotonic() - killed_at
    assert ended["reason"] == "connection_lost" and ended["by_user_id"] == bob.user_id
    assert took <= PRESENCE_TTL_SECONDS + 2, f"ended {took:.1f} s after the gateway died"
    assert (await alice.next_push("message.new"))["call"]["outcome"] == "completed"
    calls_stack.service("gateway", 1)
    await close(alice)
