"""services/files/domain/transfers.py: uploads in chunks, finishing, access and reads, on a real store."""
import asyncio
import base64
import hashlib
import os
from datetime import timedelta

import pytest
from gridfs.asynchronous import AsyncGridFSBucket

from services.files.domain import transfers as domain
from services.files.storage.file_store import MongoFileStore
from shared.contracts.base import utc_now
from shared.contracts.errors import ErrorCode, ParleyError
from shared.contracts.files import CHUNK_SIZE, FileRead, FileRefs, UploadBegin, UploadChunk, UploadFinish

ALICE, BOB = "u_alice", "u_bob"
MAX = 16 * CHUNK_SIZE
IDLE_SECONDS = 600  # an upload that sent nothing this long is abandoned (test_reap_abandoned)
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"


class Grants:
    """The Access port: chat's answer, fixed per test."""

    def __init__(self, *allowed: tuple[str, str]):
        self.allowed_pairs = set(allowed)
        self.asked: list[tuple[str, str]] = []

    async def allowed(self, file_id: str, user_id: str) -> bool:
        self.asked.append((file_id, user_id))
        return (file_id, user_id) in self.allowed_pairs


@pytest.fixture
async def store(db) -> MongoFileStore:
    s = MongoFileStore(db)
    await s.ensure_indexes()
    return s


def chunks_of(data: bytes) -> list[bytes]:
    return [data[i : i + CHUNK_SIZE] for i in range(0, len(data), CHUNK_SIZE)]


async def begin(store, name="f.bin", content_type=None, uploader=ALICE) -> str:
    reply = await domain.begin_upload(UploadBegin(name=name, content_type=content_type), uploader, store)
    return reply.file_id


async def send_chunk(store, file_id, index, data, uploader=ALICE, max_bytes=MAX):
    await domain.write_chunk(
        UploadChunk(file_id=file_id, index=index, data=base64.b64encode(data)), uploader, store, max_bytes
    )


async def finish(store, file_id, data, uploader=ALICE, max_bytes=MAX):
    request = UploadFinish(file_id=file_id, size=len(data), sha256=hashlib.sha256(data).hexdigest())
    return await domain.finish_upload(request, uploader, store, max_bytes)


async def upload(store, data, name="f.bin", content_type=None, uploader=ALICE):
    file_id = await begin(store, name, content_type, uploader)
    for i, chunk in enumerate(chunks_of(data)):
        await send_chunk(store, file_id, i, chunk, uploader)
    return await finish(store, file_id, data, uploader)


async def read(store, file_id, offset, length) -> bytes:
    return (await domain.read_range(FileRead(file_id=file_id, offset=offset, length=length), store)).data


async def read_all(store, file_id, size) -> bytes:
    parts, offset = [], 0
    while offset < size:
        part = await read(store, file_id, offset, 4 * CHUNK_SIZE)
        assert part
        parts.append(part)
        offset += len(part)
    return b"".join(parts)


@pytest.mark.parametrize(
    "size", [0, 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * 1024 * 1024 + 12345], ids=["empty", "1", "chunk", "chunk+1", "3MiB"]
)
async def test_round_trip(store, db, size):
    data = os.urandom(size)
    info = await upload(store, data)
    sha = hashlib.sha256(data).hexdigest()
    assert (info.size, info.sha256, info.name) == (size, sha, "f.bin")
    assert await read_all(store, info.file_id, size) == data
    # Ranges: inside one chunk, across a boundary, past the end, at the end.
    if size:
        assert await read(store, info.file_id, 0, 1) == data[:1]
        assert await read(store, info.file_id, size - 1, 10) == data[-1:]
    if size > CHUNK_SIZE:
        assert await read(store, info.file_id, CHUNK_SIZE - 3, 7) == data[CHUNK_SIZE - 3 : CHUNK_SIZE + 4]
    assert await read(store, info.file_id, size, 5) == b""
    # A plain GridFS reader sees a normal file.
    stream = await AsyncGridFSBucket(db, "files").open_download_stream(info.file_id)
    assert stream.length == size
    assert stream.metadata["sha256"] == sha
    assert await stream.read() == data
    await stream.close()
    assert await db["uploads"].count_documents({}) == 0


async def test_empty_file_type(store):
    assert (await upload(store, b"", content_type="text/plain")).content_type == "text/plain"
    assert (await upload(store, b"")).content_type == "application/octet-stream"


async def test_finish_twice_is_idempotent(store):
    data = os.urandom(CHUNK_SIZE + 10)
    info = await upload(store, data)
    assert await finish(store, info.file_id, data) == info
    with pytest.raises(ParleyError) as exc:
        await finish(store, info.file_id, data, uploader=BOB)
    assert exc.value.code == ErrorCode.NOT_FOUND


async def test_read_beyond_size_is_bad_request(store):
    info = await upload(store, b"hello")
    with pytest.raises(ParleyError) as exc:
        await read(store, info.file_id, 6, 1)
    assert exc.value.code == ErrorCode.BAD_REQUEST
    with pytest.raises(ParleyError) as exc:
        await read(store, "f_nope", 0, 1)
    assert exc.value.code == ErrorCode.NOT_FOUND


