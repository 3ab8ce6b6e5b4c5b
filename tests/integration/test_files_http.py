"""Files over HTTP (PROTOCOL.md "Files"), end to end: the gateway streams the bytes to the files
service chunk by chunk over RabbitMQ, and back; GridFS in the test's MongoDB holds them.
"""
import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from shared.contracts.files import CHUNK_SIZE
from deploy.local.devstack import Stack, free_port
from shared.settings import Settings
from tests.support.client import Client, new_user
from tests.support.infra import wait_until_ready
from tests.support.waiting import eventually

MiB = 1024 * 1024
LIMITED_MAX = 1 * MiB


def auth(token: str | None, **extra: str) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return {**headers, **extra}


def http(port: int) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60)


async def upload(
    port: int, token: str | None, content: Any, name: str | None = None, content_type: str | None = None
) -> httpx.Response:
    headers = auth(token)
    if name is not None:
        headers["X-File-Name"] = name
    if content_type is not None:
        headers["Content-Type"] = content_type
    async with http(port) as client:
        return await client.post("/files", content=content, headers=headers)


async def download(port: int, token: str | None, file_id: str, **headers: str) -> httpx.Response:
    async with http(port) as client:
        return await client.get(f"/files/{file_id}", headers=auth(token, **headers))


async def generated(data: bytes, piece: int = 64 * 1024) -> AsyncIterator[bytes]:
    """The bytes as a stream, so httpx sends them chunked, without a Content-Length."""
    for i in range(0, len(data), piece):
        yield data[i : i + piece]
        await asyncio.sleep(0)


async def raw_request(port: int, head: str, body: bytes = b"") -> asyncio.StreamWriter:
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head.encode() + body)
    await writer.drain()
    return writer


@pytest.fixture
async def alice(port: int) -> AsyncIterator[Client]:
    client = await new_user(port)
    yield client
    await client.close()


@pytest.fixture
async def mongo(settings: Settings) -> AsyncIterator[Any]:
    client: AsyncMongoClient = AsyncMongoClient(settings.mongo_url)
    yield client[settings.mongo_db]
    await client.close()


# --- round trips ---------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [0, 1, CHUNK_SIZE, CHUNK_SIZE + 1])
async def test_small_round_trips_keep_every_byte(port: int, alice: Client, size: int) -> None:
    data = (b"parley test bytes\n" + os.urandom(size))[:size]  # no magic number the service would sniff
    reply = await upload(port, alice.token, data, name="blob.bin", content_type="application/x-test")
    assert reply.status_code == 201, reply.text
    info = reply.json()
    assert set(info) == {"file_id", "name", "size", "content_type", "sha256"}
    assert info["size"] == size
    assert info["name"] == "blob.bin"
    assert info["content_type"] == "application/x-test"
    assert info["sha256"] == hashlib.sha256(data).hexdigest()

    got = await download(port, alice.token, info["file_id"])
    assert got.status_code == 200
    assert got.content == data
    assert got.headers["content-length"] == str(size)
    assert got.headers["content-type"].startswith("application/x-test")
    assert got.headers["etag"] == f'"{info["sha256"]}"'
    assert got.headers["accept-ranges"] == "bytes"
    assert got.headers["content-disposition"] == "attachment; filename=\"blob.bin\"; filename*=UTF-8''blob.bin"


async def test_a_streamed_upload_of_several_mib_without_content_length(port: int, alice: Client) -> None:
    data = os.urandom(5 * MiB + 12345)
    reply = await upload(port, alice.token, generated(data), name="big.bin")
    assert reply.status_code == 201, reply.text
    info = reply.json()
    assert info["size"] == len(data)
    assert info["sha256"] == hashlib.sha256(data).hexdigest()

    # Streamed back, and compared as it comes.
    digest, count = hashlib.sha256(), 0
    async with (
        http(port) as client,
        client.stream("GET", f"/files/{info['file_id']}", headers=auth(alice.token)) as got,
    ):
        assert got.status_code == 200
        assert got.headers["content-length"] == str(len(data))
        async for piece in got.aiter_bytes():
            digest.update(piece)
            count += len(piece)
    assert count == len(data)
    assert digest.hexdigest() == info["sha256"]


async def test_a_non_ascii_name_is_kept_and_offered_safely(port: int, alice: Client) -> None:
    reply = await upload(port, alice.token, b"%PDF-1.4 hi", name="%E2%9C%93%20r%C3%A9sum%C3%A9.pdf",
                         content_type="application/pdf")
    assert reply.status_code == 201, reply.text
    info = reply.json()
    assert info["name"] == "✓ résumé.pdf"
    got = await download(port, alice.token, info["file_id"])
    assert got.status_code == 200
    disposition = got.headers["content-disposition"]
    assert disposition == "attachment; filename=\"_ r_sum_.pdf\"; filename*=UTF-8''%E2%9C%93%20r%C3%A9sum%C3%A9.pdf"


