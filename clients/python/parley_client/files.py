"""Files over HTTP (PROTOCOL.md "Files"): `POST /files` streamed up, `GET /files/{id}` down,
with the session's token. Errors are the same `ReplyError` as over the socket, with `status`."""
import os
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import IO, Any, cast
from urllib.parse import quote

import httpx

from parley_client.errors import GatewayUnreachable, ReplyError
from parley_client.models import UploadedFile

CHUNK = 256 * 1024
Source = bytes | str | os.PathLike[str] | IO[bytes] | AsyncIterable[bytes]


def _http(base_url: str, token: str, timeout: float) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout)


async def _chunks(stream: IO[bytes]) -> AsyncIterator[bytes]:
    while chunk := stream.read(CHUNK):
        yield chunk


def _error(response: httpx.Response) -> ReplyError:
    try:
        error = response.json()["error"]
        return ReplyError(str(error["code"]), str(error["message"]), response.status_code)
    except (ValueError, KeyError, TypeError):
        return ReplyError("internal", f"HTTP {response.status_code}: {response.text[:200]}", response.status_code)


async def upload(base_url: str, token: str, source: Source, name: str | None = None,
                 content_type: str | None = None, timeout: float = 300.0) -> UploadedFile:
    """Stream `source` (bytes, a path, a binary file object, or an async iterable of bytes) to
    `POST /files`; the stored file's description. `name` defaults to the path's file name."""
    opened: IO[bytes] | None = None
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        name = name or path.name
        opened = path.open("rb")
        content: Any = _chunks(opened)
    elif isinstance(source, bytes):
        content = source
    elif hasattr(source, "read"):
        content = _chunks(cast(IO[bytes], source))
    else:
        content = source
    headers = {"Content-Type": content_type or "application/octet-stream"}
    if name is not None:
        headers["X-File-Name"] = quote(name, safe="")
    try:
        async with _http(base_url, token, timeout) as http:
            response = await http.post("/files", content=content, headers=headers)
    except httpx.TransportError as exc:
        raise GatewayUnreachable(base_url, str(exc) or type(exc).__name__) from exc
    finally:
        if opened is not None:
            opened.close()
    if response.status_code != 201:
        raise _error(response)
    return cast(UploadedFile, response.json())


async def download(base_url: str, token: str, file_id: str, into: IO[bytes] | None = None,
                   timeout: float = 300.0) -> bytes:
    """`GET /files/{file_id}`: the bytes, or written to `into` chunk by chunk (then b"" is returned)."""
    try:
        async with _http(base_url, token, timeout) as http, http.stream("GET", f"/files/{quote(file_id, safe='')}") as response:
            if response.status_code != 200:
                await response.aread()
                raise _error(response)
            if into is None:
                return await response.aread()
            async for chunk in response.aiter_bytes(CHUNK):
                into.write(chunk)
            return b""
    except httpx.TransportError as exc:
        raise GatewayUnreachable(base_url, str(exc) or type(exc).__name__) from exc
