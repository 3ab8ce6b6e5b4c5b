"""files' operations, each mapped to its domain function."""

from services.files.domain import images, stickers, transfers
from services.files.domain.ports import Access, FileStore, StickerStore
from shared.contracts.base import Empty
from shared.contracts.files import (
    FileMeta,
    FileRead,
    FileReadReply,
    FileRef,
    UploadBegin,
    UploadBeginReply,
    UploadChunk,
    UploadedFile,
    UploadFinish,
)
from shared.contracts.images import (
    ImageInfo,
    ImageMake,
    ImageRef,
    StickerEntry,
    StickerAdd,
    StickerRef,
    StickersList,
    StickersListReply,
    ThumbnailRef,
)
from shared.contracts.wire import Caller, user_of
from shared.service import Router
from shared.stores import MongoClient, mongo_ping

BYTES_TIMEOUT = 30.0  # a chunk or a range moves up to ~1 MiB through MongoDB; an image is decoded


def build_router(
    store: FileStore, access: Access, max_upload_bytes: int, mongo_client: MongoClient, own_stickers: StickerStore
) -> Router:
    router = Router("files")

    @router.operation("files.upload.begin")
    async def begin(request: UploadBegin, caller: Caller) -> UploadBeginReply:
        return await transfers.begin_upload(request, user_of(caller), store)

    @router.operation("files.upload.chunk", timeout=BYTES_TIMEOUT)
    async def chunk(request: UploadChunk, caller: Caller) -> Empty:
        await transfers.write_chunk(request, user_of(caller), store, max_upload_bytes)
        return Empty()

    @router.operation("files.upload.finish", timeout=BYTES_TIMEOUT)
    async def finish(request: UploadFinish, caller: Caller) -> UploadedFile:
        return await transfers.finish_upload(request, user_of(caller), store, max_upload_bytes)

    @router.operation("files.upload.abort")
    async def abort(request: FileRef, caller: Caller) -> Empty:
        await transfers.abort_upload(request.file_id, user_of(caller), store)
        return Empty()

    @router.operation("files.open")
    async def open_(request: FileRef, caller: Caller) -> FileMeta:
        return await transfers.open_file(request.file_id, user_of(caller), store, access)

    @router.operation("files.info")
    async def info(request: FileRef, caller: Caller) -> FileMeta:
        return await transfers.file_info(request.file_id, store)

    @router.operation("files.read", timeout=BYTES_TIMEOUT)
    async def read(request: FileRead, caller: Caller) -> FileReadReply:
        return await transfers.read_range(request, store)

    @router.operation("files.images.make", timeout=BYTES_TIMEOUT)
    async def make_image(request: ImageMake, caller: Caller) -> ImageInfo:
        return await images.make_image(request, user_of(caller), store, access)

    @router.operation("files.images.open")
    async def open_image(request: ImageRef, caller: Caller) -> ImageInfo:
        return await images.open_image(request.image_id, store)

    @router.operation("files.thumbnail.open", timeout=BYTES_TIMEOUT)
    async def open_thumbnail(request: ThumbnailRef, caller: Caller) -> FileMeta:
        return await images.open_thumbnail(request.file_id, user_of(caller), store, access)

    @router.operation("stickers.list")
    async def list_stickers(request: StickersList, caller: Caller) -> StickersListReply:
        return await stickers.list_stickers(user_of(caller), own_stickers)

    @router.operation("stickers.add", timeout=BYTES_TIMEOUT)
    async def add_sticker(request: StickerAdd, caller: Caller) -> StickerEntry:
        return await stickers.add_sticker(request.file_id, user_of(caller), store, access, own_stickers)

    @router.operation("stickers.remove")
    async def remove_sticker(request: StickerRef, caller: Caller) -> Empty:
        await stickers.remove_sticker(request.sticker_id, user_of(caller), own_stickers)
        return Empty()

    router.health(lambda: mongo_ping(mongo_client))

    return router
