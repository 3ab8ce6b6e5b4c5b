"""What a device receives (`Notification`, docs/push.md "What a device receives"), built for one
subscription's locale and its user's preferences.

One notification per conversation at a time: its `tag` is "c:<conversation_id>" (the page shows
it with that tag, a newer one replaces it), and it travels with a `topic` derived from the tag
(Web Push `Topic`, APNs collapse id, FCM collapse key) so that a newer one replaces an older one
still waiting at the push service. A call's is "call:<call_id>".
"""
import base64
import hashlib

from services.push.domain.texts import Key, text
from shared.contracts.events import MessageKind, StoredMessage
from shared.contracts.push import Notification, PushPreferences

LABELS: dict[MessageKind, Key] = {
    "image": "photo", "file": "file", "voice": "voice", "sticker": "sticker", "call": "call",
}


def conversation_tag(conversation_id: str) -> str:
    return f"c:{conversation_id}"


def call_tag(call_id: str) -> str:
    return f"call:{call_id}"


def topic_for(tag: str) -> str:
    """At most 32 URL-safe characters (RFC 8030 Topic), the same for the same tag."""
    return base64.urlsafe_b64encode(hashlib.sha256(tag.encode()).digest()).decode()[:32]


def conversation_url(conversation_id: str) -> str:
    return f"/app/#c={conversation_id}"


def title_of(sender: str, group_name: str | None) -> str:
    return f"{sender} · {group_name}" if group_name else sender


def body_of(message: StoredMessage, previews: bool, locale: str) -> tuple[str, bool]:
    """The body, and whether it is the message's own text (an edit then rewrites it). An
    encrypted or burn-after-reading message never shows its content, previews off show none."""
    if message.kind == "encrypted":  # the server cannot read it: never a preview (docs/security.md)
        return text(locale, "encrypted"), False
    if message.burn_after_reading:
        return text(locale, "burn"), False
    if not previews:
        return text(locale, "new_message"), False
    label = LABELS.get(message.kind)
    if label is None:
        return (message.preview, True) if message.preview else (text(locale, "new_message"), False)
    return (f"{text(locale, label)}: {message.preview}", False) if message.preview else (text(locale, label), False)


def message_notification(
    conversation_id: str, message: StoredMessage, sender: str, group_name: str | None,
    preferences: PushPreferences, locale: str, badge: int,
) -> tuple[Notification, bool]:
    body, is_preview = body_of(message, preferences.previews, locale)
    return Notification(
        kind="message", tag=conversation_tag(conversation_id), conversation_id=conversation_id,
        title=title_of(sender, group_name), body=body, badge=badge, url=conversation_url(conversation_id),
        sent_at=message.sent_at,
    ), is_preview


def edited(shown: Notification, preview: str) -> Notification:
    """The notification shown for a message whose text was edited: the new text in its place."""
    return shown.model_copy(update={"body": preview})


def call_notification(call_id: str, conversation_id: str, caller: str, media: str, locale: str) -> Notification:
    return Notification(
        kind="call", tag=call_tag(call_id), call_id=call_id, conversation_id=conversation_id, title=caller,
        body=text(locale, "incoming_video_call" if media == "video" else "incoming_audio_call"),
        url=conversation_url(conversation_id),
    )


def withdrawal(tag: str, badge: int | None = None) -> Notification:
    return Notification(kind="withdraw", tag=tag, badge=badge)
