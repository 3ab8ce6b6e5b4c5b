"""Blocking (blocks.*) and the friendship rules across a block (friends.*), and profile.changed
told to friends: asked of chat's service, with recorded pushes."""
from datetime import datetime

import pytest

from services.chat.domain import blocks as blocking
from services.chat.storage.blocks import BlockStore
from shared.contracts.auth import ProfileChanged, UserProfile
from shared.contracts.errors import ErrorCode
from tests.unit.helpers import profile, tick
from tests.unit.world import ChatWorld, chat_world, refusal

A, B, C, D = "u_alice", "u_bob", "u_carol", "u_dave"
PROFILES = {u: profile(u) for u in (A, B, C, D)}


@pytest.fixture
async def world(db, settings):
    async with chat_world(db, settings, *PROFILES.values()) as world:
        yield world


async def block(world: ChatWorld, me: str, target: str) -> None:
    await world.ask(me, "blocks.add", user_id=target)


async def unblock(world: ChatWorld, me: str, target: str) -> None:
    await world.ask(me, "blocks.remove", user_id=target)


async def blocked_by(world: ChatWorld, me: str) -> list[UserProfile]:
    return (await world.ask(me, "blocks.list")).users


async def request(world: ChatWorld, me: str, target: str) -> None:
    await world.ask(me, "friends.request", user_id=target)


async def accept(world: ChatWorld, me: str, requester: str) -> None:
    await world.ask(me, "friends.accept", user_id=requester)



async def friends_of(world: ChatWorld, me: str) -> list[str]:
    return [f.user_id for f in (await world.ask(me, "friends.list")).friends]



# --- blocking ends what the two had --------------------------------------------------------------
async def test_blocking_ends_a_friendship_silently(world):
    await world.befriend(A, B)
    await world.online(A, "laptop")
    await world.online(B, "phone")

    await block(world, A, B)

    assert await world.friendships.get(A, B) is None
    assert world.outbox.sent == []  # neither the blocked user nor anyone is told
    assert await friends_of(world, A) == [] and await friends_of(world, B) == []


@pytest.mark.parametrize("requester", [A, B])
async def test_blocking_ends_a_pending_request_either_way(world, requester):
    other = B if requester == A else A
    await request(world, requester, other)
    await block(world, A, B)
    assert await world.friendships.get(A, B) is None


async def test_blocking_again_is_quiet_and_keeps_the_first_time(world):
    await block(world, A, B)
    await tick()
    await block(world, A, C)
    await tick()
    await block(world, A, B)
    assert [u.user_id for u in await blocked_by(world, A)] == [C, B]


async def test_a_user_holds_a_bounded_number_of_blocks(world, monkeypatch):
    monkeypatch.setattr(blocking, "MAX_BLOCKED", 2)
    await block(world, A, B)
    await block(world, A, C)
    error = await refusal(block(world, A, D))
    assert error.code == ErrorCode.CONFLICT and "unblock some first" in error.message
    await block(world, A, B)  # blocking again at the bound is still quiet
    await unblock(world, A, C)
    await tick()
    await block(world, A, D)
    assert [u.user_id for u in await blocked_by(world, A)] == [D, B]


async def test_blocking_yourself_or_nobody_is_refused(world):
    assert (await refusal(block(world, A, A))).code == ErrorCode.BAD_REQUEST
    assert (await refusal(block(world, A, "u_nobody"))).code == ErrorCode.NOT_FOUND
    assert await world.blocks.blocked_by(A) == []


# --- friendship across a block ---------------------------------------------------------------------
async def test_the_blocked_user_cannot_ask_and_is_not_told_why(world):
    await world.online(A, "laptop")
    await block(world, A, B)

    err = await refusal(request(world, B, A))

    assert (err.code, err.message) == (ErrorCode.FORBIDDEN, "you cannot send this user a friend request")
    assert "block" not in err.message
    assert await world.friendships.get(A, B) is None
    assert world.outbox.sent == []


async def test_the_blocker_must_unblock_first(world):
    await block(world, A, B)
    err = await refusal(request(world, A, B))
    assert (err.code, err.message) == (ErrorCode.CONFLICT, "you blocked this user; unblock them first")


async def test_nothing_can_be_accepted_across_a_block(world):
    # A request stored before the block was written (as if it raced it): accepting it fails either way.
    await block(world, A, B)
    assert await world.friendships.add_request(B, A, datetime.now())
    assert (await refusal(accept(world, A, B))).code == ErrorCode.NOT_FOUND
    await world.friendships.remove(A, B)
    assert await world.friendships.add_request(A, B, datetime.now())
    assert (await refusal(accept(world, B, A))).code == ErrorCode.NOT_FOUND
    assert not await world.friendships.are_friends(A, B)


