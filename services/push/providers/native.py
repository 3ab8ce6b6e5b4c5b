"""What the native providers (FCM, APNs) share: reading `Retry-After`, the notification as a
flat payload, and keeping a payload under the platform's size limit."""
import email.utils
import hashlib
from collections.abc import Callable
from typing import TypeVar

import orjson

from shared.contracts.push import Notification

P = TypeVar("P")


def retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a `Retry-After` header (delay-seconds or an HTTP date, RFC 9110
    10.2.3); None when absent or unreadable (then the push service's own backoff decides)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # an HTTP date is GMT by definition
        return None
    return max(0.0, when.timestamp() - now)


def fields(notification: Notification) -> dict[str, object]:
    """The notification as the JSON object a device's app reads (what Web Push sends too)."""
    return notification.model_dump(mode="json", exclude_none=True)


def fitted(notification: Notification, build: Callable[[Notification], P], limit: int) -> P:
    """The payload `build` makes of `notification`, its body cut to the longest beginning (and
    an ellipsis) whose payload's JSON fits in `limit` bytes: a long preview is shortened rather
    than the notification refused. (What still does not fit, the platform refuses.)"""
    payload = build(notification)
    body = notification.body
    if not body or size_of(payload) <= limit:
        return payload

    def cut(length: int) -> P:
        kept = body[:length].rstrip()
        return build(notification.model_copy(update={"body": kept + "…" if kept else ""}))

    # The payload grows with the body's length (it may appear more than once, escaped): bisect.
    low, high = 0, len(body) - 1
    while low < high:
        middle = (low + high + 1) // 2
        if size_of(cut(middle)) <= limit:
            low = middle
        else:
            high = middle - 1
    return cut(low)


def size_of(payload: object) -> int:
    return len(orjson.dumps(payload))


def short_id(value: str, limit: int) -> str:
    """`value` if it fits in `limit` bytes, else a stable hash of it that does (a collapse id)."""
    if len(value.encode()) <= limit:
        return value
    return hashlib.sha256(value.encode()).hexdigest()[:limit]
