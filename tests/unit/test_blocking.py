"""services/chat/domain/blocks.py and the friendship rules across a block (friends.py), and
profile.changed told to friends: over the real stores, with recorded pushes."""
from datetime import datetime

import pytest

from services.chat.domain import blocks as blocking
from services.chat.domain import friends
from services.chat.storage.blocks import BlockStore
from shared.contracts.auth import ProfileChanged, UserProfile
from shared.contracts.errors import ErrorCode, ParleyError
from tests.unit.helpers import Chat, chat_world, profile, tick

A, B, C, D = "u_alice", "u_bob", "u_carol", "u_dave"
PROFILES = {u: profile(u) for u in (A, B, C, D)}


@pytest.fixture
async def world(db, settings):
    async with chat_world(db, settings, *PROFILES.values()) as world:
        yield world


@pytest.fixture
async def store(db) -> BlockStore:
    store = BlockStore(db)
    await store.ensure_indexes()
    return store


async def block(world: Chat, store: BlockStore, me: str, target: str) -> None:
    await blocking.block_user(me, target, store, world.friendships, world.profiles)


async def request(world: Chat, store, me: str, target: str) -> None:
    await friends.request_friendship(me, target, world.friendships, world.profiles, world.deliver, blocks=store)


async def accept(world: Chat, store, me: str, requester: str) -> None:
    await friends.accept_friendship(me, requester, world.friendships, world.profiles, world.deliver, blocks=store)


async def fails(awaitable) -> ParleyError:
    with pytest.raises(ParleyError) as info:
        await awaitable
    return info.value


async def friends_of(world: Chat, me: str) -> list[str]:
    return [f.user_id for f in (await friends.list_friends(me, world.friendships, world.profiles, world.presence)).friends]


# --- blocking ends what the two had --------------------------------------------------------------
async def test_blocking_ends_a_friendship_silently(world, store):
    await world.befriend(A, B)
    await world.online(A, "laptop")
    await world.online(B, "phone")

    await block(world, store, A, B)

    assert await world.friendships.get(A, B) is None
    assert world.outbox.sent == []  # neither the blocked user nor anyone is told
    assert await friends_of(world, A) == [] and await friends_of(world, B) == []


@pytest.mark.parametrize("requester", [A, B])
async def test_blocking_ends_a_pending_request_either_way(world, store, requester):
    other = B if requester == A else A
    await request(world, store, requester, other)
    await block(world, store, A, B)
    assert await world.friendships.get(A, B) is None


async def test_blocking_again_is_quiet_and_keeps_the_first_time(world, store):
    await block(world, store, A, B)
    await tick()
    await block(world, store, A, C)
    await tick()
    await block(world, store, A, B)
    assert [u.user_id for u in (await blocking.list_blocked(A, store, world.profiles)).users] == [C, B]


async def test_a_user_holds_a_bounded_number_of_blocks(world, store, monkeypatch):
    monkeypatch.setattr(blocking, "MAX_BLOCKED", 2)
    await block(world, store, A, B)
    await block(world, store, A, C)
    error = await fails(block(world, store, A, D))
    assert error.code == ErrorCode.CONFLICT and "unblock some first" in error.message
    await block(world, store, A, B)  # blocking again at the bound is still quiet
    await blocking.unblock_user(A, C, store)
    await tick()
    await block(world, store, A, D)
    assert [u.user_id for u in (await blocking.list_blocked(A, store, world.profiles)).users] == [D, B]


async def test_blocking_yourself_or_nobody_is_refused(world, store):
    assert (await fails(block(world, store, A, A))).code == ErrorCode.BAD_REQUEST
    assert (await fails(block(world, store, A, "u_nobody"))).code == ErrorCode.NOT_FOUND
    assert await store.blocked_by(A) == []


# --- friendship across a block ---------------------------------------------------------------------
async def test_the_blocked_user_cannot_ask_and_is_not_told_why(world, store):
    await world.online(A, "laptop")
    await block(world, store, A, B)

    err = await fails(request(world, store, B, A))

    assert (err.code, err.message) == (ErrorCode.FORBIDDEN, "you cannot send this user a friend request")
    assert "block" not in err.message
    assert await world.friendships.get(A, B) is None
    assert world.outbox.sent == []


async def test_the_blocker_must_unblock_first(world, store):
    await block(world, store, A, B)
    err = await fails(request(world, store, A, B))
    assert (err.code, err.message) == (ErrorCode.CONFLICT, "you blocked this user; unblock them first")


async def test_nothing_can_be_accepted_across_a_block(world, store):
    # A request stored before the block was written (as if it raced it): accepting it fails either way.
    await block(world, store, A, B)
    assert await world.friendships.add_request(B, A, datetime.now())
    assert (await fails(accept(world, store, A, B))).code == ErrorCode.NOT_FOUND
    await world.friendships.remove(A, B)
    assert await world.friendships.add_request(A, B, datetime.now())
    assert (await fails(accept(world, store, B, A))).code == ErrorCode.NOT_FOUND
    assert not await world.friendships.are_friends(A, B)


