"""The protocol's shapes (PROTOCOL.md), typed as the JSON arrives.

TypedDicts, not classes: a frame is used as it was parsed, with no copy per message (the load
generator runs hundreds of sockets in one process), and `message["text"]` reads as the
protocol's page does. Fields the server adds later (docs/protocol.md) are there too, untyped.
"""
from typing import Any, Literal, NotRequired, TypedDict


class FileInfo(TypedDict):
    """A file as a message carries it."""

    file_id: str
    name: str
    size: int
    content_type: str


class UploadedFile(FileInfo):
    """What `POST /files` answers."""

    sha256: str


class Recipient(TypedDict, total=False):
    """`to` of a message: one of the two."""

    user_id: str
    group_id: str


class Message(TypedDict):
    """A message as pushed in `message.new` and returned by `history.fetch`."""

    message_id: str
    conversation_id: str
    seq: int
    from_user_id: str
    to: Recipient
    sent_at: str
    text: NotRequired[str]
    file: NotRequired[FileInfo]
    expires_at: NotRequired[str]


class ErrorInfo(TypedDict):
    code: str
    message: str


class Reply(TypedDict):
    """The one answer to a request: `data` when `ok`, else `error`."""

    type: Literal["reply"]
    id: Any  # the request's id; null when the frame's id could not be read
    ok: bool
    data: NotRequired[dict[str, Any]]
    error: NotRequired[ErrorInfo]


class Push(TypedDict):
    """An unsolicited frame from the server: `message.new`, `sync.done`, `presence`, ..."""

    type: str
    data: dict[str, Any]


class RegisterResult(TypedDict):
    user_id: str
    username: str


class LoginResult(TypedDict):
    user_id: str
    token: str
    expires_at: str


class ResumeResult(TypedDict):
    user_id: str
    expires_at: str


class SendResult(TypedDict):
    """The reply to `message.send`: where the message was stored."""

    message_id: str
    conversation_id: str
    seq: int
    sent_at: str


class HistoryPage(TypedDict):
    messages: list[Message]  # ascending seq
    has_more: bool
