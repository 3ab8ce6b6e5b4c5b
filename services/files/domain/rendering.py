"""Pillow work: decode an upload within bounds, and render an avatar, a sticker or a thumbnail.

Plain synchronous functions over bytes: the callers (images.py) run them in a thread, so that a
decode never stalls the event loop. The size is checked from the header before any pixel is
decoded, so a small file claiming to be a huge image (a "decompression bomb") costs nothing,
and at most RENDERS_AT_ONCE renders hold decoded pixels at a time.
"""
import io
import threading
import warnings
from dataclasses import dataclass
from typing import Literal

from PIL import Image, ImageOps

MAX_PIXELS = 40_000_000
MAX_BYTES = 30 * 1024 * 1024
FORMATS = ("PNG", "JPEG", "GIF", "WEBP")
AVATAR_SIDE = 256
STICKER_BOX = 512
THUMBNAIL_BOX = 320
RENDERS_AT_ONCE = 2

# Pillow's own guard, as a second line behind the check in `decode` (it raises past twice this).
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
_renders = threading.BoundedSemaphore(RENDERS_AT_ONCE)

Rendering = Literal["avatar", "sticker", "thumbnail"]


class NotAnImage(Exception):
    """The bytes are not a PNG, JPEG, GIF or WebP image that can be read."""


class ImageTooLarge(Exception):
    """More than MAX_PIXELS pixels (or MAX_BYTES bytes)."""


@dataclass(frozen=True)
class Rendered:
    data: bytes
    content_type: str
    width: int
    height: int


def _open(data: bytes) -> Image.Image:
    """The image with only its header read; its size checked."""
    if len(data) > MAX_BYTES:
        raise ImageTooLarge
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=FORMATS)
    except Image.DecompressionBombError:
        raise ImageTooLarge from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:  # what Pillow raises on bytes it cannot read
        raise NotAnImage from exc
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise ImageTooLarge
    if width < 1 or height < 1:
        raise NotAnImage
    return image


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info


def _decoded(image: Image.Image, at_least: tuple[int, int], keep_alpha: bool) -> Image.Image:
    """Pixels in RGB or RGBA, upright (EXIF orientation applied). A JPEG is decoded straight at
    the smallest scale still covering `at_least` (draft mode): a fraction of the memory."""
    if image.format == "JPEG":
        image.draft("RGB", at_least)
    try:
        image.load()
        upright = ImageOps.exif_transpose(image)
        if keep_alpha and _has_alpha(upright):
            return upright.convert("RGBA")
        if _has_alpha(upright):  # flattened on white, as a viewer would show it
            rgba = upright.convert("RGBA")
            flat = Image.new("RGB", rgba.size, (255, 255, 255))
            flat.paste(rgba, mask=rgba.getchannel("A"))
            return flat
        return upright.convert("RGB")
    except (OSError, ValueError, SyntaxError, EOFError) as exc:  # truncated or corrupt pixel data
        raise NotAnImage from exc


def _encoded(image: Image.Image, fmt: Literal["WEBP", "JPEG"], quality: int) -> Rendered:
    out = io.BytesIO()
    image.save(out, fmt, quality=quality)
    content_type = "image/webp" if fmt == "WEBP" else "image/jpeg"
    return Rendered(out.getvalue(), content_type, image.width, image.height)


def render(data: bytes, kind: Rendering) -> Rendered:
    """An avatar: the centre square at AVATAR_SIDE², WebP. A sticker: fitted into STICKER_BOX²
    (never enlarged), transparency kept, WebP. A thumbnail: fitted into THUMBNAIL_BOX², JPEG.
    Raises NotAnImage or ImageTooLarge. Blocking: run it in a thread."""
    with _renders:
        image = _open(data)
        if kind == "avatar":
            decoded = _decoded(image, (AVATAR_SIDE, AVATAR_SIDE), keep_alpha=True)
            square = ImageOps.fit(decoded, (AVATAR_SIDE, AVATAR_SIDE), Image.Resampling.LANCZOS)
            return _encoded(square, "WEBP", 85)
        box = (STICKER_BOX, STICKER_BOX) if kind == "sticker" else (THUMBNAIL_BOX, THUMBNAIL_BOX)
        decoded = _decoded(image, box, keep_alpha=kind == "sticker")
        decoded.thumbnail(box, Image.Resampling.LANCZOS)
        if kind == "sticker":
            return _encoded(decoded, "WEBP", 90)
        return _encoded(decoded, "JPEG", 82)
