"""Stickers: the built-in pack (shared/stickers.py, drawn by the web client) and each user's own,
made from images they may download (docs/protocol.md "Stickers and emoji").

A sticker of one's own is an image of kind "sticker" (images.py): its `sticker_id` is the
image's id, so a sticker someone sent can be sent on by anyone who received it, and removing
it from one's list leaves the image for the messages that carry it.
"""
from services.files.domain import images
from services.files.domain.ports import Access, FileStore, StickerStore
from services.files.domain.ports import Sticker as OwnSticker
from shared.contracts.base import utc_now
from shared.contracts.errors import ParleyError
from shared.contracts.images import ImageMake, StickerEntry, StickersListReply
from shared.stickers import BUILTIN_PREFIX, BUILTIN_STICKERS, builtin_sticker_id, builtin_sticker_url

MAX_OWN_STICKERS = 200


def _builtin() -> list[StickerEntry]:
    return [
        StickerEntry(sticker_id=builtin_sticker_id(name), url=builtin_sticker_url(name), pack="builtin")
        for name in BUILTIN_STICKERS
    ]


def _mine(sticker: OwnSticker) -> StickerEntry:
    return StickerEntry(sticker_id=sticker.sticker_id, url=sticker.url, pack="mine")


async def list_stickers(user: str, stickers: StickerStore) -> StickersListReply:
    """The built-in pack, then the user's own, oldest first."""
    return StickersListReply(stickers=_builtin() + [_mine(s) for s in await stickers.owned(user)])


async def add_sticker(file_id: str, user: str, store: FileStore, access: Access, stickers: StickerStore) -> StickerEntry:
    """A new sticker of the user's from a file they may download (fitted into 512×512, WebP)."""
    if await stickers.count(user) >= MAX_OWN_STICKERS:
        raise ParleyError.conflict(f"you have {MAX_OWN_STICKERS} stickers already; remove one first")
    image = await images.make_image(ImageMake(file_id=file_id, kind="sticker"), user, store, access)
    sticker = OwnSticker(sticker_id=image.image_id, owner=user, url=image.url, added_at=utc_now())
    await stickers.add(sticker)
    return _mine(sticker)


async def remove_sticker(sticker_id: str, user: str, stickers: StickerStore) -> None:
    """Only the user's own (a built-in one, or anyone else's, is not theirs to remove)."""
    if sticker_id.startswith(BUILTIN_PREFIX) or not await stickers.remove(sticker_id, user):
        raise ParleyError.not_found("you have no such sticker")
