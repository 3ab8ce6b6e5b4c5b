"""Uploads and downloads (begin, chunks, finish, abort; open, info, ranged reads), and the
reaping of abandoned uploads: plain functions over the `FileStore` port.

The gateway streams an upload as numbered chunks (see `shared.contracts.files`); each one is
written as it comes, by whichever replica takes it, so nothing here holds a file in memory.
Access: the uploader, and whoever `Access` says may see the file (chat knows in which
conversations it was sent); anyone else is told the file does not exist.
"""
import base64
import logging
import math
import os
import re
import unicodedata
from datetime import timedelta

import filetype  # type: ignore[import-untyped]  # ships neither stubs nor py.typed

from services.files.domain.ports import Access, FileStore, StoredFile, Upload
from shared.contracts.base import iso, utc_now
from shared.contracts.errors import ErrorCode, ParleyError
from shared.contracts.files import (
    CHUNK_SIZE,
    FileMeta,
    FileRefs,
    FilesInfo,
    FileRead,
    FileReadReply,
    UploadBegin,
    UploadBeginReply,
    UploadChunk,
    UploadedFile,
    UploadFinish,
)
from shared.ids import new_id
from shared.logs import log_event

log = logging.getLogger("parley.files")

NO_SUCH_FILE = "no such file"
NO_SUCH_UPLOAD = "no such upload"
DEFAULT_NAME = "file"
DEFAULT_CONTENT_TYPE = "application/octet-stream"
MAX_NAME_CHARS = 255
MAX_EXTENSION_CHARS = 16  # longer "extensions" are not kept when a name is shortened
SNIFF_BYTES = 8192  # what `filetype` looks at
_MEDIA_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$")
_ENDS = re.compile(r"^[\s.]+|[\s.]+$")


def sanitize_name(raw: str) -> str:
    """A display and download name: the last path component, no control characters, no
    leading or trailing dots or blanks, at most 255 characters (keeping the extension)."""
    name = re.split(r"[/\\]", raw)[-1]
    name = "".join(ch for ch in name if not unicodedata.category(ch).startswith("C"))
    name = _ENDS.sub("", name)
    if len(name) > MAX_NAME_CHARS:
        stem, ext = os.path.splitext(name)
        if ext and len(ext) <= MAX_EXTENSION_CHARS:
            name = _ENDS.sub("", stem[: MAX_NAME_CHARS - len(ext)]) + ext
        else:
            name = _ENDS.sub("", name[:MAX_NAME_CHARS])
    return name or DEFAULT_NAME


# What HTTP clients send by default for a raw body (curl --data-binary, HTML forms): these
# describe a form, never the file itself, so they count as no type given.
_FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})


def normalize_content_type(raw: str | None) -> str | None:
    """`Text/Plain; charset=utf-8` → `text/plain`; anything not shaped `type/subtype`, or a
    form type, → None."""
    if raw is None:
        return None
    media_type = raw.split(";", 1)[0].strip().lower()
    return media_type if _MEDIA_TYPE.match(media_type) and media_type not in _FORM_TYPES else None


def sniff_content_type(head: bytes) -> str | None:
    """The MIME type the first bytes show (magic numbers), or None if they are not recognised."""
    if not head:
        return None
    mime: str | None = filetype.guess_mime(head[:SNIFF_BYTES])
    return mime


def stored_content_type(head: bytes, declared: str | None) -> str:
    """What the bytes show wins over what was declared, except that a container the sniffer
    calls video (WebM, MP4, Ogg) declared as audio stays audio: the sniffer cannot tell the two
    apart, and a browser's voice recording is WebM with only an audio track."""
    sniffed = sniff_content_type(head)
    if sniffed is None:
        return declared or DEFAULT_CONTENT_TYPE
    if sniffed.startswith("video/") and declared is not None and declared.startswith("audio/"):
        return declared
    return sniffed


def _info(stored: StoredFile) -> UploadedFile:
    return UploadedFile(
        file_id=stored.file_id, name=stored.name, size=stored.size,
        content_type=stored.content_type, sha256=stored.sha256,
    )


def meta_of(stored: StoredFile) -> FileMeta:
    return FileMeta(
        file_id=stored.file_id, name=stored.name, size=stored.size, content_type=stored.content_type,
        sha256=stored.sha256, uploader=stored.uploader, uploaded_at=iso(stored.uploaded_at),
    )


def _too_large(max_bytes: int) -> ParleyError:
    return ParleyError(ErrorCode.TOO_LARGE, f"a file may have at most {max_bytes} bytes")


async def begin_upload(request: UploadBegin, uploader: str, store: FileStore) -> UploadBeginReply:
    file_id = new_id("f")
    await store.begin(
        file_id, uploader, sanitize_name(request.name), normalize_content_type(request.content_type), utc_now()
    )
    return UploadBeginReply(file_id=file_id)


