"""The WebSocket envelope: requests, replies and pushes (PROTOCOL.md, "Envelope")."""
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.base import Contract
from shared.contracts.errors import ErrorBody


class ClientRequest(BaseModel):
    """`{"type", "id", "data"}`; `data` is checked later against the operation's own model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: str = Field(min_length=1, max_length=64)
    id: str = Field(min_length=1, max_length=128)
    data: dict[str, Any] = Field(default_factory=dict)


class OkReply(Contract):
    type: Literal["reply"] = "reply"
    id: str | None
    ok: Literal[True] = True
    data: dict[str, Any]


class ErrorReply(Contract):
    type: Literal["reply"] = "reply"
    id: str | None
    ok: Literal[False] = False
    error: ErrorBody


class Push(Contract):
    """Server → client, unsolicited: `{"type": <event>, "data": {...}}`."""

    type: str
    data: dict[str, Any]
