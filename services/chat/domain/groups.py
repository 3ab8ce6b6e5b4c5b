"""Groups: members and roles live on the group's conversation; every change is pushed.

The administration (settings, removing, muting, ownership, dissolving) is in group_admin.py,
invite links and join requests in invites.py; both admit members through `admit` here.
"""
import time
from datetime import datetime
from typing import Protocol

from shared.delivery import Deliverer, push
from services.chat.domain.ports import Blocks, Conversations, Invites, JoinRequests, Messages, Profiles
from services.chat.domain.records import Conversation, Member
from shared.contracts.base import iso, utc_now
from shared.contracts.envelope import Push
from shared.contracts.errors import ParleyError
from shared.contracts.groups import (
    GroupAddedPush,
    GroupAddMembers,
    GroupCreate,
    GroupCreateReply,
    GroupEntry,
    GroupInfo,
    GroupMember,
    GroupMemberLeftPush,
    GroupMemberPush,
    GroupMembersReply,
    GroupRolePush,
    GroupSetRole,
    GroupsListReply,
    Role,
)
from shared.ids import new_id
from shared.partitions import group_conversation_id


class AdmitParts(Protocol):
    """What admitting members (`admit`) reads; invites.py admits through it too."""

    @property
    def conversations(self) -> Conversations: ...

    @property
    def deliver(self) -> Deliverer: ...

    @property
    def messages(self) -> Messages: ...


class GroupParts(AdmitParts, Protocol):
    """What creating, joining, leaving and listing groups reads."""

    @property
    def invites(self) -> Invites: ...

    @property
    def join_requests(self) -> JoinRequests: ...

    @property
    def profiles(self) -> Profiles: ...

    @property
    def blocks(self) -> Blocks: ...


MAX_MEMBERS = 1000


def _member(role: Role, now: datetime, seq: int, order: int = 0) -> Member:
    """`since` orders members by how long they have stood (ties at creation: list order)."""
    return Member(role=role, joined_at=now, joined_seq=seq, since=time.time_ns() + order)


async def member_group(group_id: str, user_id: str, conversations: Conversations) -> Conversation:
    """The group's conversation, if `user_id` is a member; otherwise `forbidden`, whether or
    not the group exists (a non-member learns nothing)."""
    conversation = await conversations.group(group_id)
    if conversation is None or not conversation.has_member(user_id):
        raise ParleyError.forbidden("you are not a member of this group")
    return conversation


async def _existing_users(user_ids: list[str], profiles: Profiles) -> None:
    found = await profiles.get(user_ids)
    missing = [u for u in user_ids if u not in found]
    if missing:
        raise ParleyError.not_found(f"no such user: {missing[0]}")


def group_info(group: Conversation) -> GroupInfo:
    assert group.group_id is not None and group.name is not None
    return GroupInfo(
        group_id=group.group_id, conversation_id=group.conversation_id, name=group.name,
        description=group.description, avatar_url=group.avatar_url, everyone_muted=group.everyone_muted,
        approval_required=group.approval_required, member_count=len(group.members),
    )


async def refuse_blocked(adder: str, user_ids: list[str], blocks: Blocks) -> None:
    """Nobody adds to a group (or lets into one) a user who blocked them; the answer does not
    say "blocked" (docs/protocol.md "Blocking")."""
    if user_ids and await blocks.blockers_of(adder, user_ids):
        raise ParleyError.forbidden("this user cannot be added")


def _added_push(group: Conversation) -> list[Push]:
    assert group.group_id is not None and group.name is not None
    data = GroupAddedPush(group_id=group.group_id, name=group.name, conversation_id=group.conversation_id)
    return [push("group.added", data)]


async def create_group(request: GroupCreate, creator: str, parts: GroupParts) -> GroupCreateReply:
    invited = [u for u in dict.fromkeys(request.member_ids) if u != creator]
    if len(invited) + 1 > MAX_MEMBERS:
        raise ParleyError.bad_request(f"data.member_ids: a group has at most {MAX_MEMBERS} members")
    await _existing_users(invited, parts.profiles)
    await refuse_blocked(creator, invited, parts.blocks)
    now = utc_now()
    members = {creator: _member("owner", now, 0)} | {
        u: _member("member", now, 0, order) for order, u in enumerate(invited, 1)
    }
    group_id = new_id("g")
    conversation_id = group_conversation_id(group_id)  # its sends and acks share a partition (shared/partitions.py)
    group = await parts.conversations.create_group(conversation_id, group_id, request.name, members, now)
    await parts.deliver.to_users(invited, _added_push(group))
    return GroupCreateReply(group_id=group_id, conversation_id=conversation_id)


