"""The one place box formats are converted, plus IoU and greedy matching.

Formats (``schema.BOX_FORMATS``), each a row of 4 numbers:

* ``yxyx``   ymin, xmin, ymax, xmax (TensorFlow's default);
* ``xyxy``   xmin, ymin, xmax, ymax;
* ``xywh``   xmin, ymin, width, height (top-left corner);
* ``cxcywh`` x centre, y centre, width, height.

Coords (``schema.BOX_COORDS``): ``normalized`` (fractions of the image width
and height) or ``pixels``. Everything downstream works in pixel ``xyxy``.

Two rules every reader of boxes shares (the renderer, the detection metrics and
selections, ``--changes`` and the ``--max-boxes`` note): ``box_count`` says how
many of an image's box rows are real, ``drawn_order`` which predictions a
picture shows.
"""

from __future__ import annotations

import dataclasses
import math
from typing import SupportsFloat

import numpy as np

from .._checks import check_choice
from ..errors import ConfigError, RenderError
from ..schema import BOX_COORDS, BOX_FORMATS, CORNER_FORMATS


def to_pixel_xyxy(boxes: np.ndarray, box_format: str, box_coords: str, width: float, height: float) -> np.ndarray:
    """Convert (M, 4) boxes to pixel xyxy float64, dropping rows with NaN/inf.

    Inverted boxes (x2 < x1 or y2 < y1) are normalised by sorting coordinates.

    >>> to_pixel_xyxy(np.array([[0.1, 0.2, 0.5, 0.6]]), "yxyx", "normalized", 100, 50)
    array([[20.,  5., 60., 25.]])
    """
    return to_pixel_xyxy_keep(boxes, box_format, box_coords, width, height)[0]


def to_pixel_xyxy_keep(
    boxes: np.ndarray, box_format: str, box_coords: str, width: float, height: float
) -> tuple[np.ndarray, np.ndarray]:
    """Like ``to_pixel_xyxy`` but also return the (M,) bool mask of kept rows.

    Use the mask to filter arrays that run parallel to ``boxes`` (labels, scores).
    """
    check_choice(box_format, BOX_FORMATS, "box_format")
    check_choice(box_coords, BOX_COORDS, "box_coords")
    if not (np.isfinite(width) and np.isfinite(height) and width > 0 and height > 0):
        raise ConfigError(f"width and height must be positive, got {width!r} x {height!r}")
    b = as_box_array(boxes, "boxes")
    a0, a1, a2, a3 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    with np.errstate(over="ignore", invalid="ignore"):  # inf/NaN results are dropped below
        if box_format in CORNER_FORMATS:  # two corners; only the order of the axes differs
            x1, y1, x2, y2 = (a0, a1, a2, a3) if box_format == "xyxy" else (a1, a0, a3, a2)
        elif box_format == "xywh":
            x1, y1, x2, y2 = a0, a1, a0 + a2, a1 + a3
        else:  # cxcywh
            x1, y1, x2, y2 = a0 - a2 / 2, a1 - a3 / 2, a0 + a2 / 2, a1 + a3 / 2
        out = np.stack([np.minimum(x1, x2), np.minimum(y1, y2), np.maximum(x1, x2), np.maximum(y1, y2)], axis=1)
        if box_coords == "normalized":
            out *= np.array([width, height, width, height], dtype=np.float64)
    keep = np.isfinite(out).all(axis=1)
    return (out if keep.all() else out[keep]), keep


def box_count(num: SupportsFloat | None, rows: int) -> int:
    """How many of ``rows`` box rows are boxes: ``num_boxes`` clamped to [0, rows], all rows without it.

    A count that is not a finite number (NaN from a float field) says nothing, so every row counts.

    >>> box_count(3, 10), box_count(-1, 10), box_count(12.0, 10), box_count(float("nan"), 10), box_count(None, 10)
    (3, 0, 10, 10, 10)
    """
    if num is None:
        return rows
    n = float(num)
    return int(min(max(n, 0), rows)) if math.isfinite(n) else rows


def drawn_order(scores: np.ndarray | None, count: int, score_threshold: float, max_boxes: int) -> np.ndarray:
    """Positions of the predictions a picture draws, best first: scoring at least ``score_threshold``
    (NaN scores never do), at most ``max_boxes``; without scores the first ``max_boxes`` of ``count``.

    >>> drawn_order(np.array([0.2, np.nan, 0.9, 0.5]), 4, 0.3, 10).tolist(), drawn_order(None, 5, 0.3, 2).tolist()
    ([2, 3], [0, 1])
    """
    if scores is None:
        return np.arange(min(max_boxes, count))
    ok = np.flatnonzero(scores >= score_threshold)
    return ok[np.argsort(-scores[ok], kind="stable")][:max_boxes]


