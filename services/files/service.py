"""files: file bytes (GridFS) and their metadata, uploads and downloads, images (avatars,
stickers, thumbnails), users' own stickers.

The service class declares what files is made of and binds each operation to its domain function
(services/files/domain/): `files.upload.begin` is `transfers.begin_upload`, and so on.
"""
from services.files.access import ChatAccess
from services.files.domain import images, stickers, transfers
from services.files.storage.file_store import MongoFileStore
from services.files.storage.stickers import MongoStickerStore
from shared.contracts.base import Empty
from shared.contracts.files import (
    FileMeta,
    FileRead,
    FileReadReply,
    FileRef,
    FileRefs,
    FilesInfo,
    UploadBegin,
    UploadBeginReply,
    UploadChunk,
    UploadedFile,
    UploadFinish,
)
from shared.contracts.images import (
    AvatarMake,
    ImageInfo,
    ImageMake,
    ImageRef,
    ImageRefs,
    ImagesInfo,
    StickerAdd,
    StickerEntry,
    StickerRef,
    StickersList,
    StickersListReply,
    ThumbnailRef,
)
from shared.contracts.wire import Caller, user_of
from shared.declared import Service, operation, part, periodic

BYTES_TIMEOUT = 30.0  # a chunk or a range moves up to ~1 MiB through MongoDB; an image is decoded


class FilesService(Service):
    name = "files"

    store = part(lambda rt, s: MongoFileStore(rt.db))
    own_stickers = part(lambda rt, s: MongoStickerStore(rt.db))
    access = part(lambda rt, s: ChatAccess(rt.rpc()))

    @operation("files.upload.begin")
    async def begin(self, request: UploadBegin, caller: Caller) -> UploadBeginReply:
        return await transfers.begin_upload(request, user_of(caller), self.store)

    @operation("files.upload.chunk", timeout=BYTES_TIMEOUT)
    async def chunk(self, request: UploadChunk, caller: Caller) -> Empty:
        await transfers.write_chunk(request, user_of(caller), self.store, self.settings.max_upload_bytes)
        return Empty()

    @operation("files.upload.finish", timeout=BYTES_TIMEOUT)
    async def finish(self, request: UploadFinish, caller: Caller) -> UploadedFile:
        return await transfers.finish_upload(request, user_of(caller), self.store, self.settings.max_upload_bytes)

    @operation("files.upload.abort")
    async def abort(self, request: FileRef, caller: Caller) -> Empty:
        await transfers.abort_upload(request.file_id, user_of(caller), self.store)
        return Empty()

    @operation("files.open")
    async def open_file(self, request: FileRef, caller: Caller) -> FileMeta:
        return await transfers.open_file(request.file_id, user_of(caller), self.store, self.access)

    @operation("files.info")
    async def info(self, request: FileRefs, caller: Caller) -> FilesInfo:
        return await transfers.files_info(request, self.store)

    @operation("files.read", timeout=BYTES_TIMEOUT)
    async def read(self, request: FileRead, caller: Caller) -> FileReadReply:
        return await transfers.read_range(request, self.store)

    @operation("files.images.make", timeout=BYTES_TIMEOUT)
    async def make_image(self, request: ImageMake, caller: Caller) -> ImageInfo:
        return await images.make_image(request, user_of(caller), self.store, self.access)

    @operation("images.avatar", timeout=BYTES_TIMEOUT)
    async def make_avatar(self, request: AvatarMake, caller: Caller) -> ImageInfo:
        """A group's picture, made by the client before groups.update names it."""
        return await images.make_image(ImageMake(file_id=request.file_id, kind="avatar"), user_of(caller), self.store, self.access)

    @operation("files.images.info")
    async def images_info(self, request: ImageRefs, caller: Caller) -> ImagesInfo:
        return await images.images_info(request, self.store)

    @operation("files.images.open")
    async def open_image(self, request: ImageRef, caller: Caller) -> ImageInfo:
        return await images.open_image(request.image_id, self.store)

    @operation("files.thumbnail.open", timeout=BYTES_TIMEOUT)
    async def open_thumbnail(self, request: ThumbnailRef, caller: Caller) -> FileMeta:
        return await images.open_thumbnail(request.file_id, user_of(caller), self.store, self.access)

    @operation("stickers.list")
    async def list_stickers(self, request: StickersList, caller: Caller) -> StickersListReply:
        return await stickers.list_stickers(user_of(caller), self.own_stickers)

    @operation("stickers.add", timeout=BYTES_TIMEOUT)
    async def add_sticker(self, request: StickerAdd, caller: Caller) -> StickerEntry:
        return await stickers.add_sticker(request.file_id, user_of(caller), self.store, self.access, self.own_stickers)

    @operation("stickers.remove")
    async def remove_sticker(self, request: StickerRef, caller: Caller) -> Empty:
        await stickers.remove_sticker(request.sticker_id, user_of(caller), self.own_stickers)
        return Empty()

    @periodic("uploads.reap", every=lambda settings: settings.upload_idle_seconds / 4, once_across_replicas=True)
    async def reap_abandoned_uploads(self) -> None:
        """Uploads whose client vanished (no chunk for upload_idle_seconds) are removed."""
        await transfers.reap_abandoned(self.store, self.settings.upload_idle_seconds)
