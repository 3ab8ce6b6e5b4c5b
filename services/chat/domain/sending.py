"""Sending and acknowledging, a batch at a time: what many devices asked for through one gateway
is checked with one read per kind (friendships, groups, conversations), stored with the group
commit's one insert, pushed with one presence read and one broker message per gateway, and
acknowledged with one cursor write. A batch of one is the plain case.

Each item gets its own answer: a refusal (not a friend, not a member, no such file) answers
that item only. A database or broker outage raises out of the whole batch, which its caller
retries: every item is idempotent by client_msg_id (sends) or by `$max` (acks).
"""
import asyncio
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from services.chat.domain.attachments import AttachmentParts, Referred, look_up_referred, message_content
from shared.delivery import Deliverer, Fanout, push
from services.chat.domain.group_admin import send_refusal
from services.chat.domain.messaging import conversation_up_to, known_last_seq, message_new
from services.chat.domain.ports import Conversations, Cursors, DomainEvents, Friendships
from services.chat.domain.encryption import check_content
from services.chat.domain.records import Conversation, Cursor, Draft, Message
from shared.contracts import chat
from shared.contracts.base import Empty, utc_now
from shared.contracts.batches import AckItem, SendItem
from shared.contracts.errors import ParleyError
from shared.contracts.events import ConversationStored, MessagesStored
from shared.contracts.interactions import Quote, ReceiptDeliveredPush
from shared.contracts.wire import DeviceAddress
from shared.ids import new_id
from shared.partitions import direct_conversation_id

Outcome = chat.MessageSendReply | ParleyError


class SendParts(AttachmentParts, Protocol):
    """What sending and acknowledging need besides what attachments do: the friendships a direct
    message needs, the cursors acks move, the pushes and the events out, and how long a
    burn-after-reading message never opened lives (the burn_unopened_seconds setting)."""

    @property
    def friendships(self) -> Friendships: ...

    @property
    def cursors(self) -> Cursors: ...

    @property
    def deliver(self) -> Deliverer: ...

    @property
    def events(self) -> DomainEvents: ...

    @property
    def burn_unopened(self) -> timedelta: ...


def _sender(item: SendItem | AckItem) -> str:
    if item.caller.user_id is None:
        raise ParleyError.unauthorized()
    return item.caller.user_id


@dataclass(frozen=True)
class Stored:
    """A message a batch stored (or found stored: a retry), to announce once its sender has the
    answer."""

    conversation: Conversation
    message: Message
    device_id: str | None  # the sender's device, which has it already
    again: bool


async def send_messages(items: list[SendItem], parts: SendParts) -> tuple[list[Outcome], list[Stored]]:
    """Store the batch: each item's answer, and what to announce after answering (announce_stored).

    Items are stored in the order given, so one device's messages (a gateway keeps them in the
    order the device sent them) take ascending seqs. A retry (same client_msg_id) is recognised
    by the unique index when it is stored, not by a lookup before: a retry passes the same
    checks as a first send, and its message is announced again (the first attempt may have died
    before announcing it), unless it was recalled or has expired since.
    """
    now = utc_now()
    outcomes: list[Outcome | None] = [None] * len(items)
    targets, referred = await asyncio.gather(
        _conversations_for(items, parts, now),
        look_up_referred([i.request for i in items], parts),
    )
    accepted: list[tuple[int, Conversation, Draft]] = []
    for i, (item, conversation) in enumerate(zip(items, targets, strict=True)):
        try:
            if isinstance(conversation, ParleyError):
                raise conversation
            draft = await _draft(item, conversation, now, referred, parts)
            accepted.append((i, conversation, draft))
        except ParleyError as exc:
            outcomes[i] = exc
    appended_all = await parts.messages.append_many([(conversation, draft) for _, conversation, draft in accepted])
    stored: list[Stored] = []
    for (i, conversation, _), appended in zip(accepted, appended_all, strict=True):
        message, device_id = appended.message, items[i].caller.device_id
        outcomes[i] = message.send_reply()
        if appended.first:
            stored.append(Stored(conversation, message, device_id, again=False))
        elif (again := await _still_to_announce(message, parts.conversations)) is not None:
            stored.append(Stored(again, message, device_id, again=True))
    answered = [o for o in outcomes if o is not None]
    assert len(answered) == len(items)
    return answered, stored


