"""Files and stickers on messages: what a message's attachment (or voice recording, or sticker)
is, and who may see a file.

Who may see a file: its uploader (the files service knows) and whoever could see a message
carrying it. chat answers the second part because it alone knows conversations, their members,
when each joined, and what was recalled or has expired; asked at download time, a recall or a
member leaving takes effect at once."""
import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from services.chat.domain.ports import Conversations, Files, Messages
from services.chat.domain.records import Message
from shared.contracts.base import utc_now
from shared.contracts.chat import Attachment, MessageSend, Sticker
from shared.contracts.errors import ParleyError
from shared.contracts.files import FileMeta
from shared.contracts.images import ImageInfo
from shared.stickers import builtin_sticker_url, is_builtin_sticker, parse_sticker_id


class AttachmentParts(Protocol):
    """What attachments need: the conversations and messages that carry files, and the files
    service's metadata."""

    @property
    def conversations(self) -> Conversations: ...

    @property
    def messages(self) -> Messages: ...

    @property
    def files(self) -> Files: ...


async def may_see_file(file_id: str, user_id: str, parts: AttachmentParts) -> bool:
    """True if a visible message carrying the file sits in a conversation the user is in,
    above the point at which they joined it."""
    for placed in await parts.messages.carrying_file(file_id, utc_now()):
        conversation = await parts.conversations.conversation(placed.conversation_id)
        if conversation and conversation.sees(user_id, placed):
            return True
    return False


@dataclass(frozen=True)
class Referred:
    """What a batch's messages refer to, looked up together (one call to files for the files,
    one for the made stickers, one read of the quoted messages), not one item at a time."""

    files: Mapping[str, FileMeta]
    stickers: Mapping[str, ImageInfo]
    quoted: Mapping[str, Message]


async def look_up_referred(requests: list[MessageSend], parts: AttachmentParts) -> Referred:
    file_ids = list(dict.fromkeys(r.file_id for r in requests if r.file_id is not None and r.sticker_id is None))
    image_ids = list(dict.fromkeys(
        name for r in requests if r.sticker_id is not None
        for kind, name in [parse_sticker_id(r.sticker_id)] if kind != "builtin"
    ))
    quote_ids = list(dict.fromkeys(r.reply_to for r in requests if r.reply_to is not None))
    found_files, found_images, quoted = await asyncio.gather(
        parts.files.infos(file_ids) if file_ids else _none(), parts.files.images(image_ids) if image_ids else _none(),
        parts.messages.messages_by_id(quote_ids) if quote_ids else _none(),
    )
    return Referred(found_files, found_images, quoted)


async def _none() -> dict[str, Any]:
    """Nothing referred to of a kind: nothing asked (a batch of texts asks nothing)."""
    return {}


async def attachment_for(file_id: str, sender: str, referred: Referred, parts: AttachmentParts) -> Attachment:
    """The `file` of a message: the sender uploaded it, or forwards one they may see."""
    meta = referred.files.get(file_id)
    if meta is None or (meta.uploader != sender and not await may_see_file(file_id, sender, parts)):
        raise ParleyError.not_found("no such file")
    return Attachment(file_id=meta.file_id, name=meta.name, size=meta.size, content_type=meta.content_type)


async def message_content(
    request: MessageSend, sender: str, referred: Referred, parts: AttachmentParts
) -> tuple[Attachment | None, Sticker | None]:
    """A message's `file` (a voice message's must be audio) and `sticker`; a text asks nothing."""
    if request.sticker_id is not None:
        return None, sticker_for(request.sticker_id, referred)
    if request.file_id is None:
        return None, None
    file = await attachment_for(request.file_id, sender, referred, parts)
    if request.voice is not None and not file.content_type.lower().startswith("audio/"):
        raise ParleyError.bad_request("data.voice: a voice message carries an audio file")
    return file, None


def sticker_for(sticker_id: str, referred: Referred) -> Sticker:
    """A built-in by its name (no lookup), else a sticker files made: anyone holding its id may
    send it on (ids are unguessable, as its URL is)."""
    kind, name = parse_sticker_id(sticker_id)
    if kind == "builtin":
        if not is_builtin_sticker(name):
            raise ParleyError.not_found("no such sticker")
        return Sticker(sticker_id=sticker_id, url=builtin_sticker_url(name))
    image = referred.stickers.get(name)
    if image is None or image.kind != "sticker":
        raise ParleyError.not_found("no such sticker")
    return Sticker(sticker_id=image.image_id, url=image.url)
