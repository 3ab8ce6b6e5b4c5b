"""Accounts, sessions and user search (PROTOCOL.md, "Session" and "Users")."""
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints

from shared.contracts.base import Contract


def _fold(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


# The folding validator comes after the constraints so the pattern stays in the JSON Schema
# (pydantic still runs "before" validators first).
Username = Annotated[
    str,
    StringConstraints(min_length=3, max_length=32, pattern=r"^[a-z0-9_.\-]+$"),
    BeforeValidator(_fold),
]
Password = Annotated[str, StringConstraints(min_length=8, max_length=128)]
DisplayName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
DeviceId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$")]
Token = Annotated[str, StringConstraints(min_length=1, max_length=4096)]


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


class Register(Contract):
    username: Username
    password: Password
    display_name: DisplayName | None = None


class RegisterReply(Contract):
    user_id: str
    username: str


class Login(Contract):
    # Any string: a name that could never be registered is simply an unknown user.
    username: Annotated[str, BeforeValidator(_fold), StringConstraints(min_length=1, max_length=128)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    device_id: DeviceId = "default"


class LoginReply(Contract):
    user_id: str
    token: str
    expires_at: str


class Resume(Contract):
    token: Token
    device_id: DeviceId | None = None


class ResumeReply(Contract):
    user_id: str
    expires_at: str


class Logout(Contract):
    pass


class UserSearch(Contract):
    query: Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(_not_blank)]


class UserProfile(Contract):
    user_id: str
    username: str
    display_name: str
    avatar_url: str | None = None  # `/images/<image_id>` (docs/protocol.md "Profiles and avatars")


class UserSearchReply(Contract):
    users: list[UserProfile]


# Internal: other services resolve user ids to profiles through auth, which owns users.
class UsersGet(Contract):
    user_ids: list[str] = Field(max_length=1000)


class UsersGetReply(Contract):
    users: list[UserProfile]


class ProfileGet(Contract):
    user_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]


class ProfileUpdate(Contract):
    """The caller's own profile; fields left out stay as they are."""

    display_name: DisplayName | None = None
    avatar_file_id: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None
    clear_avatar: bool = False



# Internal: the gateway asks auth which tokens were revoked when the Redis cache cannot say
# (shared/tokens.py RevocationCheck); auth answers from MongoDB.
class TokensRevoked(Contract):
    token_ids: list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] = Field(max_length=1000)


class TokensRevokedReply(Contract):
    revoked: list[str]


class ProfileChanged(Contract):
    """Event `profile.changed`: auth changed a user's profile; chat tells their friends."""

    user: UserProfile