async def test_quotes_in_a_name_stay_inside_the_header_and_media_is_inline(port: int, alice: Client) -> None:
    reply = await upload(port, alice.token, b"\x89PNG\r\n\x1a\n", name="say%20%22hi%22%3B%20x%3D1.png",
                         content_type="image/png")
    assert reply.status_code == 201, reply.text
    assert reply.json()["name"] == 'say "hi"; x=1.png'
    got = await download(port, alice.token, reply.json()["file_id"])
    disposition = got.headers["content-disposition"]
    assert disposition == "inline; filename=\"say _hi_; x=1.png\"; filename*=UTF-8''say%20%22hi%22%3B%20x%3D1.png"


async def test_no_name_and_no_type(port: int, alice: Client) -> None:
    reply = await upload(port, alice.token, b"abc")
    assert reply.status_code == 201, reply.text
    info = reply.json()
    assert info["name"] == "file"
    assert info["content_type"]  # the service's default
    got = await download(port, alice.token, info["file_id"])
    assert got.content == b"abc"


# --- ranges and caching --------------------------------------------------------------------------
@pytest.fixture
async def stored(port: int, alice: Client) -> tuple[str, bytes]:
    data = os.urandom(3 * CHUNK_SIZE + 1000)
    reply = await upload(port, alice.token, data, name="ranged.bin")
    assert reply.status_code == 201, reply.text
    return reply.json()["file_id"], data


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [
        ("bytes=0-9", 0, 9),
        (f"bytes={CHUNK_SIZE - 100}-{2 * CHUNK_SIZE + 99}", CHUNK_SIZE - 100, 2 * CHUNK_SIZE + 99),  # across chunks
        ("bytes=-5", -5, -1),
        (f"bytes={CHUNK_SIZE + 7}-", CHUNK_SIZE + 7, -1),
        ("bytes=10-999999999", 10, -1),  # clipped to the file
    ],
)
async def test_a_range_gets_206_and_exactly_its_bytes(
    port: int, alice: Client, stored: tuple[str, bytes], header: str, first: int, last: int
) -> None:
    file_id, data = stored
    size = len(data)
    start, end = first % size, last % size
    got = await download(port, alice.token, file_id, Range=header)
    assert got.status_code == 206, got.text
    assert got.content == data[start : end + 1]
    assert got.headers["content-range"] == f"bytes {start}-{end}/{size}"
    assert got.headers["content-length"] == str(end - start + 1)


async def test_an_unsatisfiable_range_gets_416(port: int, alice: Client, stored: tuple[str, bytes]) -> None:
    file_id, data = stored
    got = await download(port, alice.token, file_id, Range=f"bytes={len(data)}-")
    assert got.status_code == 416
    assert got.headers["content-range"] == f"bytes */{len(data)}"

    empty = (await upload(port, alice.token, b"")).json()
    got = await download(port, alice.token, empty["file_id"], Range="bytes=0-")
    assert got.status_code == 416
    assert got.headers["content-range"] == "bytes */0"


@pytest.mark.parametrize("header", ["bytes=0-1,5-6", "items=0-5", "bytes=abc", "bytes=9-3"])
async def test_a_malformed_or_multiple_range_is_ignored(
    port: int, alice: Client, stored: tuple[str, bytes], header: str
) -> None:
    file_id, data = stored
    got = await download(port, alice.token, file_id, Range=header)
    assert got.status_code == 200
    assert got.content == data
    assert "content-range" not in got.headers