def as_box_array(boxes: np.ndarray, name: str) -> np.ndarray:
    """``boxes`` as a new (M, 4) float64 array; an empty input gives (0, 4)."""
    try:
        b = np.array(boxes, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise RenderError(f"{name} must be a numeric (M, 4) array: {exc}") from None
    if b.size == 0:
        return b.reshape(0, 4)
    if b.ndim != 2 or b.shape[1] != 4:
        raise RenderError(f"{name} must be a 2-d array with shape (M, 4), but got shape {b.shape}")
    return b


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every pixel-xyxy box in ``a`` (N, 4) with every one in ``b`` (M, 4) → (N, M).

    Pairs whose union is empty get 0.

    >>> iou_matrix(np.array([[0, 0, 2, 2]]), np.array([[1, 0, 3, 2]]))
    array([[0.33333333]])
    """
    a = as_box_array(a, "a")
    b = as_box_array(b, "b")
    area_a = (a[:, 2] - a[:, 0]).clip(0) * (a[:, 3] - a[:, 1]).clip(0)
    area_b = (b[:, 2] - b[:, 0]).clip(0) * (b[:, 3] - b[:, 1]).clip(0)
    iw = (np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])).clip(0)
    ih = (np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])).clip(0)
    inter = iw * ih
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
    return iou


@dataclasses.dataclass(frozen=True)
class BoxMatch:
    """Result of ``match_boxes``: which predictions are true positives and which gt boxes were found."""

    tp: np.ndarray  # (N,) bool: prediction matched a gt box
    gt_matched: np.ndarray  # (G,) bool: gt box matched by some prediction
    pred_to_gt: np.ndarray  # (N,) int: index of the matched gt box, -1 if none

    @property
    def fp(self) -> np.ndarray:
        """(N,) bool: predictions that matched nothing."""
        return ~self.tp

    @property
    def missed(self) -> np.ndarray:
        """(G,) bool: gt boxes no prediction matched."""
        return ~self.gt_matched


def match_boxes(
    pred: np.ndarray,
    gt: np.ndarray,
    iou_threshold: float,
    *,
    scores: np.ndarray | None = None,
    pred_labels: np.ndarray | None = None,
    gt_labels: np.ndarray | None = None,
) -> BoxMatch:
    """Greedy matching of pixel-xyxy predictions to gt boxes, highest score first.

    Each prediction takes the unmatched gt box with the highest IoU >= ``iou_threshold``
    (of the same class when both label arrays are given). Without ``scores`` the
    predictions are taken in their given order.

    >>> m = match_boxes(np.array([[0, 0, 10, 10], [50, 50, 60, 60]]), np.array([[1, 1, 10, 10]]), 0.5)
    >>> m.tp.tolist(), m.missed.tolist()
    ([True, False], [False])
    """
    if not (0.0 <= float(iou_threshold) <= 1.0):
        raise ConfigError(f"iou_threshold must be in [0, 1], got {iou_threshold!r}")
    iou = iou_matrix(pred, gt)
    n, g = iou.shape
    if scores is not None:
        s = np.asarray(scores, dtype=np.float64).reshape(-1)
        if s.shape[0] != n:
            raise RenderError(f"scores has {s.shape[0]} entries but there are {n} predicted boxes")
        order = np.argsort(-np.nan_to_num(s, nan=-np.inf), kind="stable")
    else:
        order = np.arange(n)
    candidates = (iou >= iou_threshold) & (iou > 0)  # a match needs some overlap, even at threshold 0
    if pred_labels is not None and gt_labels is not None:
        pl = np.asarray(pred_labels).reshape(-1)
        gl = np.asarray(gt_labels).reshape(-1)
        if pl.shape[0] != n or gl.shape[0] != g:
            raise RenderError(
                f"pred_labels has {pl.shape[0]} entries for {n} predicted boxes and "
                f"gt_labels {gl.shape[0]} for {g} gt boxes; they must match"
            )
        candidates &= pl[:, None] == gl[None, :]
    tp = np.zeros(n, dtype=bool)
    gt_matched = np.zeros(g, dtype=bool)
    pred_to_gt = np.full(n, -1, dtype=np.int64)
    for i in order:
        free = candidates[i] & ~gt_matched
        if free.any():
            j = int(np.argmax(np.where(free, iou[i], -1.0)))
            tp[i] = True
            gt_matched[j] = True
            pred_to_gt[i] = j
    return BoxMatch(tp=tp, gt_matched=gt_matched, pred_to_gt=pred_to_gt)
