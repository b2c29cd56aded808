"""Semantic segmentation metrics from class maps: one confusion matrix, bounded in size.

``SegmentationEvaluator`` adds (H, W) predicted and ground-truth class maps
image by image into a confusion matrix and reports pixel accuracy and IoU:

* pixels whose ground truth is ``ignore_index`` count nowhere;
* a predicted id outside ``0..K-1`` (or equal to ``ignore_index``) is never a
  class: the pixel is wrong, and counts against the ground-truth class only;
* ``mean_iou`` is the mean over the classes whose union (ground truth or
  prediction) is not empty, the usual convention: a class seen only in
  predictions has IoU 0 and counts; a class seen nowhere does not.

Without ``num_classes``, K grows to cover the largest id seen; either way at
most ``MAX_CLASSES`` classes, so the matrix stays small (K x (K + 1) integers).
A value with nothing to measure (no pixels yet) is ``NO_PIXELS`` (-1.0), the
convention of ``exporter.metrics.detection``.

>>> ev = SegmentationEvaluator(num_classes=2)
>>> ev.add(np.array([[0, 1], [1, 1]]), np.array([[0, 1], [0, 255]]))
>>> m = ev.result()
>>> m.pixel_accuracy, m.per_class_iou
(0.6666666666666666, {0: 0.5, 1: 0.5})
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from .._checks import check_int, check_optional_int, is_int
from ..errors import ConfigError

#: The most classes an evaluator holds: its confusion matrix is at most MAX_CLASSES x (MAX_CLASSES + 1).
MAX_CLASSES = 1000

#: The value of a metric with no pixels to measure.
NO_PIXELS = -1.0


@dataclasses.dataclass(frozen=True)
class SegmentationMetrics:
    """Pixel accuracy, mean IoU and per-class IoU, with the confusion matrix they come from.

    ``confusion`` is (K, K + 1) int64: rows are ground-truth classes, columns
    predicted classes, and the last column counts predicted ids outside 0..K-1.
    ``per_class_iou`` holds the classes with a non-empty union.

    >>> SegmentationMetrics(1.0, 1.0, {0: 1.0}, np.array([[4, 0]])).mean_iou
    1.0
    """

    pixel_accuracy: float
    mean_iou: float
    per_class_iou: dict[int, float]
    confusion: np.ndarray = dataclasses.field(repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("pixel_accuracy", "mean_iou"):
            _check_fraction(getattr(self, name), name, missing_ok=True)
        if not isinstance(self.per_class_iou, dict):
            raise ConfigError(
                f"per_class_iou must be a dict of class id -> IoU, got {type(self.per_class_iou).__name__}"
            )
        for k, v in self.per_class_iou.items():
            if not is_int(k) or k < 0:
                raise ConfigError(f"per_class_iou keys must be class ids >= 0, got {k!r}")
            _check_fraction(v, f"per_class_iou[{k}]", missing_ok=False)
        c = self.confusion
        if not isinstance(c, np.ndarray) or c.ndim != 2 or c.shape[1] != c.shape[0] + 1 or c.dtype.kind not in "iu":
            got = f"{c.dtype} with shape {c.shape}" if isinstance(c, np.ndarray) else type(c).__name__
            raise ConfigError(f"confusion must be an integer array with shape (K, K + 1), but got {got}")

    @property
    def num_classes(self) -> int:
        return self.confusion.shape[0]


def _check_fraction(value: Any, name: str, *, missing_ok: bool) -> None:
    ok = isinstance(value, (float, np.floating)) and (0.0 <= value <= 1.0 or (missing_ok and value == NO_PIXELS))
    if not ok:
        extra = f" or {NO_PIXELS} (no pixels)" if missing_ok else ""
        raise ConfigError(f"{name} must be a float in [0, 1]{extra}, got {value!r}")


class SegmentationEvaluator:
    """Confusion matrix of (H, W) class maps, added image by image.

    ``num_classes`` (at most ``MAX_CLASSES``) fixes K; without it K grows with
    the ids seen. ``ignore_index`` (None: no pixel is ignored) marks ground-truth
    pixels to skip and must not be one of the K classes.

    >>> ev = SegmentationEvaluator()
    >>> ev.add(np.array([[2, 2]]), np.array([[2, 0]]))
    >>> ev.result().per_class_iou
    {0: 0.0, 2: 0.5}
    """

    def __init__(self, num_classes: int | None = None, ignore_index: int | None = 255):
        self.num_classes = check_optional_int(num_classes, "num_classes", minimum=1, maximum=MAX_CLASSES)
        if ignore_index is not None:
            check_int(ignore_index, "ignore_index")
            if self.num_classes is not None and 0 <= ignore_index < self.num_classes:
                raise ConfigError(
                    f"ignore_index must not be one of the classes 0..{self.num_classes - 1}, got {ignore_index}; "
                    "map the ignored label to an id outside them (e.g. 255)"
                )
        self.ignore_index = None if ignore_index is None else int(ignore_index)
        k = self.num_classes or 0
        self._hits = np.zeros((k, k), np.int64)  # [gt, pred] for predictions inside 0..K-1
        self._outside = np.zeros(k, np.int64)  # [gt]: predictions outside 0..K-1
        self.num_images = 0

    def __repr__(self) -> str:
        return (
            f"SegmentationEvaluator(num_classes={self.num_classes}, ignore_index={self.ignore_index}, "
            f"classes={self._hits.shape[0]}, images={self.num_images})"
        )

    def add(self, pred: np.ndarray, gt: np.ndarray) -> None:
        """Count one image: ``pred`` and ``gt`` are (H, W) integer class maps of the same shape."""
        p, g = _class_map(pred, "pred"), _class_map(gt, "gt")
        if p.shape != g.shape:
            raise ConfigError(f"pred and gt must have the same shape (H, W), got {p.shape} and {g.shape}")
        p, g = p.ravel().astype(np.int64), g.ravel().astype(np.int64)
        if self.ignore_index is not None:
            keep = g != self.ignore_index
            p, g = p[keep], g[keep]
        limit = self.num_classes if self.num_classes is not None else MAX_CLASSES
        bad = (g < 0) | (g >= limit)
        if bad.any():
            raise ConfigError(
                f"gt must hold class ids 0..{limit - 1}{self._ignore_text()}, got {int(g[bad][0])}"
                + ("" if self.num_classes is not None else f" (at most MAX_CLASSES={MAX_CLASSES} classes)")
            )
        is_class = p >= 0
        if self.ignore_index is not None:
            is_class &= p != self.ignore_index
        if self.num_classes is None:
            too_big = is_class & (p >= MAX_CLASSES)
            if too_big.any():
                raise ConfigError(
                    f"pred holds class id {int(p[too_big][0])}, more than MAX_CLASSES={MAX_CLASSES} classes; "
                    "pass num_classes to count ids beyond it as wrong"
                )
            seen = max(int(g.max(initial=-1)), int(p[is_class].max(initial=-1))) + 1
            self._grow(seen)
        k = self._hits.shape[0]
        is_class &= p < k
        # one bincount: column k collects every prediction that is not a class
        flat = g * (k + 1) + np.where(is_class, p, k)
        counts = np.bincount(flat, minlength=k * (k + 1)).reshape(k, k + 1)
        self._hits += counts[:, :k]
        self._outside += counts[:, k]
        self.num_images += 1

    def merge(self, other: SegmentationEvaluator) -> None:
        """Add ``other``'s counts to this one's (both must have the same ``num_classes`` and ``ignore_index``).

        >>> a, b = SegmentationEvaluator(), SegmentationEvaluator()
        >>> a.add(np.array([[0, 1]]), np.array([[0, 1]])); b.add(np.array([[2]]), np.array([[0]]))
        >>> a.merge(b)
        >>> a.num_images, a.result().per_class_iou
        (2, {0: 0.5, 1: 1.0, 2: 0.0})
        """
        if not isinstance(other, SegmentationEvaluator):
            raise ConfigError(f"merge() takes a SegmentationEvaluator, got {type(other).__name__}")
        if (other.num_classes, other.ignore_index) != (self.num_classes, self.ignore_index):
            raise ConfigError(f"cannot merge {other!r} into {self!r}: num_classes and ignore_index must be the same")
        k = other._hits.shape[0]
        self._grow(k)
        self._hits[:k, :k] += other._hits
        self._outside[:k] += other._outside
        self.num_images += other.num_images

    def result(self) -> SegmentationMetrics:
        """Pixel accuracy and IoU of everything added so far.

        >>> SegmentationEvaluator().result().mean_iou
        -1.0
        """
        hits = self._hits
        tp = np.diag(hits)
        gt_pixels = hits.sum(axis=1) + self._outside
        union = gt_pixels + hits.sum(axis=0) - tp
        total = int(gt_pixels.sum())
        per_class = {k: float(tp[k] / union[k]) for k in np.flatnonzero(union).tolist()}
        return SegmentationMetrics(
            pixel_accuracy=float(tp.sum() / total) if total else NO_PIXELS,
            mean_iou=float(np.mean(list(per_class.values()))) if per_class else NO_PIXELS,
            per_class_iou=per_class,
            confusion=np.concatenate([hits, self._outside[:, None]], axis=1),
        )

    def _grow(self, k: int) -> None:
        """Make room for classes 0..k-1, keeping the counts."""
        old = self._hits.shape[0]
        if k > old:
            self._hits = np.pad(self._hits, ((0, k - old), (0, k - old)))
            self._outside = np.pad(self._outside, (0, k - old))

    def _ignore_text(self) -> str:
        return "" if self.ignore_index is None else f" or ignore_index {self.ignore_index}"


def _class_map(values: Any, name: str) -> np.ndarray:
    """An (H, W) integer array (not bool: True is not a class id here)."""
    arr = np.asarray(values)
    if arr.ndim != 2 or arr.dtype.kind not in "iu":
        raise ConfigError(
            f"{name} must be an (H, W) integer class map, but got {arr.dtype} with shape {arr.shape}"
            + ("; take argmax over the class axis first" if arr.dtype.kind == "f" else "")
        )
    return arr
