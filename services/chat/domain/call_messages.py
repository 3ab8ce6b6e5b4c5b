"""What the calls service asks chat, which owns friendships, conversations and messages
(docs/architecture.md "Calls"): at invite, whom a user calls and in which direct conversation;
once a call has ended, its one message in that conversation, stored like any message.
"""
from datetime import datetime
from typing import Protocol

from services.chat.domain.ports import Conversations, Friendships, Messages
from services.chat.domain.records import Draft
from services.chat.domain.sending import Stored
from shared.partitions import direct_conversation_id
from shared.contracts.base import utc_now
from shared.contracts.calls import CallMessage, CallMessageStored, CallPeer, CallPeerAsk
from shared.contracts.errors import ParleyError
from shared.ids import new_id


class CallParts(Protocol):
    """What the calls service's questions need: the friendships a call needs, the direct
    conversations, and the messages calls leave."""

    @property
    def friendships(self) -> Friendships: ...

    @property
    def conversations(self) -> Conversations: ...

    @property
    def messages(self) -> Messages: ...


def call_message_id(call_id: str) -> str:
    """The caller's client_msg_id of a call's message: a second store of it is a retry."""
    return f"call:{call_id}"


async def call_peer(ask: CallPeerAsk, parts: CallParts) -> CallPeer:
    """Whom the caller calls, and their direct conversation (made on a first call by user_id):
    calls are between the two members of a direct conversation who are friends."""
    caller = ask.caller_id
    if ask.user_id is not None:
        callee = ask.user_id
        conversation = None
    else:
        assert ask.conversation_id is not None
        conversation = await parts.conversations.conversation(ask.conversation_id)
        if conversation is None or conversation.kind != "direct" or not conversation.has_member(caller):
            raise ParleyError.forbidden("calls are between the two people of a direct conversation you are in")
        others = conversation.others(caller)
        callee = others[0] if len(others) == 1 else caller
    if callee == caller or not await parts.friendships.accepted_among([(caller, callee)]):
        raise ParleyError.forbidden("calls need an accepted friendship")
    if conversation is None:
        conversation = await parts.conversations.ensure_direct(
            direct_conversation_id(caller, callee), sorted((caller, callee)), utc_now()
        )
    return CallPeer(callee_id=callee, conversation_id=conversation.conversation_id)


async def store_call_message(message: CallMessage, parts: CallParts) -> tuple[CallMessageStored, Stored]:
    """The call's message, from the caller, with the conversation's next seq; what to announce
    (`message.new`, `messages.stored`) once calls has the answer, as for any message sent. Asked
    again (a retry), it is found stored and announced again: at least once, like a send."""
    conversation = await parts.conversations.conversation(message.conversation_id)
    if conversation is None or not (conversation.has_member(message.caller_id) and conversation.has_member(message.callee_id)):
        raise ParleyError.not_found("no such direct conversation")
    draft = Draft(
        message_id=new_id("m"), from_user_id=message.caller_id, client_msg_id=call_message_id(message.call.call_id),
        to={"user_id": message.callee_id}, sent_at=datetime.fromisoformat(message.ended_at), call=message.call,
    )
    (appended,) = await parts.messages.append_many([(conversation, draft)])
    stored = appended.message
    reply = CallMessageStored(message_id=stored.message_id, seq=stored.seq, first=appended.first)
    return reply, Stored(conversation, stored, None, again=not appended.first)
