"""Friend requests, acceptance, removal and the friends list."""
from services.chat.domain.delivery import Deliverer, push
from services.chat.domain.ports import Friendships, Presence, Profiles
from shared.contracts import chat
from shared.contracts.auth import UserProfile
from shared.contracts.base import utc_now
from shared.contracts.errors import ParleyError


async def _profile_of(user_id: str, profiles: Profiles) -> UserProfile:
    found = await profiles.get([user_id])
    if user_id not in found:
        raise ParleyError.not_found("no such user")
    return found[user_id]


async def request_friendship(
    me: str, target: str, friendships: Friendships, profiles: Profiles, deliver: Deliverer
) -> None:
    """Ask `target` to be friends; if they had already asked me, this accepts instead."""
    if target == me:
        raise ParleyError.bad_request("data.user_id: you cannot befriend yourself")
    await _profile_of(target, profiles)
    existing = await friendships.get(me, target)
    if existing is not None:
        if existing.accepted:
            raise ParleyError.conflict("already friends")
        if existing.requester == me:
            return  # asked already: nothing new to tell anyone
        await accept_friendship(me, target, friendships, profiles, deliver)
        return
    if not await friendships.add_request(me, target, utc_now()):
        # A request crossed ours: settle it the same way as above.
        return await request_friendship(me, target, friendships, profiles, deliver)
    mine = await _profile_of(me, profiles)
    await deliver.to_users([target], [push("friend.request", chat.FriendRequestPush(user=mine))])


async def accept_friendship(
    me: str, requester: str, friendships: Friendships, profiles: Profiles, deliver: Deliverer
) -> None:
    if not await friendships.accept(requester, me, utc_now()):
        existing = await friendships.get(me, requester)
        if existing is not None and existing.accepted:
            raise ParleyError.conflict("already friends")
        raise ParleyError.not_found("no friend request from that user")
    mine = await _profile_of(me, profiles)
    await deliver.to_users([requester], [push("friend.accepted", chat.FriendRequestPush(user=mine))])


async def remove_friendship(me: str, other: str, friendships: Friendships) -> None:
    """Unfriend, withdraw my request, or decline theirs: whatever the pair has, it goes."""
    if not await friendships.remove(me, other):
        raise ParleyError.not_found("no friendship or request with that user")


async def list_friends(
    me: str, friendships: Friendships, profiles: Profiles, presence: Presence
) -> chat.FriendsListReply:
    pairs = await friendships.of_user(me)
    others = [f.other(me) for f in pairs]
    found = await profiles.get(others)
    accepted = [o for o, f in zip(others, pairs, strict=True) if f.accepted and o in found]
    status = await presence.status_of(accepted)
    friends = [
        chat.Friend(**found[o].model_dump(), online=status[o][0], last_seen=status[o][1]) for o in accepted
    ]
    incoming = [found[o] for o, f in zip(others, pairs, strict=True) if f.pending and not f.pending_from(me) and o in found]
    outgoing = [found[o] for o, f in zip(others, pairs, strict=True) if f.pending_from(me) and o in found]
    return chat.FriendsListReply(friends=friends, incoming=incoming, outgoing=outgoing)


async def announce_presence(
    event: chat.PresenceChanged, friendships: Friendships, deliver: Deliverer
) -> None:
    """Tell a user's online friends that their first device came or last device went."""
    friends = [f.other(event.user_id) for f in await friendships.of_user(event.user_id) if f.accepted]
    data = chat.PresencePush(user_id=event.user_id, online=event.online, last_seen=event.last_seen)
    await deliver.to_users(friends, [push("presence", data)])
