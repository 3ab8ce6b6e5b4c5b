"""File bytes over HTTP (PROTOCOL.md "Files"): `POST /files` and `GET /files/{file_id}`, and the
images made from files (docs/protocol.md): `GET /files/{file_id}/thumbnail`, `GET /images/{image_id}`.

The gateway holds no file: an upload is re-cut into CHUNK_SIZE pieces as its body arrives,
counted and hashed on the way, and each piece goes to the files service as one
`files.upload.chunk` RPC, at most UPLOAD_IN_FLIGHT at a time, so a gateway's memory per upload
is a few pieces whatever the file's size. A download is a chain of `files.read` RPCs, at most
DOWNLOAD_PREFETCH ahead of the piece being written to the client.
"""
import asyncio
import base64
import hashlib
import logging
import re
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect

from services.gateway.frames import error_response
from services.gateway.identity import TokenCheck, caller_for
from services.gateway.metrics import DOWNLOAD_BYTES, UPLOAD_BYTES, UPLOADS
from shared.contracts import files, images
from shared.contracts.base import Empty
from shared.contracts.errors import ErrorCode, ParleyError, describe_validation_error
from shared.contracts.operations import (
    FILES_IMAGES_OPEN,
    FILES_OPEN,
    FILES_READ,
    FILES_THUMBNAIL_OPEN,
    FILES_UPLOAD_ABORT,
    FILES_UPLOAD_BEGIN,
    FILES_UPLOAD_CHUNK,
    FILES_UPLOAD_FINISH,
    Operation,
    ReplyT,
)
from shared.contracts.wire import Caller
from shared.broker import RpcClient
from shared.ids import new_id
from shared.logs import log_event, request_id_var, user_id_var
from shared.settings import Settings

log = logging.getLogger("parley.gateway.files")

CHUNK_SIZE = files.CHUNK_SIZE
# files.upload.chunk RPCs of one upload awaiting their reply at once.
UPLOAD_IN_FLIGHT = 4
# files.read RPCs issued ahead of the piece being sent to the client.
DOWNLOAD_PREFETCH = 2
DEFAULT_NAME = "file"
INLINE_TYPES = ("image/", "audio/", "video/")
# RFC 5987 attr-char, besides ALPHA / DIGIT (which quote() always keeps): kept as they are.
_ATTR_CHARS = "!#$&+-.^_`|~"
# An upload may change hands (recall, leaving a group): revalidated on every use. A thumbnail is
# the same for a day. An avatar or sticker never changes: a new one has a new id.
PRIVATE = "private, no-cache"
THUMBNAIL_CACHE = "private, max-age=86400"
IMAGE_CACHE = "public, max-age=31536000, immutable"
_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


def too_large(limit: int) -> ParleyError:
    return ParleyError.too_large(f"the file is larger than the limit of {limit} bytes")


def content_disposition(name: str, content_type: str) -> str:
    """RFC 6266: an ASCII `filename` fallback and the exact name as RFC 5987 `filename*`."""
    name = name or DEFAULT_NAME
    kind = "inline" if content_type.lower().startswith(INLINE_TYPES) else "attachment"
    fallback = "".join(c if 0x20 <= ord(c) < 0x7F and c not in '"\\' else "_" for c in name)
    encoded = quote(name, safe=_ATTR_CHARS, encoding="utf-8", errors="strict")
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive

    @property
    def length(self) -> int:
        return self.end - self.start + 1


class Unsatisfiable(Exception):
    pass


@dataclass(frozen=True)
class Served:
    """What a GET answers with: a stored file's id (read with files.read) and what it is."""

    file_id: str
    size: int
    content_type: str
    sha256: str


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """One `bytes=a-b`, `bytes=a-` or `bytes=-n` range clipped to the file; None to send it all
    (no header, a malformed one, several ranges: RFC 9110 lets a server ignore Range).
    Raises Unsatisfiable when the range holds none of the file's bytes."""
    if header is None:
        return None
    match = _RANGE.match(header)
    if match is None:
        return None
    first, last = match.groups()
    if first == "" and last == "":
        return None
    if first == "":  # suffix: the last n bytes
        n = int(last)
        if n == 0 or size == 0:
            raise Unsatisfiable
        return ByteRange(max(0, size - n), size - 1)
    start = int(first)
    end = int(last) if last != "" else size - 1
    if last != "" and end < start:
        return None  # invalid: ignore
    if start >= size:
        raise Unsatisfiable
    return ByteRange(start, min(end, size - 1))


def etag_matches(if_none_match: str, etag: str) -> bool:
    """Weak comparison (RFC 9110 §13.1.2): any listed tag, W/ or not, or `*`."""
    for tag in if_none_match.split(","):
        tag = tag.strip()
        if tag == "*" or tag.removeprefix("W/") == etag:
            return True
    return False


