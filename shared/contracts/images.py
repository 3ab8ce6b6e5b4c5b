"""Images the files service makes from uploads (docs/protocol.md "Profiles and avatars",
"Stickers and emoji", "Voice messages and thumbnails").

Avatars and stickers are new GridFS files with unguessable ids, served without a token at
`/images/<image_id>`; a thumbnail is kept beside its original and served with the original's
access rule at `/files/<file_id>/thumbnail`. Internal: `files.images.make` (with the user as
caller: they must be allowed to download the source file), `files.images.open` (no caller: the
id is the secret), `files.thumbnail.open` (caller). Public: `stickers.list/add/remove`.
A sticker made from an upload has its image's id as `sticker_id`.
"""
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from shared.contracts.base import Contract
from shared.contracts.chat import Id
from shared.contracts.files import Sha256

ImageKind = Literal["avatar", "sticker"]
IMAGES_PATH = "/images/"


def image_url(image_id: str) -> str:
    """Where the gateway serves an avatar or a sticker."""
    return f"{IMAGES_PATH}{image_id}"


class ImageMake(Contract):
    file_id: Id
    kind: ImageKind


class AvatarMake(Contract):
    """`images.avatar`: a 256x256 avatar image from an upload the caller may download (a group's
    picture: the client makes it, then names it in groups.update)."""

    file_id: Id


class ImageRef(Contract):
    image_id: Id


class ImageRefs(Contract):
    """Internal: the made stickers of a batch of messages (files.images.info)."""

    image_ids: list[Id] = Field(max_length=1024)


class ImageInfo(Contract):
    image_id: str
    kind: ImageKind
    url: str
    content_type: str
    size: int
    sha256: Sha256


class ImagesInfo(Contract):
    """Internal: those of the images asked for that are avatars or stickers."""

    images: list[ImageInfo]


class ThumbnailRef(Contract):
    file_id: Id


class StickersList(Contract):
    pass


class StickerEntry(Contract):
    """One sticker of `stickers.list`: its id, its image, and whose pack it is in."""

    sticker_id: str
    url: str
    pack: Literal["builtin", "mine"]


class StickersListReply(Contract):
    stickers: list[StickerEntry]


class StickerAdd(Contract):
    file_id: Id


class StickerRef(Contract):
    sticker_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
