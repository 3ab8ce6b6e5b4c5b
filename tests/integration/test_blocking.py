"""Blocking end to end (docs/protocol.md "Blocking"), and profile.updated reaching friends."""
import asyncio
from typing import Any

from tests.support.client import Client, befriend, log_in_again, new_user

OFFER = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
# What would tell the blocked user about the block.
TELLING = {"presence", "friend.request", "friend.accepted", "profile.updated"}


def error_of(reply: dict[str, Any]) -> tuple[str, str]:
    assert reply["ok"] is False, reply
    return reply["error"]["code"], reply["error"]["message"]


async def friend_ids(client: Client) -> list[str]:
    return [f["user_id"] for f in (await client.call("friends.list"))["friends"]]


def drained(client: Client) -> list[dict[str, Any]]:
    """Every push received and not yet read."""
    pushes = []
    while not client.pushes.empty():
        pushes.append(client.pushes.get_nowait())
    return pushes


async def test_a_blocked_ex_friend_is_refused_everywhere_and_never_told(port: int, other_port: int) -> None:
    alice, bob, carol, dave = await new_user(port), await new_user(other_port), await new_user(port), await new_user(port)
    await befriend(alice, bob)
    await befriend(alice, carol)
    sent = await bob.send_text(alice.user_id, "hello while friends")
    await alice.next_push("message.new")

    assert await alice.call("blocks.add", {"user_id": bob.user_id}) == {}

    assert await friend_ids(bob) == []
    assert await friend_ids(alice) == [carol.user_id]
    # Messages, friend requests and calls from the blocked user: refused as from a stranger.
    as_stranger = error_of(await dave.reply("message.send", {"to": {"user_id": alice.user_id}, "client_msg_id": "d1", "text": "hi"}))
    refusals = {
        "message": await bob.reply("message.send", {"to": {"user_id": alice.user_id}, "client_msg_id": "b2", "text": "hi"}),
        "request": await bob.reply("friends.request", {"user_id": alice.user_id}),
        "accept": await bob.reply("friends.accept", {"user_id": alice.user_id}),
        "call": await bob.reply("call.invite", {"user_id": alice.user_id, "media": "audio", "sdp": OFFER}),
        "call in the old conversation": await bob.reply(
            "call.invite", {"conversation_id": sent["conversation_id"], "media": "video", "sdp": OFFER}
        ),
    }
    assert error_of(refusals["message"]) == as_stranger == ("forbidden", "direct messages need an accepted friendship")
    assert error_of(refusals["request"]) == ("forbidden", "you cannot send this user a friend request")
    assert error_of(refusals["accept"])[0] == "not_found"
    stranger_call = error_of(await dave.reply("call.invite", {"user_id": alice.user_id, "media": "audio", "sdp": OFFER}))
    assert error_of(refusals["call"]) == error_of(refusals["call in the old conversation"]) == stranger_call
    assert stranger_call[0] == "forbidden"
    assert not any("block" in str(reply).lower() for reply in refusals.values())
    assert await alice.no_push("friend.request", 0.1)

    # The blocker is told what to do instead.
    assert error_of(await alice.reply("friends.request", {"user_id": bob.user_id})) == (
        "conflict", "you blocked this user; unblock them first",
    )
    # Presence: a friend hears Alice go, the blocked ex-friend does not.
    await alice.close()
    assert (await carol.next_push("presence"))["user_id"] == alice.user_id
    await asyncio.sleep(0.2)
    told = [p for p in drained(bob) if p["type"] in TELLING or "block" in str(p).lower()]
    assert told == []
    for client in (bob, carol, dave):
        await client.close()


