"""One WebSocket to one gateway: frames out, each reply matched to its request by id, pushes
handed to a callback as they arrive. No session state: `ParleyClient` keeps that across sockets.
"""
import asyncio
import itertools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from parley_client.errors import ConnectionLost, GatewayUnreachable, RequestTimeout
from parley_client.models import Push, Reply

try:  # orjson when it is installed (the server's environment has it): a few times faster per frame
    import orjson

    def dumps(value: Any) -> str:
        return orjson.dumps(value).decode()

    loads: Callable[[str | bytes], Any] = orjson.loads

except ImportError:  # pragma: no cover - exercised by a bot's plain environment
    import json

    def dumps(value: Any) -> str:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)

    loads = json.loads


log = logging.getLogger("parley_client")
MAX_FRAME_BYTES = 8 * 1024 * 1024  # a history page of 200 long messages fits
ABNORMAL_CLOSURE = 1006  # the code a socket gets when it ends without a close frame


@dataclass(frozen=True)
class Gateway:
    ws_url: str  # ws://host:port/ws
    http_url: str  # http://host:port

    @classmethod
    def parse(cls, url: str) -> "Gateway":
        """From `http://host:port` (or https) or the socket's own `ws://host:port/ws` (or wss)."""
        parts = urlsplit(url if "://" in url else f"http://{url}")
        secure = parts.scheme in ("https", "wss")
        path = parts.path.rstrip("/")
        ws_path = path if parts.scheme in ("ws", "wss") and path else f"{path}/ws"
        http_path = path.removesuffix("/ws") if parts.scheme in ("ws", "wss") else path
        return cls(f"{'wss' if secure else 'ws'}://{parts.netloc}{ws_path}",
                   f"{'https' if secure else 'http'}://{parts.netloc}{http_path}")


class Connection:
    """A socket. `request` sends a frame with a fresh id and waits for the reply carrying that
    id; every other frame from the server goes to `on_push`; a reply nobody waits for (one to
    a frame without a readable id, or one that came after its request timed out) goes to
    `on_unmatched`. When the socket ends, requests still waiting fail with `ConnectionLost`
    and `on_close` is called once."""

    def __init__(self, url: str, ws: ClientConnection, on_push: Callable[[Push], None],
                 on_unmatched: Callable[[Reply], None] | None = None,
                 on_close: Callable[["Connection"], None] | None = None):
        self.url = url
        self.ws = ws
        self.on_push = on_push
        self.on_unmatched = on_unmatched
        self.on_close = on_close
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self.closing = False  # closed by this side on purpose (close()), not lost
        self._ids = itertools.count(1)
        self._waiting: dict[Any, asyncio.Future[Reply]] = {}
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, url: str, on_push: Callable[[Push], None], *, headers: Mapping[str, str] | None = None,
                   open_timeout: float = 10.0, ping_interval: float | None = 20.0, close_timeout: float = 5.0,
                   on_unmatched: Callable[[Reply], None] | None = None,
                   on_close: Callable[["Connection"], None] | None = None) -> "Connection":
        """Open a socket to `url` (ws://host:port/ws); `GatewayUnreachable` if that fails."""
        try:
            ws = await connect(url, additional_headers=dict(headers or {}), open_timeout=open_timeout,
                               ping_interval=ping_interval, close_timeout=close_timeout, max_size=MAX_FRAME_BYTES)
        except InvalidStatus as exc:
            status = exc.response.status_code
            raise GatewayUnreachable(url, f"HTTP {status} to the WebSocket upgrade", status) from exc
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            raise GatewayUnreachable(url, str(exc) or type(exc).__name__) from exc
        return cls(url, ws, on_push, on_unmatched, on_close)

    @property
    def is_open(self) -> bool:
        return not self.closed.is_set()

    async def _read(self) -> None:
        ws = self.ws
        try:
            async for raw in ws:
                try:
                    frame = loads(raw)
                except ValueError:
                    continue  # not JSON: nothing the protocol sends
                if not isinstance(frame, dict):
                    continue
                kind = frame.get("type")
                if kind == "reply":
                    try:
                        future = self._waiting.pop(frame.get("id"), None)
                    except TypeError:  # an id no request of ours could have had (a list, an object)
                        future = None
                    if future is not None and not future.done():
                        future.set_result(cast(Reply, frame))
                        continue
                try:  # a callback's bug must not stop this socket's reading
                    if kind != "reply":
                        self.on_push(cast(Push, frame))
                    elif self.on_unmatched is not None:
                        self.on_unmatched(cast(Reply, frame))
                except Exception:
                    log.exception("a callback failed on a %s frame", kind)
        except ConnectionClosed:
            pass
        finally:
            self.close_code = ws.close_code if ws.close_code is not None else ABNORMAL_CLOSURE
            self.closed.set()
            waiting, self._waiting = self._waiting, {}
            for future in waiting.values():
                if not future.done():
                    future.set_exception(ConnectionLost(f"socket closed ({self.close_code})", self.close_code))
            if self.on_close is not None:
                try:
                    self.on_close(self)
                except Exception:
                    log.exception("the on_close callback failed")

    async def send_text(self, text: str | bytes) -> None:
        """Write one frame as it is (a str is a text frame, bytes a binary one)."""
        try:
            await self.ws.send(text)
        except ConnectionClosed as exc:
            raise ConnectionLost("socket closed", self.ws.close_code) from exc

    async def send_frame(self, frame: Mapping[str, Any], timeout: float) -> Reply:
        """Write `frame` and wait up to `timeout` s for the reply carrying its `id`."""
        key = frame.get("id")
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._waiting[key] = future
        try:
            if self.closed.is_set():
                raise ConnectionLost(f"socket closed ({self.close_code})", self.close_code)
            await self.send_text(dumps(frame))
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            raise RequestTimeout(f"no reply to {frame.get('type')} within {timeout} s") from None
        finally:
            if self._waiting.get(key) is future:
                del self._waiting[key]
            if future.done() and not future.cancelled():
                future.exception()  # retrieved: the caller has it, or had ConnectionLost already

    async def request(self, kind: str, data: Mapping[str, Any] | None, timeout: float) -> Reply:
        """The reply to `{"type": kind, "id": <fresh>, "data": data}`, ok or not."""
        return await self.send_frame({"type": kind, "id": f"r{next(self._ids)}", "data": data or {}}, timeout)

    def abort(self) -> None:
        """Drop the TCP connection at once, without a close handshake: what a lost network or a
        crashed gateway looks like from here (close code 1006)."""
        self.ws.transport.abort()

    async def close(self) -> None:
        """Close the socket (close handshake, bounded by the close timeout) and wait for the reader."""
        self.closing = True
        try:
            await self.ws.close()
        finally:
            await self._reader