async def announce_stored(stored: list[Stored], parts: SendParts) -> None:
    """`message.new` to every live device that should see each message, then `messages.stored`
    (one event for the batch) saying who should see them and which devices had them live:
    whoever was not reached is the business of the event's consumers (offline push)."""
    if not stored:
        return
    fanouts: list[Fanout] = []
    of_entry: list[int] = []
    for index, entry in enumerate(stored):
        for fanout in announce(entry.conversation, entry.message, (entry.message.from_user_id, entry.device_id)):
            fanouts.append(fanout)
            of_entry.append(index)
    reached_by_fanout = await parts.deliver.fan_out(fanouts)
    reached: dict[str, dict[DeviceAddress, None]] = defaultdict(dict)
    for index, addresses in zip(of_entry, reached_by_fanout, strict=True):
        reached[stored[index].conversation.conversation_id].update(dict.fromkeys(addresses))
    by_conversation: dict[str, list[Stored]] = defaultdict(list)
    for entry in stored:
        by_conversation[entry.conversation.conversation_id].append(entry)
    await parts.events.publish_event("messages.stored", MessagesStored(batch_id=new_id("b"), conversations=[
        _conversation_stored(entries, list(reached[conversation_id])) for conversation_id, entries in by_conversation.items()
    ]))


def _conversation_stored(entries: list[Stored], reached: list[DeviceAddress]) -> ConversationStored:
    conversation = entries[0].conversation
    in_order = sorted(entries, key=lambda e: e.message.seq)
    return ConversationStored(
        conversation_id=conversation.conversation_id,
        kind=conversation.kind,
        group_id=conversation.group_id,
        group_name=conversation.name,
        first_seq=in_order[0].message.seq,
        last_seq=in_order[-1].message.seq,
        messages=[e.message.stored(e.device_id, e.again) for e in in_order],
        recipients=list(conversation.members),
        reached=reached,
    )


async def _conversations_for(
    items: list[SendItem], parts: SendParts, now: datetime
) -> list[Conversation | ParleyError]:
    """Each item's conversation, or why its sender may not write there; one read for all the
    groups named and one for all the friendships."""
    group_ids = list({i.request.to.group_id for i in items if i.request.to.group_id is not None})
    groups = await parts.conversations.groups_by_id(group_ids)
    pairs = [(_sender(i), i.request.to.user_id) for i in items if i.request.to.user_id is not None]
    friends = await parts.friendships.accepted_among([(a, b) for a, b in pairs if a != b])
    found: list[Conversation | ParleyError] = []
    for item in items:
        sender, to = _sender(item), item.request.to
        if to.group_id is not None:
            group = groups.get(to.group_id)
            if group is None or not group.has_member(sender):
                found.append(ParleyError.forbidden("you are not a member of this group"))
            else:  # muted, or everyone muted (docs/protocol.md "Group administration")
                found.append(send_refusal(group, sender, now) or group)
            continue
        assert to.user_id is not None
        if to.user_id == sender:
            found.append(ParleyError.bad_request("data.to.user_id: you cannot message yourself"))
        elif (sender, to.user_id) not in friends:
            found.append(ParleyError.forbidden("direct messages need an accepted friendship"))
        else:
            found.append(
                await parts.conversations.ensure_direct(
                    direct_conversation_id(sender, to.user_id), sorted((sender, to.user_id)), now
                )
            )
    return found


def announce(conversation: Conversation, message: Message, except_device: tuple[str, str | None] | None) -> list[Fanout]:
    """`message.new` to every member's devices; a burn-after-reading message goes sealed (no
    content) to its recipient."""
    if message.burn_seconds is None:
        return [Fanout(conversation.members, [message_new(message)], except_device)]
    sender = message.from_user_id
    return [
        Fanout([sender], [message_new(message)], except_device),
        Fanout(conversation.others(sender), [message_new(message, sealed=True)]),
    ]


async def _draft(
    item: SendItem, conversation: Conversation, now: datetime, referred: Referred, parts: SendParts
) -> Draft:
    request, sender = item.request, _sender(item)
    check_content(conversation, request.encrypted)
    group = conversation.kind == "group"
    if request.burn_seconds is not None and group:
        raise ParleyError.bad_request("data.burn_seconds: burn after reading is for direct messages, not groups")
    if request.mentions and not group:
        raise ParleyError.bad_request("data.mentions: mentions are for groups")
    if request.mentions and not all(conversation.has_member(m) for m in request.mentions):
        raise ParleyError.bad_request("data.mentions: only members of the group can be mentioned")
    file, sticker = await message_content(request, sender, referred, parts)
    return Draft(
        message_id=new_id("m"),
        from_user_id=sender,
        client_msg_id=request.client_msg_id,
        to={"group_id": request.to.group_id} if request.to.group_id is not None else {"user_id": request.to.user_id or ""},
        sent_at=now,
        text=request.text,
        file=file,
        sticker=sticker,
        voice=request.voice,
        encrypted=request.encrypted.model_dump(mode="json") if request.encrypted is not None else None,
        expires_at=now + timedelta(seconds=request.ttl_seconds) if request.ttl_seconds is not None else None,
        reply_to=_quote(request.reply_to, conversation, sender, now, referred, bare=request.encrypted is not None)
        if request.reply_to else None,
        mentions=tuple(dict.fromkeys(request.mentions or ())),
        burn_seconds=request.burn_seconds,
        burns_at=now + parts.burn_unopened if request.burn_seconds is not None else None,
    )


