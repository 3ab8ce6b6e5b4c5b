"""Administering a group: its settings, removing and muting members, passing ownership on,
dissolving it (docs/protocol.md "Group administration").

Who may act on whom: the owner on anyone else, an admin on plain members, a member on nobody.
"""
from datetime import datetime, timedelta, timezone
from typing import Protocol

from shared.delivery import Deliverer, Fanout, push
from services.chat.domain.groups import group_info, member_group
from services.chat.domain.ports import Conversations, Files, Invites, JoinRequests, Messages
from services.chat.domain.records import Conversation, GroupChanges
from shared.contracts.base import iso, utc_now
from shared.contracts.errors import ParleyError
from shared.contracts.groups import (
    GroupDissolvedPush,
    GroupInfo,
    GroupMemberLeftPush,
    GroupMemberMutedPush,
    GroupMemberTarget,
    GroupMute,
    GroupRemovedPush,
    GroupRolePush,
    GroupUpdate,
    GroupUpdatedPush,
)


class GroupAdminParts(Protocol):
    """What administering a group reads: its conversation, the avatar images files made, and
    (dissolving it) its messages, invite links and join requests."""

    @property
    def conversations(self) -> Conversations: ...

    @property
    def messages(self) -> Messages: ...

    @property
    def invites(self) -> Invites: ...

    @property
    def join_requests(self) -> JoinRequests: ...

    @property
    def files(self) -> Files: ...

    @property
    def deliver(self) -> Deliverer: ...


MAX_MUTE = timedelta(days=366)


async def managed_group(group_id: str, user_id: str, conversations: Conversations, action: str) -> Conversation:
    """The group, if `user_id` is its owner or an admin (else `forbidden`: "only the owner or an
    admin can <action>")."""
    group = await member_group(group_id, user_id, conversations)
    if group.role_of(user_id) not in ("owner", "admin"):
        raise ParleyError.forbidden(f"only the owner or an admin can {action}")
    return group


async def owned_group(group_id: str, user_id: str, conversations: Conversations, action: str) -> Conversation:
    group = await member_group(group_id, user_id, conversations)
    if group.role_of(user_id) != "owner":
        raise ParleyError.forbidden(f"only the owner can {action}")
    return group


def _may_act_on(group: Conversation, actor: str, target: str, verb: str) -> None:
    """The owner acts on anyone else, an admin on plain members, a member on nobody."""
    if target == actor:
        raise ParleyError.bad_request(f"data.user_id: you cannot {verb} yourself")
    role = group.role_of(actor)
    if role not in ("owner", "admin"):
        raise ParleyError.forbidden(f"only the owner or an admin can {verb} members")
    if not group.has_member(target):
        raise ParleyError.not_found("no such member in this group")
    if role == "admin" and group.role_of(target) != "member":
        raise ParleyError.forbidden(f"only the owner can {verb} an admin or the owner")


def send_refusal(group: Conversation, sender: str, now: datetime) -> ParleyError | None:
    """Why a member may not send in the group now (muted, or everyone muted and they are a
    plain member), or None. Called for every group send: reads one member."""
    member = group.roster.get(sender)
    if member is None:
        return None
    until = member.muted_at(now)
    if until is not None:
        return ParleyError.forbidden(f"you are muted in this group until {iso(until)}")
    if group.everyone_muted and member.role == "member":
        return ParleyError.forbidden("only the owner and admins can send in this group")
    return None


async def _avatar_url(image_id: str, files: Files) -> str:
    """The url of an avatar image files made (images.avatar); asked of files, which asks chat
    nothing back (the client made the picture first)."""
    image = (await files.images([image_id])).get(image_id)
    if image is None or image.kind != "avatar":
        raise ParleyError.not_found("data.avatar_image_id: no such avatar image (make it with images.avatar)")
    return image.url


async def group_details(group_id: str, user_id: str, parts: GroupAdminParts) -> GroupInfo:
    """`groups.info`: members only."""
    return group_info(await member_group(group_id, user_id, parts.conversations))