async def test_unblocking_lets_them_start_over_but_restores_nothing(world):
    await world.befriend(A, B)
    await block(world, A, B)
    await unblock(world, A, B)

    assert await world.friendships.get(A, B) is None
    assert await blocked_by(world, A) == []
    await request(world, B, A)
    await accept(world, A, B)
    assert await world.friendships.are_friends(A, B)


async def test_unblocking_someone_not_blocked_is_not_found(world):
    await block(world, B, A)  # the other way round does not count
    assert (await refusal(unblock(world, A, B))).code == ErrorCode.NOT_FOUND
    assert (await refusal(unblock(world, A, A))).code == ErrorCode.BAD_REQUEST


class BlockLandsAfterTheCheck:
    """The `Blocks` port whose first check answers "no block", and then `blocker` blocks
    `blocked` before the caller goes on: the race of a request or an acceptance against
    blocks.add. `whole=False`: only the block is written, its ending of the friendship not yet
    (blocks.add is between its two writes while the acceptance writes)."""

    def __init__(self, store: BlockStore, world: ChatWorld, blocker: str, blocked: str, whole: bool = True):
        self.store, self.world, self.blocker, self.blocked, self.whole = store, world, blocker, blocked, whole
        self.raced = False

    async def between(self, a: str, b: str) -> set[str]:
        if not self.raced:
            self.raced = True
            if self.whole:
                await block(self.world, self.blocker, self.blocked)
            else:
                await self.store.add(self.blocker, self.blocked, datetime.now())
            return set()
        return await self.store.between(a, b)

    def __getattr__(self, name: str):
        return getattr(self.store, name)


def racing(world: ChatWorld, blocker: str, blocked: str, whole: bool = True) -> None:
    """chat's `blocks` part replaced by the racing one (the rest of the service as it is)."""
    world.service.blocks = BlockLandsAfterTheCheck(world.service.blocks, world, blocker, blocked, whole)


async def test_a_request_racing_a_block_leaves_no_request(world):
    await world.online(A, "laptop")
    racing(world, A, B)

    err = await refusal(request(world, B, A))

    assert err.code == ErrorCode.FORBIDDEN
    assert await world.friendships.get(A, B) is None
    assert world.outbox.sent == []


async def test_an_acceptance_racing_a_block_leaves_no_friendship(world):
    await request(world, A, B)
    await world.online(A, "laptop")
    world.outbox.clear()
    racing(world, A, B, whole=False)

    assert (await refusal(accept(world, B, A))).code == ErrorCode.NOT_FOUND

    assert await world.friendships.get(A, B) is None
    assert world.outbox.sent == []


# --- the store and the list ------------------------------------------------------------------------
async def test_blockers_of_says_who_blocked_whom(world):
    await block(world, A, B)
    await block(world, C, B)
    await block(world, B, D)
    assert await world.blocks.blockers_of(B, [A, C, D]) == {A, C}
    assert await world.blocks.blockers_of(B, []) == set()
    assert await world.blocks.between(B, D) == {B}
    await block(world, D, B)
    assert await world.blocks.between(B, D) == {B, D}


async def test_the_list_is_most_recent_first_and_leaves_out_deleted_accounts(world):
    for target in (B, C, D):
        await block(world, A, target)
        await tick()
    del world.profiles.by_id[C]
    assert await blocked_by(world, A) == [PROFILES[D], PROFILES[B]]
    assert await blocked_by(world, B) == []


# --- profile.changed ---------------------------------------------------------------------------------
async def test_a_profile_change_reaches_friends_and_the_users_own_devices_only(world):
    await world.befriend(A, B)
    await world.befriend(A, C)
    await request(world, D, A)  # pending: not a friend
    await world.befriend(B, C)
    await world.online(A, "laptop")
    await world.online(A, "phone", "gw2", "c2")
    for user in (B, D):
        await world.online(user, "phone", "gw1", f"c-{user}")
    world.outbox.clear()
    renamed = UserProfile(user_id=A, username="u_alice", display_name="Alice Again")

    await world.tell("profile.changed", ProfileChanged(user=renamed))

    expected = [{"type": "profile.updated", "data": {"user": renamed.model_dump()}}]
    assert world.outbox.received_by(B, "phone") == expected
    assert world.outbox.received_by(A, "laptop") == expected
    assert world.outbox.received_by(A, "phone") == expected
    assert world.outbox.received_by(D, "phone") == []


async def test_friends_list_entries_carry_the_avatar_url(world):
    world.know(UserProfile(user_id=B, username="u_bob", display_name="Bob", avatar_url="/images/im_1"))
    await world.befriend(A, B)
    await world.befriend(A, C)
    listed = (await world.ask(A, "friends.list")).friends
    assert {f.user_id: f.avatar_url for f in listed} == {B: "/images/im_1", C: None}
