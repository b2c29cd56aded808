"""Text: a legible font at any size, and cached label images pasted onto the picture.

Drawing text is the hot path of the renderer, so both the fonts and the
rendered labels (a filled rectangle with the text on it) are cached; a label is
drawn once per (text, size, colours) and then only pasted. No system font is
assumed: ``PIL.ImageFont.load_default(size=...)`` ships with Pillow (it needs
Pillow's FreeType support, present in the PyPI wheels; without it Pillow falls
back to a small fixed-size bitmap font).
"""

from __future__ import annotations

import functools
import math

from PIL import Image, ImageDraw, ImageFont

from .colors import Color

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


@functools.lru_cache(maxsize=64)
def get_font(size: int) -> Font:
    """Pillow's bundled font at ``size`` pixels (cached per size).

    >>> get_font(12) is get_font(12)
    True
    """
    return ImageFont.load_default(size=max(1, int(size)))


@functools.lru_cache(maxsize=64)
def line_height(size: int) -> int:
    """Height in pixels of one line of text at ``size`` (ascent + descent), the same for every text."""
    font = get_font(size)
    if isinstance(font, ImageFont.FreeTypeFont):
        ascent, descent = font.getmetrics()
        return ascent + descent
    return font.getbbox("Ayg|")[3]


def padding(size: int) -> int:
    """Space between a label's text and its edge."""
    return max(1, size // 6)


@functools.lru_cache(maxsize=64)
def _narrow_space(size: int) -> bool:
    """At small sizes the bundled font's space is 2 px and "cat 0.93" reads as one word."""
    return get_font(size).getlength(" ") < 3


def _spaced(text: str, size: int) -> str:
    """``text`` as drawn: spaces doubled where the font's own space is too narrow to read."""
    return text.replace(" ", "  ") if _narrow_space(size) else text


@functools.lru_cache(maxsize=8192)
def text_width(text: str, size: int) -> int:
    """Width in pixels of ``text`` at ``size``."""
    font = get_font(size)
    text = _spaced(text, size)
    return max(math.ceil(font.getlength(text)), font.getbbox(text)[2]) if text else 0


def label_size(text: str, size: int) -> tuple[int, int]:
    """(width, height) of the label image ``label_image`` makes for ``text``."""
    pad = padding(size)
    return text_width(text, size) + 2 * pad, line_height(size) + 2 * pad


@functools.lru_cache(maxsize=4096)
def label_image(text: str, size: int, fg: Color, bg: Color) -> Image.Image:
    """A cached RGB image of ``text`` in ``fg`` on a ``bg`` rectangle; callers paste it and never modify it."""
    w, h = label_size(text, size)
    img = Image.new("RGB", (w, h), bg)
    pad = padding(size)
    ImageDraw.Draw(img).text((pad, pad), _spaced(text, size), font=get_font(size), fill=fg)
    return img


def paste_label(
    canvas: Image.Image,
    text: str,
    x: int,
    y: int,
    size: int,
    fg: Color,
    bg: Color,
    *,
    bounds: tuple[int, int, int, int] | None = None,
) -> tuple[int, int, int, int]:
    """Paste a label with its top-left at (x, y), moved to stay inside ``bounds``; return where it went.

    ``bounds`` is (x0, y0, x1, y1), exclusive end, default the whole canvas. A
    label bigger than the bounds is aligned to their top-left and cut.
    """
    label = label_image(text, size, fg, bg)
    w, h = label.size
    bx0, by0, bx1, by1 = bounds if bounds is not None else (0, 0, canvas.width, canvas.height)
    x = max(bx0, min(int(x), bx1 - w))
    y = max(by0, min(int(y), by1 - h))
    if x + w > bx1 or y + h > by1:
        label = label.crop((0, 0, min(w, bx1 - x), min(h, by1 - y)))
    canvas.paste(label, (x, y))
    return x, y, x + label.width, y + label.height


def paste_box_label(
    canvas: Image.Image,
    text: str,
    box: tuple[int, int, int, int],
    size: int,
    fg: Color,
    bg: Color,
    *,
    bounds: tuple[int, int, int, int] | None = None,
    taken: list[tuple[int, int, int, int]] | None = None,
    where: str = "top",
) -> tuple[int, int, int, int]:
    """Paste a label at a corner of the inclusive pixel ``box``; return where it went.

    ``where="top"`` tries just above the top-left corner, then just inside it,
    then the bottom-left corner (below, then inside); ``"bottom"`` tries the
    bottom-left first. The first spot inside ``bounds`` that overlaps no rectangle
    in ``taken`` wins (else the first spot inside ``bounds``); the label's
    rectangle is appended to ``taken``, so later labels avoid it.
    """
    w, h = label_size(text, size)
    bx0, by0, bx1, by1 = bounds if bounds is not None else (0, 0, canvas.width, canvas.height)
    x0, y0, _, y1 = box
    top = [(x0, y0 - h), (x0, y0)]
    bottom = [(x0, y1 + 1), (x0, y1 + 1 - h)]
    spots = top + bottom if where == "top" else bottom + top
    x = max(bx0, min(x0, bx1 - w))
    inside = [(x, y) for _, y in spots if by0 <= y and y + h <= by1] or [(x, max(by0, min(spots[0][1], by1 - h)))]
    chosen = inside[0]
    if taken:
        for cx, cy in inside:
            if not any(cx < t[2] and t[0] < cx + w and cy < t[3] and t[1] < cy + h for t in taken):
                chosen = (cx, cy)
                break
    rect = paste_label(canvas, text, chosen[0], chosen[1], size, fg, bg, bounds=bounds)
    if taken is not None:
        taken.append(rect)
    return rect
