"""Groups: members and roles live on the group's conversation; every change is pushed."""
import time
from datetime import datetime
from typing import Any

from services.chat.domain.ports import Deliverer, Profiles, push
from services.chat.storage.messages import MessageStore
from shared.contracts import groups
from shared.contracts.base import utc_now
from shared.contracts.errors import ParleyError
from shared.ids import new_id

MAX_MEMBERS = 1000
RANK = {"owner": 0, "admin": 1, "member": 2}


def role_of(conversation: dict[str, Any], user_id: str) -> str | None:
    info = conversation.get("member_info", {}).get(user_id)
    return info["role"] if info else None


def joined_seq(conversation: dict[str, Any], user_id: str) -> int:
    """Where a member's view of the conversation starts (0 for direct chats)."""
    info = conversation.get("member_info", {}).get(user_id)
    return info["joined_seq"] if info else 0


def _member_info(role: str, now: datetime, seq: int, order: int = 0) -> dict[str, Any]:
    """`since` orders members by how long they have stood (ties at creation: list order)."""
    return {"role": role, "joined_at": now, "joined_seq": seq, "since": time.time_ns() + order}


def _seniority(info: dict[str, dict[str, Any]]) -> list[str]:
    return sorted(info, key=lambda u: (RANK[info[u]["role"]], info[u]["since"]))


async def member_group(group_id: str, user_id: str, messages: MessageStore) -> dict[str, Any]:
    """The group's conversation, if `user_id` is a member; otherwise `forbidden`, whether or
    not the group exists (a non-member learns nothing)."""
    conversation = await messages.group(group_id)
    if conversation is None or user_id not in conversation["members"]:
        raise ParleyError.forbidden("you are not a member of this group")
    return conversation


async def _existing_users(user_ids: list[str], profiles: Profiles) -> None:
    found = await profiles.get(user_ids)
    missing = [u for u in user_ids if u not in found]
    if missing:
        raise ParleyError.not_found(f"no such user: {missing[0]}")


def _added_push(conversation: dict[str, Any]) -> list:
    data = groups.GroupAddedPush(
        group_id=conversation["group_id"], name=conversation["name"], conversation_id=conversation["_id"]
    )
    return [push("group.added", data)]


async def create_group(
    request: groups.GroupCreate, creator: str, messages: MessageStore, profiles: Profiles, deliver: Deliverer
) -> groups.GroupCreateReply:
    invited = [u for u in dict.fromkeys(request.member_ids) if u != creator]
    if len(invited) + 1 > MAX_MEMBERS:
        raise ParleyError.bad_request(f"data.member_ids: a group has at most {MAX_MEMBERS} members")
    await _existing_users(invited, profiles)
    now = utc_now()
    info = {creator: _member_info("owner", now, 0)} | {
        u: _member_info("member", now, 0, order) for order, u in enumerate(invited, 1)
    }
    group_id, conversation_id = new_id("g"), new_id("gc")
    await messages.create_group(conversation_id, group_id, request.name, info, now)
    conversation = {"_id": conversation_id, "group_id": group_id, "name": request.name}
    await deliver.to_users(invited, _added_push(conversation))
    return groups.GroupCreateReply(group_id=group_id, conversation_id=conversation_id)


async def add_members(
    request: groups.GroupAddMembers, adder: str, messages: MessageStore, profiles: Profiles, deliver: Deliverer
) -> None:
    conversation = await member_group(request.group_id, adder, messages)
    if role_of(conversation, adder) not in ("owner", "admin"):
        raise ParleyError.forbidden("only the owner or an admin can add members")
    new = [u for u in dict.fromkeys(request.user_ids) if u not in conversation["members"]]
    if not new:
        return
    if len(conversation["members"]) + len(new) > MAX_MEMBERS:
        raise ParleyError.bad_request(f"data.user_ids: a group has at most {MAX_MEMBERS} members")
    await _existing_users(new, profiles)
    now = utc_now()
    # A member added later reads from the moment they joined.
    updated = await messages.add_group_members(
        conversation["_id"],
        {u: _member_info("member", now, conversation["last_seq"], order) for order, u in enumerate(new)},
    )
    await deliver.to_users(new, _added_push(updated))
    others = [u for u in updated["members"] if u not in new]
    for user_id in new:
        data = groups.GroupMemberPush(group_id=request.group_id, user_id=user_id)
        await deliver.to_users(others, [push("group.member_joined", data)])


def successor(conversation: dict[str, Any]) -> str | None:
    """Who owns a group after its owner leaves: the longest-standing admin, else member."""
    ranked = _seniority(conversation.get("member_info", {}))
    return ranked[0] if ranked else None


async def leave_group(group_id: str, user_id: str, messages: MessageStore, deliver: Deliverer) -> None:
    conversation = await member_group(group_id, user_id, messages)
    updated = await messages.remove_group_member(conversation["_id"], user_id)
    if updated is None:
        return  # left concurrently
    if not updated["members"]:
        await messages.delete_if_empty(conversation["_id"])
        return
    await deliver.to_users(
        updated["members"], [push("group.member_left", groups.GroupMemberPush(group_id=group_id, user_id=user_id))]
    )
    if role_of(conversation, user_id) == "owner" and not any(
        role_of(updated, u) == "owner" for u in updated["members"]
    ):
        heir = successor(updated)
        if heir is not None and await messages.set_group_role(conversation["_id"], heir, "owner"):
            data = groups.GroupRolePush(group_id=group_id, user_id=heir, role="owner")
            await deliver.to_users(updated["members"], [push("group.role_changed", data)])


async def set_role(request: groups.GroupSetRole, owner: str, messages: MessageStore, deliver: Deliverer) -> None:
    conversation = await member_group(request.group_id, owner, messages)
    if role_of(conversation, owner) != "owner":
        raise ParleyError.forbidden("only the owner can change roles")
    if request.user_id == owner:
        raise ParleyError.bad_request("data.user_id: the owner's role changes only by leaving")
    if request.user_id not in conversation["members"]:
        raise ParleyError.not_found("no such member in this group")
    if role_of(conversation, request.user_id) == request.role:
        return
    await messages.set_group_role(conversation["_id"], request.user_id, request.role)
    data = groups.GroupRolePush(group_id=request.group_id, user_id=request.user_id, role=request.role)
    await deliver.to_users(conversation["members"], [push("group.role_changed", data)])


async def list_groups(user_id: str, messages: MessageStore) -> groups.GroupsListReply:
    return groups.GroupsListReply(
        groups=[
            groups.GroupEntry(
                group_id=c["group_id"], name=c["name"], conversation_id=c["_id"], role=role_of(c, user_id)
            )
            for c in await messages.conversations_of(user_id, kind="group")
        ]
    )


async def list_members(
    group_id: str, user_id: str, messages: MessageStore, profiles: Profiles
) -> groups.GroupMembersReply:
    conversation = await member_group(group_id, user_id, messages)
    info = conversation["member_info"]
    found = await profiles.get(conversation["members"])
    ordered = _seniority(info)
    return groups.GroupMembersReply(
        members=[
            groups.GroupMember(user_id=u, username=found[u].username, role=info[u]["role"])
            for u in ordered
            if u in found
        ]
    )
