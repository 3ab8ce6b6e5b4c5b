"""Who hears of what while away: the pure rules (docs/push.md), over records and settings only.

- A recipient's device is notified when it has a subscription, was not reached live (the event
  says which devices were), and has no live socket now (it would have the message from its sync);
  never the sender's own devices.
- How much of a conversation notifies a user: their setting for it while it lasts, else the
  default: direct conversations `all`; groups `all` up to GROUP_ALL_UP_TO members, `mentions`
  above (what users of large groups expect).
- Nothing during the user's daily do-not-disturb time.
"""
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from services.push.domain.ports import Subscription
from shared.contracts.events import StoredMessage
from shared.contracts.push import ConversationPush, DoNotDisturb, Level

GROUP_ALL_UP_TO = 20


def default_level(kind: str, members: int) -> Level:
    if kind == "group" and members > GROUP_ALL_UP_TO:
        return "mentions"
    return "all"


def level_for(setting: ConversationPush | None, kind: str, members: int, now: datetime) -> Level:
    """The user's setting while it lasts (`until` not passed), else the default."""
    if setting is not None and (setting.until is None or datetime.fromisoformat(setting.until) > now):
        return setting.level
    return default_level(kind, members)


def worth_notifying(messages: Sequence[StoredMessage], user_id: str, level: Level) -> StoredMessage | None:
    """The message to show `user_id` of those stored (the latest that counts), or None: none
    from someone else, the conversation muted, or none mentioning them at `mentions`."""
    if level == "none":
        return None
    others = [m for m in messages if m.from_user_id != user_id]
    if level == "mentions":
        others = [m for m in others if user_id in m.mentions]
    return others[-1] if others else None


def quiet_now(dnd: DoNotDisturb | None, now: datetime) -> bool:
    """Whether `now` is in the daily quiet time (minutes in the user's offset; start > end wraps
    past midnight; start == end is no quiet time)."""
    if dnd is None or dnd.start_minute == dnd.end_minute:
        return False
    local = now + timedelta(minutes=dnd.utc_offset_minutes)
    minute = local.hour * 60 + local.minute
    if dnd.start_minute < dnd.end_minute:
        return dnd.start_minute <= minute < dnd.end_minute
    return minute >= dnd.start_minute or minute < dnd.end_minute


def away_devices(
    subscriptions: Iterable[Subscription], reached: set[tuple[str, str]], connected: set[tuple[str, str]]
) -> list[Subscription]:
    """The subscriptions of devices that neither had it live nor have a socket now."""
    return [
        s for s in subscriptions
        if (s.user_id, s.device_id) not in reached and (s.user_id, s.device_id) not in connected
    ]
