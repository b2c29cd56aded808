"""Colours: a stable colour per class id and the fixed colours of the overlay.

Every colour is an ``(r, g, b)`` tuple of ints in 0..255, so it can be used
both as a Pillow ``fill`` and as a numpy lookup-table row.

A class's colour is a pure function of its id (``class_color``), so a class
keeps its colour across steps, runs and exports:

* ids 0..127 take ``PALETTE[id]``: 128 colours spread out in OKLab (Björn
  Ottosson's perceptual colour space, ``to_oklab``), made once by
  ``generate_palette`` with glasbey's greedy max-min rule: the reserved colours
  below are taken first, then, 128 times, the candidate farthest from every
  colour taken so far. Candidates are the sRGB grid of step 15 whose OKLab
  lightness is 0.55..0.92, so a box shows on a dark picture and black or white
  text reads on every colour (contrast >= 4.5:1). The table is committed so
  importing costs nothing; ``tests/render/test_colors.py`` checks that it is
  what ``generate_palette`` makes. Any two of the first 80 (COCO's classes) are
  >= 0.07 apart in OKLab, as far as the closest pair of the 20-colour list
  this replaces, which gave every colour to 4 of COCO's classes;
* every other id (negative, or 128 and up) gets its own colour from a hash of
  the id (SplitMix64), in the same lightness band and as far from the reserved
  colours as the table is.

No class colour is close to a reserved one (``RESERVED``: the match colours
TP, FP and MISSED, GT, UNKNOWN, NONFINITE, black, white, the background), so a
mask or box coloured by class is never taken for a match result or a NaN pixel.
"""

from __future__ import annotations

import functools

import numpy as np

Color = tuple[int, int, int]

CORRECT: Color = (34, 139, 34)  # caption strip: prediction right
WRONG: Color = (200, 30, 30)  # caption strip: prediction wrong
NEUTRAL: Color = (60, 60, 60)  # caption strip: nothing to compare
TP: Color = (40, 210, 70)  # predicted box matched to a gt box
FP: Color = (240, 40, 40)  # predicted box matching nothing
MISSED: Color = (255, 150, 0)  # gt box no prediction matched
GT: Color = (255, 255, 255)  # gt box when there is no class to colour by
UNKNOWN: Color = (160, 160, 160)  # box whose class id could not be read (NaN in a float array)
NONFINITE: Color = (255, 0, 255)  # pixel holding NaN/inf: magenta, which no real picture is mistaken for
BAR: Color = (90, 140, 200)  # top-k bar of a class that is not the true one
BACKGROUND: Color = (32, 32, 32)  # grid padding, panel gaps, headers
BLACK: Color = (0, 0, 0)
WHITE: Color = (255, 255, 255)

#: Colours with a meaning of their own, kept away from every class colour.
RESERVED: tuple[Color, ...] = (TP, FP, MISSED, GT, UNKNOWN, NONFINITE, BLACK, BACKGROUND)

