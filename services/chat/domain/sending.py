"""Sending and acknowledging, a batch at a time: what many devices asked for through one gateway
is checked with one read per kind (friendships, groups, conversations), stored with the group
commit's one insert, pushed with one presence read and one broker message per gateway, and
acknowledged with one cursor write. A batch of one is the plain case.

Each item gets its own answer: a refusal (not a friend, not a member, no such file) answers
that item only. A database or broker outage raises out of the whole batch, which its caller
retries: every item is idempotent by client_msg_id (sends) or by `$max` (acks).
"""
import hashlib
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from services.chat.domain.files import file_for_message
from services.chat.domain.messaging import conversation_up_to, to_message
from services.chat.domain.ports import Deliverer, Fanout, Files, push
from services.chat.storage.appender import DuplicateClientMessage
from services.chat.storage.cursors import CursorStore
from services.chat.storage.friendships import FriendshipStore, pair_key
from services.chat.storage.messages import MessageStore
from shared.contracts import chat
from shared.contracts.base import Empty, iso, utc_now
from shared.contracts.batches import AckItem, SendItem
from shared.contracts.errors import ParleyError
from shared.contracts.wire import Caller
from shared.ids import new_id

Outcome = chat.MessageSendReply | ParleyError


def direct_conversation_id(a: str, b: str) -> str:
    """The same id for the pair whoever writes first, and opaque to clients."""
    return "d_" + hashlib.sha256("|".join(sorted((a, b))).encode()).hexdigest()[:24]


def _reply(doc: dict[str, Any]) -> chat.MessageSendReply:
    return chat.MessageSendReply(
        message_id=doc["_id"], conversation_id=doc["conversation_id"], seq=doc["seq"], sent_at=iso(doc["sent_at"])
    )


def _sender(item: SendItem | AckItem) -> str:
    if item.caller.user_id is None:
        raise ParleyError.unauthorized()
    return item.caller.user_id


async def send_messages(
    items: list[SendItem], friendships: FriendshipStore, messages: MessageStore, deliver: Deliverer, files: Files
) -> list[Outcome]:
    """Store first, answer second, then push to every online device that should see it.

    Items are stored in the order given, so one device's messages (a gateway keeps them in the
    order the device sent them) take ascending seqs. A retry (same client_msg_id) is recognised
    by the unique index when it is stored, not by a lookup before: a retry passes the same
    checks as a first send.
    """
    now = utc_now()
    outcomes: list[Outcome | None] = [None] * len(items)
    conversations = await _conversations_for(items, friendships, messages, now)
    accepted: list[tuple[int, dict[str, Any], dict[str, Any]]] = []
    for i, (item, conversation) in enumerate(zip(items, conversations)):
        try:
            if isinstance(conversation, ParleyError):
                raise conversation
            accepted.append((i, conversation, await _new_message(item, conversation, now, files, messages)))
        except ParleyError as exc:
            outcomes[i] = exc
    results = await messages.append_many([(conversation, doc) for _, conversation, doc in accepted])
    fanouts: list[Fanout] = []
    for (i, conversation, _), stored in zip(accepted, results):
        item = items[i]
        sender = (item.caller.user_id or "", item.caller.device_id)
        if isinstance(stored, DuplicateClientMessage):  # a retry, or the same send racing itself
            outcomes[i], fanout = await _answer_retry(stored.existing, sender, messages)
            fanouts += fanout
        elif isinstance(stored, BaseException):
            raise stored  # the database is away: the whole batch is answered unavailable
        else:
            outcomes[i] = _reply(stored)
            fanouts.append(Fanout(conversation["members"], [push("message.new", to_message(stored))], sender))
    await deliver.fan_out(fanouts)
    assert all(o is not None for o in outcomes)
    return outcomes  # type: ignore[return-value]


async def send_message(
    request: chat.MessageSend,
    sender: str,
    sender_device: str | None,
    friendships: FriendshipStore,
    messages: MessageStore,
    deliver: Deliverer,
    files: Files,
) -> chat.MessageSendReply:
    """One message (a batch of one); raises what refused it."""
    item = SendItem(caller=Caller(request_id=new_id("r"), user_id=sender, device_id=sender_device), request=request)
    (outcome,) = await send_messages([item], friendships, messages, deliver, files)
    if isinstance(outcome, ParleyError):
        raise outcome
    return outcome


