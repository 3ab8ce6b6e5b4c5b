"""What files' domain logic needs from the outside world: the records it reads, and the stores
it reads them from, as protocols. storage/file_store.py (MongoDB: GridFS and `uploads`),
storage/stickers.py and services/files/access.py (chat, over RPC) implement them; the unit
tests use the real stores."""
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class StoredFile:
    """A finished upload: readable, with what the gateway computed of it on the way."""

    file_id: str
    name: str
    size: int
    content_type: str
    sha256: str
    uploader: str
    uploaded_at: datetime
    kind: str | None = None  # None: an upload; "avatar", "sticker", "thumbnail": made here (images.py)


@dataclass(frozen=True)
class Sticker:
    """One of a user's own stickers: an image made from one of their uploads."""

    sticker_id: str  # the image's id
    owner: str
    url: str
    added_at: datetime


@dataclass(frozen=True)
class Upload:
    """An upload in progress: its chunks arrive one by one, on any replica."""

    file_id: str
    uploader: str
    name: str
    content_type: str | None
    started_at: datetime
    last_chunk_at: datetime
    short_chunks: dict[int, int]  # n → length, for chunks shorter than CHUNK_SIZE (-1: two lengths seen)


class FileStore(Protocol):
    """Chunks, upload records and finished files. Retried writes are no-ops, so every command
    may be redelivered."""

    async def begin(
        self, file_id: str, uploader: str, name: str, content_type: str | None, now: datetime
    ) -> None: ...

    async def upload(self, file_id: str) -> Upload | None: ...

    async def touch(
        self, file_id: str, uploader: str, now: datetime, short_chunk: tuple[int, int] | None = None
    ) -> bool: ...

    async def insert_chunk(self, file_id: str, n: int, data: bytes) -> None: ...

    async def chunk_counts(self, file_id: str, below: int) -> tuple[int, int]: ...

    async def chunk_data(self, file_id: str, n: int) -> bytes | None: ...

    async def discard(self, file_id: str) -> None: ...

    async def idle_uploads(self, before: datetime) -> list[str]: ...

    async def claim_idle(self, file_id: str, before: datetime) -> Upload | None: ...

    async def delete_chunks(self, file_id: str) -> None: ...

    async def finish(self, upload: Upload, size: int, sha256: str, content_type: str, now: datetime) -> StoredFile: ...

    async def stored(self, file_id: str) -> StoredFile | None: ...

    async def stored_many(self, file_ids: list[str]) -> dict[str, StoredFile]:
        """Those of the files that exist, by id: one read for a batch's attachments."""
        ...

    async def drop_upload_record(self, file_id: str) -> None: ...

    async def read(self, file_id: str, offset: int, length: int) -> bytes | None: ...

    async def put(self, made: StoredFile, data: bytes, source: str) -> StoredFile:
        """Store bytes made here (an image) as a finished file in one go. A file with the same
        id already there (a thumbnail made twice at once) is kept and returned."""


class StickerStore(Protocol):
    async def add(self, sticker: Sticker) -> None: ...

    async def count(self, owner: str) -> int: ...

    async def owned(self, owner: str) -> list[Sticker]:
        """Oldest first."""

    async def remove(self, sticker_id: str, owner: str) -> bool:
        """False when `owner` has no such sticker."""


class Access(Protocol):
    """May `user_id` see a file they did not upload (it was sent in one of their conversations)?"""

    async def allowed(self, file_id: str, user_id: str) -> bool: ...
