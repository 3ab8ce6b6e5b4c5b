"""What the push service's rules need: subscriptions, preferences, the providers, and what a
provider said. Records here are plain dataclasses; storage/ turns documents into them."""
from dataclasses import dataclass
from typing import Literal, Protocol

from shared.contracts.push import ConversationPush, Notification, ProviderKind, PushPreferences

Urgency = Literal["very-low", "low", "normal", "high"]


@dataclass(frozen=True)
class Subscription:
    """One device's way to be reached while away."""

    user_id: str
    device_id: str
    kind: ProviderKind
    endpoint: str | None = None  # webpush
    p256dh: str | None = None  # webpush
    auth: str | None = None  # webpush
    token: str | None = None  # fcm, apns
    locale: str = "en"


@dataclass(frozen=True)
class Outgoing:
    """A notification for one subscription, with how the push service should treat it."""

    subscription: Subscription
    notification: Notification
    urgency: Urgency = "normal"
    ttl_seconds: int = 86400
    # Replaces a not-yet-delivered notification with the same topic at the push service (Web
    # Push `Topic`, APNs `apns-collapse-id`, FCM collapse key): at most 32 URL-safe characters.
    topic: str | None = None


Outcome = Literal["sent", "gone", "retry", "failed"]


@dataclass(frozen=True)
class Sent:
    """What a provider said: `sent`; `gone` (404/410: the subscription is dead, delete it);
    `retry` (429/5xx/timeout; `retry_after` seconds if the service said); `failed` (any other
    refusal: not retried)."""

    outcome: Outcome
    status: int | None = None
    retry_after: float | None = None
    detail: str = ""


class Provider(Protocol):
    """One push platform. `send` never raises for what the platform answered (that is a `Sent`);
    it raises only for a bug."""

    kind: ProviderKind

    async def send(self, outgoing: Outgoing) -> Sent: ...

    async def close(self) -> None: ...


# --- what the push service's own rules need (storage/ and shared/ implement them) ----------------
@dataclass(frozen=True)
class Shown:
    """The notification a device was last sent for one conversation: what a read elsewhere
    withdraws, and an edit of that message rewrites (`preview`: its body is the message's text)."""

    seq: int
    notification: Notification
    preview: bool = False


class Subscriptions(Protocol):
    """One subscription per (user, device), in MongoDB."""

    async def put(self, subscription: Subscription) -> None:
        """Replace the device's subscription; the same endpoint or token held by another device
        (a browser shared, a user switched) is dropped: a device hears one user."""
        ...

    async def remove(self, user_id: str, device_id: str) -> bool: ...

    async def remove_if_same(self, subscription: Subscription) -> bool:
        """Delete it only if the device still has this one (not a newer that replaced it)."""
        ...

    async def of_users(self, user_ids: list[str]) -> list[Subscription]: ...


class Preferences(Protocol):
    """What users set: their preferences and their per-conversation levels, in MongoDB."""

    async def get(self, user_id: str) -> PushPreferences: ...

    async def put(self, user_id: str, preferences: PushPreferences) -> None: ...

    async def of_users(self, user_ids: list[str]) -> dict[str, PushPreferences]: ...

    async def set_level(self, user_id: str, setting: ConversationPush) -> None: ...

    async def levels_of(self, user_id: str) -> list[ConversationPush]: ...

    async def levels_for(self, conversation_id: str, user_ids: list[str]) -> dict[str, ConversationPush]: ...


class PushState(Protocol):
    """What the push service remembers in Redis, each key with a TTL: what was sent (dedup),
    what is shown where, the unread conversations behind the badge, the devices a call rang."""

    async def first_send(self, key: str) -> bool:
        """True once per key within the dedup TTL (SET NX): only the first may send."""
        ...

    async def unsend(self, key: str) -> None:
        """Forget a dedup key (a send that failed for a bug may be tried again)."""
        ...

    async def note_message(self, user_id: str, conversation_id: str, seq: int) -> tuple[bool, int]:
        """A message from someone else: (whether it is still unread, the user's unread
        conversations now). Already read (a read on another device overtook it): (False, n)."""
        ...

    async def note_read(self, user_id: str, conversation_id: str, seq: int) -> int:
        """The read marker reached `seq`: the user's unread conversations now."""
        ...

    async def shown(self, user_id: str, conversation_id: str) -> dict[str, Shown]: ...

    async def show(self, user_id: str, conversation_id: str, shown: dict[str, Shown]) -> None: ...

    async def hide(self, user_id: str, conversation_id: str, device_ids: list[str]) -> None: ...

    async def ring(self, call_id: str, devices: list[tuple[str, str]]) -> None:
        """Remember the (user, device)s a call was pushed to."""
        ...

    async def rung(self, call_id: str) -> list[tuple[str, str]]: ...

    async def stop_ringing(self, call_id: str, devices: list[tuple[str, str]], over: bool) -> None:
        """Forget those devices; `over`: the call ended (a late `call.ringing` rings nothing)."""
        ...

    async def call_over(self, call_id: str) -> bool: ...


class Connected(Protocol):
    """Which devices have a live socket now (shared/presence.py): those hear it live."""

    async def devices_of(self, user_ids: list[str]) -> set[tuple[str, str]]: ...


class Names(Protocol):
    """Display names, from auth (which owns users); empty for those it could not say."""

    async def names(self, user_ids: list[str]) -> dict[str, str]: ...
