"""A byte bound on every HTTP request body but the file upload's (which streams under its own).

Without it `POST /auth/login` read whatever it was sent into memory: three 200 MB bodies took a
gateway from 78 MB to 1.19 GB without logging in. A declared Content-Length over the bound is
refused before anything is read; a body that streams past it (chunked, or lying about its
length) is cut off there. Either way: 413 with the protocol's `too_large` error body.
"""
from collections.abc import Callable

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.contracts.errors import ParleyError


class BodyTooLarge(Exception):
    pass


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int, exempt: Callable[[Scope], bool]):
        self.app = app
        self.max_bytes = max_bytes
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.exempt(scope):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge()
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._too_large(send)

    async def _too_large(self, send: Send) -> None:
        error = ParleyError.too_large(f"request body over {self.max_bytes} bytes")
        body = orjson.dumps(error.response())
        await send({
            "type": "http.response.start", "status": error.http_status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                        (b"connection", b"close")],
        })
        await send({"type": "http.response.body", "body": body})
