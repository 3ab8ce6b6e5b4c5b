"""The push.* operations: a device's subscription, the user's preferences and per-conversation
levels (docs/protocol.md "Offline push")."""
from collections.abc import Collection
from datetime import datetime
from typing import Protocol

from services.push.domain.ports import Preferences, Subscription, Subscriptions
from shared.contracts.base import iso, utc_now
from shared.contracts.errors import ParleyError
from shared.contracts.push import (
    ConversationPush, ConversationPushListReply, ConversationPushSet, ProviderKind, PushConfig, PushPreferences,
    PushSubscribe,
)

# How many conversations one user may set apart from the default.
MAX_LEVELS = 2000


class SubscribeParts(Protocol):
    """What the operations need: the two stores, which providers run here, the VAPID public key,
    and the providers' own word on a subscription."""

    @property
    def subscriptions(self) -> Subscriptions: ...

    @property
    def preferences(self) -> Preferences: ...

    @property
    def provider_kinds(self) -> Collection[ProviderKind]: ...

    @property
    def vapid_public_key(self) -> str | None: ...

    def problem_with(self, subscription: Subscription) -> str | None:
        """Why the provider of its kind could never deliver to it, or None."""
        ...


def config(parts: SubscribeParts) -> PushConfig:
    return PushConfig(vapid_public_key=parts.vapid_public_key, providers=sorted(parts.provider_kinds))


async def subscribe(request: PushSubscribe, user_id: str, device_id: str, parts: SubscribeParts) -> None:
    """This device's one subscription (a new one replaces it), for a provider that runs here."""
    if request.kind not in parts.provider_kinds:
        raise ParleyError.bad_request(f"{request.kind} push is not enabled on this server")
    if request.kind == "webpush":
        if request.endpoint is None or request.keys is None or request.token is not None:
            raise ParleyError.bad_request("a webpush subscription has an endpoint and keys, and no token")
        sub = Subscription(
            user_id, device_id, "webpush", endpoint=request.endpoint, p256dh=request.keys.p256dh,
            auth=request.keys.auth, locale=request.locale,
        )
    else:
        if request.token is None or request.endpoint is not None or request.keys is not None:
            raise ParleyError.bad_request(f"an {request.kind} subscription has a token, and no endpoint or keys")
        sub = Subscription(user_id, device_id, request.kind, token=request.token, locale=request.locale)
    if (problem := parts.problem_with(sub)) is not None:
        raise ParleyError.bad_request(problem)
    await parts.subscriptions.put(sub)


async def unsubscribe(user_id: str, device_id: str, parts: SubscribeParts) -> None:
    await parts.subscriptions.remove(user_id, device_id)


async def set_preferences(request: PushPreferences, user_id: str, parts: SubscribeParts) -> PushPreferences:
    await parts.preferences.put(user_id, request)
    return request


async def set_conversation(request: ConversationPushSet, user_id: str, parts: SubscribeParts) -> ConversationPush:
    """How much of one conversation notifies this user, for good or `until` a time to come. The
    push service does not know whether the user is a member: a setting only ever quiets or
    wakes the user's own notifications."""
    until = None
    if request.until is not None:
        try:
            when = datetime.fromisoformat(request.until)
        except ValueError:
            raise ParleyError.bad_request("until is not an ISO 8601 time") from None
        if when.tzinfo is None:
            raise ParleyError.bad_request("until needs a time zone (e.g. Z)")
        if when <= utc_now():
            raise ParleyError.bad_request("until is in the past")
        until = iso(when)
    current = await parts.preferences.levels_of(user_id)
    if len(current) >= MAX_LEVELS and all(c.conversation_id != request.conversation_id for c in current):
        raise ParleyError.too_large(f"at most {MAX_LEVELS} conversations can be set apart from the default")
    setting = ConversationPush(conversation_id=request.conversation_id, level=request.level, until=until)
    await parts.preferences.set_level(user_id, setting)
    return setting


async def list_conversations(user_id: str, parts: SubscribeParts) -> ConversationPushListReply:
    """The settings in force (one whose `until` passed is the default again, so not listed)."""
    now = utc_now()
    return ConversationPushListReply(conversations=[
        c for c in await parts.preferences.levels_of(user_id)
        if c.until is None or datetime.fromisoformat(c.until) > now
    ])
