"""Reading one client frame: the checks of PROTOCOL.md, in its order, up to the typed request;
and the replies, frames and HTTP error bodies alike rendered by `ParleyError.response()`.

frame (size, JSON, envelope) → known type → bound socket → fields. What passes is a
`ParsedFrame`; what fails is a ParleyError carrying the frame's id when it could be read.
"""
from dataclasses import dataclass
from typing import Any, Generic

import orjson
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from shared.contracts.envelope import ClientRequest
from shared.contracts.errors import ErrorCode, ParleyError, describe_validation_error
from shared.contracts.operations import CLIENT_OPERATIONS, Operation, RequestT


class FrameError(ParleyError):
    """A refused frame: `frame_id` when it could be read, `operation` once its type was known."""

    def __init__(self, code: ErrorCode, message: str, frame_id: str | None, operation: str | None = None):
        super().__init__(code, message)
        self.frame_id = frame_id
        self.operation = operation


@dataclass(frozen=True)
class ParsedFrame(Generic[RequestT]):
    """A valid request: typed by its operation's request model, so handlers read its fields."""

    id: str
    operation: Operation[RequestT, Any]
    request: RequestT


def _readable_id(raw: Any) -> str | None:
    frame_id = raw.get("id") if isinstance(raw, dict) else None
    return frame_id if isinstance(frame_id, str) else None


def parse_frame(text: str, *, max_bytes: int, bound: bool) -> ParsedFrame[Any]:
    try:
        raw = orjson.loads(text)
    except orjson.JSONDecodeError:
        raw = None
        if len(text.encode()) <= max_bytes:
            raise FrameError(ErrorCode.BAD_REQUEST, "frame is not valid JSON", None) from None
    frame_id = _readable_id(raw)
    if len(text.encode()) > max_bytes:
        raise FrameError(ErrorCode.TOO_LARGE, f"frame is over {max_bytes} bytes", frame_id)
    if not isinstance(raw, dict):
        raise FrameError(ErrorCode.BAD_REQUEST, "frame must be a JSON object", None)
    try:
        envelope = ClientRequest.model_validate(raw)
    except ValidationError as exc:
        raise FrameError(ErrorCode.BAD_REQUEST, describe_validation_error(exc, prefix=""), frame_id) from None
    operation = CLIENT_OPERATIONS.get(envelope.type)
    if operation is None:
        raise FrameError(ErrorCode.BAD_REQUEST, f"type: unknown operation {envelope.type!r}", envelope.id)
    if operation.needs_session and not bound:
        raise FrameError(
            ErrorCode.UNAUTHORIZED, f"{envelope.type} needs a logged-in socket", envelope.id, operation.name
        )
    try:
        request = operation.request.model_validate(envelope.data)
    except ValidationError as exc:
        raise FrameError(ErrorCode.BAD_REQUEST, describe_validation_error(exc), envelope.id, operation.name) from None
    return ParsedFrame(envelope.id, operation, request)


def parse_http_body(body: bytes, operation: Operation[RequestT, Any]) -> RequestT:
    """The same checks for `POST /auth/register` and `POST /auth/login` bodies."""
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ParleyError.bad_request("body is not valid JSON") from None
    if not isinstance(raw, dict):
        raise ParleyError.bad_request("body must be a JSON object")
    try:
        return operation.request.model_validate(raw)
    except ValidationError as exc:
        raise ParleyError.bad_request(describe_validation_error(exc, prefix="")) from None


def reply_ok(frame_id: str | None, data: dict[str, Any]) -> bytes:
    return orjson.dumps({"type": "reply", "id": frame_id, "ok": True, "data": data})


def reply_error(frame_id: str | None, error: ParleyError) -> bytes:
    return orjson.dumps({"type": "reply", "id": frame_id, "ok": False, **error.response()})


def error_response(error: ParleyError) -> JSONResponse:
    """The same error as an HTTP response: its body and status."""
    return JSONResponse(error.response(), status_code=error.http_status)
