"""chat's group operations, each mapped to its domain function: `groups.create` is
`groups.create_group`, `groups.remove_member` is `group_admin.remove_member`,
`groups.invites.create` is `invites.create_invite`, …
"""
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
from services.chat.parts import ChatParts
from shared.contracts.wire import Caller, user_of
from shared.declared import operation


class GroupHandlers(ChatParts):
    # --- groups and members ------------------------------------------------------------------
    @operation("groups.create")
    async def create_group(self, request: GroupCreate, caller: Caller) -> GroupCreateReply:
        return await groups.create_group(request, user_of(caller), self)

    @operation("groups.add_members")
    async def add_members(self, request: GroupAddMembers, caller: Caller) -> Empty:
        await groups.add_members(request, user_of(caller), self)
        return Empty()

    @operation("groups.leave")
    async def leave(self, request: GroupTarget, caller: Caller) -> Empty:
        await groups.leave_group(request.group_id, user_of(caller), self)
        return Empty()

    @operation("groups.list")
    async def list_groups(self, request: GroupsList, caller: Caller) -> GroupsListReply:
        return await groups.list_groups(user_of(caller), self)

    @operation("groups.members")
    async def members(self, request: GroupTarget, caller: Caller) -> GroupMembersReply:
        return await groups.list_members(request.group_id, user_of(caller), self)

    @operation("groups.set_role")
    async def set_role(self, request: GroupSetRole, caller: Caller) -> Empty:
        await groups.set_role(request, user_of(caller), self)
        return Empty()

    # --- administration ------------------------------------------------------------------------
    @operation("groups.info")
    async def info(self, request: GroupTarget, caller: Caller) -> GroupInfo:
        return await group_admin.group_details(request.group_id, user_of(caller), self)

    @operation("groups.update")
    async def update(self, request: GroupUpdate, caller: Caller) -> GroupInfo:
        return await group_admin.update_group(request, user_of(caller), self)

    @operation("groups.remove_member")
    async def remove_member(self, request: GroupMemberTarget, caller: Caller) -> Empty:
        await group_admin.remove_member(request, user_of(caller), self)
        return Empty()

    @operation("groups.mute")
    async def mute(self, request: GroupMute, caller: Caller) -> Empty:
        await group_admin.mute_member(request, user_of(caller), self)
        return Empty()

    @operation("groups.transfer_ownership")
    async def transfer_ownership(self, request: GroupMemberTarget, caller: Caller) -> Empty:
        await group_admin.transfer_ownership(request, user_of(caller), self)
        return Empty()

    @operation("groups.dissolve")
    async def dissolve(self, request: GroupTarget, caller: Caller) -> Empty:
        await group_admin.dissolve_group(request.group_id, user_of(caller), self)
        return Empty()

    # --- invite links and join requests ----------------------------------------------------------
    @operation("groups.invites.create")
    async def create_invite(self, request: InviteCreate, caller: Caller) -> Invite:
        return await invites.create_invite(request, user_of(caller), self)

    @operation("groups.invites.list")
    async def list_invites(self, request: GroupTarget, caller: Caller) -> InvitesReply:
        return await invites.list_invites(request.group_id, user_of(caller), self)

    @operation("groups.invites.revoke")
    async def revoke_invite(self, request: InviteRevoke, caller: Caller) -> Empty:
        await invites.revoke_invite(request, user_of(caller), self)
        return Empty()

    @operation("groups.invites.preview")
    async def preview_invite(self, request: InviteRef, caller: Caller) -> InvitePreview:
        user_of(caller)
        return await invites.preview_invite(request.code, self)

    @operation("groups.join")
    async def join(self, request: InviteRef, caller: Caller) -> GroupJoinReply:
        return await invites.join_group(request.code, user_of(caller), self)

    @operation("groups.join_requests")
    async def list_join_requests(self, request: GroupTarget, caller: Caller) -> JoinRequestsReply:
        return await invites.list_join_requests(request.group_id, user_of(caller), self)

    @operation("groups.join_requests.accept")
    async def accept_request(self, request: GroupMemberTarget, caller: Caller) -> Empty:
        await invites.accept_join_request(request, user_of(caller), self)
        return Empty()

    @operation("groups.join_requests.decline")
    async def decline_request(self, request: GroupMemberTarget, caller: Caller) -> Empty:
        await invites.decline_join_request(request, user_of(caller), self)
        return Empty()
