"""One example, read and checked, ready to draw: ``read_example(arrays, read) -> Example``.

All reading of an example's arrays happens here: ODAPI names are made
canonical, the image normalised (``image``), boxes converted to pixels of the
original image (``boxes``), class ids read (``classes``), class maps read
(``masks``), and each box's instance mask and keypoints kept with the box
(``Boxes``), so whatever decides that a box is drawn decides it for them too.
What is left for ``compose`` is style: which boxes to keep, how to draw them. The records check themselves in ``__post_init__``, so an ``Example``
built by hand is as safe to draw as a read one.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .._checks import check_names, check_type, is_int
from ..errors import ConfigError, RenderError
from ..odapi import to_canonical
from ..schema import DEFAULT_BOX_COORDS, DEFAULT_BOX_FORMAT, DEFAULT_MASK_BACKGROUND
from .boxes import as_box_array, box_count, to_pixel_xyxy_keep
from .classes import NO_CLASS, class_ids
from .image import rgb_view
from .masks import read_class_map
from .options import ReadOptions, check_keypoint_edges, mask_background_id

__all__ = ["NO_CLASS", "Boxes", "Example", "read_example"]


def _shape_text(value: Any) -> str:
    """What came instead of an array: its shape, or its type."""
    return f"shape {value.shape}" if isinstance(value, np.ndarray) else f"a {type(value).__name__}"


def _as(value: Any, name: str, kinds: str, dtype: type, expected: str) -> np.ndarray:
    """``value`` as a ``dtype`` array if it is an ndarray of one of the numpy dtype ``kinds``, else RenderError."""
    if not isinstance(value, np.ndarray) or value.dtype.kind not in kinds:
        what = f"dtype {value.dtype}" if isinstance(value, np.ndarray) else _shape_text(value)
        raise RenderError(f"{name} must be {expected}, but got {what}")
    return value.astype(dtype, copy=False)


@dataclasses.dataclass(frozen=True, eq=False)
class Boxes:
    """K boxes of one kind: pixel ``xyxy`` of the original image, with optional parallel per-box arrays.

    * ``xyxy``: (K, 4) float64, finite, x1 <= x2 and y1 <= y2 (boxes may reach outside the image);
    * ``labels``: (K,) int64 class ids (``NO_CLASS`` where unreadable), or None;
    * ``scores``: (K,) float64 (NaN allowed: such a box never passes a score threshold), or None;
    * ``masks``: (K, h, w) bool instance masks in image space (any resolution: resized to the
      image when drawn), or None;
    * ``keypoints``: (K, P, 2) float64 x, y in pixels of the original image (NaN: no keypoint), or None;
    * ``keypoint_scores``: (K, P) float64 (NaN: never drawn), or None; only with ``keypoints``.

    Integer and float arrays are converted to those dtypes (integer masks: nonzero is inside).

    >>> Boxes(np.array([[0, 0, 10, 5]]), labels=np.array([2])).xyxy.dtype
    dtype('float64')
    >>> Boxes(np.zeros(3))
    Traceback (most recent call last):
    ...
    exporter.errors.RenderError: xyxy must be a 2D np.ndarray with shape (K, 4), but got shape (3,)
    """

    xyxy: np.ndarray
    labels: np.ndarray | None = None
    scores: np.ndarray | None = None
    masks: np.ndarray | None = None
    keypoints: np.ndarray | None = None
    keypoint_scores: np.ndarray | None = None

    def __post_init__(self) -> None:
        set_ = functools.partial(object.__setattr__, self)
        if not isinstance(self.xyxy, np.ndarray) or self.xyxy.ndim != 2 or self.xyxy.shape[1] != 4:
            raise RenderError(f"xyxy must be a 2D np.ndarray with shape (K, 4), but got {_shape_text(self.xyxy)}")
        xyxy = _as(self.xyxy, "xyxy", "iuf", np.float64, "numeric")
        if not np.isfinite(xyxy).all():
            raise RenderError("xyxy must be finite; drop boxes with NaN/inf (to_pixel_xyxy_keep does)")
        if (xyxy[:, 2] < xyxy[:, 0]).any() or (xyxy[:, 3] < xyxy[:, 1]).any():
            raise RenderError("xyxy must have x1 <= x2 and y1 <= y2; to_pixel_xyxy sorts the corners")
        set_("xyxy", xyxy)
        k = xyxy.shape[0]
        parallel = (
            ("labels", "biu", np.int64, "integer class ids (class_ids reads floats)"),
            ("scores", "biuf", np.float64, "numeric"),
        )
        for name, kinds, dtype, what in parallel:
            value = getattr(self, name)
            if value is None:
                continue
            if not isinstance(value, np.ndarray) or value.shape != (k,):
                raise RenderError(
                    f"{name} must be a 1D np.ndarray with shape ({k},) for {k} boxes, but got {_shape_text(value)}"
                )
            set_(name, _as(value, name, kinds, dtype, what))
        self._check_instances(k)

    def _check_instances(self, k: int) -> None:
        """Check and convert ``masks``, ``keypoints`` and ``keypoint_scores`` (parallel to the K boxes)."""
        set_ = functools.partial(object.__setattr__, self)
        if self.masks is not None:
            m = self.masks
            if not isinstance(m, np.ndarray) or m.ndim != 3 or m.shape[0] != k or 0 in m.shape[1:]:
                raise RenderError(
                    f"masks must be a 3D np.ndarray with shape ({k}, h, w) for {k} boxes, but got {_shape_text(m)}"
                )
            set_("masks", _as(m, "masks", "biu", np.bool_, "bool or 0/1 integer masks"))
        if self.keypoints is not None:
            p = self.keypoints
            if not isinstance(p, np.ndarray) or p.ndim != 3 or p.shape[0] != k or p.shape[2] != 2:
                raise RenderError(
                    f"keypoints must be a 3D np.ndarray with shape ({k}, P, 2) for {k} boxes, but got {_shape_text(p)}"
                )
            set_("keypoints", _as(p, "keypoints", "iuf", np.float64, "numeric"))
        if self.keypoint_scores is not None:
            if self.keypoints is None:
                raise RenderError("keypoint_scores were given without keypoints")
            shape = self.keypoints.shape[:2]
            s = self.keypoint_scores
            if not isinstance(s, np.ndarray) or s.shape != shape:
                raise RenderError(
                    f"keypoint_scores must be a 2D np.ndarray with shape {shape} like keypoints, but got {_shape_text(s)}"
                )
            set_("keypoint_scores", _as(s, "keypoint_scores", "biuf", np.float64, "numeric"))

    def __len__(self) -> int:
        return self.xyxy.shape[0]

    def take(self, index: np.ndarray) -> Boxes:
        """The boxes at ``index`` (an index or bool array), in that order, with everything parallel to them."""
        return Boxes(
            self.xyxy[index],
            None if self.labels is None else self.labels[index],
            None if self.scores is None else self.scores[index],
            None if self.masks is None else self.masks[index],
            None if self.keypoints is None else self.keypoints[index],
            None if self.keypoint_scores is None else self.keypoint_scores[index],
        )


@dataclasses.dataclass(frozen=True, eq=False)
class Example:
    """One example, ready to draw; every field but ``image`` may be None.

    * ``image``: (H, W, 3) uint8 RGB (``image.to_rgb_uint8`` makes one);
    * ``pred``, ``gt``: predicted and ground-truth ``Boxes`` (every valid box, with its
      instance mask and keypoints; the score threshold and ``max_boxes`` are style, applied when drawing);
    * ``mask``, ``gt_mask``: (h, w) int64 class maps (``masks.read_class_map``),
      resized to the image when drawn; ``NO_CLASS`` pixels are never drawn;
    * ``mask_background``: the mask id that is not drawn (None: every id is drawn);
    * ``label``: the true class id; ``pred_label``: the predicted one
      (``pred_labels``, else the arg-max of ``probs``); ``score``: its score
      (``pred_scores``, else its probability); ids may be ``NO_CLASS``;
    * ``probs``: (K,) float64 class probabilities;
    * ``example_id``: the example's id (``ids``), an int, float or str;
    * ``class_names``: id → name, stored as a tuple;
    * ``keypoint_edges``: pairs ``(a, b)`` of 0-based keypoint indices joined by a skeleton
      line, stored as a tuple of tuples (edges beyond a box's P keypoints are not drawn).

    >>> Example(np.zeros((2, 3, 3), np.uint8), label=1, class_names=["cat", "dog"]).class_names
    ('cat', 'dog')
    """

    image: np.ndarray
    pred: Boxes | None = None
    gt: Boxes | None = None
    mask: np.ndarray | None = None
    gt_mask: np.ndarray | None = None
    label: int | None = None
    pred_label: int | None = None
    score: float | None = None
    probs: np.ndarray | None = None
    example_id: int | float | str | None = None
    class_names: Sequence[str] | None = None
    mask_background: int | None = DEFAULT_MASK_BACKGROUND
    keypoint_edges: Sequence[Sequence[int]] | None = None

    def __post_init__(self) -> None:
        set_ = functools.partial(object.__setattr__, self)
        image = self.image
        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.size == 0:
            raise RenderError(
                f"image must be a 3D np.ndarray with shape (H, W, 3), but got {_shape_text(image)}; "
                "to_rgb_uint8 makes one from any supported image"
            )
        if image.dtype != np.uint8:
            raise RenderError(f"image must be uint8 RGB, but got dtype {image.dtype}; to_rgb_uint8 converts it")
        for name in ("pred", "gt"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), Boxes):
                raise RenderError(f"{name} must be Boxes or None, but got a {type(getattr(self, name)).__name__}")
        for name in ("mask", "gt_mask"):
            value = getattr(self, name)
            if value is None:
                continue
            if not isinstance(value, np.ndarray) or value.ndim != 2 or value.size == 0:
                raise RenderError(f"{name} must be a non-empty 2D np.ndarray class map, but got {_shape_text(value)}")
            set_(name, _as(value, name, "biu", np.int64, "integer class ids (read_class_map reads float maps)"))
        for name in ("label", "pred_label"):
            value = getattr(self, name)
            if value is not None and not is_int(value):
                raise RenderError(f"{name} must be an int class id or None, but got {value!r}")
            if value is not None:
                set_(name, int(value))
        if self.score is not None:
            if not (is_int(self.score) or isinstance(self.score, (float, np.floating))):
                raise RenderError(f"score must be a number or None, but got {self.score!r}")
            set_("score", float(self.score))
        if self.probs is not None:
            if not isinstance(self.probs, np.ndarray) or self.probs.ndim != 1 or self.probs.size == 0:
                raise RenderError(f"probs must be a non-empty 1D np.ndarray, but got {_shape_text(self.probs)}")
            set_("probs", _as(self.probs, "probs", "biuf", np.float64, "numeric"))
        if self.example_id is not None and not isinstance(self.example_id, (int, float, str)):
            raise RenderError(f"example_id must be an int, float or str, but got a {type(self.example_id).__name__}")
        if self.class_names is not None:
            set_("class_names", check_names(self.class_names, "class_names"))
        if self.mask_background is not None:
            if not is_int(self.mask_background):
                raise RenderError(f"mask_background must be an int mask id or None, but got {self.mask_background!r}")
            set_("mask_background", int(self.mask_background))
        if self.keypoint_edges is not None:
            try:
                set_("keypoint_edges", check_keypoint_edges(self.keypoint_edges))
            except ConfigError as exc:
                raise RenderError(str(exc)) from None


_DEFAULT_READ = ReadOptions()


def read_example(arrays: Mapping[str, Any], read: ReadOptions = _DEFAULT_READ) -> Example:
    """Read one example (canonical field names, or an ODAPI dict → arrays without a batch axis).

    Only ``images`` is required; a field set to None counts as absent. Rows of
    ``boxes`` beyond ``num_boxes`` (padding) and boxes with NaN/inf are dropped.
    The arrays are never modified; ``Example.image`` may be a read-only view of
    ``images``.

    >>> ex = read_example({"images": np.zeros((4, 6), np.uint8), "boxes": np.array([[0.0, 0.0, 0.5, 1.0]])})
    >>> ex.image.shape, ex.pred.xyxy.tolist()
    ((4, 6, 3), [[0.0, 0.0, 6.0, 2.0]])
    """
    check_type(read, ReadOptions, "read")
    fields = to_canonical(arrays)  # an Object Detection API dict is read as it comes
    if fields.get("images") is None:
        raise RenderError(f"example has no 'images' field; it has {sorted(fields)}")
    image = rgb_view(
        fields["images"], layout=read.layout, bgr=read.bgr, value_range=read.value_range, mean=read.mean, std=read.std
    )
    image = image.view()
    image.setflags(write=False)  # the record must not become a way to write into the caller's array
    h0, w0 = image.shape[:2]
    box_format = read.box_format or DEFAULT_BOX_FORMAT
    box_coords = read.box_coords or DEFAULT_BOX_COORDS
    pred = _boxes(fields, _PRED, box_format, box_coords, w0, h0)
    gt = _boxes(fields, _GT, box_format, box_coords, w0, h0)

    true = _scalar(fields, "labels")
    label = None if true is None else int(class_ids(true, "labels"))
    probs = _probs(fields)
    pred_value = _scalar(fields, "pred_labels")
    if pred_value is None and probs is not None and np.isfinite(probs).any():
        pred_value = int(np.nanargmax(np.where(np.isfinite(probs), probs, -np.inf)))
    pred_label = None if pred_value is None else int(class_ids(pred_value, "pred_labels"))
    score = _scalar(fields, "pred_scores")
    if score is not None:
        score = _number(score, "pred_scores")
    elif probs is not None and pred_label is not None and 0 <= pred_label < probs.shape[0]:
        score = float(probs[pred_label])
    ident = _scalar(fields, "ids")
    return Example(
        image=image,
        pred=pred,
        gt=gt,
        mask=None if fields.get("masks") is None else read_class_map(fields["masks"], "field 'masks'"),
        gt_mask=None if fields.get("gt_masks") is None else read_class_map(fields["gt_masks"], "field 'gt_masks'"),
        label=label,
        pred_label=pred_label,
        score=score,
        probs=probs,
        example_id=None if ident is None else _id_value(ident),
        class_names=read.class_names,
        mask_background=mask_background_id(read.mask_background),
        keypoint_edges=read.keypoint_edges,
    )


def _scalar(fields: Mapping[str, Any], name: str) -> Any:
    """The single value of field ``name`` (a scalar, 0-d or 1-element array), or None if absent."""
    if fields.get(name) is None:
        return None
    a = np.asarray(fields[name])
    if a.size != 1:
        raise RenderError(f"field '{name}' must be a scalar for one example, but got shape {a.shape}")
    return a.reshape(-1)[0]


def _number(value: Any, name: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise RenderError(f"field '{name}' must hold numbers, got {value!r}") from None


def _vector(fields: Mapping[str, Any], name: str, n: int) -> np.ndarray | None:
    """The first ``n`` entries of 1-d field ``name`` (parallel to boxes), or None if absent."""
    if fields.get(name) is None:
        return None
    if np.ndim(fields[name]) > 1:
        raise RenderError(f"field '{name}' must be 1-d for one example, but got shape {np.shape(fields[name])}")
    a = np.asarray(fields[name]).reshape(-1)
    if a.shape[0] < n:
        raise RenderError(f"field '{name}' has {a.shape[0]} entries but there are {n} boxes")
    return a[:n]


@dataclasses.dataclass(frozen=True)
class _BoxFields:
    """The field names of one kind of box and of what runs parallel to it (None: that kind has no such field)."""

    boxes: str
    labels: str
    scores: str | None
    num: str
    masks: str
    keypoints: str
    keypoint_scores: str | None


_PRED = _BoxFields("boxes", "box_labels", "box_scores", "num_boxes", "instance_masks", "keypoints", "keypoint_scores")
_GT = _BoxFields("gt_boxes", "gt_box_labels", None, "gt_num_boxes", "gt_instance_masks", "gt_keypoints", None)


def _boxes(
    fields: Mapping[str, Any], names: _BoxFields, box_format: str, box_coords: str, w0: int, h0: int
) -> Boxes | None:
    """Valid boxes of one kind in original-image pixel xyxy, padding rows and NaN/inf rows dropped."""
    if fields.get(names.boxes) is None:
        return None
    b = as_box_array(fields[names.boxes], f"field '{names.boxes}'")
    n = b.shape[0]
    num = _scalar(fields, names.num)
    if num is not None and np.asarray(num).dtype.kind not in "biuf":  # float() would take "3" and choke on a date
        raise RenderError(f"field '{names.num}' must be a number of boxes, got {num!r}")
    n = box_count(num, n)
    labels = _vector(fields, names.labels, n)
    scores = _vector(fields, names.scores, n) if names.scores else None
    xyxy, keep = to_pixel_xyxy_keep(b[:n], box_format, box_coords, w0, h0)
    if labels is not None:
        labels = class_ids(labels, names.labels)[keep]
    if scores is not None:
        try:
            scores = scores.astype(np.float64)[keep]
        except (TypeError, ValueError):
            raise RenderError(f"field '{names.scores}' must be numeric, got dtype {scores.dtype}") from None
    masks = _instance_masks(fields, names.masks, n, keep)
    points = _per_box(fields, names.keypoints, n, keep, (2,), "(M, P, 2)")
    if points is not None:
        points = points.astype(np.float64)  # a copy: the caller's array is never scaled in place
        if box_coords == "normalized":
            points *= np.array([w0, h0], dtype=np.float64)
    point_scores = _per_box(fields, names.keypoint_scores, n, keep, (), "(M, P)") if names.keypoint_scores else None
    if point_scores is not None and (points is None or point_scores.shape != points.shape[:2]):
        got = "no keypoints" if points is None else f"keypoints of shape {points.shape}"
        raise RenderError(
            f"field '{names.keypoint_scores}' has shape {point_scores.shape}, but there are {got}; "
            "it needs one score per keypoint"
        )
    return Boxes(xyxy, labels, scores, masks, points, point_scores)


def _rows(value: Any, name: str, n: int, keep: np.ndarray) -> np.ndarray:
    """The first ``n`` rows of a per-box field, minus the rows whose box was dropped; a view when none was."""
    a = np.asarray(value)
    if a.ndim == 0 or a.shape[0] < n:
        raise RenderError(f"field '{name}' has {0 if a.ndim == 0 else a.shape[0]} rows but there are {n} boxes")
    a = a[:n]
    return a if keep.all() else a[keep]


def _instance_masks(fields: Mapping[str, Any], name: str, n: int, keep: np.ndarray) -> np.ndarray | None:
    """One example's (M, h, w) instance masks of the ``n`` boxes as bool (soft masks: > 0.5), or None."""
    if fields.get(name) is None:
        return None
    a = np.asarray(fields[name])
    if a.ndim == 4 and a.shape[1] == 1:
        a = a[:, 0]  # Mask R-CNN's (M, 1, H, W)
    if a.ndim != 3 or 0 in a.shape[1:]:
        raise RenderError(f"field '{name}' must be (M, H, W) masks for one example, but got shape {a.shape}")
    a = _rows(a, name, n, keep)
    if a.dtype.kind == "f":
        return a > 0.5  # as the ODAPI and torchvision adapters threshold soft masks
    if a.dtype.kind not in "biu":
        raise RenderError(f"field '{name}' must hold bool or 0/1 integer masks, got dtype {a.dtype}")
    return a.astype(bool, copy=False)


def _per_box(
    fields: Mapping[str, Any], name: str, n: int, keep: np.ndarray, tail: tuple[int, ...], expected: str
) -> np.ndarray | None:
    """A numeric per-box keypoint field of one example (shape (M, P) + ``tail``), its rows as ``_rows``; or None."""
    if fields.get(name) is None:
        return None
    a = np.asarray(fields[name])
    if a.ndim != 2 + len(tail) or a.shape[2:] != tail:
        raise RenderError(f"field '{name}' must be {expected} for one example, but got shape {a.shape}")
    if a.dtype.kind not in "biuf":
        raise RenderError(f"field '{name}' must be numeric, got dtype {a.dtype}")
    return _rows(a, name, n, keep)


def _probs(fields: Mapping[str, Any]) -> np.ndarray | None:
    if fields.get("probs") is None:
        return None
    p = np.asarray(fields["probs"])
    if p.ndim != 1 or p.size == 0:
        raise RenderError(f"field 'probs' must be a non-empty 1-d (K,) array for one example, but got shape {p.shape}")
    try:
        return p.astype(np.float64)
    except (TypeError, ValueError):
        raise RenderError(f"field 'probs' must be numeric, got dtype {p.dtype}") from None


def _id_value(value: Any) -> int | float | str:
    """An ``ids`` value as a plain int, float or str: bytes decoded (UTF-8, bad bytes replaced)."""
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).decode("utf-8", errors="replace")
    value = value.item() if isinstance(value, np.generic) else value
    return value if isinstance(value, (int, float, str)) else str(value)
