"""What can go wrong, as exceptions a caller can tell apart.

Only `ReplyError` comes from the server: it carries the protocol's error `code` and `message`.
The others are about the way there. Of all of them only `ReplyError` with code `unavailable`,
`RequestTimeout`, `ConnectionLost` and `Offline` leave the outcome open and may be retried
(a `message.send` with the same `client_msg_id`: the outbox does it, see `RetryPolicy`).
"""
from typing import Any


class ParleyError(Exception):
    """Base of every error this library raises."""


class ReplyError(ParleyError):
    """The server answered with an error (over WebSocket, or over HTTP with `status`)."""

    def __init__(self, code: str, message: str, status: int | None = None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status

    @classmethod
    def from_reply(cls, reply: Any) -> "ReplyError":
        error = reply.get("error") or {}
        return cls(str(error.get("code", "internal")), str(error.get("message", "")))

    @property
    def retryable(self) -> bool:
        """`unavailable`: a backend is away or slow; the same request may be sent again."""
        return self.code == "unavailable"


class ConnectionLost(ParleyError, ConnectionError):
    """The socket closed (or was never open) before the reply came: the outcome is unknown."""

    def __init__(self, message: str = "socket closed", close_code: int | None = None):
        super().__init__(message)
        self.close_code = close_code


class GatewayUnreachable(ParleyError, ConnectionError):
    """No socket or HTTP connection could be opened to the gateway at `url`."""

    def __init__(self, url: str, reason: str, status: int | None = None):
        super().__init__(f"cannot reach the gateway at {url}: {reason}")
        self.url = url
        self.reason = reason
        self.status = status


class RequestTimeout(ParleyError, TimeoutError):
    """No reply within the time allowed: the outcome is unknown."""


class Offline(ParleyError):
    """No bound socket within the time allowed (the client is reconnecting, or logged out)."""
