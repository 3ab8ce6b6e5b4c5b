"""What chat's domain code needs from the outside world, as small interfaces.

Stores (services/chat/storage), Redis (presence, the typing throttle) and the other services
(services/chat/remote.py) implement these; domain code names only these and the records.
"""
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel

from shared.delivery import Deliverer
from services.chat.domain.records import (
    Appended,
    Conversation,
    Cursor,
    DeviceMessage,
    Draft,
    Friendship,
    GroupChanges,
    InviteLink,
    JoinRequest,
    Kind,
    Member,
    Message,
    Placed,
)
from shared.contracts.auth import UserProfile
from shared.contracts.files import FileMeta
from shared.contracts.images import ImageInfo
from shared.contracts.groups import Role
from shared.presence import DeviceSocket


class Profiles(Protocol):
    """auth's users (auth owns them): the profiles of those that exist."""

    async def get(self, user_ids: list[str]) -> dict[str, UserProfile]: ...


class Files(Protocol):
    """The files service's metadata, for a whole batch of messages at once."""

    async def infos(self, file_ids: list[str]) -> dict[str, FileMeta]:
        """Those of the uploaded files that exist, by id."""
        ...

    async def images(self, image_ids: list[str]) -> dict[str, ImageInfo]:
        """Those of the images files made (a made sticker's id is its image's id), by id."""
        ...


class Presence(Protocol):
    """Where users' devices are connected, and whether users are online."""

    async def sockets_of(self, user_ids: list[str]) -> list[DeviceSocket]: ...

    async def status_of(self, user_ids: list[str]) -> dict[str, tuple[bool, str | None]]: ...


class DomainEvents(Protocol):
    """Events out on `<ns>.events`, confirmed by the broker (shared/contracts/events.py)."""

    async def publish_event(self, name: str, event: BaseModel) -> None: ...


class MessageParts(Protocol):
    """What acting on stored messages needs: the stores, the pushes and the events out. chat's
    parts (services/chat/parts.py) have them, and so does the unit tests' world."""

    @property
    def conversations(self) -> "Conversations": ...

    @property
    def messages(self) -> "Messages": ...

    @property
    def deliver(self) -> Deliverer: ...

    @property
    def events(self) -> DomainEvents: ...


class TypingNotices(Protocol):
    async def first_in_window(self, conversation_id: str, user_id: str) -> bool:
        """True at most once per moment per (conversation, user): the notice worth pushing."""
        ...


class Friendships(Protocol):
    async def get(self, a: str, b: str) -> Friendship | None: ...

    async def add_request(self, requester: str, target: str, now: datetime) -> bool:
        """False when the pair already has a friendship or request (someone asked first)."""
        ...

    async def accept(self, requester: str, accepter: str, now: datetime) -> bool:
        """False when there is no pending request from `requester`."""
        ...

    async def remove(self, a: str, b: str) -> bool: ...

    async def of_user(self, user_id: str) -> list[Friendship]: ...

    async def accepted_among(self, pairs: list[tuple[str, str]]) -> set[tuple[str, str]]:
        """Those of the pairs (as given) that are friends, in one read."""
        ...


class Blocks(Protocol):
    """Who blocked whom (docs/protocol.md "Blocking"); one way: a blocker and the blocked."""

    async def add(self, blocker: str, blocked: str, now: datetime) -> None:
        """Idempotent: blocking again keeps the first time."""
        ...

    async def remove(self, blocker: str, blocked: str) -> bool:
        """False when `blocker` had not blocked `blocked`."""
        ...

    async def blockers_of(self, user_id: str, among: list[str]) -> set[str]:
        """Which of `among` have blocked `user_id`, in one read."""
        ...

    async def between(self, a: str, b: str) -> set[str]:
        """Which of the two blocked the other (empty, one or both), in one read."""
        ...

    async def count_by(self, blocker: str) -> int: ...

    async def blocked_by(self, blocker: str) -> list[str]:
        """The users `blocker` blocked, the most recent first."""
        ...


