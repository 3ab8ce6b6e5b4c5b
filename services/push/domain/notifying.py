"""New messages and their changes, as notifications to the devices that are away (docs/push.md).

Each function handles one event and returns once every notification it asked for was sent or
given up (the consumer acks the event then). What a device was sent for a conversation is
remembered (`Shown`), so that a read on another device withdraws it and an edit of that message
rewrites it; the badge is the user's unread conversations, counted from the events themselves
(`PushState.note_message` / `note_read`), not asked of chat: asking would cost chat a read of
every conversation of the user for each notification.
"""
import asyncio
from collections import defaultdict
from datetime import datetime
from typing import Protocol

from services.push.domain import notifications, rules
from services.push.domain.ports import (
    Connected, Names, Outgoing, Preferences, PushState, Shown, Subscription, Subscriptions,
)
from services.push.domain.sending import Job, Sender
from services.push.domain.texts import text
from shared.contracts.base import utc_now
from shared.contracts.events import ConversationRead, ConversationStored, MessageChanged, MessagesStored
from shared.contracts.push import Notification, PushPreferences

# Changes after which a message's notification is no more to be seen.
GONE = frozenset({"recalled", "burned", "hidden"})


class NotifyParts(Protocol):
    """What notifying needs: the stores, Redis state, presence, auth's names, the sender, and
    how long a message's notification is worth delivering (push_message_ttl_seconds)."""

    @property
    def subscriptions(self) -> Subscriptions: ...

    @property
    def preferences(self) -> Preferences: ...

    @property
    def state(self) -> PushState: ...

    @property
    def connected(self) -> Connected: ...

    @property
    def names(self) -> Names: ...

    @property
    def sender(self) -> Sender: ...

    @property
    def message_ttl(self) -> int: ...


def outgoing(sub: Subscription, notification: Notification, ttl: int, urgency: str = "normal") -> Outgoing:
    return Outgoing(
        sub, notification, urgency="high" if urgency == "high" else "normal", ttl_seconds=ttl,
        topic=notifications.topic_for(notification.tag),
    )


def by_user(subs: list[Subscription]) -> dict[str, list[Subscription]]:
    grouped: dict[str, list[Subscription]] = defaultdict(list)
    for sub in subs:
        grouped[sub.user_id].append(sub)
    return grouped


# --- messages.stored -------------------------------------------------------------------------
async def notify_stored(event: MessagesStored, parts: NotifyParts, now: datetime | None = None) -> None:
    """Each recipient's away devices hear of each conversation's latest message that counts for
    them (one notification per conversation); the sender's own devices never."""
    now = now or utc_now()
    everyone = list(dict.fromkeys(u for c in event.conversations for u in c.recipients))
    subs = by_user(await parts.subscriptions.of_users(everyone))
    if not subs:
        return
    users = list(subs)
    connected, preferences, names = await asyncio.gather(
        parts.connected.devices_of(users),
        parts.preferences.of_users(users),
        parts.names.names(list(dict.fromkeys(m.from_user_id for c in event.conversations for m in c.messages))),
    )
    jobs: list[Job] = []
    for conversation in event.conversations:
        jobs += await _conversation_jobs(conversation, subs, connected, preferences, names, parts, now)
    await parts.sender.send_all(jobs)


