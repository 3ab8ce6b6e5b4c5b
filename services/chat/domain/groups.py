"""Groups: members and roles live on the group's conversation; every change is pushed."""
import time
from datetime import datetime

from services.chat.domain.delivery import Deliverer, push
from services.chat.domain.ports import Conversations, Messages, Profiles
from services.chat.domain.records import Conversation, Member
from shared.contracts.base import utc_now
from shared.contracts.envelope import Push
from shared.contracts.errors import ParleyError
from shared.contracts.groups import (
    GroupAddedPush,
    GroupAddMembers,
    GroupCreate,
    GroupCreateReply,
    GroupEntry,
    GroupMember,
    GroupMemberPush,
    GroupMembersReply,
    GroupRolePush,
    GroupSetRole,
    GroupsListReply,
    Role,
)
from shared.ids import new_id

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


def _added_push(group: Conversation) -> list[Push]:
    assert group.group_id is not None and group.name is not None
    data = GroupAddedPush(group_id=group.group_id, name=group.name, conversation_id=group.conversation_id)
    return [push("group.added", data)]


async def create_group(
    request: GroupCreate, creator: str, conversations: Conversations, profiles: Profiles, deliver: Deliverer
) -> GroupCreateReply:
    invited = [u for u in dict.fromkeys(request.member_ids) if u != creator]
    if len(invited) + 1 > MAX_MEMBERS:
        raise ParleyError.bad_request(f"data.member_ids: a group has at most {MAX_MEMBERS} members")
    await _existing_users(invited, profiles)
    now = utc_now()
    members = {creator: _member("owner", now, 0)} | {
        u: _member("member", now, 0, order) for order, u in enumerate(invited, 1)
    }
    group_id, conversation_id = new_id("g"), new_id("gc")
    group = await conversations.create_group(conversation_id, group_id, request.name, members, now)
    await deliver.to_users(invited, _added_push(group))
    return GroupCreateReply(group_id=group_id, conversation_id=conversation_id)


async def add_members(
    request: GroupAddMembers, adder: str, conversations: Conversations, profiles: Profiles, deliver: Deliverer
) -> None:
    group = await member_group(request.group_id, adder, conversations)
    if group.role_of(adder) not in ("owner", "admin"):
        raise ParleyError.forbidden("only the owner or an admin can add members")
    new = [u for u in dict.fromkeys(request.user_ids) if not group.has_member(u)]
    if not new:
        return
    if len(group.members) + len(new) > MAX_MEMBERS:
        raise ParleyError.bad_request(f"data.user_ids: a group has at most {MAX_MEMBERS} members")
    await _existing_users(new, profiles)
    now = utc_now()
    # A member added later reads from the moment they joined.
    updated = await conversations.add_members(
        group.conversation_id, {u: _member("member", now, group.last_seq, order) for order, u in enumerate(new)}
    )
    await deliver.to_users(new, _added_push(updated))
    others = [u for u in updated.members if u not in new]
    for user_id in new:
        data = GroupMemberPush(group_id=request.group_id, user_id=user_id)
        await deliver.to_users(others, [push("group.member_joined", data)])


def successor(group: Conversation) -> str | None:
    """Who owns a group after its owner leaves: the longest-standing admin, else member."""
    ranked = group.seniority()
    return ranked[0] if ranked else None


async def leave_group(
    group_id: str, user_id: str, conversations: Conversations, messages: Messages, deliver: Deliverer
) -> None:
    """The last member out deletes the group and its messages; an owner leaving hands the group on."""
    group = await member_group(group_id, user_id, conversations)
    updated = await conversations.remove_member(group.conversation_id, user_id)
    if updated is None:
        return  # left concurrently
    if not updated.members:
        if await conversations.delete_if_empty(group.conversation_id):
            await messages.delete_conversation(group.conversation_id)
        return
    await deliver.to_users(
        updated.members, [push("group.member_left", GroupMemberPush(group_id=group_id, user_id=user_id))]
    )
    if group.role_of(user_id) == "owner" and not any(updated.role_of(u) == "owner" for u in updated.members):
        heir = successor(updated)
        if heir is not None and await conversations.set_role(group.conversation_id, heir, "owner"):
            data = GroupRolePush(group_id=group_id, user_id=heir, role="owner")
            await deliver.to_users(updated.members, [push("group.role_changed", data)])


async def set_role(request: GroupSetRole, owner: str, conversations: Conversations, deliver: Deliverer) -> None:
    group = await member_group(request.group_id, owner, conversations)
    if group.role_of(owner) != "owner":
        raise ParleyError.forbidden("only the owner can change roles")
    if request.user_id == owner:
        raise ParleyError.bad_request("data.user_id: the owner's role changes only by leaving")
    if not group.has_member(request.user_id):
        raise ParleyError.not_found("no such member in this group")
    if group.role_of(request.user_id) == request.role:
        return
    await conversations.set_role(group.conversation_id, request.user_id, request.role)
    data = GroupRolePush(group_id=request.group_id, user_id=request.user_id, role=request.role)
    await deliver.to_users(group.members, [push("group.role_changed", data)])


async def list_groups(user_id: str, conversations: Conversations) -> GroupsListReply:
    entries = []
    for group in await conversations.of_user(user_id, kind="group"):
        assert group.group_id is not None and group.name is not None
        entries.append(
            GroupEntry(
                group_id=group.group_id, name=group.name, conversation_id=group.conversation_id,
                role=group.roster[user_id].role,
            )
        )
    return GroupsListReply(groups=entries)


async def list_members(
    group_id: str, user_id: str, conversations: Conversations, profiles: Profiles
) -> GroupMembersReply:
    group = await member_group(group_id, user_id, conversations)
    found = await profiles.get(list(group.members))
    return GroupMembersReply(
        members=[
            GroupMember(user_id=u, username=found[u].username, role=group.roster[u].role)
            for u in group.seniority()
            if u in found
        ]
    )
