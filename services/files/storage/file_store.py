"""File bytes in GridFS (bucket "files": `files.files`, `files.chunks`) and the `uploads` in
progress, owned by the files service alone.

Chunks are written one by one as standard GridFS chunk documents `{files_id, n, data}`, by
whichever replica receives each `files.upload.chunk`, and the `files.files` document is written
last, by `finish`, once every chunk is known to be there. Why not `AsyncGridIn`
(`bucket.open_upload_stream`): PyMongo's grid-in buffers up to 48 MiB of chunks before it
inserts them (`_UPLOAD_BUFFER_SIZE = MAX_MESSAGE_SIZE` in `gridfs/grid_file_shared.py`), and it
lives in one process, whereas a 1 GiB upload must raise a replica's memory by a few MiB only
and survive the replica that began it. Whatever is written here is a plain GridFS file that
`AsyncGridFSBucket.open_download_stream` and any GridFS tool can read (the tests check this);
the service itself reads ranges straight from the chunk documents (see `read`).

Images made here (avatars, stickers, thumbnails: services/files/domain/images.py) are GridFS
files of the same bucket, written whole by `put`; their metadata adds `kind` and `source` (the
upload they were made from).

`uploads`: `{_id: file_id, uploader, name, content_type (declared), started_at, last_chunk_at,
short_chunks: [[n, length], ...]}`. `short_chunks` records every chunk shorter than CHUNK_SIZE
as it is written, so `finish` can tell that only the last one is short without reading back
(or `$binarySize`-ing) a gigabyte of chunks.
"""
from contextlib import suppress
from datetime import datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from services.files.domain.ports import StoredFile, Upload
from shared.contracts.files import CHUNK_SIZE
from shared.stores import Database, Document

BUCKET = "files"


def _stored(doc: Document) -> StoredFile:
    meta = doc.get("metadata") or {}
    return StoredFile(
        file_id=doc["_id"],
        name=doc["filename"],
        size=doc["length"],
        content_type=meta["content_type"],
        sha256=meta["sha256"],
        uploader=meta["uploader"],
        uploaded_at=doc["uploadDate"],
        kind=meta.get("kind"),
    )


def _upload(doc: Document) -> Upload:
    short: dict[int, int] = {}
    for n, length in doc.get("short_chunks", []):
        # Two different lengths for one chunk cannot both be right: remember it as impossible.
        short[n] = length if short.get(n, length) == length else -1
    return Upload(
        file_id=doc["_id"],
        uploader=doc["uploader"],
        name=doc["name"],
        content_type=doc.get("content_type"),
        started_at=doc["started_at"],
        last_chunk_at=doc.get("last_chunk_at") or doc["started_at"],
        short_chunks=short,
    )