class Conversations(Protocol):
    """Conversations with their members; a group's roles and join points."""

    async def conversation(self, conversation_id: str) -> Conversation | None: ...

    async def by_ids(self, conversation_ids: list[str]) -> dict[str, Conversation]: ...

    async def groups_by_id(self, group_ids: list[str]) -> dict[str, Conversation]: ...

    async def ensure_direct(self, conversation_id: str, members: list[str], now: datetime) -> Conversation: ...

    async def of_user(self, user_id: str, kind: Kind | None = None) -> list[Conversation]: ...

    async def create_group(
        self, conversation_id: str, group_id: str, name: str, members: dict[str, Member], now: datetime
    ) -> Conversation: ...

    async def group(self, group_id: str) -> Conversation | None: ...

    async def add_members(self, conversation_id: str, members: dict[str, Member]) -> Conversation | None:
        """The group after adding them; None when it is gone (dissolved, or its last member left)."""
        ...

    async def remove_member(self, conversation_id: str, user_id: str) -> Conversation | None: ...

    async def set_role(self, conversation_id: str, user_id: str, role: Role) -> bool: ...

    async def delete_if_empty(self, conversation_id: str) -> bool: ...

    async def update_group(self, conversation_id: str, changes: GroupChanges) -> Conversation | None: ...

    async def mute(self, conversation_id: str, user_id: str, until: datetime | None) -> bool: ...

    async def transfer_ownership(self, conversation_id: str, owner: str, heir: str) -> bool: ...

    async def dissolve(self, conversation_id: str) -> Conversation | None:
        """Delete a group's conversation; what it was, None if already gone."""
        ...

    async def encrypt(self, conversation_id: str, at: datetime) -> tuple[Conversation | None, bool]:
        """End-to-end encrypted from `at` on unless it already is: the conversation after (None:
        gone), and whether this call encrypted it."""
        ...

    async def encrypted_peers(self, user_id: str) -> set[str]:
        """The members of the end-to-end encrypted conversations the user is in."""
        ...

    async def learn_encrypted(self, since: datetime) -> int:
        """Direct conversations held in memory that were encrypted from `since` on, held so now."""
        ...


class DeviceKeys(Protocol):
    """auth's key directory (auth owns devices' keys)."""

    async def published_devices(self, user_ids: list[str]) -> set[tuple[str, str]]:
        """The (user_id, device_id) of these users' devices that have published keys."""
        ...


class DeviceMessages(Protocol):
    """To-device messages waiting for their target device."""

    async def waiting(self, user_id: str, device_id: str) -> tuple[int, int]:
        """(how many, their bodies' bytes) wait for the device."""
        ...

    async def add(self, messages: Sequence[DeviceMessage]) -> None: ...

    async def for_device(self, user_id: str, device_id: str, now: datetime, limit: int) -> list[DeviceMessage]: ...

    async def acknowledge(self, user_id: str, device_id: str, message_ids: Sequence[str]) -> int: ...

    async def drop_device(self, user_id: str, device_id: str) -> None: ...

    async def delete_expired(self, now: datetime) -> int: ...


class Invites(Protocol):
    """Groups' invite links, found and used by code."""

    async def create(self, invite: InviteLink) -> None: ...

    async def get(self, code: str) -> InviteLink | None: ...

    async def of_group(self, group_id: str) -> list[InviteLink]: ...

    async def use(self, invite: InviteLink) -> bool:
        """Count one use atomically; False when revoked or used up meanwhile."""
        ...

    async def revoke(self, group_id: str, code: str, now: datetime) -> bool: ...

    async def delete(self, codes: list[str]) -> None: ...

    async def delete_group(self, group_id: str) -> None: ...


class JoinRequests(Protocol):
    """Pending requests to join groups that need approval; one per (group, user)."""

    async def add(self, request: JoinRequest) -> bool:
        """False when the user already has one pending for the group."""
        ...

    async def get(self, group_id: str, user_id: str) -> JoinRequest | None: ...

    async def of_group(self, group_id: str) -> list[JoinRequest]: ...

    async def count(self, group_id: str) -> int: ...

    async def remove(self, group_id: str, user_id: str) -> bool: ...

    async def delete_group(self, group_id: str) -> None: ...