class FileTransfer:
    """The two file routes; everything the services need goes through the gateway's RPC client."""

    def __init__(self, settings: Settings, gateway_id: str, rpc: RpcClient, tokens: TokenCheck):
        self.settings = settings
        self.gateway_id = gateway_id
        self.rpc = rpc
        self.tokens = tokens

    # --- common ---------------------------------------------------------------------------------
    async def authenticate(self, request: Request) -> Caller:
        header = request.headers.get("authorization")
        if header is None:
            raise ParleyError.unauthorized("an Authorization: Bearer <token> header is required")
        scheme, _, token = header.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise ParleyError.unauthorized("an Authorization: Bearer <token> header is required")
        claims = await self.tokens.verify(token)
        caller = caller_for(self.gateway_id, new_id("h"), claims)
        request_id_var.set(caller.request_id)
        user_id_var.set(caller.user_id)
        return caller

    async def _call(self, operation: Operation[Any, ReplyT], caller: Caller, request: BaseModel) -> ReplyT:
        return await self.rpc.call(operation, request, caller)

    # --- POST /files ----------------------------------------------------------------------------
    async def upload(self, request: Request) -> JSONResponse:
        caller = await self.authenticate(request)
        limit = self.settings.max_upload_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > limit:
            UPLOADS.labels("too_large").inc()
            raise too_large(limit)  # the body is never read
        name = unquote(request.headers.get("x-file-name") or "", errors="replace") or DEFAULT_NAME
        try:
            begin = files.UploadBegin(name=name, content_type=request.headers.get("content-type"))
        except ValidationError as exc:
            raise ParleyError.bad_request(describe_validation_error(exc, "upload")) from None
        reply = await self._call(FILES_UPLOAD_BEGIN, caller, begin)
        file_id = reply.file_id
        try:
            size, sha256 = await self._send_body(request, caller, file_id, limit)
            finish = files.UploadFinish(file_id=file_id, size=size, sha256=sha256)
            info = await self._call(FILES_UPLOAD_FINISH, caller, finish)
        except ClientDisconnect as exc:
            await self._abort(caller, file_id, exc)
            UPLOADS.labels("disconnected").inc()
            # Nobody is left to read it; answering keeps uvicorn from logging a crash.
            return error_response(ParleyError.bad_request("the upload was cut off"))
        except BaseException as exc:
            await self._abort(caller, file_id, exc)
            if isinstance(exc, ParleyError):
                UPLOADS.labels(exc.code.value).inc()
            raise
        UPLOADS.labels("ok").inc()
        log_event(log, "file.uploaded", file_id=file_id, size=size)
        return JSONResponse(info.model_dump(mode="json"), status_code=201)

    async def _send_body(self, request: Request, caller: Caller, file_id: str, limit: int) -> tuple[int, str]:
        """Stream the body to the files service; (size, sha256 hex) once every chunk is acknowledged."""
        digest = hashlib.sha256()
        size = 0
        index = 0
        buffer = bytearray()
        in_flight: set[asyncio.Task[Empty]] = set()

        async def settle(keep: int) -> None:
            """Wait until at most `keep` chunk RPCs are in flight; raise the first failure."""
            while len(in_flight) > keep:
                done, _ = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    in_flight.discard(task)
                    task.result()

        async def send(piece: bytes) -> None:
            nonlocal index
            await settle(UPLOAD_IN_FLIGHT - 1)
            chunk = files.UploadChunk(file_id=file_id, index=index, data=base64.b64encode(piece))
            in_flight.add(asyncio.create_task(self._call(FILES_UPLOAD_CHUNK, caller, chunk)))
            index += 1

        try:
            async for received in request.stream():
                if not received:
                    continue
                size += len(received)
                if size > limit:
                    raise too_large(limit)
                UPLOAD_BYTES.inc(len(received))
                digest.update(received)
                buffer += received
                while len(buffer) >= CHUNK_SIZE:
                    piece = bytes(buffer[:CHUNK_SIZE])
                    del buffer[:CHUNK_SIZE]
                    await send(piece)
            if buffer:
                await send(bytes(buffer))
            await settle(0)
        finally:
            # Let the chunks already sent be answered before anything else (an abort) is sent:
            # one still on its way could otherwise be written after the abort removed the rest.
            # Each one is bounded by the RPC timeout; the results are collected so that no
            # "exception was never retrieved" is logged.
            await asyncio.gather(*in_flight, return_exceptions=True)
        return size, digest.hexdigest()

    async def _abort(self, caller: Caller, file_id: str, cause: BaseException) -> None:
        """Best effort: the files service also drops uploads idle for upload_idle_seconds."""
        log_event(log, "file.upload_aborted", logging.WARNING, file_id=file_id, cause=repr(cause))
        try:
            await asyncio.shield(self._call(FILES_UPLOAD_ABORT, caller, files.FileRef(file_id=file_id)))
        except Exception as exc:  # never hide the reason the upload failed
            log_event(log, "file.abort_failed", logging.WARNING, file_id=file_id, error=repr(exc))

    # --- GET /files/{file_id} -------------------------------------------------------------------
    async def download(self, request: Request, file_id: str) -> Response:
        caller = await self.authenticate(request)
        try:
            ref = files.FileRef(file_id=file_id)
        except ValidationError:
            raise ParleyError.not_found("no such file") from None
        meta = await self._call(FILES_OPEN, caller, ref)
        return self._respond_file(request, caller, meta, PRIVATE)

    # --- GET /files/{file_id}/thumbnail ---------------------------------------------------------
    async def thumbnail(self, request: Request, file_id: str) -> Response:
        """The file's thumbnail (made by the files service on the first request), under the
        file's own access rule; `415` when the file is no image it can read."""
        caller = await self.authenticate(request)
        try:
            ref = images.ThumbnailRef(file_id=file_id)
        except ValidationError:
            raise ParleyError.not_found("no such file") from None
        try:
            meta = await self._call(FILES_THUMBNAIL_OPEN, caller, ref)
        except ParleyError as exc:
            if exc.code != ErrorCode.BAD_REQUEST:
                raise
            return JSONResponse(exc.response(), status_code=415)
        return self._respond_file(request, caller, meta, THUMBNAIL_CACHE)

    # --- GET /images/{image_id} -----------------------------------------------------------------
    async def image(self, request: Request, image_id: str) -> Response:
        """An avatar or a sticker, to anyone holding its (unguessable) id: no token, and cached
        for good, since an image never changes (a new avatar is a new image with a new URL)."""
        caller = caller_for(self.gateway_id, new_id("h"))
        request_id_var.set(caller.request_id)
        try:
            ref = images.ImageRef(image_id=image_id)
        except ValidationError:
            raise ParleyError.not_found("no such image") from None
        info = await self._call(FILES_IMAGES_OPEN, caller, ref)
        return self._respond(
            request, caller, Served(info.image_id, info.size, info.content_type, info.sha256),
            {"Cache-Control": IMAGE_CACHE},
        )

    # --- the bytes of any of them ---------------------------------------------------------------
    def _respond_file(self, request: Request, caller: Caller, meta: files.FileMeta, cache: str) -> Response:
        served = Served(meta.file_id, meta.size, meta.content_type, meta.sha256)
        disposition = content_disposition(meta.name, meta.content_type)
        return self._respond(request, caller, served, {"Content-Disposition": disposition, "Cache-Control": cache})

    def _respond(self, request: Request, caller: Caller, served: Served, extra: dict[str, str]) -> Response:
        """ETag (`304` on a match), one range (`206`/`416`), HEAD, or the whole file streamed."""
        etag = f'"{served.sha256}"'
        headers = {
            "Accept-Ranges": "bytes",
            "ETag": etag,
            "Content-Type": served.content_type,
            **extra,
            "X-Content-Type-Options": "nosniff",
        }
        if_none_match = request.headers.get("if-none-match")
        if if_none_match is not None and etag_matches(if_none_match, etag):
            return Response(status_code=304, headers={k: v for k, v in headers.items() if k != "Content-Type"})
        status = 200
        start, length = 0, served.size
        try:
            byte_range = parse_range(request.headers.get("range"), served.size)
        except Unsatisfiable:
            return Response(
                status_code=416, headers={"Content-Range": f"bytes */{served.size}", "Accept-Ranges": "bytes"}
            )
        if byte_range is not None:
            status = 206
            start, length = byte_range.start, byte_range.length
            headers["Content-Range"] = f"bytes {byte_range.start}-{byte_range.end}/{served.size}"
        headers["Content-Length"] = str(length)
        if request.method == "HEAD":
            return Response(status_code=status, headers=headers)
        return StreamingResponse(
            self._read(caller, served.file_id, start, length), status_code=status, headers=headers,
            media_type=served.content_type,
        )

    async def _read(self, caller: Caller, file_id: str, start: int, length: int) -> AsyncIterator[bytes]:
        """The bytes [start, start+length), read piece by piece along the stored chunks."""
        pieces: list[tuple[int, int]] = []
        offset, end = start, start + length
        while offset < end:
            # Aligned to chunk boundaries, so that each read touches one stored chunk.
            step = min(CHUNK_SIZE - offset % CHUNK_SIZE, end - offset)
            pieces.append((offset, step))
            offset += step
        pending: deque[tuple[int, asyncio.Task[files.FileReadReply]]] = deque()
        upcoming = iter(pieces)

        def issue() -> None:
            for piece_offset, piece_length in upcoming:
                read = files.FileRead(file_id=file_id, offset=piece_offset, length=piece_length)
                pending.append((piece_length, asyncio.create_task(self._call(FILES_READ, caller, read))))
                return

        try:
            for _ in range(1 + DOWNLOAD_PREFETCH):
                issue()
            while pending:
                expected, task = pending.popleft()
                reply = await task
                issue()
                data = reply.data
                if len(data) != expected:
                    raise ParleyError.internal(f"files.read returned {len(data)} bytes, not {expected}")
                DOWNLOAD_BYTES.inc(len(data))
                yield data
        except Exception as exc:
            # The status line is gone already: all that is left is to cut the response short.
            log_event(log, "file.download_failed", logging.WARNING, file_id=file_id, error=repr(exc))
            raise
        finally:
            for _, task in pending:
                task.cancel()
            await asyncio.gather(*(t for _, t in pending), return_exceptions=True)
