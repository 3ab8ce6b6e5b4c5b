"""chat's group operations, each mapped to its domain function (handlers.py binds them with
the rest): `groups.create` is `groups.create_group`, `groups.remove_member` is
`group_admin.remove_member`, `groups.invites.create` is `invites.create_invite`, …
"""
from typing import TYPE_CHECKING

from services.chat.domain import group_admin, groups, invites
from shared.contracts.base import Empty
from shared.contracts.groups import (
    GroupAddMembers,
    GroupCreate,
    GroupCreateReply,
    GroupInfo,
    GroupJoinReply,
    GroupMembersReply,
    GroupMemberTarget,
    GroupMute,
    GroupSetRole,
    GroupsList,
    GroupsListReply,
    GroupTarget,
    GroupUpdate,
    Invite,
    InviteCreate,
    InvitePreview,
    InviteRef,
    InviteRevoke,
    InvitesReply,
    JoinRequestsReply,
)
from shared.contracts.wire import Caller, user_of
from shared.service import Router

if TYPE_CHECKING:
    from services.chat.handlers import ChatContext


def bind_group_operations(router: Router, ctx: "ChatContext") -> None:
    # --- groups and members ------------------------------------------------------------------
    @router.operation("groups.create")
    async def create_group(request: GroupCreate, caller: Caller) -> GroupCreateReply:
        return await groups.create_group(
            request, user_of(caller), ctx.conversations, ctx.profiles, ctx.deliver, ctx.blocks
        )

    @router.operation("groups.add_members")
    async def add_members(request: GroupAddMembers, caller: Caller) -> Empty:
        await groups.add_members(request, user_of(caller), ctx.conversations, ctx.profiles, ctx.deliver, ctx.blocks)
        return Empty()

    @router.operation("groups.leave")
    async def leave(request: GroupTarget, caller: Caller) -> Empty:
        await groups.leave_group(
            request.group_id, user_of(caller), ctx.conversations, ctx.messages, ctx.deliver,
            ctx.invites, ctx.join_requests,
        )
        return Empty()

    @router.operation("groups.list")
    async def list_groups(request: GroupsList, caller: Caller) -> GroupsListReply:
        return await groups.list_groups(user_of(caller), ctx.conversations)

    @router.operation("groups.members")
    async def members(request: GroupTarget, caller: Caller) -> GroupMembersReply:
        return await groups.list_members(request.group_id, user_of(caller), ctx.conversations, ctx.profiles)

    @router.operation("groups.set_role")
    async def set_role(request: GroupSetRole, caller: Caller) -> Empty:
        await groups.set_role(request, user_of(caller), ctx.conversations, ctx.deliver)
        return Empty()

    # --- administration ------------------------------------------------------------------------
    @router.operation("groups.info")
    async def info(request: GroupTarget, caller: Caller) -> GroupInfo:
        return await group_admin.group_details(request.group_id, user_of(caller), ctx.conversations)

    @router.operation("groups.update")
    async def update(request: GroupUpdate, caller: Caller) -> GroupInfo:
        return await group_admin.update_group(request, user_of(caller), ctx.conversations, ctx.images, ctx.deliver)

    @router.operation("groups.remove_member")
    async def remove_member(request: GroupMemberTarget, caller: Caller) -> Empty:
        await group_admin.remove_member(request, user_of(caller), ctx.conversations, ctx.deliver)
        return Empty()

    @router.operation("groups.mute")
    async def mute(request: GroupMute, caller: Caller) -> Empty:
        await group_admin.mute_member(request, user_of(caller), ctx.conversations, ctx.deliver)
        return Empty()

    @router.operation("groups.transfer_ownership")
    async def transfer_ownership(request: GroupMemberTarget, caller: Caller) -> Empty:
        await group_admin.transfer_ownership(request, user_of(caller), ctx.conversations, ctx.deliver)
        return Empty()

    @router.operation("groups.dissolve")
    async def dissolve(request: GroupTarget, caller: Caller) -> Empty:
        await group_admin.dissolve_group(
            request.group_id, user_of(caller), ctx.conversations, ctx.messages, ctx.invites, ctx.join_requests,
            ctx.deliver,
        )
        return Empty()

    # --- invite links and join requests ----------------------------------------------------------
    @router.operation("groups.invites.create")
    async def create_invite(request: InviteCreate, caller: Caller) -> Invite:
        return await invites.create_invite(request, user_of(caller), ctx.conversations, ctx.invites)

    @router.operation("groups.invites.list")
    async def list_invites(request: GroupTarget, caller: Caller) -> InvitesReply:
        return await invites.list_invites(request.group_id, user_of(caller), ctx.conversations, ctx.invites)

    @router.operation("groups.invites.revoke")
    async def revoke_invite(request: InviteRevoke, caller: Caller) -> Empty:
        await invites.revoke_invite(request, user_of(caller), ctx.conversations, ctx.invites)
        return Empty()

    @router.operation("groups.invites.preview")
    async def preview_invite(request: InviteRef, caller: Caller) -> InvitePreview:
        user_of(caller)
        return await invites.preview_invite(request.code, ctx.invites, ctx.conversations)

    @router.operation("groups.join")
    async def join(request: InviteRef, caller: Caller) -> GroupJoinReply:
        return await invites.join_group(
            request.code, user_of(caller), ctx.conversations, ctx.invites, ctx.join_requests, ctx.profiles, ctx.deliver
        )

    @router.operation("groups.join_requests")
    async def join_requests(request: GroupTarget, caller: Caller) -> JoinRequestsReply:
        return await invites.list_join_requests(
            request.group_id, user_of(caller), ctx.conversations, ctx.join_requests, ctx.profiles
        )

    @router.operation("groups.join_requests.accept")
    async def accept_request(request: GroupMemberTarget, caller: Caller) -> Empty:
        await invites.accept_join_request(
            request, user_of(caller), ctx.conversations, ctx.join_requests, ctx.deliver, ctx.blocks
        )
        return Empty()

    @router.operation("groups.join_requests.decline")
    async def decline_request(request: GroupMemberTarget, caller: Caller) -> Empty:
        await invites.decline_join_request(request, user_of(caller), ctx.conversations, ctx.join_requests, ctx.deliver)
        return Empty()
