"""What auth's domain logic needs from the outside world: the records it reads, the outcomes a
store may answer with, and the stores themselves as protocols.

services/auth/storage/ implements them (MongoDB: users.py, revocations.py; Redis: limits.py,
revocation_cache.py) and turns driver errors into these outcomes, so the domain never sees a
document or a driver's exception.
"""
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from shared.contracts.auth import UserProfile
from shared.contracts.e2e import KeysChanged
from shared.contracts.envelope import Push
from shared.contracts.wire import Caller

if TYPE_CHECKING:
    from services.auth.domain.limits import GateRule


class UsernameTaken(Exception):
    """Another account has this username already."""


class Unreachable(Exception):
    """A store did not answer (Redis away, refusing or failing); the driver's error is the cause.
    Raised only where the domain carries on without it (limits fail open, the revocation cache is
    rebuilt); elsewhere the driver's error goes up to the runner, which answers `unavailable`."""


def underlying(exc: BaseException) -> BaseException:
    """The driver's error behind a translated one: what is worth logging."""
    return exc.__cause__ or exc


@dataclass(frozen=True)
class User:
    user_id: str
    username: str
    display_name: str
    password_hash: str


@dataclass(frozen=True)
class Profile:
    """What anyone may see of a user (no password hash)."""

    user_id: str
    username: str
    display_name: str
    avatar_url: str | None = None


@dataclass(frozen=True)
class Revocation:
    """A logged-out token, remembered until it would have expired anyway."""

    token_id: str
    expires_at: datetime


@dataclass(frozen=True)
class OneTimeKey:
    """A signed Curve25519 key a device published: a one-time key, or its fallback key."""

    key_id: str
    key: str
    signature: str


@dataclass(frozen=True)
class PublishedDevice:
    """A device's published keys (docs/security.md): identity (Curve25519) and signing (Ed25519)
    keys, the device's signature of them, and its fallback key if it published one."""

    user_id: str
    device_id: str
    identity_key: str
    signing_key: str
    signature: str
    published_at: datetime
    fallback: OneTimeKey | None = None

    def same_keys(self, other: "PublishedDevice") -> bool:
        return (self.identity_key, self.signing_key, self.signature) == (
            other.identity_key, other.signing_key, other.signature
        )


class UserStore(Protocol):
    async def insert(
        self, user_id: str, username: str, display_name: str, password_hash: str, created_at: datetime
    ) -> None:
        """Raises UsernameTaken."""

    async def by_username(self, username: str) -> User | None: ...

    async def set_password_hash(self, user_id: str, password_hash: str) -> None: ...

    async def profiles(self, user_ids: list[str]) -> list[Profile]: ...

    async def search_prefix(self, prefix: str, limit: int) -> list[Profile]:
        """Users whose username or display name starts with `prefix` (case-insensitive)."""

    async def update_profile(
        self, user_id: str, display_name: str | None, avatar_url: str | None, clear_avatar: bool
    ) -> Profile | None:
        """Set what is given (None: unchanged; `clear_avatar`: no avatar); the profile after, or
        None when there is no such user."""


class AvatarMaker(Protocol):
    """The files service: an avatar image made from an upload the caller may download."""

    async def make_avatar(self, file_id: str, caller: Caller) -> str:
        """The new image's URL; ParleyError not_found / bad_request / too_large as files says."""


class ProfileEvents(Protocol):
    """Who else hears of a profile change (chat, which tells the user's friends)."""

    async def changed(self, profile: UserProfile) -> None: ...


class RevocationStore(Protocol):
    """The durable truth about logged-out tokens."""

    async def add(self, token_id: str, user_id: str | None, expires_at: datetime) -> None:
        """Idempotent."""

    async def revoked_among(self, token_ids: list[str], now: datetime) -> set[str]: ...

    def active(self, now: datetime) -> AsyncIterator[Revocation]:
        """Every revocation whose token has not expired by `now`."""


class RevocationCache(Protocol):
    """The cache of revocations the gateways read (shared/tokens.py), auth's side of it. Every
    call raises Unreachable when the cache cannot be reached."""

    async def revoke(self, token_id: str, expires_at: int) -> None: ...

    async def revoke_many(self, revoked: Iterable[tuple[str, int]]) -> None: ...

    async def marker(self) -> str | None: ...

    async def run_id(self) -> str: ...

    async def begin_rebuild(self) -> str: ...

    async def still_building(self, building: str) -> None: ...

    async def finish_rebuild(self, building: str, run_id: str) -> bool: ...

    async def mark_incomplete(self) -> None: ...


class GateStore(Protocol):
    """Failed-login gates kept where every auth replica sees them. `admit` is atomic: puts the
    attempt in flight and returns 0; returns None when the free failures left are all spoken for
    by attempts in flight (not counted: try again once one settles); or returns the seconds still
    to wait (not counted). `settle` ends an attempt in flight, counting it if it failed. Failures
    older than the rule's window are forgotten. Every call raises Unreachable when the store
    cannot be reached."""

    async def admit(self, key: str, attempt_id: str, now: float, rule: "GateRule") -> float | None: ...

    async def settle(self, key: str, attempt_id: str, failed: bool, now: float) -> None: ...

    async def delete(self, key: str) -> None: ...

    async def remember(self, key: str, seconds: float) -> None: ...

    async def remembered(self, key: str) -> bool: ...


class RateBucket(Protocol):
    """A token bucket per key, refilled at `rate_per_second`. `take` raises Unreachable when the
    bucket cannot be reached."""

    @property
    def rate_per_second(self) -> float: ...

    async def take(self, key: str) -> bool: ...

    async def take_many(self, keys: list[str]) -> list[bool]:
        """One token per key named (a key named twice gives two), in one call."""


class KeyStore(Protocol):
    """The key directory: devices' keys and their unclaimed one-time keys."""

    async def device(self, user_id: str, device_id: str) -> PublishedDevice | None: ...

    async def devices_of(self, user_ids: Sequence[str]) -> list[PublishedDevice]: ...

    async def put_device(self, device: PublishedDevice) -> None:
        """Store or replace a device's keys (its fallback key goes with the old ones)."""

    async def set_fallback(self, user_id: str, device_id: str, key: OneTimeKey) -> None: ...

    async def one_time_keys(self, user_id: str, device_id: str, key_ids: Sequence[str]) -> dict[str, OneTimeKey]:
        """Those of `key_ids` the device holds unclaimed."""

    async def add_one_time_keys(self, user_id: str, device_id: str, keys: Sequence[OneTimeKey]) -> None: ...

    async def count_one_time_keys(self, user_id: str, device_id: str) -> int: ...

    async def claim_one_time_key(self, user_id: str, device_id: str) -> OneTimeKey | None:
        """One unclaimed key, removed: never handed out twice, even to concurrent claims."""

    async def drop_one_time_keys(self, user_id: str, device_id: str) -> None: ...

    async def remove_device(self, user_id: str, device_id: str) -> bool:
        """Every key of the device gone; False if it had none."""


class KeyEvents(Protocol):
    """Who hears of a device's keys changing (chat, which tells whoever talks with its user)."""

    async def changed(self, change: KeysChanged) -> None: ...


class DevicePushes(Protocol):
    """Pushes to one device's live sockets (best effort)."""

    async def to_device(self, user_id: str, device_id: str, pushes: list[Push]) -> int: ...
