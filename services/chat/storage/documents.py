"""Documents to records and back: the one place that knows the shape of chat's documents.

conversations: `{_id, kind: "direct"|"group", members: [user_id], last_seq, last_at?, created_at,
  encrypted_at? (end-to-end encrypted from then on: docs/security.md), group_id?, name?, description?, avatar_url?, everyone_muted?, approval_required?,
  member_info?: {user_id: {role, joined_at, joined_seq, since}},
  mutes?: {user_id: until} (apart from member_info: a mute outlives leaving, so leaving and joining
  again by a link does not lift it)}`
messages: `{_id, conversation_id, seq, from_user_id, client_msg_id, to: {user_id|group_id},
  sent_at, text?, file?: {file_id, name, size, content_type}, call?: {call_id, media, outcome,
  duration_seconds?}, expires_at?, recalled?, recalled_at?, edited_at?, reply_to?: {message_id,
  from_user_id, text?, file_name?, sticker_url?, voice?}, reactions?: {<emoji as hex code points>: [user_id]},
  mentions?: [user_id], burn?: {seconds, opened_at?}, burns_at?, burned?, hidden_for?: [user_id],
  sticker?: {sticker_id, url}, voice?: {duration_ms}, encrypted?: {algorithm: "olm.v1", sender_key,
  ciphertexts: [{user_id, device_id, type, body}]} or {algorithm: "megolm.v1", sender_key, session_id,
  ciphertext} (stored as sent, never read),
  changed_at? (the last edit, reaction, open, burn or recall: what a device's sync catches up on)}`
friendships: `{_id: pair_key, users: [requester, target], requester, status, created_at, accepted_at?}`
(group invites and join requests: services/chat/storage/invites.py)
"""
from collections.abc import Iterator, Mapping
from typing import Any

from services.chat.domain.records import NO_MEMBERS, Conversation, Draft, Friendship, Member, Message
from shared.contracts.calls import CallRecord
from shared.contracts.chat import Attachment, Sticker, Voice
from shared.contracts.interactions import Quote
from shared.stores import Document


class Roster(Mapping[str, Member]):
    """A group's `member_info` (and `mutes`) as Member records, each built when first asked for:
    sends read a whole group (up to 1,000 members) and need only its member list."""

    __slots__ = ("_info", "_mutes", "_built")

    def __init__(self, info: Mapping[str, Mapping[str, Any]], mutes: Mapping[str, Any] | None = None):
        self._info = info
        self._mutes = mutes or {}
        self._built: dict[str, Member] = {}

    def __getitem__(self, user_id: str) -> Member:
        member = self._built.get(user_id)
        if member is None:
            info = self._info[user_id]
            member = self._built[user_id] = Member(
                info["role"], info["joined_at"], info["joined_seq"], info["since"], self._mutes.get(user_id)
            )
        return member

    def __iter__(self) -> Iterator[str]:
        return iter(self._info)

    def __len__(self) -> int:
        return len(self._info)

    def __contains__(self, user_id: object) -> bool:
        return user_id in self._info


def member_doc(member: Member) -> Document:
    """A member's `member_info` entry (their mute is kept in `mutes`, which leaving does not clear)."""
    return {"role": member.role, "joined_at": member.joined_at, "joined_seq": member.joined_seq, "since": member.since}


def conversation(doc: Document) -> Conversation:
    info = doc.get("member_info")
    return Conversation(
        doc["_id"],
        doc["kind"],
        doc["members"],
        doc.get("last_seq", 0),
        doc.get("created_at"),
        doc.get("last_at"),
        doc.get("group_id"),
        doc.get("name"),
        Roster(info, doc.get("mutes")) if info else NO_MEMBERS,
        doc.get("description", ""),
        doc.get("avatar_url"),
        bool(doc.get("everyone_muted")),
        bool(doc.get("approval_required")),
        doc.get("encrypted_at"),
    )


def conversation_doc(conv: Conversation) -> Document:
    doc: Document = {
        "_id": conv.conversation_id,
        "kind": conv.kind,
        "members": list(conv.members),
        "last_seq": conv.last_seq,
        "created_at": conv.created_at,
    }
    if conv.kind == "group":
        doc |= {
            "group_id": conv.group_id,
            "name": conv.name,
            "member_info": {u: member_doc(m) for u, m in conv.roster.items()},
            "description": conv.description,
            "avatar_url": conv.avatar_url,
            "everyone_muted": conv.everyone_muted,
            "approval_required": conv.approval_required,
        }
    return doc


def reaction_key(emoji: str) -> str:
    """A field name for an emoji (code points in hex): field names may not hold every character."""
    return "-".join(f"{ord(c):x}" for c in emoji)


def emoji_of(key: str) -> str:
    return "".join(chr(int(part, 16)) for part in key.split("-"))


def message(doc: Document) -> Message:
    file, call, burn = doc.get("file"), doc.get("call"), doc.get("burn")
    reply_to, reactions = doc.get("reply_to"), doc.get("reactions")
    return Message(
        doc["_id"],
        doc["conversation_id"],
        doc["seq"],
        doc["from_user_id"],
        doc["client_msg_id"],
        doc["to"],
        doc["sent_at"],
        doc.get("text"),
        Attachment.model_validate(file) if file else None,
        doc.get("expires_at"),
        bool(doc.get("recalled")),
        CallRecord.model_validate(call) if call else None,
        doc.get("edited_at"),
        Quote.model_validate(reply_to) if reply_to else None,
        {emoji_of(k): users for k, users in reactions.items()} if reactions else {},
        doc.get("mentions") or (),
        burn["seconds"] if burn else None,
        doc.get("burns_at"),
        burn.get("opened_at") if burn else None,
        bool(doc.get("burned")),
        frozenset(doc.get("hidden_for") or ()),
        sticker=Sticker.model_validate(sticker) if (sticker := doc.get("sticker")) else None,
        voice=Voice.model_validate(voice) if (voice := doc.get("voice")) else None,
        encrypted=doc.get("encrypted"),
    )


def message_doc(draft: Draft, conversation_id: str, seq: int) -> Document:
    doc: Document = {
        "_id": draft.message_id,
        "from_user_id": draft.from_user_id,
        "client_msg_id": draft.client_msg_id,
        "to": dict(draft.to),
        "sent_at": draft.sent_at,
    }
    if draft.text is not None:
        doc["text"] = draft.text
    if draft.file is not None:
        doc["file"] = draft.file.model_dump()
    if draft.sticker is not None:
        doc["sticker"] = draft.sticker.model_dump()
    if draft.voice is not None:
        doc["voice"] = draft.voice.model_dump()
    if draft.encrypted is not None:
        doc["encrypted"] = draft.encrypted
    if draft.expires_at is not None:
        doc["expires_at"] = draft.expires_at
    if draft.call is not None:
        doc["call"] = draft.call.model_dump(exclude_none=True)
    if draft.reply_to is not None:
        doc["reply_to"] = draft.reply_to.model_dump(exclude_none=True)
    if draft.mentions:
        doc["mentions"] = list(draft.mentions)
    if draft.burn_seconds is not None:
        doc["burn"] = {"seconds": draft.burn_seconds}
        doc["burns_at"] = draft.burns_at
    doc["conversation_id"] = conversation_id
    doc["seq"] = seq
    return doc


def friendship(doc: Document) -> Friendship:
    first, second = doc["users"]
    return Friendship((first, second), doc["requester"], doc["status"], doc["created_at"])
