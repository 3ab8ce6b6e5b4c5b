"""Base of every wire model: frozen, strict about unknown fields."""
import functools
from datetime import datetime, timezone

from typing import Any

from pydantic import BaseModel, ConfigDict, SerializerFunctionWrapHandler, model_serializer


class Contract(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SparseContract(Contract):
    """A model whose optional fields (`text?`, `peer?`, ...) are absent, not null, when unset."""

    @model_serializer(mode="wrap")
    def _omit_absent(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v is not None}


class Empty(Contract):
    """A request or reply with no fields (`{}`)."""


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@functools.lru_cache(maxsize=4096)
def iso(dt: datetime) -> str:
    """ISO 8601 UTC with milliseconds and a Z, the form every time on the wire takes. (Cached: a
    sent message's time is written three times, in its reply, its push and its event.)"""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_from_timestamp(seconds: float) -> str:
    return iso(datetime.fromtimestamp(seconds, timezone.utc))
