"""Groups: creation, members, roles (PROTOCOL.md, "Groups")."""
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from shared.contracts.base import Contract
from shared.contracts.chat import Id

GroupName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Role = Literal["owner", "admin", "member"]
UserIds = Annotated[list[Id], Field(max_length=500)]


class GroupCreate(Contract):
    name: GroupName
    member_ids: UserIds


class GroupCreateReply(Contract):
    group_id: str
    conversation_id: str


class GroupTarget(Contract):
    group_id: Id


class GroupAddMembers(Contract):
    group_id: Id
    user_ids: Annotated[list[Id], Field(min_length=1, max_length=500)]


class GroupSetRole(Contract):
    """Added to PROTOCOL.md: the owner makes a member an admin or an admin a member again."""

    group_id: Id
    user_id: Id
    role: Literal["admin", "member"]


class GroupsList(Contract):
    pass


class GroupEntry(Contract):
    group_id: str
    name: str
    conversation_id: str
    role: Role


class GroupsListReply(Contract):
    groups: list[GroupEntry]


class GroupMember(Contract):
    user_id: str
    username: str
    role: Role


class GroupMembersReply(Contract):
    members: list[GroupMember]


class GroupAddedPush(Contract):
    """Push `group.added` to members just added (and the creator's invitees)."""

    group_id: str
    name: str
    conversation_id: str


class GroupMemberPush(Contract):
    """Push `group.member_joined` / `group.member_left` to the other members."""

    group_id: str
    user_id: str


class GroupRolePush(Contract):
    """Push `group.role_changed` (added to PROTOCOL.md) to every member."""

    group_id: str
    user_id: str
    role: Role
