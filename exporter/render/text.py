"""Text: a legible font at any size, and cached label images pasted onto the picture.

Drawing text is the hot path of the renderer, so both the fonts and the
rendered labels (a filled rectangle with the text on it) are cached; a label is
drawn once per (text, size, colours) and then only pasted. Labels are many
("person 0.87": every class times every score), so a label the cache lacks is
composed from cached glyphs in numpy, pixel for pixel what Pillow would draw
(falling back to Pillow for text or fonts where that cannot be exact). No system font is
assumed: ``PIL.ImageFont.load_default(size=...)`` ships with Pillow (it needs
Pillow's FreeType support, present in the PyPI wheels; without it Pillow falls
back to a small fixed-size bitmap font).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import cast

import numpy as np
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
    text = _spaced(text, size)
    if not text:
        return 0
    if _composable_text(text, size):  # the same sums Pillow's basic layout makes, from cached metrics
        pen, right = 0, 0
        for ch in text:
            g = cast(_Glyph, _glyph(ch, size))  # composable: every glyph is known
            right = max(right, pen + g.right)
            pen += g.advance
        return max(pen, right)
    font = get_font(size)
    return int(max(math.ceil(font.getlength(text)), font.getbbox(text)[2]))


def label_size(text: str, size: int) -> tuple[int, int]:
    """(width, height) of the label image ``label_image`` makes for ``text``."""
    pad = padding(size)
    return text_width(text, size) + 2 * pad, line_height(size) + 2 * pad


@functools.lru_cache(maxsize=4096)
def label_image(text: str, size: int, fg: Color, bg: Color) -> Image.Image:
    """A cached RGB image of ``text`` in ``fg`` on a ``bg`` rectangle; callers paste it and never modify it."""
    w, h = label_size(text, size)
    pad = padding(size)
    spaced = _spaced(text, size)
    if _composable_text(spaced, size):  # ~10x cheaper than asking FreeType again
        rgb = np.take(_blend_lut(fg, bg), _coverage(spaced, size, w, h, pad), axis=0)  # faster than lut[cov]
        return Image.frombytes("RGB", (w, h), rgb.tobytes())
    img = Image.new("RGB", (w, h), bg)
    ImageDraw.Draw(img).text((pad, pad), spaced, font=get_font(size), fill=fg)
    return img


# --- labels from cached glyphs ----------------------------------------------------------------------
# Pillow's basic layout puts each glyph at the integer pen position (the bundled font has integer
# advances and no kerning table), lays overlapping glyph edges over each other (src + dst * (255 - src)
# / 255) and paints ``fill`` over the background through that coverage with the same rounding as below.


@dataclasses.dataclass(frozen=True, eq=False)
class _Glyph:
    advance: int
    right: int  # right edge of the ink (Pillow's bounding box), from the pen position
    x: int  # where ``mask`` starts, from the pen position and the top of the line
    y: int
    mask: np.ndarray | None  # (h, w) uint8 coverage; None for a blank glyph


@functools.lru_cache(maxsize=64)
def _composable(size: int) -> bool:
    """Whether labels at ``size`` can be composed from glyphs: a FreeType font, basic layout, no kerning."""
    font = get_font(size)
    if not isinstance(font, ImageFont.FreeTypeFont) or font.layout_engine != ImageFont.Layout.BASIC:
        return False
    return all(font.getlength(p) == font.getlength(p[0]) + font.getlength(p[1]) for p in _KERNING_PROBES)


_KERNING_PROBES = ("AV", "VA", "To", "Ta", "Te", "LT", "Yo", "WA", "P.", "r,", "ff", "1,")


@functools.lru_cache(maxsize=4096)
def _glyph(ch: str, size: int) -> _Glyph | None:
    """One character drawn alone by Pillow, cropped to its ink; None when its advance is not whole pixels."""
    font = get_font(size)
    advance = font.getlength(ch)
    if advance != int(advance):
        return None
    margin = size  # room for ink left of the pen and below the line
    canvas = Image.new("L", (int(advance) + 2 * margin, line_height(size) + 2 * margin))
    ImageDraw.Draw(canvas).text((margin, margin), ch, font=font, fill=255)
    a = np.asarray(canvas)
    rows, cols = np.flatnonzero(a.any(axis=1)), np.flatnonzero(a.any(axis=0))
    right = int(font.getbbox(ch)[2])
    if rows.size == 0:
        return _Glyph(int(advance), right, 0, 0, None)
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    mask = a[y0:y1, x0:x1].copy()
    mask.setflags(write=False)
    return _Glyph(int(advance), right, int(x0) - margin, int(y0) - margin, mask)


def _composable_text(text: str, size: int) -> bool:
    """Whether ``text`` (as drawn) can be composed from glyphs at ``size``: printable ASCII, whole-pixel advances."""
    return (
        text.isascii() and text.isprintable() and _composable(size) and all(_glyph(ch, size) is not None for ch in text)
    )


@functools.lru_cache(maxsize=16384)
def _coverage(text: str, size: int, w: int, h: int, pad: int) -> np.ndarray:
    """(h, w) uint8 coverage of composable ``text`` with the pen starting at (pad, pad), clipped to the label.

    Cached beyond ``label_image``'s cache (at a quarter of the memory per label): 80 classes times 100
    scores are more labels than that cache holds, and recolouring a coverage costs a third of laying it.
    """
    cov = np.zeros((h, w), np.uint8)
    cut = text.rfind(" ")
    if cut > 0:  # labels share their start ("person 0.87", "person 0.42"): lay it once, then only the rest
        head, pen, inked = _laid_head(text[:cut], size, h, pad)
        cov[:, : head.shape[1]] = head[:, :w]
        _lay(cov, text[cut:], size, pen, inked, pad)
    else:
        _lay(cov, text, size, pad, -(1 << 30), pad)
    cov.setflags(write=False)
    return cov


@functools.lru_cache(maxsize=1024)
def _laid_head(text: str, size: int, h: int, pad: int) -> tuple[np.ndarray, int, int]:
    """``text`` laid on a canvas as wide as its own label (its ink reaches no further), and the pen state after it."""
    pen, right = 0, 0
    for ch in text:
        g = cast(_Glyph, _glyph(ch, size))  # only composable text is laid here
        right, pen = max(right, pen + g.right), pen + g.advance
    cov = np.zeros((h, max(pen, right) + 2 * pad), np.uint8)
    pen, inked = _lay(cov, text, size, pad, -(1 << 30), pad)
    cov.setflags(write=False)
    return cov, pen, inked


def _lay(cov: np.ndarray, text: str, size: int, pen: int, inked: int, pad: int) -> tuple[int, int]:
    """Lay the glyphs of ``text`` on ``cov`` in place from ``pen``; return the pen and the right end of the ink."""
    h, w = cov.shape
    for ch in text:
        g = cast(_Glyph, _glyph(ch, size))
        if g.mask is not None:
            x, y = pen + g.x, pad + g.y
            gh, gw = g.mask.shape
            x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + gw, w), min(y + gh, h)
            if x0 < x1 and y0 < y1:
                src = g.mask[y0 - y : y1 - y, x0 - x : x1 - x]
                dst = cov[y0:y1, x0:x1]
                if x >= inked:
                    dst[...] = src
                else:  # edges of neighbouring glyphs overlap
                    t = dst.astype(np.uint32) * (255 - src) + 128
                    dst[...] = src + (((t >> 8) + t) >> 8)
            inked = max(inked, x + gw)
        pen += g.advance
    return pen, inked


@functools.lru_cache(maxsize=256)
def _blend_lut(fg: Color, bg: Color) -> np.ndarray:
    """(256, 3) uint8: the colour Pillow paints for each coverage value, ``fg`` over ``bg``."""
    m = np.arange(256, dtype=np.uint32)[:, None]
    t = np.array(bg, np.uint32) * (255 - m) + np.array(fg, np.uint32) * m + 128
    lut = (((t >> 8) + t) >> 8).astype(np.uint8)
    lut.setflags(write=False)
    return lut


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
