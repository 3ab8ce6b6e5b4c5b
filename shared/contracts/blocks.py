"""Blocking a user (docs/protocol.md, "Blocking")."""
from shared.contracts.auth import UserProfile
from shared.contracts.base import Contract
from shared.contracts.chat import Id


class BlockTarget(Contract):
    """`blocks.add` / `blocks.remove`: the user to block or unblock."""

    user_id: Id


class BlocksList(Contract):
    pass


class BlocksListReply(Contract):
    """The users the caller blocked, the most recently blocked first."""

    users: list[UserProfile]