def _quote(
    message_id: str, conversation: Conversation, sender: str, now: datetime, referred: Referred, *, bare: bool
) -> Quote:
    """What a reply carries of the message it answers: one of its conversation the sender can see.
    `bare` (an encrypted reply): its id and sender only, no quoted content (docs/security.md)."""
    quoted = referred.quoted.get(message_id)
    if quoted is not None and quoted.conversation_id != conversation.conversation_id:
        raise ParleyError.bad_request("data.reply_to: a reply answers a message of the same conversation")
    if quoted is None or not quoted.visible_to(sender, now) or not conversation.sees(sender, quoted):
        raise ParleyError.not_found("data.reply_to: no such message (recalled, expired, burned or not yours to see)")
    if quoted.burn_seconds is not None:  # its quote would outlive its burning
        raise ParleyError.bad_request("data.reply_to: a burn-after-reading message cannot be quoted")
    if bare:
        return Quote(message_id=quoted.message_id, from_user_id=quoted.from_user_id)
    return quoted.quote()


async def _still_to_announce(earlier: Message, conversations: Conversations) -> Conversation | None:
    """The conversation of a message sent again, unless it is gone, recalled or expired since."""
    conversation = await conversations.conversation(earlier.conversation_id)
    if conversation is None or not earlier.is_visible(utc_now()):
        return None
    return conversation


async def acknowledge_many(items: list[AckItem], parts: SendParts) -> list[Empty | ParleyError]:
    """Move each device's cursor up to the seq it acknowledged, and each user's delivered marker
    (the highest seq any of their devices acknowledged) with it: one read of the conversations
    named, one of the delivered markers of the (user, conversation) pairs acked, one write of
    every cursor and marker moved (several acks of one device coalesce into its highest). Each
    marker that moved goes to the conversation's other members as `receipt.delivered`, all in
    one fan-out."""
    known = await parts.conversations.by_ids(list({i.request.conversation_id for i in items}))
    outcomes: list[Empty | ParleyError] = []
    highest: dict[tuple[str, str, str], int] = defaultdict(int)
    for item in items:
        request = item.request
        try:
            user = _sender(item)
            conversation = known.get(request.conversation_id)
            if (conversation is None or not conversation.has_member(user)
                    or request.seq > known_last_seq(conversation, parts.messages)):
                # Not a member, or beyond what this process knows is stored: the careful path.
                conversation = await conversation_up_to(
                    request.conversation_id, request.seq, user, parts.conversations, parts.messages
                )
                parts.messages.note_top(conversation.conversation_id, conversation.last_seq)
                known[request.conversation_id] = conversation
        except ParleyError as exc:
            outcomes.append(exc)
            continue
        key = (user, item.caller.device_id or "default", request.conversation_id)
        highest[key] = max(highest[key], request.seq)
        outcomes.append(Empty())
    acked: dict[tuple[str, str], int] = defaultdict(int)
    for (user, _, conversation_id), seq in highest.items():
        acked[user, conversation_id] = max(acked[user, conversation_id], seq)
    # Read before the write, so only a marker that moves is pushed. Two replicas moving one
    # user's marker at the same instant may both push it: a receipt twice, harmless ($max).
    before = await parts.cursors.delivered_of(list(acked)) if acked else {}
    moved = {pair: seq for pair, seq in acked.items() if seq > before.get(pair, 0)}
    await parts.cursors.advance_many((Cursor(u, d, c, seq) for (u, d, c), seq in highest.items()), moved)
    if moved:
        await parts.deliver.fan_out([
            Fanout(
                known[cid].others(user),
                [push("receipt.delivered", ReceiptDeliveredPush(conversation_id=cid, user_id=user, seq=seq))],
            )
            for (user, cid), seq in moved.items()
        ])
    return outcomes
