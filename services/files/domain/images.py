"""Images made from uploads: avatars and stickers (new files with unguessable ids, served to
anyone holding the id) and thumbnails (kept beside their original, under the original's access
rule). The pixels are rendering.py's, worked in a thread; the bytes go to GridFS as files of
their own, so `files.read` serves them like any upload.
"""
import asyncio
import hashlib
import logging
import secrets

from services.files.domain import rendering
from services.files.domain.ports import Access, FileStore, StoredFile
from services.files.domain.transfers import NO_SUCH_FILE, meta_of, readable
from shared.contracts.base import utc_now
from shared.contracts.errors import ParleyError
from shared.contracts.files import FileMeta
from shared.contracts.images import ImageInfo, ImageKind, ImageMake, ImageRefs, ImagesInfo, image_url
from shared.logs import log_event

log = logging.getLogger("parley.files")

NOT_AN_IMAGE = "not an image (PNG, JPEG, GIF or WebP)"
NO_SUCH_IMAGE = "no such image"
IMAGE_KINDS: tuple[ImageKind, ...] = ("avatar", "sticker")
THUMBNAIL: rendering.Rendering = "thumbnail"


def new_image_id() -> str:
    """128 random bits: the id is all that guards an image (served without a token)."""
    return f"i_{secrets.token_hex(16)}"


def thumbnail_id(file_id: str) -> str:
    """Where a file's thumbnail is kept: derived from the file, so it is made once."""
    return f"{file_id}.thumbnail"


def too_large() -> ParleyError:
    return ParleyError.too_large(
        f"an image may have at most {rendering.MAX_PIXELS // 1_000_000} megapixels "
        f"and {rendering.MAX_BYTES // (1024 * 1024)} MiB"
    )


# Images read and rendered at once by this process: each holds up to MAX_BYTES of source (and its
# decoded pixels) in memory, so without this a full prefetch (64 commands) of large images could
# hold 2 GB; beyond it a request waits, holding nothing.
_RENDER_SLOTS = asyncio.Semaphore(rendering.RENDERS_AT_ONCE)


async def _render(source: StoredFile, kind: rendering.Rendering, store: FileStore) -> rendering.Rendered:
    """The source's pixels rendered as `kind`; bad_request when it is no image, too_large when
    it is too big. Nothing is read when the type or the size already say so."""
    if not source.content_type.startswith("image/"):
        raise ParleyError.bad_request(NOT_AN_IMAGE)
    if source.size > rendering.MAX_BYTES:
        raise too_large()
    async with _RENDER_SLOTS:
        data = await store.read(source.file_id, 0, source.size)
        if data is None:
            raise ParleyError.not_found(NO_SUCH_FILE)
        try:
            return await asyncio.to_thread(rendering.render, data, kind)
        except rendering.NotAnImage:
            raise ParleyError.bad_request(NOT_AN_IMAGE) from None
        except rendering.ImageTooLarge:
            raise too_large() from None


def _info(stored: StoredFile) -> ImageInfo:
    assert stored.kind in IMAGE_KINDS
    return ImageInfo(
        image_id=stored.file_id, kind=stored.kind, url=image_url(stored.file_id),
        content_type=stored.content_type, size=stored.size, sha256=stored.sha256,
    )


async def make_image(request: ImageMake, user: str, store: FileStore, access: Access) -> ImageInfo:
    """A new avatar or sticker from a file `user` may download; the file itself is untouched."""
    source = await readable(request.file_id, user, store, access)
    rendered = await _render(source, request.kind, store)
    made = StoredFile(
        file_id=new_image_id(), name=f"{request.kind}.webp", size=len(rendered.data),
        content_type=rendered.content_type, sha256=hashlib.sha256(rendered.data).hexdigest(),
        uploader=user, uploaded_at=utc_now(), kind=request.kind,
    )
    stored = await store.put(made, rendered.data, source.file_id)
    log_event(log, "image.made", image_id=stored.file_id, kind=request.kind, source=source.file_id, size=stored.size)
    return _info(stored)


async def open_image(image_id: str, store: FileStore) -> ImageInfo:
    """An avatar's or sticker's metadata; any other id (an upload, a thumbnail) is unknown here."""
    stored = await store.stored(image_id)
    if stored is None or stored.kind not in IMAGE_KINDS:
        raise ParleyError.not_found(NO_SUCH_IMAGE)
    return _info(stored)


async def images_info(request: ImageRefs, store: FileStore) -> ImagesInfo:
    """Internal: the avatars and stickers among these ids (a batch's made stickers), in one read."""
    found = await store.stored_many(list(dict.fromkeys(request.image_ids)))
    return ImagesInfo(images=[_info(stored) for stored in found.values() if stored.kind in IMAGE_KINDS])


async def open_thumbnail(file_id: str, user: str, store: FileStore, access: Access) -> FileMeta:
    """The thumbnail of a file `user` may download, made on the first request and kept."""
    source = await readable(file_id, user, store, access)
    if source.kind == THUMBNAIL:  # a thumbnail's thumbnail is itself
        return meta_of(source)
    kept = await store.stored(thumbnail_id(file_id))
    if kept is not None:
        return meta_of(kept)
    rendered = await _render(source, THUMBNAIL, store)
    stem = source.name.rsplit(".", 1)[0] if "." in source.name else source.name
    made = StoredFile(
        file_id=thumbnail_id(file_id), name=f"{stem}.jpg", size=len(rendered.data),
        content_type=rendered.content_type, sha256=hashlib.sha256(rendered.data).hexdigest(),
        uploader=source.uploader, uploaded_at=utc_now(), kind=THUMBNAIL,
    )
    stored = await store.put(made, rendered.data, source.file_id)
    log_event(log, "thumbnail.made", file_id=file_id, size=stored.size)
    return meta_of(stored)