class Messages(Protocol):
    """Messages in seq order: storing, paging, recalling; `top` is the conversation's last_seq."""

    async def append_many(self, entries: list[tuple[Conversation, Draft]]) -> list[Appended]: ...

    async def catch_up_last_seq(self, conversation_id: str) -> int: ...

    async def highest_seq(self, conversation_id: str) -> int:
        """The highest seq stored or recorded there (a read: `last_seq` may be behind)."""
        ...

    def known_top(self, conversation_id: str) -> int:
        """The highest seq this process knows is stored there, without a read (0: none known)."""
        ...

    def note_top(self, conversation_id: str, seq: int) -> None:
        """`seq` was read as stored there."""
        ...

    async def page(
        self, conversation_id: str, before_seq: int | None, limit: int, now: datetime, top: int, floor: int = 0,
        *, viewer: str | None = None,
    ) -> tuple[list[Message], bool]: ...

    async def above(
        self, conversation_id: str, after_seq: int, limit: int, now: datetime, top: int, *, viewer: str | None = None
    ) -> list[Message]: ...

    async def latest(
        self, conversation_id: str, floor: int, now: datetime, top: int, *, viewer: str | None = None
    ) -> Message | None: ...

    async def count_unread(self, conversation_id: str, reader: str, floor: int, now: datetime, top: int) -> int: ...

    async def unread_counts(
        self, conversation_id: str, reader: str, floor: int, now: datetime, top: int
    ) -> tuple[int, int]:
        """(unread, of which mention the reader), in one pass."""
        ...

    async def changed_since(self, conversation_id: str, since: datetime, up_to_seq: int) -> list[Message]:
        """Messages at or below `up_to_seq` changed (edit, reaction, open, burn, recall) after `since`."""
        ...

    async def message(self, message_id: str) -> Message | None: ...

    async def messages_by_id(self, message_ids: list[str]) -> dict[str, Message]:
        """Those of the messages that exist, by id (a batch's quoted messages, in one read)."""
        ...

    async def recall(self, message_id: str, now: datetime) -> None: ...

    async def edit(
        self, message_id: str, now: datetime, *, text: str | None = None, encrypted: Mapping[str, Any] | None = None
    ) -> Message | None:
        """The new text, or (end-to-end encrypted) the new envelope."""

    async def react(self, message_id: str, emoji: str, user_id: str, add: bool, now: datetime) -> Message | None: ...

    async def open_sealed(self, message_id: str, now: datetime) -> Message | None: ...

    async def due_to_burn(self, now: datetime, limit: int = 500) -> list[Message]: ...

    async def burn(self, message_id: str, now: datetime) -> bool: ...

    async def hide(self, message_id: str, user_id: str) -> None: ...

    async def carrying_file(self, file_id: str, now: datetime) -> list[Placed]: ...

    async def delete_conversation(self, conversation_id: str) -> None: ...


class Cursors(Protocol):
    """What each device has acknowledged, and each user's read markers."""

    async def register_device(self, user_id: str, device_id: str, now: datetime) -> bool: ...

    async def of_device(
        self, user_id: str, device_id: str, conversation_ids: Sequence[str] | None = None
    ) -> dict[str, int]: ...

    async def highest_of_user(self, user_id: str, conversation_ids: Sequence[str]) -> dict[str, int]: ...

    async def advance(self, user_id: str, device_id: str, positions: dict[str, int]) -> None: ...

    async def advance_many(
        self, cursors: Iterable[Cursor], delivered: Mapping[tuple[str, str], int] | None = None
    ) -> None:
        """Cursors and delivered markers ((user_id, conversation_id) → seq) forward, in one write."""
        ...

    async def delivered_of(self, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """(user_id, conversation_id) → delivered marker, for the pairs that have one; one read."""
        ...

    async def positions(self, conversation_id: str, user_ids: Sequence[str]) -> tuple[dict[str, int], dict[str, int]]:
        """(read markers, delivered markers) of these users in the conversation: user_id → seq."""
        ...

    async def begin_sync(self, user_id: str, device_id: str, now: datetime) -> tuple[bool, datetime | None]:
        """Register the device: (seen for the first time, when its last sync started)."""
        ...

    async def finish_sync(self, user_id: str, device_id: str, started_at: datetime) -> None: ...

    async def mark_read(self, user_id: str, conversation_id: str, seq: int) -> bool: ...

    async def read_positions(self, user_id: str) -> dict[str, int]: ...
