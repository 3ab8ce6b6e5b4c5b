"""The built-in sticker pack (docs/protocol.md "Stickers and emoji").

Hand-drawn SVGs shipped with the web client (services/gateway/web/stickers/<name>.svg), so the
gateway serves them as it serves the page: no service stores them and no message needs a lookup
to draw one. A built-in's sticker id is `builtin:<name>`; any other sticker id is a made
sticker's, which is the id of its image (files' `files.images.make` with kind "sticker").
"""
from typing import Literal

BUILTIN_PREFIX = "builtin:"
BUILTIN_STICKERS: tuple[str, ...] = (
    "thumbs-up", "heart", "laughing", "party", "hello", "thanks",
    "ok", "cat", "coffee", "fire", "star", "sad",
)
_BUILTIN = frozenset(BUILTIN_STICKERS)

StickerKind = Literal["builtin", "made"]


def builtin_sticker_id(name: str) -> str:
    return BUILTIN_PREFIX + name


def builtin_sticker_url(name: str) -> str:
    """Where the gateway serves a built-in (under the page's /app/, without a token)."""
    return f"/app/stickers/{name}.svg"


def parse_sticker_id(sticker_id: str) -> tuple[StickerKind, str]:
    """("builtin", name) for a `builtin:` id, known or not; ("made", image_id) otherwise."""
    if sticker_id.startswith(BUILTIN_PREFIX):
        return "builtin", sticker_id.removeprefix(BUILTIN_PREFIX)
    return "made", sticker_id


def is_builtin_sticker(name: str) -> bool:
    return name in _BUILTIN
