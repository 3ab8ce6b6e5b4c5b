"""The error codes of PROTOCOL.md and the one exception that carries them across the wire."""
from enum import StrEnum
from typing import Any

from pydantic import ValidationError

from shared.contracts.base import Contract


class ErrorCode(StrEnum):
    BAD_REQUEST = "bad_request"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    RATE_LIMITED = "rate_limited"
    TOO_LARGE = "too_large"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"


HTTP_STATUS = {
    ErrorCode.BAD_REQUEST: 400,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.CONFLICT: 409,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.TOO_LARGE: 413,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.INTERNAL: 500,
}


class ErrorBody(Contract):
    code: ErrorCode
    message: str


class ErrorResponse(Contract):
    """The body of every HTTP error response (and, as `error`, of an error reply frame)."""

    error: ErrorBody


class ParleyError(Exception):
    """An answer the client should see: raised anywhere, turned into `{code, message}` at the edge."""

    def __init__(self, code: ErrorCode, message: str):
        super().__init__(message)
        self.code = ErrorCode(code)
        self.message = message

    def body(self) -> ErrorBody:
        return ErrorBody(code=self.code, message=self.message)

    def response(self) -> dict[str, Any]:
        """`{"error": {"code", "message"}}`: what an HTTP client reads (ErrorResponse)."""
        return {"error": {"code": self.code.value, "message": self.message}}

    @property
    def http_status(self) -> int:
        return HTTP_STATUS[self.code]

    @classmethod
    def bad_request(cls, message: str) -> "ParleyError":
        return cls(ErrorCode.BAD_REQUEST, message)

    @classmethod
    def unauthorized(cls, message: str = "not logged in") -> "ParleyError":
        return cls(ErrorCode.UNAUTHORIZED, message)

    @classmethod
    def forbidden(cls, message: str) -> "ParleyError":
        return cls(ErrorCode.FORBIDDEN, message)

    @classmethod
    def not_found(cls, message: str) -> "ParleyError":
        return cls(ErrorCode.NOT_FOUND, message)

    @classmethod
    def conflict(cls, message: str) -> "ParleyError":
        return cls(ErrorCode.CONFLICT, message)

    @classmethod
    def unavailable(cls, message: str) -> "ParleyError":
        return cls(ErrorCode.UNAVAILABLE, message)

    @classmethod
    def rate_limited(cls, message: str) -> "ParleyError":
        return cls(ErrorCode.RATE_LIMITED, message)

    @classmethod
    def too_large(cls, message: str) -> "ParleyError":
        return cls(ErrorCode.TOO_LARGE, message)

    @classmethod
    def internal(cls, message: str = "internal error") -> "ParleyError":
        return cls(ErrorCode.INTERNAL, message)


def describe_validation_error(exc: ValidationError, prefix: str = "data") -> str:
    """One line naming the first bad field, e.g. `data.username: String should have at least 3 characters`."""
    err = exc.errors()[0]
    path = ".".join(str(p) for p in (prefix, *err["loc"]) if p != "")
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = "unknown field"
    return f"{path}: {msg}"
