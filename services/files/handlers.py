"""files' operations, each mapped to its domain function."""

from services.files.domain import transfers
from services.files.domain.ports import Access, FileStore
from shared.contracts.base import Empty
from shared.contracts.errors import ParleyError
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
from shared.contracts.wire import Caller
from shared.service import Router
from shared.stores import MongoClient, mongo_ping

BYTES_TIMEOUT = 30.0  # a chunk or a range moves up to ~1 MiB through MongoDB


def _user(caller: Caller) -> str:
    if caller.user_id is None:
        raise ParleyError.unauthorized()
    return caller.user_id


def build_router(
    store: FileStore, access: Access, max_upload_bytes: int, mongo_client: MongoClient
) -> Router:
    router = Router("files")

    @router.operation("files.upload.begin")
    async def begin(request: UploadBegin, caller: Caller) -> UploadBeginReply:
        return await transfers.begin_upload(request, _user(caller), store)

    @router.operation("files.upload.chunk", timeout=BYTES_TIMEOUT)
    async def chunk(request: UploadChunk, caller: Caller) -> Empty:
        await transfers.write_chunk(request, _user(caller), store, max_upload_bytes)
        return Empty()

    @router.operation("files.upload.finish", timeout=BYTES_TIMEOUT)
    async def finish(request: UploadFinish, caller: Caller) -> UploadedFile:
        return await transfers.finish_upload(request, _user(caller), store, max_upload_bytes)

    @router.operation("files.upload.abort")
    async def abort(request: FileRef, caller: Caller) -> Empty:
        await transfers.abort_upload(request.file_id, _user(caller), store)
        return Empty()

    @router.operation("files.open")
    async def open_(request: FileRef, caller: Caller) -> FileMeta:
        return await transfers.open_file(request.file_id, _user(caller), store, access)

    @router.operation("files.info")
    async def info(request: FileRef, caller: Caller) -> FileMeta:
        return await transfers.file_info(request.file_id, store)

    @router.operation("files.read", timeout=BYTES_TIMEOUT)
    async def read(request: FileRead, caller: Caller) -> FileReadReply:
        return await transfers.read_range(request, store)

    router.health(lambda: mongo_ping(mongo_client))

    return router
