"""Offline push (docs/push.md): what a device registers, what a user sets, what a notification
carries. The push service (services/push/) owns them; the gateway only relays the operations."""
from typing import Annotated, Literal

from pydantic import Field

from shared.contracts.base import Contract

Locale = Literal["en", "zh-CN"]
ProviderKind = Literal["webpush", "fcm", "apns"]
Level = Literal["all", "mentions", "none"]


class WebPushKeys(Contract):
    p256dh: Annotated[str, Field(min_length=1, max_length=256)]
    auth: Annotated[str, Field(min_length=1, max_length=64)]


class PushConfigAsk(Contract):
    """`push.config`: what a client needs to subscribe."""


class PushConfig(Contract):
    # The deployment's VAPID public key (URL-safe base64, uncompressed P-256 point), for
    # `pushManager.subscribe({applicationServerKey})`; None when Web Push is off.
    vapid_public_key: str | None = None
    providers: list[ProviderKind] = Field(default_factory=list)


class PushSubscribe(Contract):
    """`push.subscribe`: this device's subscription (one per device; a new one replaces it). Web
    Push: `endpoint` and `keys` from the browser's PushSubscription; FCM/APNs: `token`."""

    kind: ProviderKind
    endpoint: Annotated[str, Field(min_length=8, max_length=2048)] | None = None
    keys: WebPushKeys | None = None
    token: Annotated[str, Field(min_length=8, max_length=4096)] | None = None
    locale: Locale = "en"


class PushUnsubscribe(Contract):
    """`push.unsubscribe`: this device hears nothing more while away."""


class DoNotDisturb(Contract):
    """A daily quiet time in the user's time zone (minutes after midnight; start > end wraps)."""

    start_minute: Annotated[int, Field(ge=0, lt=1440)]
    end_minute: Annotated[int, Field(ge=0, lt=1440)]
    utc_offset_minutes: Annotated[int, Field(ge=-840, le=840)] = 0


class PushPreferences(Contract):
    """`push.preferences.get` replies with, and `push.preferences.set` takes, the user's own."""

    previews: bool = True
    do_not_disturb: DoNotDisturb | None = None
    locale: Locale | None = None


class PushPreferencesAsk(Contract):
    pass


class ConversationPushSet(Contract):
    """`push.conversation.set`: how much of one conversation notifies this user (every device).
    `until` (ISO time) ends a `none` or `mentions` setting; absent: for good."""

    conversation_id: Annotated[str, Field(min_length=1, max_length=64)]
    level: Level
    until: str | None = None


class ConversationPush(Contract):
    conversation_id: str
    level: Level
    until: str | None = None


class ConversationPushList(Contract):
    pass


class ConversationPushListReply(Contract):
    """The user's settings that differ from the default (direct: all; group: see docs/push.md)."""

    conversations: list[ConversationPush]


class Notification(Contract):
    """The JSON payload a device's service worker (or app) receives and shows. One per
    conversation at a time: a newer one with the same `tag` replaces it; `kind` "withdraw"
    removes the notification with `tag` (read elsewhere, a call answered elsewhere or ended)."""

    kind: Literal["message", "call", "withdraw"]
    tag: str  # "c:<conversation_id>" or "call:<call_id>"
    conversation_id: str | None = None
    title: str | None = None
    body: str | None = None
    badge: int | None = None  # the user's unread conversations... messages, see docs/push.md
    url: str | None = None  # what a click opens: /app/#c=<conversation_id>
    call_id: str | None = None
    sent_at: str | None = None
