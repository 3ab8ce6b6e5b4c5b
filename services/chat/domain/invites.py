"""Invite links and join requests (docs/protocol.md "Group administration").

A link is a code of 22 URL-safe characters (128 random bits): holding it is the permission to
see the group's name and join. Each join or filed request uses one; a link's uses never pass
its `max_uses` (counted in the store's update, not after a read). A group that needs approval
turns a join into a request that its owner or an admin accepts or declines.
"""
import secrets
from datetime import datetime, timedelta
from typing import Protocol

from shared.delivery import push
from services.chat.domain.group_admin import managed_group
from services.chat.domain.groups import MAX_MEMBERS, AdmitParts, admit, refuse_blocked
from services.chat.domain.ports import Blocks, Invites, JoinRequests, Profiles
from services.chat.domain.records import Conversation, InviteLink, JoinRequest
from shared.contracts.base import iso, utc_now
from shared.contracts.errors import ParleyError
from shared.contracts.groups import (
    GroupJoinDeclinedPush,
    GroupJoinReply,
    GroupJoinRequestedPush,
    GroupMemberTarget,
    Invite,
    InviteCreate,
    InvitePreview,
    InviteRevoke,
    InvitesReply,
    JoinRequestEntry,
    JoinRequestsReply,
)


class InviteParts(AdmitParts, Protocol):
    """What invite links and join requests read: the group's conversation and the pushes (to
    admit, as groups.py does), the links, the requests, the requesters' profiles and blocks."""

    @property
    def invites(self) -> Invites: ...

    @property
    def join_requests(self) -> JoinRequests: ...

    @property
    def profiles(self) -> Profiles: ...

    @property
    def blocks(self) -> Blocks: ...


# A group keeps at most this many usable links (creating another is `conflict`); unusable ones
# (revoked, expired, used up) are kept to tell their holders which, the oldest pruned past
# MAX_STORED_INVITES.
MAX_USABLE_INVITES = 100
MAX_STORED_INVITES = 200
MAX_PENDING_REQUESTS = 200


def invite_contract(invite: InviteLink) -> Invite:
    return Invite(
        code=invite.code, group_id=invite.group_id, url=f"/#join={invite.code}", created_by=invite.created_by,
        created_at=iso(invite.created_at), expires_at=iso(invite.expires_at) if invite.expires_at else None,
        max_uses=invite.max_uses, uses=invite.uses,
    )


async def create_invite(request: InviteCreate, user_id: str, parts: InviteParts) -> Invite:
    await managed_group(request.group_id, user_id, parts.conversations, "manage invite links")
    now = utc_now()
    invites = parts.invites
    stored = await invites.of_group(request.group_id)
    unusable = [i for i in stored if i.unusable_because(now) is not None]
    if len(stored) - len(unusable) >= MAX_USABLE_INVITES:
        raise ParleyError.conflict(f"a group has at most {MAX_USABLE_INVITES} usable invite links; revoke one first")
    if len(stored) >= MAX_STORED_INVITES:
        await invites.delete([i.code for i in unusable[: len(stored) - MAX_STORED_INVITES + 1]])
    invite = InviteLink(
        code=secrets.token_urlsafe(16),
        group_id=request.group_id,
        created_by=user_id,
        created_at=_to_millis(now),
        expires_at=(
            _to_millis(now + timedelta(seconds=request.expires_in_seconds))
            if request.expires_in_seconds is not None
            else None
        ),
        max_uses=request.max_uses,
        uses=0,
    )
    await invites.create(invite)
    return invite_contract(invite)


