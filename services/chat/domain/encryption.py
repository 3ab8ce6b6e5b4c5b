"""End-to-end encrypted conversations (docs/security.md, issue 28): turning encryption on in a
direct conversation (Olm) or a group (Megolm), what an encrypted message may be, and telling who
talks with a user that one of their devices' keys changed. The server never reads a ciphertext:
it checks only its kind and who each one is for."""
import asyncio
import logging
from collections.abc import Iterable
from datetime import timedelta
from typing import Protocol

from services.chat.domain.group_admin import managed_group
from services.chat.domain.ports import Conversations, Friendships
from services.chat.domain.records import Conversation, direct_conversation_id
from shared.contracts import e2e
from shared.contracts.base import iso, utc_now
from shared.contracts.conversations import ConversationEncrypt, ConversationEncryptedPush, ConversationEncryptReply
from shared.contracts.errors import ParleyError
from shared.delivery import Deliverer, push
from shared.logs import log_event

log = logging.getLogger("parley.chat")

class EncryptionParts(Protocol):
    """What encrypting needs: friendships (a direct conversation's condition), conversations,
    pushes, and how far ahead encryption is dated (so every chat replica knows it by then)."""

    @property
    def friendships(self) -> Friendships: ...

    @property
    def conversations(self) -> Conversations: ...

    @property
    def deliver(self) -> Deliverer: ...

    @property
    def encryption_lead(self) -> timedelta: ...


async def encrypt_conversation(
    request: ConversationEncrypt, user_id: str, parts: EncryptionParts
) -> ConversationEncryptReply:
    """Encryption on, for good, in the direct conversation with a friend or in a group the caller
    owns or administers. Dated `encryption_lead` ahead and answered then: every chat replica
    refuses plaintext there from `encrypted_at` on (each learns it within the lead:
    ChatService.learn_encrypted). Asked again: the first time's answer, no push."""
    conversation = await _to_encrypt(request, user_id, parts)
    encrypted: Conversation | None = conversation
    first = False
    if conversation.encrypted_at is None:
        encrypted, first = await parts.conversations.encrypt(conversation.conversation_id, utc_now() + parts.encryption_lead)
    if encrypted is None or encrypted.encrypted_at is None:  # a group dissolved meanwhile
        raise ParleyError.not_found("no such conversation")
    encrypted_at = encrypted.encrypted_at
    await asyncio.sleep(max(0.0, (encrypted_at - utc_now()).total_seconds()))
    reply = ConversationEncryptReply(conversation_id=encrypted.conversation_id, encrypted_at=iso(encrypted_at))
    if first:
        log_event(log, "conversation.encrypted", conversation_id=encrypted.conversation_id, encrypted_at=reply.encrypted_at)
        data = ConversationEncryptedPush(
            conversation_id=encrypted.conversation_id, by_user_id=user_id, encrypted_at=reply.encrypted_at
        )
        await parts.deliver.to_users(encrypted.members, [push("conversation.encrypted", data)])
    return reply


async def _to_encrypt(request: ConversationEncrypt, user_id: str, parts: EncryptionParts) -> Conversation:
    """The conversation to encrypt, if the caller may: a group's owner or admin, a friend."""
    if request.to.group_id is not None:
        return await managed_group(request.to.group_id, user_id, parts.conversations, "encrypt a group")
    peer = request.to.user_id
    assert peer is not None
    if peer == user_id:
        raise ParleyError.bad_request("data.to.user_id: a conversation with yourself cannot be encrypted")
    if not await parts.friendships.accepted_among([(user_id, peer)]):
        raise ParleyError.forbidden("direct messages need an accepted friendship")
    return await parts.conversations.ensure_direct(direct_conversation_id(user_id, peer), sorted((user_id, peer)), utc_now())


def check_content(conversation: Conversation, encrypted: e2e.Encrypted | None) -> None:
    """What a message (or an edit) may carry there: in an encrypted conversation an envelope of
    its kind (Olm ciphertexts for participants in a direct one, one Megolm ciphertext in a group);
    plaintext in any other."""
    if conversation.encrypted_at is None:
        if encrypted is not None:
            raise ParleyError.bad_request(
                "data.encrypted: this conversation is not end-to-end encrypted (conversations.encrypt turns it on)"
            )
        return
    if encrypted is None:
        raise ParleyError.bad_request(
            "data.encrypted: this conversation is end-to-end encrypted; send encrypted, not text"
        )
    group = conversation.kind == "group"
    if encrypted.algorithm != (e2e.MEGOLM_ALGORITHM if group else e2e.ALGORITHM):
        raise ParleyError.bad_request(
            "data.encrypted.algorithm: a group takes megolm.v1" if group
            else "data.encrypted.algorithm: a direct conversation takes olm.v1"
        )
    if isinstance(encrypted, e2e.OlmEncrypted):
        for i, ciphertext in enumerate(encrypted.ciphertexts):
            if not conversation.has_member(ciphertext.user_id):
                raise ParleyError.bad_request(
                    f"data.encrypted.ciphertexts[{i}].user_id: not a participant of this conversation"
                )


class KeysAudienceParts(Protocol):
    """Who talks with a user (friendships, conversations), and pushes."""

    @property
    def friendships(self) -> Friendships: ...

    @property
    def conversations(self) -> Conversations: ...

    @property
    def deliver(self) -> Deliverer: ...


async def announce_keys_changed(change: e2e.KeysChanged, parts: KeysAudienceParts) -> None:
    """`keys.changed` to the user's other devices and to everyone who shares a conversation or a
    friendship with them."""
    friendships, conversations = await asyncio.gather(
        parts.friendships.of_user(change.user_id), parts.conversations.of_user(change.user_id)
    )
    audience: Iterable[str] = dict.fromkeys([
        change.user_id,
        *(f.other(change.user_id) for f in friendships if f.accepted),
        *(m for c in conversations for m in c.members),
    ])
    await parts.deliver.to_users(
        audience, [push("keys.changed", change)], except_device=(change.user_id, change.device_id)
    )
