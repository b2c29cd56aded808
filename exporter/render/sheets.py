"""Several pictures on one sheet: contact sheets (``render_grid``, ``thumbnail``) and confusion matrices."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from .._checks import check_int, check_names
from ..errors import ConfigError, RenderError
from . import colors
from .classes import class_name
from .colors import Color
from .text import get_font, label_image, line_height, text_width

#: The longest side of a grid cell: bigger pictures are shrunk to it so a sheet stays viewable.
GRID_CELL = 320


def thumbnail(img: Image.Image, cell: int = GRID_CELL) -> Image.Image:
    """``img`` shrunk to fit a ``cell`` x ``cell`` square, keeping its aspect ratio; never enlarged.

    A shrunk picture is a new image; one that already fits is returned as it is.

    >>> thumbnail(Image.new("RGB", (640, 100))).size, thumbnail(Image.new("RGB", (64, 10))).size
    ((320, 50), (64, 10))
    """
    check_int(cell, "cell", minimum=1)
    if max(img.size) <= cell:
        return img
    img = img.copy()
    img.thumbnail((cell, cell))  # Pillow's own reduce-then-resample, as the step grid always used
    return img


def render_grid(
    images: Sequence[Image.Image],
    *,
    cols: int | None = None,
    pad: int = 4,
    background: Color = colors.BACKGROUND,
) -> Image.Image:
    """A contact sheet: images in rows of ``cols`` (default ceil(sqrt(n))), each cell top-left aligned.

    Cells may differ in size: a column is as wide as its widest image, a row as
    tall as its tallest.

    >>> render_grid([Image.new("RGB", (10, 10))] * 3, pad=1).size
    (23, 23)
    """
    images = list(images)
    if not images:
        raise RenderError("render_grid needs at least one image, got none")
    for i, im in enumerate(images):
        if not isinstance(im, Image.Image):
            raise RenderError(f"render_grid takes PIL images, item {i} is a {type(im).__name__}")
    n = len(images)
    cols = math.ceil(math.sqrt(n)) if cols is None else check_int(cols, "cols", minimum=1)
    cols = min(cols, n)
    pad = check_int(pad, "pad", minimum=0)
    if len(background) != 3 or not all(isinstance(c, (int, np.integer)) and 0 <= c <= 255 for c in background):
        raise ConfigError(f"background must be an (r, g, b) tuple of ints in 0..255, got {background!r}")
    rows = math.ceil(n / cols)
    col_w = [max(im.width for im in images[c::cols]) for c in range(cols)]
    row_h = [max(im.height for im in images[r * cols : (r + 1) * cols]) for r in range(rows)]
    xs = np.concatenate([[pad], pad + np.cumsum(np.array(col_w) + pad)]).tolist()
    ys = np.concatenate([[pad], pad + np.cumsum(np.array(row_h) + pad)]).tolist()
    sheet = Image.new("RGB", (xs[-1], ys[-1]), tuple(int(c) for c in background))
    for i, im in enumerate(images):
        sheet.paste(im if im.mode == "RGB" else im.convert("RGB"), (xs[i % cols], ys[i // cols]))
    return sheet


_HEAT_STOPS = np.array([[247, 251, 255], [107, 174, 214], [8, 48, 107]], dtype=np.float64)  # white → blue


def render_confusion_matrix(matrix: np.ndarray, class_names: Sequence[str] | None = None) -> Image.Image:
    """A heat map of a (K, K) confusion matrix: rows are true classes, columns predicted.

    Cell colour is the fraction of its row (so each true class reads as a
    recall profile); the count is written in the cell when K <= 40.

    >>> render_confusion_matrix(np.array([[5, 1], [0, 3]]), ["cat", "dog"]).mode
    'RGB'
    """
    m = np.asarray(matrix)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.size == 0:
        raise RenderError(f"confusion matrix must be a non-empty square (K, K) array, got shape {m.shape}")
    if not (np.issubdtype(m.dtype, np.integer) or np.issubdtype(m.dtype, np.floating)):
        raise RenderError(f"confusion matrix must be numeric, got dtype {m.dtype}")
    m = m.astype(np.float64)
    if not np.all(np.isfinite(m)) or (m < 0).any():
        raise RenderError("confusion matrix must hold finite counts >= 0")
    k = m.shape[0]
    known = None if class_names is None else check_names(class_names, "class_names")
    names = [_short(class_name(i, known)) for i in range(k)]
    rowsum = m.sum(axis=1, keepdims=True)
    frac = np.divide(m, rowsum, out=np.zeros_like(m), where=rowsum > 0)

    size = 14
    font = get_font(size)
    lh = line_height(size)
    pad = 6
    show_text = k <= 40
    texts = [[_count_text(v) for v in row] for row in m] if show_text else []
    if show_text:
        longest = max(text_width(t, size) for row in texts for t in row)
        cell = max(lh + 2 * pad, longest + 2 * pad, 28)
    else:
        cell = max(4, 640 // k)
    name_w = max(text_width(n, size) for n in names)
    left = pad + lh + pad + name_w + pad  # "true" title, row names
    top = pad + lh + pad + name_w + pad  # "predicted" title, column names
    width, height = left + k * cell + pad, top + k * cell + pad
    sheet = Image.new("RGB", (width, height), colors.WHITE)

    # interpolate the colour map in numpy and paste the whole grid at once
    t = frac * 2
    lo_idx = np.minimum(t.astype(int), 1)
    u = (t - lo_idx)[..., None]
    rgb = (_HEAT_STOPS[lo_idx] * (1 - u) + _HEAT_STOPS[lo_idx + 1] * u + 0.5).astype(np.uint8)
    cells = np.repeat(np.repeat(rgb, cell, axis=0), cell, axis=1)
    if cell >= 8:  # 1-px white grid between cells
        cells[::cell, :] = 255
        cells[:, ::cell] = 255
    sheet.paste(Image.fromarray(cells), (left, top))
    draw = ImageDraw.Draw(sheet)
    if show_text:
        for i in range(k):
            for j in range(k):
                fill = colors.WHITE if frac[i, j] > 0.5 else colors.BLACK
                cx, cy = left + j * cell + cell // 2, top + i * cell + cell // 2
                draw.text((cx, cy), texts[i][j], font=font, fill=fill, anchor="mm")
    for i, n in enumerate(names):
        draw.text((left - pad, top + i * cell + cell // 2), n, font=font, fill=colors.BLACK, anchor="rm")
        col = Image.new("RGB", (text_width(n, size) + 1, lh), colors.WHITE)
        ImageDraw.Draw(col).text((0, 0), n, font=font, fill=colors.BLACK)
        col = col.transpose(Image.Transpose.ROTATE_90)
        sheet.paste(col, (left + i * cell + (cell - lh) // 2, top - pad - col.height))
    draw.text((left + k * cell // 2, pad), "predicted", font=font, fill=colors.BLACK, anchor="ma")
    title = Image.new("RGB", (text_width("true", size) + 1, lh), colors.WHITE)
    ImageDraw.Draw(title).text((0, 0), "true", font=font, fill=colors.BLACK)
    title = title.transpose(Image.Transpose.ROTATE_90)
    sheet.paste(title, (pad, top + (k * cell - title.height) // 2))
    return sheet


def _short(name: str, limit: int = 24) -> str:
    return name if len(name) <= limit else name[: limit - 3] + "..."


def _count_text(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:.2f}"


_HEADER_FONT = 14


def side_by_side(
    rows: Sequence[tuple[Image.Image, Image.Image]], titles: tuple[str, str], *, cell: int | None = None
) -> Image.Image:
    """Pairs of pictures in two columns under a header each: what ``compare`` and ``changes/...`` tags show.

    ``cell`` shrinks each picture to fit (``render.thumbnail``); None keeps them whole, so each
    panel is pixel for pixel its example's own picture.

    >>> side_by_side([(Image.new("RGB", (8, 8)), Image.new("RGB", (8, 8)))], ("step 1", "step 2")).mode
    'RGB'
    """
    cells = [header(titles[0]), header(titles[1])]
    for left, right in rows:
        cells += [left, right] if cell is None else [thumbnail(left, cell), thumbnail(right, cell)]
    return render_grid(cells, cols=2)


def header(text: str) -> Image.Image:
    """A column title of ``side_by_side``: white text on the background colour."""
    return label_image(text, _HEADER_FONT, colors.WHITE, colors.BACKGROUND)