async def test_retried_chunk_is_harmless(store):
    data = os.urandom(2 * CHUNK_SIZE + 100)
    file_id = await begin(store)
    parts = chunks_of(data)
    await send_chunk(store, file_id, 0, parts[0])
    await send_chunk(store, file_id, 0, parts[0])
    await asyncio.gather(*(send_chunk(store, file_id, i, parts[i]) for i in (2, 1, 2, 1)))
    info = await finish(store, file_id, data)
    assert await read_all(store, info.file_id, len(data)) == data


async def test_missing_chunk_fails_and_keeps_nothing(store, db):
    data = os.urandom(3 * CHUNK_SIZE)
    file_id = await begin(store)
    parts = chunks_of(data)
    for i in (0, 2):
        await send_chunk(store, file_id, i, parts[i])
    with pytest.raises(ParleyError) as exc:
        await finish(store, file_id, data)
    assert exc.value.code == ErrorCode.BAD_REQUEST
    assert await db["files.chunks"].count_documents({"files_id": file_id}) == 0
    assert await db["uploads"].count_documents({}) == 0
    with pytest.raises(ParleyError) as exc:
        await read(store, file_id, 0, 1)
    assert exc.value.code == ErrorCode.NOT_FOUND


@pytest.mark.parametrize(
    "case", ["short_middle", "wrong_size", "extra_chunk"],
)
async def test_chunks_not_adding_up(store, db, case):
    data = os.urandom(2 * CHUNK_SIZE + 5)
    file_id = await begin(store)
    parts = chunks_of(data)
    if case == "short_middle":
        parts[1] = parts[1][:-1]
    for i, part in enumerate(parts):
        await send_chunk(store, file_id, i, part)
    if case == "extra_chunk":
        await send_chunk(store, file_id, 5, b"x")
    claimed = data + b"!" if case == "wrong_size" else data[:-1] if case == "short_middle" else data
    with pytest.raises(ParleyError) as exc:
        await finish(store, file_id, claimed)
    assert exc.value.code == ErrorCode.BAD_REQUEST
    assert await db["files.chunks"].count_documents({}) == 0
    assert await db["files.files"].count_documents({}) == 0


async def test_oversized_chunk_is_bad_request(store):
    file_id = await begin(store)
    with pytest.raises(ParleyError) as exc:
        await send_chunk(store, file_id, 0, b"x" * (CHUNK_SIZE + 1))
    assert exc.value.code == ErrorCode.BAD_REQUEST


async def test_abort_deletes_chunks(store, db):
    file_id = await begin(store)
    await send_chunk(store, file_id, 0, os.urandom(CHUNK_SIZE))
    await send_chunk(store, file_id, 1, b"tail")
    await domain.abort_upload(file_id, BOB, store)  # not Bob's: nothing happens
    assert await db["files.chunks"].count_documents({"files_id": file_id}) == 2
    await domain.abort_upload(file_id, ALICE, store)
    assert await db["files.chunks"].count_documents({"files_id": file_id}) == 0
    assert await db["uploads"].count_documents({"_id": file_id}) == 0
    await domain.abort_upload(file_id, ALICE, store)  # gone already: fine
    with pytest.raises(ParleyError) as exc:
        await send_chunk(store, file_id, 2, b"late")
    assert exc.value.code == ErrorCode.NOT_FOUND


async def test_someone_elses_upload_is_not_found(store, db):
    file_id = await begin(store)
    for attempt in (send_chunk(store, file_id, 0, b"x", uploader=BOB), finish(store, file_id, b"", uploader=BOB)):
        with pytest.raises(ParleyError) as exc:
            await attempt
        assert exc.value.code == ErrorCode.NOT_FOUND
    assert await db["files.chunks"].count_documents({}) == 0
    await send_chunk(store, file_id, 0, b"x")
    assert (await finish(store, file_id, b"x")).size == 1


async def test_over_the_limit_is_too_large(store):
    file_id = await begin(store)
    await send_chunk(store, file_id, 0, os.urandom(CHUNK_SIZE), max_bytes=CHUNK_SIZE + 10)
    with pytest.raises(ParleyError) as exc:
        await send_chunk(store, file_id, 1, os.urandom(11), max_bytes=CHUNK_SIZE + 10)
    assert exc.value.code == ErrorCode.TOO_LARGE
    await send_chunk(store, file_id, 1, os.urandom(10), max_bytes=CHUNK_SIZE + 10)
    with pytest.raises(ParleyError) as exc:
        await finish(store, file_id, os.urandom(CHUNK_SIZE + 11), max_bytes=CHUNK_SIZE + 10)
    assert exc.value.code == ErrorCode.TOO_LARGE


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\report.doc", "report.doc"),
        ("a\x00b.txt", "ab.txt"),
        ("  ..  ", "file"),
        ("", "file"),
        ("dir/", "file"),
        (" .hidden. ", "hidden"),
        ("evil\u202etxt.exe", "eviltxt.exe"),
        ("résumé 📄.pdf", "résumé 📄.pdf"),
        ("x" * 300 + ".pdf", "x" * 251 + ".pdf"),
    ],
)
async def test_name_sanitising(store, raw, expected):
    info = await upload(store, b"data", name=raw)
    assert info.name == expected
    assert len(info.name) <= 255