async def update_group(request: GroupUpdate, user_id: str, parts: GroupAdminParts) -> GroupInfo:
    """Change the settings; every member is told (`group.updated`) when something was asked to change."""
    group = await managed_group(request.group_id, user_id, parts.conversations, "change the group")
    changes = GroupChanges(
        name=request.name,
        description=request.description,
        avatar_url=await _avatar_url(request.avatar_image_id, parts.files) if request.avatar_image_id is not None else None,
        clear_avatar=request.clear_avatar,
        everyone_muted=request.everyone_muted,
        approval_required=request.approval_required,
    )
    if changes == GroupChanges():
        return group_info(group)
    updated = await parts.conversations.update_group(group.conversation_id, changes)
    if updated is None:  # dissolved meanwhile
        raise ParleyError.forbidden("you are not a member of this group")
    info = group_info(updated)
    await parts.deliver.to_users(updated.members, [push("group.updated", GroupUpdatedPush(group=info, by=user_id))])
    return info


async def remove_member(request: GroupMemberTarget, remover: str, parts: GroupAdminParts) -> None:
    """The removed user loses the group at once, as if they had left: their history, sends,
    acks and the group's files are refused from the next request on."""
    group = await member_group(request.group_id, remover, parts.conversations)
    _may_act_on(group, remover, request.user_id, "remove")
    updated = await parts.conversations.remove_member(group.conversation_id, request.user_id)
    if updated is None:
        return  # left meanwhile
    removed = GroupRemovedPush(group_id=request.group_id, conversation_id=group.conversation_id, by=remover)
    left = GroupMemberLeftPush(group_id=request.group_id, user_id=request.user_id, removed_by=remover)
    await parts.deliver.fan_out([
        Fanout([request.user_id], [push("group.removed", removed)]),
        Fanout(updated.members, [push("group.member_left", left)]),
    ])


def _mute_end(until: datetime | None, now: datetime) -> datetime | None:
    if until is None:
        return None
    until = until.astimezone(timezone.utc)
    if until <= now or until > now + MAX_MUTE:
        raise ParleyError.bad_request("data.until: a time in the future, at most 366 days ahead")
    # Stored to the millisecond (as the database keeps it), so the push says what a later read says.
    return until.replace(microsecond=until.microsecond // 1000 * 1000)


async def mute_member(request: GroupMute, muter: str, parts: GroupAdminParts) -> None:
    """Mute a member until a time, or unmute them (`until` None); a mute ends by itself."""
    until = _mute_end(request.until, utc_now())
    group = await member_group(request.group_id, muter, parts.conversations)
    _may_act_on(group, muter, request.user_id, "mute")
    if not await parts.conversations.mute(group.conversation_id, request.user_id, until):
        raise ParleyError.not_found("no such member in this group")
    data = GroupMemberMutedPush(
        group_id=request.group_id, user_id=request.user_id, until=iso(until) if until is not None else None
    )
    await parts.deliver.to_users(group.members, [push("group.member_muted", data)])


async def transfer_ownership(request: GroupMemberTarget, owner: str, parts: GroupAdminParts) -> None:
    """The member named becomes the owner (and is unmuted); the old owner an admin."""
    group = await owned_group(request.group_id, owner, parts.conversations, "transfer ownership")
    heir = request.user_id
    if heir == owner:
        raise ParleyError.bad_request("data.user_id: you already own this group")
    if not group.has_member(heir):
        raise ParleyError.not_found("no such member in this group")
    if not await parts.conversations.transfer_ownership(group.conversation_id, owner, heir):
        raise ParleyError.not_found("no such member in this group")  # left (or ownership passed) meanwhile
    pushes = [
        push("group.role_changed", GroupRolePush(group_id=request.group_id, user_id=heir, role="owner")),
        push("group.role_changed", GroupRolePush(group_id=request.group_id, user_id=owner, role="admin")),
    ]
    await parts.deliver.to_users(group.members, pushes)


async def dissolve_group(group_id: str, owner: str, parts: GroupAdminParts) -> None:
    """The group is gone as if it never existed: its conversation, messages, invite links and
    join requests; every member is told once."""
    group = await owned_group(group_id, owner, parts.conversations, "dissolve the group")
    gone = await parts.conversations.dissolve(group.conversation_id)
    if gone is None:
        return  # dissolved concurrently: told by that one
    data = GroupDissolvedPush(group_id=group_id, conversation_id=group.conversation_id)
    await parts.deliver.to_users(gone.members, [push("group.dissolved", data)])
    await parts.messages.delete_conversation(group.conversation_id)
    await parts.invites.delete_group(group_id)
    await parts.join_requests.delete_group(group_id)