async def _conversation_jobs(
    conversation: ConversationStored, subs: dict[str, list[Subscription]], connected: set[tuple[str, str]],
    preferences: dict[str, PushPreferences], names: dict[str, str], parts: NotifyParts, now: datetime,
) -> list[Job]:
    users = [u for u in dict.fromkeys(conversation.recipients) if u in subs]
    if not users:
        return []
    levels = await parts.preferences.levels_for(conversation.conversation_id, users)
    reached = {(d.user_id, d.device_id) for d in conversation.reached}
    members = len(conversation.recipients)

    async def for_user(user: str) -> list[Job]:
        cid = conversation.conversation_id
        theirs = [m for m in conversation.messages if m.from_user_id != user]
        if not theirs:
            return []
        unread, badge = await parts.state.note_message(user, cid, theirs[-1].seq)
        level = rules.level_for(levels.get(user), conversation.kind, members, now)
        message = rules.worth_notifying(conversation.messages, user, level)
        prefs = preferences[user]
        if not unread or message is None or rules.quiet_now(prefs.do_not_disturb, now):
            return []
        jobs, shown = [], {}
        for sub in rules.away_devices(subs[user], reached, connected):
            locale = prefs.locale or sub.locale
            sender = names.get(message.from_user_id) or text(locale, "someone")
            notification, is_preview = notifications.message_notification(
                cid, message, sender, conversation.group_name, prefs, locale, badge,
            )
            urgency = "high" if user in message.mentions else "normal"
            dedup = f"{user}|{sub.device_id}|{cid}|{message.seq}"
            jobs.append(Job(outgoing(sub, notification, parts.message_ttl, urgency), dedup))
            shown[sub.device_id] = Shown(message.seq, notification, is_preview)
        await parts.state.show(user, cid, shown)
        return jobs

    found = await asyncio.gather(*(for_user(u) for u in users))
    return [job for jobs in found for job in jobs]


# --- message.changed -------------------------------------------------------------------------
async def notify_changed(event: MessageChanged, parts: NotifyParts) -> None:
    """A recalled, burned or hidden message's notification is withdrawn where it is the one
    shown; an edited one's is rewritten with the new text (where it showed the text)."""
    if event.change not in GONE and not (event.change == "edited" and event.preview):
        return
    audience = [u for u in event.audience if event.change == "hidden" or u != event.by_user_id]
    subs = {(s.user_id, s.device_id): s for s in await parts.subscriptions.of_users(audience)}
    users = list(dict.fromkeys(u for u, _ in subs))

    async def for_user(user: str) -> list[Job]:
        cid = event.conversation_id
        shown = {d: s for d, s in (await parts.state.shown(user, cid)).items() if s.seq == event.seq}
        jobs = []
        if event.change in GONE:
            for device in shown:
                if (sub := subs.get((user, device))) is not None:
                    jobs.append(Job(outgoing(sub, notifications.withdrawal(notifications.conversation_tag(cid)), parts.message_ttl)))
            await parts.state.hide(user, cid, list(shown))
            return jobs
        assert event.preview is not None
        rewritten = {}
        for device, was in shown.items():
            if not was.preview or (sub := subs.get((user, device))) is None:
                continue
            notification = notifications.edited(was.notification, event.preview)
            dedup = f"{user}|{device}|{cid}|{event.seq}|edited|{event.at}"
            jobs.append(Job(outgoing(sub, notification, parts.message_ttl), dedup))
            rewritten[device] = Shown(event.seq, notification, True)
        await parts.state.show(user, cid, rewritten)
        return jobs

    found = await asyncio.gather(*(for_user(u) for u in users))
    await parts.sender.send_all([job for jobs in found for job in jobs])


# --- conversation.read -----------------------------------------------------------------------
async def notify_read(event: ConversationRead, parts: NotifyParts) -> None:
    """Read on one device: the badge drops, and the user's other devices have the conversation's
    notification withdrawn (where it shows a message the read covers)."""
    user, cid = event.user_id, event.conversation_id
    badge = await parts.state.note_read(user, cid, event.seq)
    covered = [d for d, s in (await parts.state.shown(user, cid)).items() if s.seq <= event.seq]
    if not covered:
        return
    await parts.state.hide(user, cid, covered)
    subs = {s.device_id: s for s in await parts.subscriptions.of_users([user])}
    withdraw = notifications.withdrawal(notifications.conversation_tag(cid), badge)
    await parts.sender.send_all([
        Job(outgoing(subs[d], withdraw, parts.message_ttl)) for d in covered if d != event.device_id and d in subs
    ])
