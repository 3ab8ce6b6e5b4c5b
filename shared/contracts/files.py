"""File transfer: the HTTP replies of PROTOCOL.md's "Files" and the internal commands by which
the gateway streams bytes to and from the files service over RabbitMQ.

Upload: `files.upload.begin` registers an upload and names its file id; the gateway then sends
the bytes as numbered `files.upload.chunk`s of CHUNK_SIZE (the last one shorter), a few in
flight at a time, and closes with `files.upload.finish` (or `files.upload.abort`). Each chunk
is one GridFS chunk document, written by whichever files replica takes it, so no replica holds
an upload's bytes and a replica dying mid-upload loses nothing that was acknowledged.
Download: `files.open` checks access and returns the metadata; `files.read` returns a byte range.
"""
from typing import Annotated

from pydantic import Base64Bytes, Field, StringConstraints

from shared.contracts.base import Contract
from shared.contracts.chat import Id

# Bytes per chunk: GridFS's default chunk size, so one command writes one chunk document.
CHUNK_SIZE = 255 * 1024
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class UploadedFile(Contract):
    """`201` reply of `POST /files`."""

    file_id: str
    name: str
    size: int
    content_type: str
    sha256: Sha256


class FileMeta(Contract):
    """Internal: what the files service knows of a stored file."""

    file_id: str
    name: str
    size: int
    content_type: str
    sha256: Sha256
    uploader: str
    uploaded_at: str


class UploadBegin(Contract):
    name: Annotated[str, StringConstraints(max_length=1024)]
    content_type: Annotated[str, StringConstraints(max_length=255)] | None = None


class UploadBeginReply(Contract):
    file_id: str


class UploadChunk(Contract):
    file_id: Id
    index: int = Field(ge=0)
    data: Base64Bytes  # sent base64-encoded; the handler gets the raw bytes


class UploadFinish(Contract):
    """The gateway saw every byte in order: it counts them and hashes them on the way."""

    file_id: Id
    size: int = Field(ge=0)
    sha256: Sha256


class FileRef(Contract):
    file_id: Id


class FileRefs(Contract):
    """Internal: the files of a batch of messages (files.info)."""

    file_ids: list[Id] = Field(max_length=1024)


class FilesInfo(Contract):
    """Internal: those of the files asked for that exist."""

    files: list[FileMeta]


class FileRead(Contract):
    file_id: Id
    offset: int = Field(ge=0)
    length: int = Field(ge=1, le=4 * CHUNK_SIZE)


class FileReadReply(Contract):
    # Base64Bytes *decodes* what it is given: build it from base64 (`b64encode(raw)`), not raw bytes.
    data: Base64Bytes


class FileAccess(Contract):
    """Internal, files → chat: may `user_id` see a file (sent in one of their conversations)?"""

    file_id: str
    user_id: str


class FileAccessReply(Contract):
    allowed: bool