#: ``generate_palette()``: class ``k`` in 0..127 gets ``PALETTE[k]`` (see the module docstring).
# fmt: off
PALETTE: tuple[Color, ...] = (
    (60, 90, 255), (45, 135, 45), (165, 75, 165), (255, 165, 255), (0, 240, 240), (225, 240, 75),
    (0, 165, 255), (75, 120, 150), (165, 105, 15), (165, 0, 255), (180, 120, 255), (240, 105, 165),
    (210, 210, 180), (165, 165, 15), (90, 255, 0), (150, 195, 255), (0, 195, 180), (225, 0, 135),
    (255, 165, 165), (180, 75, 90), (120, 240, 150), (225, 120, 90), (120, 120, 210), (225, 195, 45),
    (90, 150, 120), (255, 210, 240), (210, 75, 210), (150, 120, 135), (180, 240, 255), (240, 120, 255),
    (195, 150, 210), (0, 180, 105), (150, 195, 135), (135, 90, 255), (0, 120, 210), (165, 225, 0),
    (135, 135, 0), (210, 165, 120), (0, 150, 195), (180, 15, 195), (135, 150, 255), (195, 135, 30),
    (255, 15, 195), (15, 195, 240), (210, 0, 255), (135, 210, 210), (255, 225, 150), (120, 120, 90),
    (195, 180, 195), (210, 90, 0), (195, 105, 150), (210, 0, 75), (120, 165, 210), (0, 165, 0),
    (255, 45, 120), (150, 195, 15), (0, 225, 180), (195, 240, 180), (255, 135, 210), (75, 135, 255),
    (255, 180, 120), (150, 75, 210), (210, 195, 255), (255, 90, 0), (210, 135, 150), (180, 120, 90),
    (180, 255, 15), (150, 150, 105), (0, 240, 105), (0, 135, 120), (180, 105, 195), (180, 75, 255),
    (120, 255, 210), (135, 105, 165), (225, 90, 105), (165, 135, 180), (105, 150, 165), (255, 90, 210),
    (255, 135, 120), (210, 165, 30), (210, 165, 255), (255, 195, 180), (105, 180, 0), (105, 180, 135),
    (210, 75, 165), (180, 210, 105), (210, 15, 180), (150, 225, 180), (0, 165, 165), (225, 75, 255),
    (210, 120, 210), (105, 210, 120), (240, 225, 210), (195, 60, 30), (240, 165, 210), (120, 180, 180),
    (105, 90, 225), (165, 90, 135), (105, 180, 255), (135, 225, 255), (165, 255, 135), (135, 120, 255),
    (195, 60, 120), (90, 150, 45), (255, 210, 75), (90, 105, 195), (165, 135, 225), (255, 105, 120),
    (195, 210, 225), (120, 165, 75), (255, 60, 165), (165, 165, 240), (150, 105, 90), (210, 195, 120),
    (135, 45, 255), (255, 135, 165), (75, 135, 210), (210, 225, 120), (240, 120, 0), (180, 195, 165),
    (210, 105, 240), (135, 135, 120), (90, 135, 75), (150, 180, 210), (0, 120, 255), (180, 165, 90),
    (225, 15, 225), (90, 210, 255),
)
# fmt: on

#: The palette as a (128, 3) uint8 lookup table for vectorised mask colouring (``class_colors``).
PALETTE_LUT: np.ndarray = np.array(PALETTE, dtype=np.uint8)
PALETTE_LUT.setflags(write=False)

_LIGHTNESS = (0.55, 0.92)  # OKLab L of every class colour
_HASHED_MIN_DISTANCE = 0.08  # OKLab distance of a hashed colour from every reserved one


@functools.lru_cache(maxsize=4096)
def class_color(class_id: int) -> Color:
    """The colour of a class id: ``PALETTE[id]`` for 0..127, a colour hashed from the id for any other int.

    >>> class_color(0), class_color(0) == class_color(128), class_color(-1) == class_color(-1)
    ((60, 90, 255), False, True)
    """
    k = int(class_id)
    if 0 <= k < len(PALETTE):
        return PALETTE[k]
    return _hashed_color(k)


def class_colors(class_ids: np.ndarray) -> np.ndarray:
    """``class_color`` of every id in an int array, as a uint8 array of shape ``class_ids.shape + (3,)``."""
    ids = np.asarray(class_ids, dtype=np.int64)
    if ids.size == 0 or (ids.min() >= 0 and ids.max() < len(PALETTE)):
        return PALETTE_LUT[ids]
    inside = (ids >= 0) & (ids < len(PALETTE))
    out = np.empty(ids.shape + (3,), np.uint8)
    out[inside] = PALETTE_LUT[ids[inside]]
    others, where = np.unique(ids[~inside], return_inverse=True)  # few distinct ids, many pixels
    out[~inside] = np.array([class_color(int(k)) for k in others], np.uint8)[where.reshape(-1)]
    return out


