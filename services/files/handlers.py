"""files' operations, each mapped to its domain function."""
from services.files.domain import files as domain
from services.files.domain.files import Access
from services.files.storage.files import FileStore
from shared.contracts import files
from shared.contracts.base import Empty
from shared.contracts.errors import ParleyError
from shared.contracts.wire import Caller
from shared.service import Router
from shared.stores import mongo_ping

BYTES_TIMEOUT = 30.0  # a chunk or a range moves up to ~1 MiB through MongoDB


def _user(caller: Caller) -> str:
    if caller.user_id is None:
        raise ParleyError.unauthorized()
    return caller.user_id


def build_router(store: FileStore, access: Access, max_upload_bytes: int, mongo_client) -> Router:
    router = Router("files")

    @router.operation("files.upload.begin")
    async def begin(request: files.UploadBegin, caller: Caller) -> files.UploadBeginReply:
        return await domain.begin_upload(request, _user(caller), store)

    @router.operation("files.upload.chunk", timeout=BYTES_TIMEOUT)
    async def chunk(request: files.UploadChunk, caller: Caller) -> Empty:
        await domain.write_chunk(request, _user(caller), store, max_upload_bytes)
        return Empty()

    @router.operation("files.upload.finish", timeout=BYTES_TIMEOUT)
    async def finish(request: files.UploadFinish, caller: Caller) -> files.UploadedFile:
        return await domain.finish_upload(request, _user(caller), store, max_upload_bytes)

    @router.operation("files.upload.abort")
    async def abort(request: files.FileRef, caller: Caller) -> Empty:
        await domain.abort_upload(request.file_id, _user(caller), store)
        return Empty()

    @router.operation("files.open")
    async def open_(request: files.FileRef, caller: Caller) -> files.FileMeta:
        return await domain.open_file(request.file_id, _user(caller), store, access)

    @router.operation("files.info")
    async def info(request: files.FileRef, caller: Caller) -> files.FileMeta:
        return await domain.file_info(request.file_id, store)

    @router.operation("files.read", timeout=BYTES_TIMEOUT)
    async def read(request: files.FileRead, caller: Caller) -> files.FileReadReply:
        return await domain.read_range(request, store)

    router.health(lambda: mongo_ping(mongo_client))

    return router
