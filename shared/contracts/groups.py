"""Groups: creation, members, roles (PROTOCOL.md, "Groups"), and their administration: settings,
removing, muting, ownership, dissolving, invite links and join requests (docs/protocol.md,
"Group administration")."""
from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, StringConstraints, model_validator

from shared.contracts.auth import UserProfile
from shared.contracts.base import Contract, SparseContract
from shared.contracts.chat import Id

GroupName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Description = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]
Role = Literal["owner", "admin", "member"]
UserIds = Annotated[list[Id], Field(max_length=500)]
# An invite link's code: secrets.token_urlsafe(16) makes 22 characters; anything URL-safe is looked up.
InviteCode = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")]
INVITE_MIN_SECONDS, INVITE_MAX_SECONDS = 60, 30 * 24 * 3600
INVITE_MAX_USES = 1000


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


class GroupMemberTarget(Contract):
    """`groups.remove_member`, `groups.transfer_ownership`, `groups.join_requests.accept/decline`."""

    group_id: Id
    user_id: Id


class GroupsList(Contract):
    pass


class GroupInfo(Contract):
    """A group as its members see it (`groups.info`, `groups.update`, push `group.updated`)."""

    group_id: str
    conversation_id: str
    name: str
    description: str
    avatar_url: str | None
    everyone_muted: bool
    approval_required: bool
    member_count: int


class GroupEntry(GroupInfo):
    """A `groups.list` entry: the group and the caller's role in it."""

    role: Role


class GroupsListReply(Contract):
    groups: list[GroupEntry]


class GroupMember(Contract):
    user_id: str
    username: str
    display_name: str
    avatar_url: str | None
    role: Role
    muted_until: str | None  # null when not muted (a mute ends by itself at this time)


class GroupMembersReply(Contract):
    members: list[GroupMember]


class GroupUpdate(Contract):
    """`groups.update`: any of the settings; the picture is an avatar image the client made first
    (`images.avatar`, from an upload), as a sticker is made before it is sent."""

    group_id: Id
    name: GroupName | None = None
    description: Description | None = None
    avatar_image_id: Id | None = None
    clear_avatar: bool = False
    everyone_muted: bool | None = None
    approval_required: bool | None = None

    @model_validator(mode="after")
    def _one_avatar_change(self) -> "GroupUpdate":
        if self.avatar_image_id is not None and self.clear_avatar:
            raise ValueError("clear_avatar: give avatar_image_id or clear_avatar, not both")
        return self


class GroupMute(Contract):
    """`groups.mute`: `until` a time in the future (at most 366 days ahead); null (or absent) unmutes."""

    group_id: Id
    user_id: Id
    until: AwareDatetime | None = None


class InviteCreate(Contract):
    group_id: Id
    expires_in_seconds: Annotated[int, Field(ge=INVITE_MIN_SECONDS, le=INVITE_MAX_SECONDS)] | None = None
    max_uses: Annotated[int, Field(ge=1, le=INVITE_MAX_USES)] | None = None


class Invite(Contract):
    """An invite link; `url` is the web client's path that opens it."""

    code: str
    group_id: str
    url: str
    created_by: str
    created_at: str
    expires_at: str | None
    max_uses: int | None
    uses: int


class InvitesReply(Contract):
    invites: list[Invite]


class InviteRevoke(Contract):
    group_id: Id
    code: InviteCode


class InviteRef(Contract):
    """`groups.invites.preview` and `groups.join`: anyone holding the code."""

    code: InviteCode


class InvitePreview(Contract):
    group_id: str
    name: str
    description: str
    avatar_url: str | None
    member_count: int
    approval_required: bool


class GroupJoinReply(SparseContract):
    """`joined` (with the conversation) or `requested` (the group needs approval)."""

    status: Literal["joined", "requested"]
    group_id: str
    conversation_id: str | None = None


class JoinRequestEntry(Contract):
    user: UserProfile
    requested_at: str


class JoinRequestsReply(Contract):
    requests: list[JoinRequestEntry]


# --- pushes ----------------------------------------------------------------------------------
class GroupAddedPush(Contract):
    """Push `group.added` to members just added (and the creator's invitees)."""

    group_id: str
    name: str
    conversation_id: str


class GroupMemberPush(Contract):
    """Push `group.member_joined` to the other members."""

    group_id: str
    user_id: str


class GroupMemberLeftPush(SparseContract):
    """Push `group.member_left` to the other members; `removed_by` when they were removed."""

    group_id: str
    user_id: str
    removed_by: str | None = None


class GroupRolePush(Contract):
    """Push `group.role_changed` (added to PROTOCOL.md) to every member."""

    group_id: str
    user_id: str
    role: Role


class GroupUpdatedPush(Contract):
    """Push `group.updated` to every member: the group's settings changed."""

    group: GroupInfo
    by: str


class GroupRemovedPush(Contract):
    """Push `group.removed` to a member removed by the owner or an admin."""

    group_id: str
    conversation_id: str
    by: str


class GroupMemberMutedPush(Contract):
    """Push `group.member_muted` to every member; `until` null: unmuted."""

    group_id: str
    user_id: str
    until: str | None


class GroupDissolvedPush(Contract):
    """Push `group.dissolved` to every member: the group and its history are gone."""

    group_id: str
    conversation_id: str


class GroupJoinRequestedPush(Contract):
    """Push `group.join_requested` to the owner and admins."""

    group_id: str
    user: UserProfile


class GroupJoinDeclinedPush(Contract):
    """Push `group.join_declined` to the requester."""

    group_id: str
    name: str