async def add_members(request: GroupAddMembers, adder: str, parts: GroupParts) -> None:
    group = await member_group(request.group_id, adder, parts.conversations)
    if group.role_of(adder) not in ("owner", "admin"):
        raise ParleyError.forbidden("only the owner or an admin can add members")
    new = [u for u in dict.fromkeys(request.user_ids) if not group.has_member(u)]
    if not new:
        return
    if len(group.members) + len(new) > MAX_MEMBERS:
        raise ParleyError.bad_request(f"data.user_ids: a group has at most {MAX_MEMBERS} members")
    await _existing_users(new, parts.profiles)
    await refuse_blocked(adder, new, parts.blocks)
    if await admit(group, new, parts) is None:
        raise ParleyError.forbidden("you are not a member of this group")  # gone meanwhile


async def admit(group: Conversation, new: list[str], parts: AdmitParts) -> Conversation | None:
    """Add users who are not members yet (by an admin, an invite link or an accepted request):
    they get `group.added`, the others one `group.member_joined` each. None: the group is gone
    (dissolved meanwhile, or its last member left)."""
    assert group.group_id is not None
    now = utc_now()
    # A member added later reads from the moment they joined: the seq stored last, read (the
    # recorded last_seq may be behind, storage/appender.py).
    joined_at = await parts.messages.highest_seq(group.conversation_id)
    updated = await parts.conversations.add_members(
        group.conversation_id, {u: _member("member", now, joined_at, order) for order, u in enumerate(new)}
    )
    if updated is None:
        return None
    await parts.deliver.to_users(new, _added_push(updated))
    others = [u for u in updated.members if u not in new]
    for user_id in new:
        data = GroupMemberPush(group_id=group.group_id, user_id=user_id)
        await parts.deliver.to_users(others, [push("group.member_joined", data)])
    return updated


def successor(group: Conversation) -> str | None:
    """Who owns a group after its owner leaves: the longest-standing admin, else member."""
    ranked = group.seniority()
    return ranked[0] if ranked else None


async def leave_group(group_id: str, user_id: str, parts: GroupParts) -> None:
    """The last member out deletes the group, its messages, invite links and join requests; an
    owner leaving hands the group on."""
    conversations, deliver = parts.conversations, parts.deliver
    group = await member_group(group_id, user_id, conversations)
    updated = await conversations.remove_member(group.conversation_id, user_id)
    if updated is None:
        return  # left concurrently
    if not updated.members:
        if await conversations.delete_if_empty(group.conversation_id):
            await parts.messages.delete_conversation(group.conversation_id)
            await parts.invites.delete_group(group_id)
            await parts.join_requests.delete_group(group_id)
        return
    await deliver.to_users(
        updated.members, [push("group.member_left", GroupMemberLeftPush(group_id=group_id, user_id=user_id))]
    )
    if group.role_of(user_id) == "owner" and not any(updated.role_of(u) == "owner" for u in updated.members):
        heir = successor(updated)
        if heir is not None and await conversations.set_role(group.conversation_id, heir, "owner"):
            data = GroupRolePush(group_id=group_id, user_id=heir, role="owner")
            await deliver.to_users(updated.members, [push("group.role_changed", data)])


async def set_role(request: GroupSetRole, owner: str, parts: GroupParts) -> None:
    group = await member_group(request.group_id, owner, parts.conversations)
    if group.role_of(owner) != "owner":
        raise ParleyError.forbidden("only the owner can change roles")
    if request.user_id == owner:
        raise ParleyError.bad_request("data.user_id: the owner's role changes only by leaving")
    if not group.has_member(request.user_id):
        raise ParleyError.not_found("no such member in this group")
    if group.role_of(request.user_id) == request.role:
        return
    await parts.conversations.set_role(group.conversation_id, request.user_id, request.role)
    data = GroupRolePush(group_id=request.group_id, user_id=request.user_id, role=request.role)
    await parts.deliver.to_users(group.members, [push("group.role_changed", data)])


async def list_groups(user_id: str, parts: GroupParts) -> GroupsListReply:
    return GroupsListReply(
        groups=[
            GroupEntry(**group_info(group).model_dump(), role=group.roster[user_id].role)
            for group in await parts.conversations.of_user(user_id, kind="group")
        ]
    )


async def list_members(group_id: str, user_id: str, parts: GroupParts) -> GroupMembersReply:
    group = await member_group(group_id, user_id, parts.conversations)
    found = await parts.profiles.get(list(group.members))
    now = utc_now()
    members = []
    for u in group.seniority():
        if u not in found:
            continue
        member, profile = group.roster[u], found[u]
        muted_until = member.muted_at(now)
        members.append(
            GroupMember(
                user_id=u, username=profile.username, display_name=profile.display_name,
                avatar_url=profile.avatar_url, role=member.role, muted_until=iso(muted_until) if muted_until else None,
            )
        )
    return GroupMembersReply(members=members)