def _to_millis(moment: datetime) -> datetime:
    """As the database keeps a time: the reply says what a later read says."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


async def list_invites(group_id: str, user_id: str, parts: InviteParts) -> InvitesReply:
    await managed_group(group_id, user_id, parts.conversations, "manage invite links")
    now = utc_now()
    return InvitesReply(
        invites=[invite_contract(i) for i in await parts.invites.of_group(group_id) if i.unusable_because(now) is None]
    )


async def revoke_invite(request: InviteRevoke, user_id: str, parts: InviteParts) -> None:
    await managed_group(request.group_id, user_id, parts.conversations, "manage invite links")
    if not await parts.invites.revoke(request.group_id, request.code, utc_now()):
        raise ParleyError.not_found("this group has no such invite link")


def _invalid(why: str = "is not valid") -> ParleyError:
    return ParleyError.not_found(f"this invite link {why}")


async def _link(code: str, parts: InviteParts) -> tuple[InviteLink, Conversation]:
    """The link and its group (usable or not), or `not_found` "this invite link is not valid"."""
    invite = await parts.invites.get(code)
    group = await parts.conversations.group(invite.group_id) if invite is not None else None
    if invite is None or group is None:
        raise _invalid()
    return invite, group


def _check_usable(invite: InviteLink) -> None:
    why = invite.unusable_because(utc_now())
    if why is not None:
        raise _invalid(why)


async def _use(invite: InviteLink, invites: Invites) -> None:
    """Count one use; `not_found` if the link was revoked or used up since it was read."""
    if not await invites.use(invite):
        now_stored = await invites.get(invite.code)
        why = now_stored.unusable_because(utc_now()) if now_stored is not None else None
        raise _invalid(why or "has been used up")


async def preview_invite(code: str, parts: InviteParts) -> InvitePreview:
    """What a link leads to, for anyone holding it."""
    invite, group = await _link(code, parts)
    _check_usable(invite)
    assert group.group_id is not None and group.name is not None
    return InvitePreview(
        group_id=group.group_id, name=group.name, description=group.description, avatar_url=group.avatar_url,
        member_count=len(group.members), approval_required=group.approval_required,
    )


async def join_group(code: str, user_id: str, parts: InviteParts) -> GroupJoinReply:
    """Join by link, or (the group needs approval) file a request its owner and admins are told of.
    Already a member, or already asked: answered as such (even by a link used up since), and the
    link is not used."""
    invite, group = await _link(code, parts)
    group_id = invite.group_id
    if group.has_member(user_id):
        return GroupJoinReply(status="joined", group_id=group_id, conversation_id=group.conversation_id)
    if group.approval_required:
        if await parts.join_requests.get(group_id, user_id) is None:
            _check_usable(invite)
            await _file_request(invite, group, user_id, parts)
        return GroupJoinReply(status="requested", group_id=group_id)
    _check_usable(invite)
    if len(group.members) >= MAX_MEMBERS:
        raise ParleyError.conflict(f"this group is full ({MAX_MEMBERS} members)")
    await _use(invite, parts.invites)
    if await admit(group, [user_id], parts) is None:
        raise _invalid()  # the group is gone
    return GroupJoinReply(status="joined", group_id=group_id, conversation_id=group.conversation_id)


async def _file_request(invite: InviteLink, group: Conversation, user_id: str, parts: InviteParts) -> None:
    if await parts.join_requests.count(invite.group_id) >= MAX_PENDING_REQUESTS:
        raise ParleyError.conflict(f"this group has {MAX_PENDING_REQUESTS} pending join requests; try again later")
    await _use(invite, parts.invites)
    if not await parts.join_requests.add(JoinRequest(invite.group_id, user_id, _to_millis(utc_now()))):
        return  # filed concurrently
    profile = (await parts.profiles.get([user_id])).get(user_id)
    if profile is None:
        return
    managers = [u for u in group.members if group.role_of(u) in ("owner", "admin")]
    data = GroupJoinRequestedPush(group_id=invite.group_id, user=profile)
    await parts.deliver.to_users(managers, [push("group.join_requested", data)])


async def list_join_requests(group_id: str, user_id: str, parts: InviteParts) -> JoinRequestsReply:
    await managed_group(group_id, user_id, parts.conversations, "see join requests")
    pending = await parts.join_requests.of_group(group_id)
    found = await parts.profiles.get([r.user_id for r in pending])
    return JoinRequestsReply(
        requests=[
            JoinRequestEntry(user=found[r.user_id], requested_at=iso(r.requested_at))
            for r in pending
            if r.user_id in found
        ]
    )


async def accept_join_request(request: GroupMemberTarget, user_id: str, parts: InviteParts) -> None:
    """The requester joins, as if added by `groups.add_members`."""
    join_requests = parts.join_requests
    group = await managed_group(request.group_id, user_id, parts.conversations, "accept join requests")
    requester = request.user_id
    if await join_requests.get(request.group_id, requester) is None:
        raise ParleyError.not_found("no pending join request from this user")
    if group.has_member(requester):  # added meanwhile
        await join_requests.remove(request.group_id, requester)
        return
    await refuse_blocked(user_id, [requester], parts.blocks)
    if len(group.members) >= MAX_MEMBERS:
        raise ParleyError.conflict(f"this group is full ({MAX_MEMBERS} members)")
    if not await join_requests.remove(request.group_id, requester):
        return  # accepted or declined concurrently
    if await admit(group, [requester], parts) is None:
        raise ParleyError.forbidden("you are not a member of this group")  # gone meanwhile


async def decline_join_request(request: GroupMemberTarget, user_id: str, parts: InviteParts) -> None:
    group = await managed_group(request.group_id, user_id, parts.conversations, "decline join requests")
    if not await parts.join_requests.remove(request.group_id, request.user_id):
        raise ParleyError.not_found("no pending join request from this user")
    assert group.name is not None
    data = GroupJoinDeclinedPush(group_id=request.group_id, name=group.name)
    await parts.deliver.to_users([request.user_id], [push("group.join_declined", data)])
