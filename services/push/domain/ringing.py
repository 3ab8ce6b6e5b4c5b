"""Calls for a callee's devices that are away: rung at high urgency with a short TTL (no longer
than the call rings), withdrawn once the call is answered on another device or ends
(docs/push.md). The devices rung are remembered per call (`PushState.ring`); a `call.ringing`
handled after its call was over (events of one call may be taken by two replicas) rings nothing.
"""
from datetime import datetime
from typing import Protocol

from services.push.domain import notifications, rules
from services.push.domain.notifying import NotifyParts, outgoing
from services.push.domain.sending import Job
from services.push.domain.texts import text
from shared.contracts.base import utc_now
from shared.contracts.events import CallAnswered, CallEnded, CallRinging


class RingParts(NotifyParts, Protocol):
    """Notifying's parts, and how long a call's notification is worth delivering
    (push_call_ttl_seconds)."""

    @property
    def call_ttl(self) -> int: ...


async def ring(event: CallRinging, parts: RingParts, now: datetime | None = None) -> None:
    now = now or utc_now()
    if await parts.state.call_over(event.call_id):
        return
    subs = await parts.subscriptions.of_users([event.callee_id])
    if not subs:
        return
    preferences = await parts.preferences.get(event.callee_id)
    if rules.quiet_now(preferences.do_not_disturb, now):
        return
    reached = {(d.user_id, d.device_id) for d in event.reached}
    away = rules.away_devices(subs, reached, await parts.connected.devices_of([event.callee_id]))
    if not away:
        return
    names = await parts.names.names([event.caller_id])
    ttl = max(0, min(parts.call_ttl, round((datetime.fromisoformat(event.ring_until) - now).total_seconds())))
    jobs = []
    for sub in away:
        locale = preferences.locale or sub.locale
        caller = names.get(event.caller_id) or text(locale, "someone")
        notification = notifications.call_notification(event.call_id, event.conversation_id, caller, event.media, locale)
        jobs.append(Job(outgoing(sub, notification, ttl, "high"), f"{sub.user_id}|{sub.device_id}|{event.call_id}|ring"))
    await parts.state.ring(event.call_id, [(s.user_id, s.device_id) for s in away])
    if await parts.state.call_over(event.call_id):  # it ended while we looked: its end saw no device
        return
    await parts.sender.send_all(jobs)


async def stop_ringing(event: CallAnswered | CallEnded, parts: RingParts) -> None:
    """Withdraw the call's notification from every device it was pushed to (answered: but the
    one that answered)."""
    rung = await parts.state.rung(event.call_id)
    answered_on = (event.callee_id, event.device_id) if isinstance(event, CallAnswered) else None
    devices = [d for d in rung if d != answered_on]
    await parts.state.stop_ringing(event.call_id, rung, over=True)
    if not devices:
        return
    subs = {(s.user_id, s.device_id): s for s in await parts.subscriptions.of_users(list({u for u, _ in devices}))}
    withdraw = notifications.withdrawal(notifications.call_tag(event.call_id))
    await parts.sender.send_all([
        Job(outgoing(subs[d], withdraw, parts.call_ttl, "high")) for d in devices if d in subs
    ])