async def test_unblocking_lets_them_start_over_but_restores_nothing(world, store):
    await world.befriend(A, B)
    await block(world, store, A, B)
    await blocking.unblock_user(A, B, store)

    assert await world.friendships.get(A, B) is None
    assert (await blocking.list_blocked(A, store, world.profiles)).users == []
    await request(world, store, B, A)
    await accept(world, store, A, B)
    assert await world.friendships.are_friends(A, B)


async def test_unblocking_someone_not_blocked_is_not_found(world, store):
    await block(world, store, B, A)  # the other way round does not count
    assert (await fails(blocking.unblock_user(A, B, store))).code == ErrorCode.NOT_FOUND
    assert (await fails(blocking.unblock_user(A, A, store))).code == ErrorCode.BAD_REQUEST


class BlockLandsAfterTheCheck:
    """The `Blocks` port whose first check answers "no block", and then `blocker` blocks
    `blocked` before the caller goes on: the race of a request or an acceptance against
    blocks.add. `whole=False`: only the block is written, its ending of the friendship not yet
    (blocks.add is between its two writes while the acceptance writes)."""

    def __init__(self, store: BlockStore, world: Chat, blocker: str, blocked: str, whole: bool = True):
        self.store, self.world, self.blocker, self.blocked, self.whole = store, world, blocker, blocked, whole
        self.raced = False

    async def between(self, a: str, b: str) -> set[str]:
        if not self.raced:
            self.raced = True
            if self.whole:
                await block(self.world, self.store, self.blocker, self.blocked)
            else:
                await self.store.add(self.blocker, self.blocked, datetime.now())
            return set()
        return await self.store.between(a, b)

    def __getattr__(self, name: str):
        return getattr(self.store, name)


async def test_a_request_racing_a_block_leaves_no_request(world, store):
    await world.online(A, "laptop")
    racing = BlockLandsAfterTheCheck(store, world, A, B)

    err = await fails(request(world, racing, B, A))

    assert err.code == ErrorCode.FORBIDDEN
    assert await world.friendships.get(A, B) is None
    assert world.outbox.sent == []


async def test_an_acceptance_racing_a_block_leaves_no_friendship(world, store):
    await request(world, store, A, B)
    await world.online(A, "laptop")
    world.outbox.clear()
    racing = BlockLandsAfterTheCheck(store, world, A, B, whole=False)

    assert (await fails(accept(world, racing, B, A))).code == ErrorCode.NOT_FOUND

    assert await world.friendships.get(A, B) is None
    assert world.outbox.sent == []


# --- the store and the list ------------------------------------------------------------------------
async def test_blockers_of_says_who_blocked_whom(world, store):
    await block(world, store, A, B)
    await block(world, store, C, B)
    await block(world, store, B, D)
    assert await store.blockers_of(B, [A, C, D]) == {A, C}
    assert await store.blockers_of(B, []) == set()
    assert await store.between(B, D) == {B}
    await block(world, store, D, B)
    assert await store.between(B, D) == {B, D}


async def test_the_list_is_most_recent_first_and_leaves_out_deleted_accounts(world, store):
    for target in (B, C, D):
        await block(world, store, A, target)
        await tick()
    del world.profiles.by_id[C]
    listed = await blocking.list_blocked(A, store, world.profiles)
    assert listed.users == [PROFILES[D], PROFILES[B]]
    assert (await blocking.list_blocked(B, store, world.profiles)).users == []


# --- profile.changed ---------------------------------------------------------------------------------
async def test_a_profile_change_reaches_friends_and_the_users_own_devices_only(world, store):
    await world.befriend(A, B)
    await world.befriend(A, C)
    await request(world, store, D, A)  # pending: not a friend
    await world.befriend(B, C)
    await world.online(A, "laptop")
    await world.online(A, "phone", "gw2", "c2")
    for user in (B, D):
        await world.online(user, "phone", "gw1", f"c-{user}")
    world.outbox.clear()
    renamed = UserProfile(user_id=A, username="u_alice", display_name="Alice Again")

    await friends.announce_profile(ProfileChanged(user=renamed), world.friendships, world.deliver)

    expected = [{"type": "profile.updated", "data": {"user": renamed.model_dump()}}]
    assert world.outbox.received_by(B, "phone") == expected
    assert world.outbox.received_by(A, "laptop") == expected
    assert world.outbox.received_by(A, "phone") == expected
    assert world.outbox.received_by(D, "phone") == []


async def test_friends_list_entries_carry_the_avatar_url(world, store):
    world.profiles.by_id[B] = UserProfile(user_id=B, username="u_bob", display_name="Bob", avatar_url="/images/im_1")
    await world.befriend(A, B)
    await world.befriend(A, C)
    listed = (await friends.list_friends(A, world.friendships, world.profiles, world.presence)).friends
    assert {f.user_id: f.avatar_url for f in listed} == {B: "/images/im_1", C: None}
