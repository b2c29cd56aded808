"""Colours: a stable colour per class id and the fixed colours of the overlay.

Every colour is an ``(r, g, b)`` tuple of ints in 0..255, so it can be used
both as a Pillow ``fill`` and as a numpy lookup-table row.
"""

from __future__ import annotations

import numpy as np

Color = tuple[int, int, int]

#: 20 colours that stay distinct from each other (after Sasha Trubetskoy's list);
#: class ``k`` gets ``PALETTE[k % 20]``.
PALETTE: tuple[Color, ...] = (
    (230, 25, 75),  # red
    (60, 180, 75),  # green
    (255, 225, 25),  # yellow
    (0, 130, 200),  # blue
    (245, 130, 48),  # orange
    (145, 30, 180),  # purple
    (70, 240, 240),  # cyan
    (240, 50, 230),  # magenta
    (210, 245, 60),  # lime
    (250, 190, 212),  # pink
    (0, 128, 128),  # teal
    (220, 190, 255),  # lavender
    (170, 110, 40),  # brown
    (255, 250, 200),  # beige
    (128, 0, 0),  # maroon
    (170, 255, 195),  # mint
    (128, 128, 0),  # olive
    (255, 215, 180),  # apricot
    (0, 0, 128),  # navy
    (128, 128, 128),  # grey
)

#: The palette as a (20, 3) uint8 lookup table for vectorised mask colouring.
PALETTE_LUT: np.ndarray = np.array(PALETTE, dtype=np.uint8)
PALETTE_LUT.setflags(write=False)

CORRECT: Color = (34, 139, 34)  # caption strip: prediction right
WRONG: Color = (200, 30, 30)  # caption strip: prediction wrong
NEUTRAL: Color = (60, 60, 60)  # caption strip: nothing to compare
TP: Color = (40, 210, 70)  # predicted box matched to a gt box
FP: Color = (240, 40, 40)  # predicted box matching nothing
MISSED: Color = (255, 150, 0)  # gt box no prediction matched
GT: Color = (255, 255, 255)  # gt box when there is no class to colour by
UNKNOWN: Color = (160, 160, 160)  # box whose class id could not be read (NaN in a float array)
BAR: Color = (90, 140, 200)  # top-k bar of a class that is not the true one
BACKGROUND: Color = (32, 32, 32)  # grid padding, panel gaps, headers
NONFINITE: Color = (255, 0, 255)  # pixel holding NaN/inf: magenta, which no real picture is mistaken for
BLACK: Color = (0, 0, 0)
WHITE: Color = (255, 255, 255)


def class_color(class_id: int) -> Color:
    """The colour of a class id; any int works (negative and huge ids wrap around).

    >>> class_color(0) == class_color(20)
    True
    """
    return PALETTE[int(class_id) % len(PALETTE)]


def text_color(background: Color) -> Color:
    """Black or white, whichever reads better on ``background`` (by perceived luminance)."""
    r, g, b = background
    return BLACK if 0.299 * r + 0.587 * g + 0.114 * b > 150 else WHITE
