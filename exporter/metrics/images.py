"""A shard's detections image by image, in pixel xyxy: what the evaluators and the detector selections read.

``shard_images(arrays, read, image_shape)`` turns a shard's box fields into one
``ImageBoxes`` per image:

* boxes go through the renderer's converter (``render.to_pixel_xyxy_keep``),
  so every box format and coordinate system a shard declares (or ``read``
  overrides) is read as it is drawn; normalized boxes are scaled by the image
  size, from the shape of ``images`` and its layout (``schema.image_layout``);
* rows beyond ``num_boxes`` / ``gt_num_boxes`` are padding; boxes with NaN/inf
  are dropped, as the renderer drops them; boxes with a negative class id (-1
  is the usual padding label) name no class and are left out;
* without ``box_scores`` every prediction scores 1.0 (ties keep box order);
* without ``box_labels`` or ``gt_box_labels`` matching and evaluation are
  class-agnostic: every box counts as class 0 (``ImageBoxes.classes``).

``image_stats`` summarises each image for the detector selections
(``exporter.select``): true/false positives and missed objects at one IoU,
per-image AP and the mean best IoU of the ground truth, and which box classes
the image holds. It uses the renderer's greedy matcher (``render.match_boxes``)
over the predictions a picture shows (score threshold, ``max_boxes``), so the
images a selection picks are the ones drawn with red (false positive) or orange
(missed) boxes at the same ``--match-iou``.

>>> arrays = {"boxes": np.array([[[0.0, 0.0, 0.5, 0.5]]]), "gt_boxes": np.array([[[0.0, 0.0, 0.5, 0.5]]])}
>>> [im.pred.tolist() for im in shard_images(arrays, ReadOptions(), (8, 4))]   # yxyx normalized, 4 wide
[[[0.0, 0.0, 2.0, 4.0]]]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..render import ReadOptions, box_count, drawn_order, iou_matrix, match_boxes, to_pixel_xyxy_keep
from ..schema import DEFAULT_BOX_COORDS, DEFAULT_BOX_FORMAT, image_layout
from .detection import NO_GT, DetectionEvaluator

#: The fields ``shard_images`` reads (those a shard has).
BOX_FIELDS = ("boxes", "box_labels", "box_scores", "num_boxes", "gt_boxes", "gt_box_labels", "gt_num_boxes")
#: Per-box instance masks, read for the "segm" evaluation.
INSTANCE_FIELDS = ("instance_masks", "gt_instance_masks")
#: What ``image_stats`` can compute; ask only for what a selection uses.
STATS = frozenset({"counts", "ap", "best_iou", "classes"})


@dataclasses.dataclass(frozen=True, eq=False)
class ImageBoxes:
    """One image's valid boxes in pixel xyxy, with the rows they came from (to take instance masks).

    ``pred`` (D, 4) float64, ``labels`` (D,) int64 or None (no ``box_labels``),
    ``scores`` (D,) float64, ``pred_rows`` (D,) int64 positions in the shard's
    box axis; ``gt``, ``gt_labels``, ``gt_rows`` likewise.
    """

    pred: np.ndarray
    labels: np.ndarray | None
    scores: np.ndarray
    pred_rows: np.ndarray
    gt: np.ndarray
    gt_labels: np.ndarray | None
    gt_rows: np.ndarray

    @property
    def labelled(self) -> bool:
        """Both sides have class ids: matching and evaluation are per class."""
        return self.labels is not None and self.gt_labels is not None

    def classes(self) -> tuple[np.ndarray, np.ndarray]:
        """(predicted, ground-truth) class ids to match and evaluate with: all 0 unless both sides are labelled."""
        if self.labels is not None and self.gt_labels is not None:
            return self.labels, self.gt_labels
        return np.zeros(len(self.pred), np.int64), np.zeros(len(self.gt), np.int64)


def image_size(shape: Sequence[int] | None, layout: str | None) -> tuple[int, int] | None:
    """(width, height) of one image of ``shape`` (no batch axis) read with ``layout``; None if unreadable.

    >>> image_size((3, 32, 48), None), image_size((32, 48), None)
    ((48, 32), (48, 32))
    """
    if shape is None:
        return None
    shape = tuple(int(d) for d in shape)
    read_as = image_layout(shape, layout)
    if read_as is None or 0 in shape:
        return None
    h, w = shape[1:3] if read_as == "CHW" else shape[:2]
    return w, h


def image_shape_of(fields: Mapping[str, Any]) -> tuple[int, ...] | None:
    """One image's shape from a shard's arrays or its field headers (``Shard.fields``); None without ``images``."""
    info = fields.get("images")
    return None if info is None else tuple(int(d) for d in info.shape[1:])


def has_detections(fields: Sequence[str] | Mapping[str, object]) -> bool:
    """True when there is something to evaluate: predicted and ground-truth boxes."""
    return "boxes" in fields and "gt_boxes" in fields


def shard_images(
    arrays: Mapping[str, np.ndarray], read: ReadOptions, image_shape: Sequence[int] | None
) -> Iterator[ImageBoxes]:
    """Each image's predicted and ground-truth boxes (see the module docstring); a side the shard lacks is empty.

    ``image_shape`` is the shape of one image (``images.shape[1:]``); it is
    needed only for normalized boxes.
    """
    if "boxes" not in arrays and "gt_boxes" not in arrays:
        raise ConfigError(f"no 'boxes' or 'gt_boxes' to read; the shard has: {', '.join(sorted(arrays)) or 'no fields'}")
    box_format = read.box_format or DEFAULT_BOX_FORMAT
    box_coords = read.box_coords or DEFAULT_BOX_COORDS
    size = image_size(image_shape, read.layout)
    if size is None:
        if box_coords == "normalized":
            what = "no 'images' field" if image_shape is None else f"images of shape {tuple(image_shape)}"
            raise ConfigError(
                f"normalized boxes need the image size, but the shard has {what}; "
                "give the image layout (--layout) or pixel boxes"
            )
        size = (1, 1)  # pixel boxes: the size is not used
    width, height = size
    for i in range(len(arrays["boxes"] if "boxes" in arrays else arrays["gt_boxes"])):
        pred, labels, rows = _side(arrays, i, "boxes", "box_labels", "num_boxes", box_format, box_coords, width, height)
        gt, gt_labels, gt_rows = _side(
            arrays, i, "gt_boxes", "gt_box_labels", "gt_num_boxes", box_format, box_coords, width, height
        )
        scores = np.ones(len(rows)) if "box_scores" not in arrays else np.asarray(arrays["box_scores"][i], np.float64)[rows]
        yield ImageBoxes(pred, labels, scores, rows, gt, gt_labels, gt_rows)


def _side(
    arrays: Mapping[str, np.ndarray],
    i: int,
    boxes: str,
    labels_name: str,
    count: str,
    box_format: str,
    box_coords: str,
    width: int,
    height: int,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """One image's boxes of one side: (pixel xyxy, class ids or None, row positions), padding and unusable rows dropped."""
    if boxes not in arrays:  # no such side: no boxes
        return np.zeros((0, 4)), None, np.zeros(0, np.int64)
    b = np.asarray(arrays[boxes][i], np.float64)
    m = box_count(arrays[count][i] if count in arrays else None, b.shape[0])
    xyxy, keep = to_pixel_xyxy_keep(b[:m], box_format, box_coords, width, height)
    rows = np.flatnonzero(keep)
    if labels_name not in arrays:
        return xyxy, None, rows
    ids = np.asarray(arrays[labels_name][i][:m]).astype(np.int64)[rows]
    named = ids >= 0
    return xyxy[named], ids[named], rows[named]


