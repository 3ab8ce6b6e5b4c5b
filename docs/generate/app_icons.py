"""The web app's PNG icons (services/gateway/web/icons/), drawn with Pillow after icon.svg (which
Pillow cannot read): a rounded blue square with a white speech bubble and three dots. Run once
when icon.svg changes (`.venv/bin/python -m docs.generate.app_icons`); the PNGs are committed.

- icon-192.png, icon-512.png: the icon as it is (manifest "any");
- maskable-512.png: full-bleed background, the bubble inside the central safe zone (the
  platform cuts its own shape);
- apple-touch-icon.png (180): iOS's home screen, which rounds corners itself;
- badge-96.png: the bubble alone in white on transparent (Android's status bar tints it).
"""
from pathlib import Path

from PIL import Image, ImageDraw

ICONS = Path(__file__).resolve().parents[2] / "services" / "gateway" / "web" / "icons"
BLUE = (0x3B, 0x6C, 0xF6, 255)
WHITE = (255, 255, 255, 255)
SUPERSAMPLE = 4


def draw(size: int, *, background: bool, rounded: bool, glyph_scale: float = 1.0, dots: bool = True) -> Image.Image:
    """icon.svg's 64x64 drawing at `size` pixels; the bubble scaled by glyph_scale about the centre."""
    big = size * SUPERSAMPLE
    image = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    pen = ImageDraw.Draw(image)
    unit = big / 64

    def at(x: float, y: float) -> tuple[float, float]:
        return ((32 + (x - 32) * glyph_scale) * unit, (32 + (y - 32) * glyph_scale) * unit)

    if background:
        pen.rounded_rectangle((0, 0, big - 1, big - 1), radius=14 * unit if rounded else 0, fill=BLUE)
    ink = WHITE
    pen.rounded_rectangle((*at(14, 12), *at(50, 40)), radius=6 * unit * glyph_scale, fill=ink)
    pen.polygon([at(28, 39), at(18, 49), at(18, 39)], fill=ink)
    if dots:
        hole = BLUE if background else (0, 0, 0, 0)
        for x in (24, 32, 40):
            cx, cy = at(x, 26)
            r = 3 * unit * glyph_scale
            pen.ellipse((cx - r, cy - r, cx + r, cy + r), fill=hole)
    return image.resize((size, size), Image.Resampling.LANCZOS)


def main() -> None:
    ICONS.mkdir(parents=True, exist_ok=True)
    outputs = {
        "icon-192.png": draw(192, background=True, rounded=True),
        "icon-512.png": draw(512, background=True, rounded=True),
        "maskable-512.png": draw(512, background=True, rounded=False, glyph_scale=0.8),
        "apple-touch-icon.png": draw(180, background=True, rounded=False),
        "badge-96.png": draw(96, background=False, rounded=False, glyph_scale=1.3),
    }
    for name, image in outputs.items():
        image.save(ICONS / name, optimize=True)
        print(f"{ICONS / name}: {image.size[0]}x{image.size[1]}, {(ICONS / name).stat().st_size} bytes")


if __name__ == "__main__":
    main()
