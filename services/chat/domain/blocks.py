"""Blocking a user (docs/protocol.md "Blocking").

A block ends whatever friendship or request the two had, silently: the blocked user is told
nothing, and every later refusal they meet reads like any closed door. The friendship rules
themselves (no request or acceptance across a block) are in friends.py; groups ask
`Blocks.blockers_of` before adding someone.
"""
from typing import Protocol

from services.chat.domain.ports import Blocks, Friendships, Profiles
from shared.contracts.auth import UserProfile
from shared.contracts.base import utc_now
from shared.contracts.blocks import BlocksListReply
from shared.contracts.errors import ParleyError

# auth.users.get takes at most this many ids at once.
PROFILES_PER_LOOKUP = 1000
# Blocks a user may hold: `blocks.list` answers them all in one reply (~150 bytes each).
MAX_BLOCKED = 1000


class BlockParts(Protocol):
    """What blocking needs: who blocked whom, the friendships a block ends, auth's profiles."""

    @property
    def blocks(self) -> Blocks: ...

    @property
    def friendships(self) -> Friendships: ...

    @property
    def profiles(self) -> Profiles: ...


def _not_yourself(me: str, other: str) -> None:
    if me == other:
        raise ParleyError.bad_request("data.user_id: you cannot block yourself")


async def block_user(me: str, target: str, parts: BlockParts) -> None:
    """Block `target` (again: nothing changes) and end any friendship or request between us.

    The block is written before the friendship is deleted: a request or an acceptance racing
    this one checks for blocks after its own write, so one of the two sees the other's."""
    _not_yourself(me, target)
    if target not in await parts.profiles.get([target]):
        raise ParleyError.not_found("no such user")
    if await parts.blocks.count_by(me) >= MAX_BLOCKED and me not in await parts.blocks.between(me, target):
        raise ParleyError.conflict(f"you have blocked {MAX_BLOCKED} users, the most there can be; unblock some first")
    await parts.blocks.add(me, target, utc_now())
    await parts.friendships.remove(me, target)


async def unblock_user(me: str, target: str, parts: BlockParts) -> None:
    """Lift the block; what the block ended stays ended."""
    _not_yourself(me, target)
    if not await parts.blocks.remove(me, target):
        raise ParleyError.not_found("you have not blocked that user")


async def list_blocked(me: str, parts: BlockParts) -> BlocksListReply:
    """The users I blocked, the most recent first (those whose account is gone left out)."""
    blocked = await parts.blocks.blocked_by(me)
    found: dict[str, UserProfile] = {}
    for start in range(0, len(blocked), PROFILES_PER_LOOKUP):
        found.update(await parts.profiles.get(blocked[start : start + PROFILES_PER_LOOKUP]))
    return BlocksListReply(users=[found[u] for u in blocked if u in found])