# --------------------------------------------------------------------------- per-image summaries


@dataclasses.dataclass(frozen=True, eq=False)
class ImageStats:
    """Per image of a shard or step, for the detector selections; unasked-for parts are None.

    * ``tp``, ``fp``, ``missed``: (N,) int64 predictions matched and unmatched,
      ground truth not found, at one IoU (greedy, highest score first, same
      class when both sides are labelled);
    * ``ap``: (N,) float64 COCO AP of the image alone (``DetectionEvaluator.image_ap``),
      0 when it has predictions but no ground truth, NaN when it has neither;
    * ``best_iou``: (N,) float64 mean over its ground-truth boxes of the best
      IoU a prediction of the same class reaches (0 when none), NaN without ground truth;
    * ``class_image``, ``class_id``: (P,) int64 pairs (image, class id) for the
      classes of its ground-truth and shown predicted boxes.

    >>> ImageStats.concat([ImageStats(2, ap=np.array([0.5, 1.0])), ImageStats(1, ap=np.array([0.0]))]).ap
    array([0.5, 1. , 0. ])
    """

    size: int
    tp: np.ndarray | None = None
    fp: np.ndarray | None = None
    missed: np.ndarray | None = None
    ap: np.ndarray | None = None
    best_iou: np.ndarray | None = None
    class_image: np.ndarray | None = None
    class_id: np.ndarray | None = None

    def __len__(self) -> int:
        return self.size

    @classmethod
    def empty(cls, size: int, need: frozenset[str] | set[str]) -> ImageStats:
        """Stats of ``size`` images that hold no detections (a shard left out of a selection)."""
        zeros, nans = np.zeros(size, np.int64), np.full(size, np.nan)
        return cls(
            size,
            **({"tp": zeros, "fp": zeros, "missed": zeros} if "counts" in need else {}),
            **({"ap": nans} if "ap" in need else {}),
            **({"best_iou": nans} if "best_iou" in need else {}),
            **({"class_image": np.zeros(0, np.int64), "class_id": np.zeros(0, np.int64)} if "classes" in need else {}),
        )

    @classmethod
    def concat(cls, parts: Sequence[ImageStats]) -> ImageStats:
        """The stats of consecutive shards as one step's (image positions shifted)."""
        sizes = [p.size for p in parts]
        starts = np.cumsum([0, *sizes[:-1]]).tolist()
        out: dict[str, np.ndarray | None] = {}
        for f in dataclasses.fields(cls):
            if f.name == "size":
                continue
            values = [getattr(p, f.name) for p in parts]
            if any(v is None for v in values):
                out[f.name] = None
            elif f.name == "class_image":
                out[f.name] = np.concatenate([v + s for v, s in zip(values, starts, strict=True)] or [np.zeros(0, np.int64)])
            else:
                out[f.name] = np.concatenate(values) if values else None
        return cls(sum(sizes), **out)