async def test_etag_and_if_none_match(port: int, alice: Client, stored: tuple[str, bytes]) -> None:
    file_id, data = stored
    etag = f'"{hashlib.sha256(data).hexdigest()}"'
    first = await download(port, alice.token, file_id)
    assert first.headers["etag"] == etag
    again = await download(port, alice.token, file_id, **{"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    other = await download(port, alice.token, file_id, **{"If-None-Match": '"0000"'})
    assert other.status_code == 200
    assert other.content == data


# --- who may ------------------------------------------------------------------------------------
async def test_no_token_or_a_bad_one_gets_401(port: int, alice: Client, stored: tuple[str, bytes]) -> None:
    file_id, _ = stored
    for token in (None, "not-a-token", alice.token[:-4] + "AAAA"):  # type: ignore[index]
        for reply in (await upload(port, token, b"abc"), await download(port, token, file_id)):
            assert reply.status_code == 401, (token, reply.text)
            assert reply.json()["error"]["code"] == "unauthorized"
    async with http(port) as client:
        basic = await client.get(f"/files/{file_id}", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert basic.status_code == 401


async def test_a_logged_out_token_gets_401(port: int) -> None:
    carol = await new_user(port)
    token = carol.token
    await carol.call("auth.logout")
    reply = await upload(port, token, b"abc")
    assert reply.status_code == 401
    assert reply.json()["error"]["code"] == "unauthorized"
    await carol.close()


async def test_a_stranger_gets_the_same_404_as_for_no_file(port: int, stored: tuple[str, bytes]) -> None:
    file_id, _ = stored
    mallory = await new_user(port)
    theirs = await download(port, mallory.token, file_id)
    nothing = await download(port, mallory.token, "f_000000000000000000000000")
    assert theirs.status_code == nothing.status_code == 404
    assert theirs.json()["error"]["code"] == "not_found"
    assert theirs.json() == nothing.json()
    ranged = await download(port, mallory.token, file_id, Range="bytes=0-1")
    assert ranged.status_code == 404
    await mallory.close()


# --- limits and broken uploads ------------------------------------------------------------------
@pytest.fixture(scope="module")
async def limited_port(stack: Stack) -> AsyncIterator[int]:
    """A gateway of its own accepting at most 1 MiB; it cuts uploads itself, whatever files allows."""
    port = free_port()
    proc = stack.start_process(
        "gw-1mib", "gateway", {"PARLEY_GATEWAY_PORT": str(port), "PARLEY_MAX_UPLOAD_BYTES": str(LIMITED_MAX)}
    )
    try:
        await wait_until_ready(port)
        yield port
    finally:  # stopped even when it never got ready
        await asyncio.to_thread(proc.stop)
        stack.procs.pop("gw-1mib", None)


async def test_a_streamed_upload_over_the_limit_gets_413(limited_port: int) -> None:
    bob = await new_user(limited_port)
    reply = await upload(limited_port, bob.token, generated(os.urandom(2 * MiB)))
    assert reply.status_code == 413, reply.text
    assert reply.json()["error"]["code"] == "too_large"
    # Exactly the limit is fine.
    data = os.urandom(LIMITED_MAX)
    reply = await upload(limited_port, bob.token, generated(data))
    assert reply.status_code == 201, reply.text
    assert reply.json()["sha256"] == hashlib.sha256(data).hexdigest()
    await bob.close()


async def test_a_declared_length_over_the_limit_gets_413_before_any_body(limited_port: int) -> None:
    bob = await new_user(limited_port)
    head = (
        f"POST /files HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {bob.token}\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {2 * MiB}\r\n\r\n"
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", limited_port)
    try:
        writer.write(head.encode())  # and not one byte of the body
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), 15)
        assert status.startswith(b"HTTP/1.1 413"), status
        headers: dict[str, str] = {}
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers["content-length"]))
        assert b'"too_large"' in body
    finally:
        writer.close()
    await bob.close()


async def test_an_upload_cut_off_midway_leaves_nothing(port: int, alice: Client, mongo: Any) -> None:
    """Counted by this upload's own documents (found by its uploader, a user of the test's own),
    not by collection totals that an earlier test's leftovers may still be moving."""
    chunks, uploads = mongo["files.chunks"], mongo["uploads"]
    total = 4 * MiB
    head = (
        f"POST /files HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {alice.token}\r\n"
        f"X-File-Name: cut.bin\r\nContent-Length: {total}\r\n\r\n"
    )
    writer = await raw_request(port, head, os.urandom(total // 2))
    try:
        async def chunks_stored() -> str | None:
            upload = await uploads.find_one({"uploader": alice.user_id})
            if upload is not None and await chunks.count_documents({"files_id": upload["_id"]}) > 0:
                return str(upload["_id"])
            return None

        # The first half is on its way into GridFS.
        file_id = await eventually(chunks_stored, "chunks of the upload stored")
    finally:
        writer.transport.abort()  # the client vanishes

    async def all_gone() -> bool:
        return (
            await chunks.count_documents({"files_id": file_id}) == 0
            and await uploads.count_documents({"uploader": alice.user_id}) == 0
            and await mongo["files.files"].count_documents({"_id": file_id}) == 0
        )

    await eventually(all_gone, "the cut upload's chunks and record removed")


async def test_upload_bytes_are_counted_in_metrics(port: int, alice: Client) -> None:
    async def counted() -> float:
        async with http(port) as client:
            text = (await client.get("/metrics")).text
        line = next(x for x in text.splitlines() if x.startswith("parley_gateway_upload_bytes_total "))
        return float(line.split()[1])

    before = await counted()
    assert (await upload(port, alice.token, b"x" * 1000)).status_code == 201
    assert await counted() == before + 1000