async def test_the_list_unblocking_and_asking_again(port: int) -> None:
    alice, bob, carol, dave = [await new_user(port) for _ in range(4)]
    for target in (bob, carol, dave):
        await alice.call("blocks.add", {"user_id": target.user_id})
    assert await alice.call("blocks.add", {"user_id": carol.user_id}) == {}  # again: nothing changes

    listed = (await alice.call("blocks.list"))["users"]
    assert [u["user_id"] for u in listed] == [dave.user_id, carol.user_id, bob.user_id]
    assert listed[2]["username"] == bob.username and listed[2]["display_name"] == bob.username
    assert (await bob.call("blocks.list"))["users"] == []

    assert error_of(await alice.reply("blocks.add", {"user_id": alice.user_id}))[0] == "bad_request"
    assert error_of(await alice.reply("blocks.add", {"user_id": "u_nobody_at_all"}))[0] == "not_found"
    assert await alice.call("blocks.remove", {"user_id": carol.user_id}) == {}
    assert error_of(await alice.reply("blocks.remove", {"user_id": carol.user_id}))[0] == "not_found"

    # Unblocked, Bob may ask again; the friendship works as any other.
    await alice.call("blocks.remove", {"user_id": bob.user_id})
    await befriend(bob, alice)
    await bob.send_text(alice.user_id, "friends again")
    assert (await alice.next_push("message.new"))["text"] == "friends again"
    assert [u["user_id"] for u in (await alice.call("blocks.list"))["users"]] == [dave.user_id]
    for client in (alice, bob, carol, dave):
        await client.close()


async def test_profile_updated_reaches_friends_and_the_users_other_devices(port: int, other_port: int) -> None:
    alice, bob, stranger = await new_user(port), await new_user(other_port), await new_user(port)
    await befriend(alice, bob)
    tablet = await log_in_again(alice, other_port, "tablet")
    await tablet.wait_synced()
    asked = await new_user(port)
    await alice.call("friends.request", {"user_id": asked.user_id})  # pending: not a friend yet

    renamed = await alice.call("profile.update", {"display_name": "Alice Renamed"})
    assert renamed["display_name"] == "Alice Renamed"

    expected = {"user": renamed}
    assert await bob.next_push("profile.updated") == expected
    assert await tablet.next_push("profile.updated") == expected
    assert await alice.next_push("profile.updated") == expected
    assert await stranger.no_push("profile.updated", 0.2) and await asked.no_push("profile.updated", 0)
    [entry] = (await bob.call("friends.list"))["friends"]
    assert entry["user_id"] == alice.user_id and "avatar_url" in entry
    for client in (alice, bob, stranger, tablet, asked):
        await client.close()


async def test_the_blocked_user_cannot_bring_the_blocker_into_a_group(port: int) -> None:
    alice, bob, carol = [await new_user(port) for _ in range(3)]
    await alice.call("blocks.add", {"user_id": bob.user_id})
    cannot = ("forbidden", "this user cannot be added")

    assert error_of(await bob.reply("groups.create", {"name": "With Alice", "member_ids": [alice.user_id]})) == cannot
    created = await bob.call("groups.create", {"name": "Bob's", "member_ids": [carol.user_id]})
    group_id = created["group_id"]
    refused = await bob.reply("groups.add_members", {"group_id": group_id, "user_ids": [alice.user_id]})
    assert error_of(refused) == cannot
    # Nor let her in on a join request she filed.
    await bob.call("groups.update", {"group_id": group_id, "approval_required": True})
    invite = await bob.call("groups.invites.create", {"group_id": group_id})
    assert (await alice.call("groups.join", {"code": invite["code"]}))["status"] == "requested"
    accepting = await bob.reply("groups.join_requests.accept", {"group_id": group_id, "user_id": alice.user_id})
    assert error_of(accepting) == cannot
    members = (await bob.call("groups.members", {"group_id": group_id}))["members"]
    assert alice.user_id not in {m["user_id"] for m in members}
    # The blocker may still add the user she blocked (the rule is the blocked user's).
    mine = await alice.call("groups.create", {"name": "Alice's", "member_ids": [bob.user_id]})
    assert (await bob.next_push("group.added"))["group_id"] == mine["group_id"]
    for client in (alice, bob, carol):
        await client.close()
