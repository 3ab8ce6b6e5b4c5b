"""Files on messages: what a message's attachment is, and who may see a file.

Who may see a file: its uploader (the files service knows) and whoever could see a message
carrying it. chat answers the second part because it alone knows conversations, their members,
when each joined, and what was recalled or has expired; asked at download time, a recall or a
member leaving takes effect at once."""
from services.chat.domain.ports import Conversations, Files, Messages
from shared.contracts.base import utc_now
from shared.contracts.chat import Attachment
from shared.contracts.errors import ParleyError


async def may_see_file(file_id: str, user_id: str, conversations: Conversations, messages: Messages) -> bool:
    """True if a visible message carrying the file sits in a conversation the user is in,
    above the point at which they joined it."""
    for placed in await messages.carrying_file(file_id, utc_now()):
        conversation = await conversations.conversation(placed.conversation_id)
        if conversation and conversation.sees(user_id, placed):
            return True
    return False


async def attachment_for(
    file_id: str, sender: str, files: Files, conversations: Conversations, messages: Messages
) -> Attachment:
    """The `file` of a message: the sender uploaded it, or forwards one they may see."""
    meta = await files.info(file_id)
    if meta is None or (meta.uploader != sender and not await may_see_file(file_id, sender, conversations, messages)):
        raise ParleyError.not_found("no such file")
    return Attachment(file_id=meta.file_id, name=meta.name, size=meta.size, content_type=meta.content_type)