async def _conversations_for(
    items: list[SendItem], friendships: FriendshipStore, messages: MessageStore, now: datetime
) -> list[dict[str, Any] | ParleyError]:
    """Each item's conversation, or why its sender may not write there; one read for all the
    groups named and one for all the friendships."""
    group_ids = list({i.request.to.group_id for i in items if i.request.to.group_id is not None})
    groups = await messages.groups_by_id(group_ids)
    pairs = [(_sender(i), i.request.to.user_id) for i in items if i.request.to.user_id is not None]
    friends = await friendships.accepted_among([(a, b) for a, b in pairs if a != b])
    found: list[dict[str, Any] | ParleyError] = []
    for item in items:
        sender, to = _sender(item), item.request.to
        if to.group_id is not None:
            group = groups.get(to.group_id)
            if group is None or sender not in group["members"]:
                found.append(ParleyError.forbidden("you are not a member of this group"))
            else:
                found.append(group)
            continue
        assert to.user_id is not None
        if to.user_id == sender:
            found.append(ParleyError.bad_request("data.to.user_id: you cannot message yourself"))
        elif pair_key(sender, to.user_id) not in friends:
            found.append(ParleyError.forbidden("direct messages need an accepted friendship"))
        else:
            found.append(
                await messages.ensure_direct(direct_conversation_id(sender, to.user_id), sorted((sender, to.user_id)), now)
            )
    return found


async def _new_message(
    item: SendItem, conversation: dict[str, Any], now: datetime, files: Files, messages: MessageStore
) -> dict[str, Any]:
    request, sender = item.request, _sender(item)
    to = {"group_id": request.to.group_id} if request.to.group_id is not None else {"user_id": request.to.user_id}
    doc: dict[str, Any] = {
        "_id": new_id("m"),
        "from_user_id": sender,
        "client_msg_id": request.client_msg_id,
        "to": to,
        "sent_at": now,
    }
    if request.text is not None:
        doc["text"] = request.text
    if request.file_id is not None:
        doc["file"] = (await file_for_message(request.file_id, sender, files, messages)).model_dump()
    if request.ttl_seconds is not None:
        doc["expires_at"] = now + timedelta(seconds=request.ttl_seconds)
    return doc


async def _answer_retry(
    earlier: dict[str, Any], sender: tuple[str, str | None], messages: MessageStore
) -> tuple[chat.MessageSendReply, list[Fanout]]:
    """A send repeated with its client_msg_id: the first reply, and the first message pushed
    again (to its own conversation) in case the first attempt died before pushing, unless it
    was recalled or has expired since."""
    conversation = await messages.conversation(earlier["conversation_id"])
    if conversation is None or not messages.is_visible(earlier, utc_now()):
        return _reply(earlier), []
    return _reply(earlier), [Fanout(conversation["members"], [push("message.new", to_message(earlier))], sender)]


async def acknowledge_many(
    items: list[AckItem], messages: MessageStore, cursors: CursorStore
) -> list[Empty | ParleyError]:
    """Move each device's cursor up to the seq it acknowledged: one read of the conversations
    named, one write of every cursor moved (several acks of one device coalesce into its
    highest)."""
    conversations = await messages.conversations_by_id(list({i.request.conversation_id for i in items}))
    outcomes: list[Empty | ParleyError] = []
    positions: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    for item in items:
        request = item.request
        try:
            user = _sender(item)
            known = conversations.get(request.conversation_id)
            if known is None or user not in known["members"] or request.seq > known["last_seq"]:
                # Not a member, or beyond last_seq (which may need catching up): the careful path.
                known = await conversation_up_to(request.conversation_id, request.seq, user, messages)
                conversations[request.conversation_id] = known
        except ParleyError as exc:
            outcomes.append(exc)
            continue
        seqs = positions[(user, item.caller.device_id or "default")]
        seqs[request.conversation_id] = max(seqs.get(request.conversation_id, 0), request.seq)
        outcomes.append(Empty())
    await cursors.advance_many(positions)
    return outcomes


async def acknowledge(
    request: chat.MessageAck, user_id: str, device_id: str, messages: MessageStore, cursors: CursorStore
) -> None:
    """One acknowledgement (a batch of one); raises what refused it."""
    item = AckItem(caller=Caller(request_id=new_id("r"), user_id=user_id, device_id=device_id), request=request)
    (outcome,) = await acknowledge_many([item], messages, cursors)
    if isinstance(outcome, ParleyError):
        raise outcome