class MongoFileStore:
    """The `FileStore` port (services/files/domain/ports.py): documents in, records out."""

    def __init__(self, db: Database):
        self.files = db[f"{BUCKET}.files"]
        self.chunks = db[f"{BUCKET}.chunks"]
        self.uploads = db["uploads"]

    async def ensure_indexes(self) -> None:
        # The indexes GridFS drivers create (the chunk one is what makes a retried chunk a no-op).
        await self.chunks.create_index([("files_id", ASCENDING), ("n", ASCENDING)], unique=True)
        await self.files.create_index([("filename", ASCENDING), ("uploadDate", ASCENDING)])
        # The reaper looks for idle uploads.
        await self.uploads.create_index([("last_chunk_at", ASCENDING)])

    # uploads in progress

    async def begin(
        self, file_id: str, uploader: str, name: str, content_type: str | None, now: datetime
    ) -> None:
        await self.uploads.insert_one(
            {
                "_id": file_id,
                "uploader": uploader,
                "name": name,
                "content_type": content_type,
                "started_at": now,
                "last_chunk_at": now,
                "short_chunks": [],
            }
        )

    async def upload(self, file_id: str) -> Upload | None:
        doc = await self.uploads.find_one({"_id": file_id})
        return _upload(doc) if doc else None

    async def touch(self, file_id: str, uploader: str, now: datetime, short_chunk: tuple[int, int] | None = None) -> bool:
        """Mark the caller's upload active (so the reaper leaves it alone); False if there is none."""
        update: dict[str, Any] = {"$set": {"last_chunk_at": now}}
        if short_chunk is not None:
            update["$addToSet"] = {"short_chunks": list(short_chunk)}
        result = await self.uploads.update_one({"_id": file_id, "uploader": uploader}, update)
        return result.matched_count == 1

    async def insert_chunk(self, file_id: str, n: int, data: bytes) -> None:
        """Write one GridFS chunk; the same chunk again (a retried command) is ignored."""
        with suppress(DuplicateKeyError):
            await self.chunks.insert_one({"files_id": file_id, "n": n, "data": data})

    async def chunk_counts(self, file_id: str, below: int) -> tuple[int, int]:
        """(all chunks of the file, those with n < below)."""
        total = await self.chunks.count_documents({"files_id": file_id})
        low = await self.chunks.count_documents({"files_id": file_id, "n": {"$lt": below}})
        return total, low

    async def chunk_data(self, file_id: str, n: int) -> bytes | None:
        doc = await self.chunks.find_one({"files_id": file_id, "n": n})
        return bytes(doc["data"]) if doc else None

    async def discard(self, file_id: str) -> None:
        """Forget an upload that will not be finished: its chunks, then its record."""
        await self.chunks.delete_many({"files_id": file_id})
        await self.uploads.delete_one({"_id": file_id})

    async def idle_uploads(self, before: datetime) -> list[str]:
        cursor = self.uploads.find({"last_chunk_at": {"$lt": before}}, {"_id": 1})
        return [doc["_id"] async for doc in cursor]

    async def claim_idle(self, file_id: str, before: datetime) -> Upload | None:
        """Remove the upload record if it is still idle (one reaper wins; an active upload is spared)."""
        doc = await self.uploads.find_one_and_delete({"_id": file_id, "last_chunk_at": {"$lt": before}})
        return _upload(doc) if doc else None

    async def delete_chunks(self, file_id: str) -> None:
        await self.chunks.delete_many({"files_id": file_id})

    # finished files

    async def finish(
        self, upload: Upload, size: int, sha256: str, content_type: str, now: datetime
    ) -> StoredFile:
        """Write the `files.files` document (making the file readable) and drop the upload record.

        A repeated finish finds the document already there and returns it.
        """
        doc = {
            "_id": upload.file_id,
            "length": size,
            "chunkSize": CHUNK_SIZE,
            "uploadDate": now,
            "filename": upload.name,
            "metadata": {"uploader": upload.uploader, "sha256": sha256, "content_type": content_type},
        }
        try:
            await self.files.insert_one(doc)
        except DuplicateKeyError:
            existing = await self.files.find_one({"_id": upload.file_id})
            assert existing is not None
            doc = existing
        await self.uploads.delete_one({"_id": upload.file_id})
        return _stored(doc)

    async def stored(self, file_id: str) -> StoredFile | None:
        doc = await self.files.find_one({"_id": file_id})
        return _stored(doc) if doc else None

    async def stored_many(self, file_ids: list[str]) -> dict[str, StoredFile]:
        return {doc["_id"]: _stored(doc) async for doc in self.files.find({"_id": {"$in": file_ids}})}

    async def drop_upload_record(self, file_id: str) -> None:
        await self.uploads.delete_one({"_id": file_id})

    async def read(self, file_id: str, offset: int, length: int) -> bytes | None:
        """Up to `length` bytes from `offset` (fewer at the end), or None if there is no such file.

        Reads exactly the chunk documents the range covers. `AsyncGridOut` would be simpler, but
        its chunk cursor has no limit: every seek-and-read fetched a first batch of up to 101
        chunks (~25 MiB), which made a download of ranged reads crawl (0.6 MiB/s measured) and
        swing the service's memory by ~60 MiB.
        """
        doc = await self.files.find_one({"_id": file_id}, {"length": 1, "chunkSize": 1})
        if doc is None:
            return None
        end = min(offset + length, doc["length"])
        if end <= offset:
            return b""
        size = doc["chunkSize"]
        first, last = offset // size, (end - 1) // size
        cursor = self.chunks.find({"files_id": file_id, "n": {"$gte": first, "$lte": last}}, {"data": 1, "n": 1})
        pieces = {c["n"]: bytes(c["data"]) async for c in cursor.sort("n", 1)}
        if len(pieces) != last - first + 1:
            raise RuntimeError(f"file {file_id} is missing chunks {first}..{last}")  # corrupt: let it fail loudly
        joined = b"".join(pieces[n] for n in range(first, last + 1))
        start = offset - first * size
        return joined[start : start + (end - offset)]

    async def put(self, made: StoredFile, data: bytes, source: str) -> StoredFile:
        """Chunks first, the `files.files` document last (as `finish`): a file is readable only
        once whole. A second writer of the same id (a thumbnail made twice at once: the same
        bytes) finds its chunks there already and the first document wins."""
        for n, start in enumerate(range(0, len(data), CHUNK_SIZE)):
            await self.insert_chunk(made.file_id, n, data[start : start + CHUNK_SIZE])
        doc = {
            "_id": made.file_id,
            "length": len(data),
            "chunkSize": CHUNK_SIZE,
            "uploadDate": made.uploaded_at,
            "filename": made.name,
            "metadata": {
                "uploader": made.uploader, "sha256": made.sha256, "content_type": made.content_type,
                "kind": made.kind, "source": source,
            },
        }
        try:
            await self.files.insert_one(doc)
        except DuplicateKeyError:
            existing = await self.files.find_one({"_id": made.file_id})
            assert existing is not None
            doc = existing
        return _stored(doc)
