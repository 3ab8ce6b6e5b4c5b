"""Friend requests, acceptance, removal and the friends list; profile changes told to friends.

No friendship crosses a block (docs/protocol.md "Blocking"): a request or an acceptance checks
for a block between the two before it writes, and again after. Blocking writes the block before
it deletes the pair's friendship, so when the two race one of them sees the other's write.
"""
from typing import Protocol

from shared.delivery import Deliverer, push
from services.chat.domain.ports import Blocks, Friendships, Presence, Profiles
from shared.contracts import chat
from shared.contracts.auth import ProfileChanged, UserProfile
from shared.contracts.base import utc_now
from shared.contracts.errors import ParleyError


class FriendParts(Protocol):
    """What friendships need: the pairs, who blocked whom, auth's profiles, presence (the
    friends list) and the pushes."""

    @property
    def friendships(self) -> Friendships: ...

    @property
    def blocks(self) -> Blocks: ...

    @property
    def profiles(self) -> Profiles: ...

    @property
    def presence(self) -> Presence: ...

    @property
    def deliver(self) -> Deliverer: ...


async def _profile_of(user_id: str, profiles: Profiles) -> UserProfile:
    found = await profiles.get([user_id])
    if user_id not in found:
        raise ParleyError.not_found("no such user")
    return found[user_id]


def _request_refused(me: str, blockers: set[str]) -> ParleyError | None:
    """Why `me` may not ask for friendship across these blocks (the answer never says "blocked"
    to the blocked user: the same forbidden as a closed door)."""
    if me in blockers:
        return ParleyError.conflict("you blocked this user; unblock them first")
    if blockers:
        return ParleyError.forbidden("you cannot send this user a friend request")
    return None


def _no_request() -> ParleyError:
    return ParleyError.not_found("no friend request from that user")


async def _undo_if_blocked(me: str, other: str, parts: FriendParts) -> set[str]:
    """After writing a request or an acceptance: a block that came meanwhile ends what we
    wrote (the blockers, empty when none)."""
    blockers = await parts.blocks.between(me, other)
    if blockers:
        await parts.friendships.remove(me, other)
    return blockers


async def request_friendship(me: str, target: str, parts: FriendParts) -> None:
    """Ask `target` to be friends; if they had already asked me, this accepts instead."""
    if target == me:
        raise ParleyError.bad_request("data.user_id: you cannot befriend yourself")
    await _profile_of(target, parts.profiles)
    if refused := _request_refused(me, await parts.blocks.between(me, target)):
        raise refused
    existing = await parts.friendships.get(me, target)
    if existing is not None:
        if existing.accepted:
            raise ParleyError.conflict("already friends")
        if existing.requester == me:
            return  # asked already: nothing new to tell anyone
        await accept_friendship(me, target, parts)
        return
    if not await parts.friendships.add_request(me, target, utc_now()):
        # A request crossed ours: settle it the same way as above.
        return await request_friendship(me, target, parts)
    if refused := _request_refused(me, await _undo_if_blocked(me, target, parts)):
        raise refused
    mine = await _profile_of(me, parts.profiles)
    await parts.deliver.to_users([target], [push("friend.request", chat.FriendRequestPush(user=mine))])


async def accept_friendship(me: str, requester: str, parts: FriendParts) -> None:
    """Accept `requester`'s pending request. Across a block there is none to accept."""
    if await parts.blocks.between(me, requester):
        raise _no_request()
    if not await parts.friendships.accept(requester, me, utc_now()):
        existing = await parts.friendships.get(me, requester)
        if existing is not None and existing.accepted:
            raise ParleyError.conflict("already friends")
        raise _no_request()
    if await _undo_if_blocked(me, requester, parts):
        raise _no_request()
    mine = await _profile_of(me, parts.profiles)
    await parts.deliver.to_users([requester], [push("friend.accepted", chat.FriendRequestPush(user=mine))])


async def remove_friendship(me: str, other: str, parts: FriendParts) -> None:
    """Unfriend, withdraw my request, or decline theirs: whatever the pair has, it goes."""
    if not await parts.friendships.remove(me, other):
        raise ParleyError.not_found("no friendship or request with that user")


async def list_friends(me: str, parts: FriendParts) -> chat.FriendsListReply:
    pairs = await parts.friendships.of_user(me)
    others = [f.other(me) for f in pairs]
    found = await parts.profiles.get(others)
    accepted = [o for o, f in zip(others, pairs, strict=True) if f.accepted and o in found]
    status = await parts.presence.status_of(accepted)
    friends = [
        chat.Friend(**found[o].model_dump(), online=status[o][0], last_seen=status[o][1]) for o in accepted
    ]
    incoming = [found[o] for o, f in zip(others, pairs, strict=True) if f.pending and not f.pending_from(me) and o in found]
    outgoing = [found[o] for o, f in zip(others, pairs, strict=True) if f.pending_from(me) and o in found]
    return chat.FriendsListReply(friends=friends, incoming=incoming, outgoing=outgoing)


async def announce_presence(event: chat.PresenceChanged, parts: FriendParts) -> None:
    """Tell a user's online friends that their first device came or last device went."""
    friends = [f.other(event.user_id) for f in await parts.friendships.of_user(event.user_id) if f.accepted]
    data = chat.PresencePush(user_id=event.user_id, online=event.online, last_seen=event.last_seen)
    await parts.deliver.to_users(friends, [push("presence", data)])


async def announce_profile(event: ProfileChanged, parts: FriendParts) -> None:
    """Tell a user's friends and the user's own devices that their profile changed."""
    user_id = event.user.user_id
    friends = [f.other(user_id) for f in await parts.friendships.of_user(user_id) if f.accepted]
    data = chat.ProfileUpdatedPush(user=event.user)
    await parts.deliver.to_users([user_id, *friends], [push("profile.updated", data)])
