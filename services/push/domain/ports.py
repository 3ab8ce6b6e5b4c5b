"""What the push service's rules need: subscriptions, preferences, the providers, and what a
provider said. Records here are plain dataclasses; storage/ turns documents into them."""
from dataclasses import dataclass
from typing import Literal, Protocol

from shared.contracts.push import Notification, ProviderKind

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
