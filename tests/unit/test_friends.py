"""services/chat/domain/friends.py: requests, acceptance, removal, the list, presence pushes."""
import pytest

from shared.contracts import chat
from shared.contracts.errors import ErrorCode
from shared.presence import DeviceSocket
from tests.unit.helpers import profile
from tests.unit.world import chat_world, refusal

A, B, C, D = "u_alice", "u_bob", "u_carol", "u_dave"
PROFILES = {u: profile(u) for u in (A, B, C, D)}


@pytest.fixture
async def world(db, settings):
    async with chat_world(db, settings, *PROFILES.values()) as world:
        yield world


async def request(world, me, target):
    await world.ask(me, "friends.request", user_id=target)


async def accept(world, me, requester):
    await world.ask(me, "friends.accept", user_id=requester)


async def remove(world, me, other):
    await world.ask(me, "friends.remove", user_id=other)


async def listing(world, me) -> chat.FriendsListReply:
    return await world.ask(me, "friends.list")




def user_of(push) -> dict:
    return push["data"]["user"]


async def test_request_pushes_friend_request_with_requesters_profile_to_online_target(world):
    await world.online(B, "phone")
    await request(world, A, B)
    [push] = world.outbox.received_by(B, "phone")
    assert push["type"] == "friend.request"
    assert user_of(push) == PROFILES[A].model_dump()
    assert (await listing(world, B)).incoming == [PROFILES[A]]
    assert (await listing(world, A)).outgoing == [PROFILES[B]]


async def test_request_to_an_offline_target_is_kept_without_a_push(world):
    await request(world, A, B)
    assert world.outbox.sent == []
    assert (await listing(world, B)).incoming == [PROFILES[A]]


async def test_accepting_pushes_friend_accepted_to_the_requester(world):
    await world.online(A, "laptop")
    await world.online(B, "phone")
    await request(world, A, B)
    world.outbox.clear()

    await accept(world, B, A)

    assert world.outbox.received_by(B, "phone") == []
    [push] = world.outbox.received_by(A, "laptop")
    assert push["type"] == "friend.accepted"
    assert user_of(push) == PROFILES[B].model_dump()
    assert await world.friendships.are_friends(A, B)


async def test_request_to_yourself_is_bad_request(world):
    err = await refusal(request(world, A, A))
    assert err.code == ErrorCode.BAD_REQUEST
    assert "user_id" in err.message


async def test_request_to_an_unknown_user_is_not_found(world):
    err = await refusal(request(world, A, "u_nobody"))
    assert err.code == ErrorCode.NOT_FOUND
    assert await world.friendships.get(A, "u_nobody") is None


async def test_request_when_already_friends_is_conflict(world):
    await request(world, A, B)
    await accept(world, B, A)
    for me, other in ((A, B), (B, A)):
        assert (await refusal(request(world, me, other))).code == ErrorCode.CONFLICT


async def test_repeated_request_while_pending_is_quiet(world):
    await world.online(B, "phone")
    await request(world, A, B)
    await request(world, A, B)
    assert [p["type"] for p in world.outbox.received_by(B, "phone")] == ["friend.request"]
    assert (await listing(world, B)).incoming == [PROFILES[A]]


async def test_crossed_requests_make_friends(world):
    await world.online(A, "laptop")
    await request(world, A, B)
    await request(world, B, A)  # B asks A while A's request to B is pending

    assert await world.friendships.are_friends(A, B)
    assert [p["type"] for p in world.outbox.received_by(A, "laptop")] == ["friend.accepted"]
    assert [f.user_id for f in (await listing(world, A)).friends] == [B]
    assert [f.user_id for f in (await listing(world, B)).friends] == [A]
    assert (await listing(world, B)).incoming == []


async def test_accept_without_a_request_is_not_found(world):
    assert (await refusal(accept(world, B, A))).code == ErrorCode.NOT_FOUND
    await request(world, A, B)
    # The requester cannot accept their own request.
    assert (await refusal(accept(world, A, B))).code == ErrorCode.NOT_FOUND
    assert not await world.friendships.are_friends(A, B)


async def test_accepting_twice_is_conflict(world):
    await request(world, A, B)
    await accept(world, B, A)
    assert (await refusal(accept(world, B, A))).code == ErrorCode.CONFLICT


async def test_remove_of_nothing_is_not_found(world):
    assert (await refusal(remove(world, A, B))).code == ErrorCode.NOT_FOUND


async def test_remove_declines_a_pending_request(world):
    await request(world, A, B)
    await remove(world, B, A)
    assert (await listing(world, A)).outgoing == []
    assert (await listing(world, B)).incoming == []
    assert (await refusal(accept(world, B, A))).code == ErrorCode.NOT_FOUND


async def test_remove_unfriends_both_ways(world):
    await request(world, A, B)
    await accept(world, B, A)
    await remove(world, A, B)
    assert not await world.friendships.are_friends(A, B)
    assert (await listing(world, B)).friends == []
    await request(world, B, A)  # they may start over
    assert (await listing(world, A)).incoming == [PROFILES[B]]


async def test_list_shows_friends_with_presence_and_pending_both_ways(world):
    for other in (B, C):
        await request(world, A, other)
        await accept(world, other, A)
    await request(world, A, D)  # outgoing
    await world.online(B, "phone")
    gone = DeviceSocket(C, "phone", "gw1", "c7")
    await world.presence.bind(gone)
    await world.presence.unbind(gone)  # C was online, then left: last_seen is set

    mine = await listing(world, A)

    by_id = {f.user_id: f for f in mine.friends}
    assert set(by_id) == {B, C}
    assert (by_id[B].online, by_id[B].username, by_id[B].display_name) == (True, "u_bob", "U_Bob")
    assert by_id[C].online is False
    assert by_id[C].last_seen is not None and by_id[C].last_seen.endswith("Z")
    assert mine.outgoing == [PROFILES[D]]
    assert mine.incoming == []
    theirs = await listing(world, D)
    assert (theirs.friends, theirs.incoming, theirs.outgoing) == ([], [PROFILES[A]], [])


async def test_a_friend_never_seen_online_has_no_last_seen(world):
    await request(world, A, B)
    await accept(world, B, A)
    [friend] = (await listing(world, A)).friends
    assert (friend.online, friend.last_seen) == (False, None)


async def test_announce_presence_reaches_only_online_accepted_friends(world):
    await request(world, A, B)
    await accept(world, B, A)  # B: friend, online
    await request(world, A, C)
    await accept(world, C, A)  # C: friend, offline
    await request(world, D, A)  # D: only a pending request, online
    for user in (B, D):
        await world.online(user, "phone")
    await world.online(B, "tablet", "gw2", "c2")
    world.outbox.clear()

    event = chat.PresenceChanged(user_id=A, online=False, last_seen="2026-01-01T00:00:00.000Z")
    await world.tell("presence.changed", event)

    expected = [{"type": "presence", "data": {"user_id": A, "online": False, "last_seen": "2026-01-01T00:00:00.000Z"}}]
    assert world.outbox.received_by(B, "phone") == expected
    assert world.outbox.received_by(B, "tablet") == expected
    assert world.outbox.received_by(D, "phone") == []
    assert world.outbox.received_by(C, "phone") == []
    assert sorted(g for g, _ in world.outbox.sent) == ["gw1", "gw2"]