async def write_chunk(request: UploadChunk, uploader: str, store: FileStore, max_bytes: int) -> None:
    """Store chunk `index`; every chunk but the last must be exactly CHUNK_SIZE bytes."""
    size = len(request.data)
    if size > CHUNK_SIZE:
        raise ParleyError.bad_request(f"a chunk has at most {CHUNK_SIZE} bytes")
    if request.index * CHUNK_SIZE + size > max_bytes:
        raise _too_large(max_bytes)
    # Touch first: the reaper then cannot take the upload away under the chunk being written.
    short = (request.index, size) if size < CHUNK_SIZE else None
    if not await store.touch(request.file_id, uploader, utc_now(), short):
        raise ParleyError.not_found(NO_SUCH_UPLOAD)
    await store.insert_chunk(request.file_id, request.index, request.data)


async def _complete(store: FileStore, upload: Upload, size: int) -> bool:
    """Chunks n = 0..k-1 all there and nothing else, k = ceil(size / CHUNK_SIZE); every one full
    but the last, whose length makes the total `size`."""
    k = math.ceil(size / CHUNK_SIZE)
    total, below = await store.chunk_counts(upload.file_id, k)
    if total != k or below != k:
        return False
    if k == 0:
        return True
    if any(n != k - 1 for n in upload.short_chunks):
        return False
    expected_last = size - (k - 1) * CHUNK_SIZE
    return upload.short_chunks.get(k - 1, CHUNK_SIZE) == expected_last


async def finish_upload(
    request: UploadFinish, uploader: str, store: FileStore, max_bytes: int
) -> UploadedFile:
    """Check the chunks, settle the content type, make the file readable. Idempotent."""
    stored = await store.stored(request.file_id)
    if stored is not None:  # finished already: a retried finish
        if stored.uploader != uploader:
            raise ParleyError.not_found(NO_SUCH_UPLOAD)
        if (stored.size, stored.sha256) != (request.size, request.sha256):
            raise ParleyError.conflict("this upload was finished with another size or hash")
        await store.drop_upload_record(request.file_id)
        return _info(stored)
    # Touching the record first keeps the reaper off it while we check and write.
    if not await store.touch(request.file_id, uploader, utc_now()):
        raise ParleyError.not_found(NO_SUCH_UPLOAD)
    upload = await store.upload(request.file_id)
    if upload is None:
        raise ParleyError.not_found(NO_SUCH_UPLOAD)
    if request.size > max_bytes:
        await store.discard(request.file_id)
        raise _too_large(max_bytes)
    if not await _complete(store, upload, request.size):
        await store.discard(request.file_id)
        raise ParleyError.bad_request(f"the upload's chunks do not add up to {request.size} bytes")
    head = await store.chunk_data(request.file_id, 0) if request.size else b""
    content_type = stored_content_type(head or b"", upload.content_type)
    stored = await store.finish(upload, request.size, request.sha256, content_type, utc_now())
    log_event(log, "file.stored", file_id=stored.file_id, size=stored.size, content_type=stored.content_type)
    return _info(stored)


async def abort_upload(file_id: str, uploader: str, store: FileStore) -> None:
    """Drop an unfinished upload of the caller's; nothing to do if it is gone already."""
    upload = await store.upload(file_id)
    if upload is not None and upload.uploader == uploader:
        await store.discard(file_id)


async def readable(file_id: str, user: str, store: FileStore, access: Access) -> StoredFile:
    """The file if `user` may download it; otherwise the same answer as no file."""
    stored = await store.stored(file_id)
    if stored is None or (stored.uploader != user and not await access.allowed(file_id, user)):
        raise ParleyError.not_found(NO_SUCH_FILE)
    return stored


async def open_file(file_id: str, user: str, store: FileStore, access: Access) -> FileMeta:
    """The file's metadata if `user` may download it; otherwise the same answer as no file."""
    return meta_of(await readable(file_id, user, store, access))


async def files_info(request: FileRefs, store: FileStore) -> FilesInfo:
    """Internal (no access check): what chat uses to check the file ids of a batch of messages,
    in one read; ids of no file are left out."""
    found = await store.stored_many(list(dict.fromkeys(request.file_ids)))
    return FilesInfo(files=[meta_of(stored) for stored in found.values()])


async def read_range(request: FileRead, store: FileStore) -> FileReadReply:
    """Bytes [offset, offset + length) of a finished file, cut short at its end."""
    stored = await store.stored(request.file_id)
    if stored is None:
        raise ParleyError.not_found(NO_SUCH_FILE)
    if request.offset > stored.size:
        raise ParleyError.bad_request(f"offset {request.offset} is beyond the file's {stored.size} bytes")
    raw = await store.read(request.file_id, request.offset, request.length)
    if raw is None:
        raise ParleyError.not_found(NO_SUCH_FILE)
    # Base64Bytes decodes what it is given, so it is given base64.
    return FileReadReply(data=base64.b64encode(raw))


async def reap_abandoned(store: FileStore, idle_seconds: float) -> int:
    """Delete the uploads that sent nothing for `idle_seconds`, chunks and all; how many."""
    before = utc_now() - timedelta(seconds=idle_seconds)
    reaped = 0
    for file_id in await store.idle_uploads(before):
        upload = await store.claim_idle(file_id, before)
        if upload is None:  # it moved again, or another replica took it
            continue
        await store.delete_chunks(file_id)
        reaped += 1
        log_event(
            log, "upload.abandoned", file_id=file_id, uploader=upload.uploader,
            idle_since=iso(upload.last_chunk_at),
        )
    return reaped