def test_long_name_without_extension():
    assert domain.sanitize_name("y" * 300) == "y" * 255
    assert domain.sanitize_name("z" * 300 + "." + "e" * 40) == ("z" * 300 + "." + "e" * 40)[:255]


# EBML header with DocType "webm": what MediaRecorder writes first.
WEBM = bytes.fromhex("1a45dfa3") + b"\x9f\x42\x86\x81\x01\x42\x82\x84webm"


@pytest.mark.parametrize(
    "data, declared, expected",
    [
        (PNG + os.urandom(100), "text/plain", "image/png"),
        (b"just some words\n", "Text/Plain; charset=utf-8", "text/plain"),
        (b"just some words\n", None, "application/octet-stream"),
        (b"just some words\n", "not a type", "application/octet-stream"),
        (b"%PDF-1.7\n" + os.urandom(50), None, "application/pdf"),
        # A browser's voice recording: WebM (which the sniffer calls video) declared as audio.
        (WEBM + os.urandom(100), "audio/webm", "audio/webm"),
        (WEBM + os.urandom(100), None, "video/webm"),
        (WEBM + os.urandom(100), "text/plain", "video/webm"),
    ],
)
async def test_content_type(store, data, declared, expected):
    assert (await upload(store, data, content_type=declared)).content_type == expected


async def test_open_file_access(store):
    info = await upload(store, b"secret")
    nobody = Grants()
    meta = await domain.open_file(info.file_id, ALICE, store, nobody)
    assert (meta.file_id, meta.uploader, meta.size, meta.name) == (info.file_id, ALICE, 6, "f.bin")
    assert meta.uploaded_at.endswith("Z")
    assert nobody.asked == []  # the uploader needs no one's word

    with pytest.raises(ParleyError) as denied:
        await domain.open_file(info.file_id, BOB, store, nobody)
    with pytest.raises(ParleyError) as missing:
        await domain.open_file("f_missing", BOB, store, nobody)
    assert denied.value.code == missing.value.code == ErrorCode.NOT_FOUND
    assert denied.value.message == missing.value.message

    assert (await domain.open_file(info.file_id, BOB, store, Grants((info.file_id, BOB)))).file_id == info.file_id


async def test_unfinished_upload_is_not_a_file(store):
    file_id = await begin(store)
    await send_chunk(store, file_id, 0, b"abc")
    assert (await domain.files_info(FileRefs(file_ids=[file_id]), store)).files == []
    with pytest.raises(ParleyError) as exc:
        await domain.open_file(file_id, ALICE, store, Grants())
    assert exc.value.code == ErrorCode.NOT_FOUND


async def test_files_info_of_a_batch_in_one_read(store):
    """What chat asks for a batch of messages: the files that exist, none twice, the rest left out."""
    a, b = await upload(store, b"abc", name="a.txt"), await upload(store, b"de", name="b.txt")
    found = await domain.files_info(FileRefs(file_ids=[a.file_id, "f_none", b.file_id, a.file_id]), store)
    assert sorted((m.name, m.size, m.sha256) for m in found.files) == [("a.txt", 3, a.sha256), ("b.txt", 2, b.sha256)]


async def test_reap_abandoned(store, db):
    """Both uploads last moved an hour ago, then one sends a chunk: only the other is reaped.
    (Sleeping 0.6 s against a 0.4 s idle time was a bet that the fresh one's two writes and the
    reaper's read take under 0.4 s.)"""
    idle = await begin(store)
    await send_chunk(store, idle, 0, os.urandom(CHUNK_SIZE))
    fresh = await begin(store)
    an_hour_ago = utc_now() - timedelta(hours=1)
    await db["uploads"].update_many({}, {"$set": {"started_at": an_hour_ago, "last_chunk_at": an_hour_ago}})
    await send_chunk(store, fresh, 0, b"new")  # a chunk marks its upload active
    assert await domain.reap_abandoned(store, IDLE_SECONDS) == 1
    assert await db["files.chunks"].count_documents({"files_id": idle}) == 0
    assert await db["uploads"].count_documents({"_id": idle}) == 0
    assert await db["files.chunks"].count_documents({"files_id": fresh}) == 1
    assert (await finish(store, fresh, b"new")).size == 3
    assert await domain.reap_abandoned(store, IDLE_SECONDS) == 0


@pytest.mark.parametrize("declared", ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x"])
def test_a_form_type_declared_for_a_raw_body_counts_as_none(declared):
    """curl --data-binary declares a form type by default; it says nothing about the file."""
    from services.files.domain.transfers import normalize_content_type

    assert normalize_content_type(declared) is None
    assert normalize_content_type("Image/PNG") == "image/png"