def image_stats(
    arrays: Mapping[str, np.ndarray],
    read: ReadOptions,
    image_shape: Sequence[int] | None,
    *,
    need: frozenset[str] | set[str],
    iou: float,
    min_score: float = 0.0,
    max_boxes: int = 100,
) -> ImageStats:
    """``ImageStats`` of one shard: only the parts in ``need`` (``STATS``).

    ``iou`` is the matching IoU; ``min_score`` and ``max_boxes`` say which
    predictions count for ``counts``, ``best_iou`` and ``classes`` (those a
    picture shows); ``ap`` uses every prediction, as AP does.
    """
    unknown = set(need) - STATS
    if unknown:
        raise ConfigError(f"unknown image stats {sorted(unknown)}; they are {sorted(STATS)}")
    images = list(shard_images(arrays, read, image_shape))
    n = len(images)
    out: dict[str, np.ndarray] = {}
    if "counts" in need:
        out["tp"], out["fp"], out["missed"] = (np.zeros(n, np.int64) for _ in range(3))
    if "ap" in need:
        out["ap"] = np.full(n, np.nan)
    if "best_iou" in need:
        out["best_iou"] = np.full(n, np.nan)
    pairs: list[np.ndarray] = []
    for i, im in enumerate(images):
        shown = drawn_order(im.scores, len(im.scores), min_score, max_boxes)
        labels, gt_labels = im.classes()
        if "counts" in need:
            m = match_boxes(
                im.pred[shown], im.gt, iou, scores=im.scores[shown], pred_labels=labels[shown], gt_labels=gt_labels
            )
            out["tp"][i], out["fp"][i], out["missed"][i] = int(m.tp.sum()), int(m.fp.sum()), int(m.missed.sum())
        if "ap" in need and (len(im.pred) or len(im.gt)):
            ev = DetectionEvaluator()
            ev.add_image(im.pred, labels, im.scores, im.gt, gt_labels)
            ap = ev.image_ap()
            out["ap"][i] = 0.0 if ap == NO_GT else ap  # no ground truth: every detection is false
        if "best_iou" in need and len(im.gt):
            ious = iou_matrix(im.pred[shown], im.gt)
            ious = np.where(labels[shown][:, None] == gt_labels[None, :], ious, 0.0)
            out["best_iou"][i] = float(ious.max(axis=0, initial=0.0).mean())
        if "classes" in need:
            present = [ids for ids in (im.gt_labels, None if im.labels is None else im.labels[shown]) if ids is not None]
            if present:
                ids = np.unique(np.concatenate(present))
                pairs.append(np.stack([np.full(len(ids), i, np.int64), ids]))
    if "classes" in need:
        both = np.concatenate(pairs, axis=1) if pairs else np.zeros((2, 0), np.int64)
        out["class_image"], out["class_id"] = both[0], both[1]
    return ImageStats(n, **out)