def _splitmix64(x: int) -> int:
    """One step of SplitMix64 (Steele, Lea, Flood 2014): a well-mixed 64-bit hash of a 64-bit int."""
    x = (x + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return x ^ (x >> 31)


def _hashed_color(class_id: int) -> Color:
    """A colour drawn from the hash of ``class_id``, re-hashed until it is in the palette's band, away from RESERVED."""
    h = class_id & 0xFFFFFFFFFFFFFFFF
    reserved = _reserved_oklab()
    while True:  # about 1 in 3 hashes is accepted
        h = _splitmix64(h)
        rgb = ((h >> 40) & 255, (h >> 24) & 255, (h >> 8) & 255)
        lab = to_oklab([rgb])[0]
        if _LIGHTNESS[0] <= lab[0] <= _LIGHTNESS[1] and np.linalg.norm(reserved - lab, axis=1).min() >= (
            _HASHED_MIN_DISTANCE
        ):
            return rgb


@functools.cache
def _reserved_oklab() -> np.ndarray:
    return to_oklab(RESERVED)


def relative_luminance(colors: np.ndarray | list[Color] | Color) -> np.ndarray:
    """WCAG 2 relative luminance (0 black .. 1 white) of sRGB colours in 0..255, one per row."""
    return _linear(colors) @ np.array([0.2126, 0.7152, 0.0722])


def contrast_ratio(a: Color, b: Color) -> float:
    """WCAG 2 contrast ratio of two colours, 1 (none) .. 21 (black on white).

    >>> contrast_ratio(BLACK, WHITE)
    21.0
    """
    la, lb = relative_luminance(a), relative_luminance(b)
    return float((max(la, lb) + 0.05) / (min(la, lb) + 0.05))


def text_color(background: Color) -> Color:
    """Black or white, whichever has the higher WCAG contrast with ``background`` (always >= 4.58:1).

    >>> text_color(TP), text_color((0, 0, 128))
    ((0, 0, 0), (255, 255, 255))
    """
    lum = float(relative_luminance(background))
    return BLACK if (lum + 0.05) / 0.05 >= 1.05 / (lum + 0.05) else WHITE


def _linear(colors: np.ndarray | list[Color] | tuple[Color, ...] | Color) -> np.ndarray:
    """sRGB 0..255 → linear light 0..1 (the sRGB transfer function)."""
    c = np.asarray(colors, dtype=np.float64) / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


_OKLAB_M1 = np.array(
    [
        [0.4122214708, 0.5363325363, 0.0514459929],
        [0.2119034982, 0.6806995451, 0.1073969566],
        [0.0883024619, 0.2817188376, 0.6299787005],
    ]
)
_OKLAB_M2 = np.array(
    [
        [0.2104542553, 0.7936177850, -0.0040720468],
        [1.9779984951, -2.4285922050, 0.4505937099],
        [0.0259040371, 0.7827717662, -0.8086757660],
    ]
)


def to_oklab(colors: np.ndarray | list[Color] | tuple[Color, ...]) -> np.ndarray:
    """(N, 3) OKLab (L 0..1, a, b) of N sRGB colours in 0..255; Euclidean distance there is perceptual distance.

    >>> [round(float(v), 3) + 0.0 for v in to_oklab([WHITE])[0]]
    [1.0, 0.0, 0.0]
    """
    return np.cbrt(_linear(colors).reshape(-1, 3) @ _OKLAB_M1.T) @ _OKLAB_M2.T


def generate_palette(n: int = 128, step: int = 15) -> tuple[Color, ...]:
    """The class palette as made for ``PALETTE``: greedy max-min in OKLab away from RESERVED (module docstring)."""
    levels = np.arange(0, 256, step)
    candidates = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1).reshape(-1, 3)
    lab = to_oklab(candidates)
    keep = (lab[:, 0] >= _LIGHTNESS[0]) & (lab[:, 0] <= _LIGHTNESS[1])
    candidates, lab = candidates[keep], lab[keep]
    nearest = np.full(len(candidates), np.inf)  # distance from each candidate to the closest colour taken
    for taken in to_oklab(RESERVED):
        nearest = np.minimum(nearest, np.linalg.norm(lab - taken, axis=1))
    palette: list[Color] = []
    for _ in range(n):
        i = int(np.argmax(nearest))  # ties: the first in grid order
        r, g, b = (int(v) for v in candidates[i])
        palette.append((r, g, b))
        nearest = np.minimum(nearest, np.linalg.norm(lab - lab[i], axis=1))
    return tuple(palette)
