"""COCO-style detection metrics (box or instance-mask AP/AR), streaming, in pure numpy.

``DetectionEvaluator`` gives the same numbers as pycocotools'
``COCOeval(cocoGt, cocoDt, iouType)`` followed by ``evaluate()``,
``accumulate()`` and ``summarize()``, with COCO's default parameters (IoU
.50:.05:.95, 101 recall points, maxDets 1/10/100, area ranges all/small/medium/
large). It repeats COCOeval's rules step by step, including the ones that
decide ties:

* per image and class only the ``maxDets[-1]`` (100) highest-scoring
  detections are kept (stable order among equal scores);
* a detection takes, among the unmatched ground truths whose IoU reaches the
  threshold, the one with the highest IoU, the *last* of equals; ground truth
  outside the area range is matched only when nothing else is left, and the
  detection is then ignored; unmatched detections outside the area range are
  ignored too;
* detections of all images are ranked by score with a stable sort, images in
  the order they were added, so tied scores give COCOeval's precision.

What the inputs mean, compared with a COCO json:

* one ``add_image`` call is one entry of ``images``, in order of image id;
* boxes are pixel ``xyxy`` (convert other formats with
  ``exporter.render.to_pixel_xyxy`` first); area is ``w * h`` of the box, for
  ground truth as well as predictions (COCO's ``loadRes`` does this for
  predictions; a COCO ground-truth file usually stores the area of the
  segmentation instead). With ``iou_type="segm"`` IoU and area are those of the
  boolean masks (area = pixel count), as COCOeval computes from RLEs;
* the categories are the class ids seen in ground truth or predictions. A class
  with predictions but no ground truth is a category without ground truth in
  COCOeval: its AP is -1 and it does not enter mAP;
* crowd regions (``iscrowd``) and ``ignore`` flags are not supported: no shard
  field carries them, so every ground-truth object counts.

Numbers COCOeval reports as -1 (no ground truth in that class or area range)
are ``NO_GT`` (-1.0) here too, never NaN.

Only the per-(image, class) match results are kept (a score, a rank and one
byte per area range and IoU threshold for each of the at most 100 detections
per image and class), never the boxes or masks.

>>> ev = DetectionEvaluator()
>>> box = np.array([[10.0, 10.0, 50.0, 40.0]])
>>> ev.add_image(box, np.array([1]), np.array([0.9]), box, np.array([1]))
>>> m = ev.evaluate()
>>> round(m.mAP, 6), m.AR100, sorted(m.per_class_AP)
(1.0, 1.0, [1])
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from .._checks import check_choice, check_int, check_optional_int, is_int
from ..errors import ConfigError

# pycocotools' Params.setDetParams, with the same expressions so the floats are identical
IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
RECALL_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
MAX_DETS = (1, 10, 100)
AREA_RANGES = ((0**2, 1e5**2), (0**2, 32**2), (32**2, 96**2), (96**2, 1e5**2))
AREA_NAMES = ("all", "small", "medium", "large")
IOU_TYPES = ("bbox", "segm")

#: The value of a metric that has no ground truth to measure against (pycocotools' -1).
NO_GT = -1.0

#: The 12 numbers of ``COCOeval.stats``, in its order.
STAT_NAMES = ("mAP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")

PR_CURVE_THRESHOLDS = 127  # TensorBoard's maximum (exporter.tensorboard.PR_CURVE_THRESHOLDS)

# What a kept detection is, per area range and IoU threshold.
_TP, _FP, _IGNORED = np.uint8(0), np.uint8(1), np.uint8(2)
_T50 = int(np.flatnonzero(IOU_THRESHOLDS == 0.5)[0])
_T75 = int(np.flatnonzero(IOU_THRESHOLDS == 0.75)[0])
_MASK_CHUNK = 1 << 16  # pixels per float32 matrix product: counts stay exact (< 2**24)


# --------------------------------------------------------------------------- result


@dataclasses.dataclass(frozen=True)
class _ClassCurve:
    """One class's detections at IoU 0.5, area all, maxDets 100: scores, outcome codes, GT count."""

    scores: np.ndarray
    outcome: np.ndarray
    num_gt: int


@dataclasses.dataclass(frozen=True)
class DetectionMetrics:
    """COCOeval's 12 summary numbers, its per-class AP, and PR curves at IoU 0.5.

    Every value is in [0, 1], or ``NO_GT`` (-1.0) where there is no ground truth
    to measure (as COCOeval prints it). ``per_class_AP`` holds every class seen
    in ground truth or predictions.

    >>> m = DetectionMetrics(*[0.5] * 12, per_class_AP={3: 0.5})
    >>> m.scalars()["AP50"]
    0.5
    """

    mAP: float
    AP50: float
    AP75: float
    APs: float
    APm: float
    APl: float
    AR1: float
    AR10: float
    AR100: float
    ARs: float
    ARm: float
    ARl: float
    per_class_AP: dict[int, float]
    iou_type: str = "bbox"
    num_images: int = 0
    _curves: dict[int, _ClassCurve] = dataclasses.field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_choice(self.iou_type, IOU_TYPES, "iou_type")
        check_int(self.num_images, "num_images", minimum=0)
        for name in STAT_NAMES:
            _check_metric(getattr(self, name), name)
        if not isinstance(self.per_class_AP, dict):
            raise ConfigError(f"per_class_AP must be a dict of class id -> AP, got {type(self.per_class_AP).__name__}")
        for k, v in self.per_class_AP.items():
            if not is_int(k) or k < 0:
                raise ConfigError(f"per_class_AP keys must be class ids >= 0, got {k!r}")
            _check_metric(v, f"per_class_AP[{k}]")

    @property
    def stats(self) -> tuple[float, ...]:
        """The 12 numbers in ``COCOeval.stats`` order (``STAT_NAMES``)."""
        return tuple(getattr(self, name) for name in STAT_NAMES)

    def scalars(self) -> dict[str, float]:
        """``{name: value}`` of the 12 summary numbers, in ``STAT_NAMES`` order."""
        return dict(zip(STAT_NAMES, self.stats, strict=True))

    def pr_curve(self, class_id: int, num_thresholds: int = PR_CURVE_THRESHOLDS) -> np.ndarray:
        """(6, T) rows tp, fp, tn, fn, precision, recall of ``class_id`` (TensorBoard's pr_curve_raw layout).

        Detections as COCOeval matches them at IoU 0.5, area "all", at most 100
        per image; threshold ``i`` is the score ``i / (T - 1)``: tp counts
        matched detections scoring at least that, fp unmatched ones, fn the
        ground truth not found by those; tn is 0 (a detector has no negatives).
        A class never seen gives all zeros.

        >>> DetectionMetrics(*[-1.0] * 12, per_class_AP={}).pr_curve(0, num_thresholds=3)[:, 0].tolist()
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
        """
        check_int(class_id, "class_id", minimum=0)
        t = check_int(num_thresholds, "num_thresholds", minimum=2, maximum=PR_CURVE_THRESHOLDS)
        thresholds = np.arange(t, dtype=np.float64) / (t - 1)
        curve = self._curves.get(int(class_id))
        if curve is None:
            return np.zeros((6, t), np.float64)
        tp_scores = np.sort(curve.scores[curve.outcome == _TP])
        fp_scores = np.sort(curve.scores[curve.outcome == _FP])
        # how many scores are >= each threshold
        tp = (tp_scores.size - np.searchsorted(tp_scores, thresholds, side="left")).astype(np.float64)
        fp = (fp_scores.size - np.searchsorted(fp_scores, thresholds, side="left")).astype(np.float64)
        fn = curve.num_gt - tp
        tn = np.zeros(t, np.float64)
        precision = tp / np.maximum(1e-7, tp + fp)
        recall = tp / np.maximum(1e-7, tp + fn)
        return np.stack((tp, fp, tn, fn, precision, recall))


def _check_metric(value: Any, name: str) -> None:
    if not isinstance(value, (float, np.floating)) or not (value == NO_GT or 0.0 <= value <= 1.0):
        raise ConfigError(f"{name} must be a float in [0, 1] or {NO_GT} (no ground truth), got {value!r}")


# --------------------------------------------------------------------------- evaluator


class _ClassResults:
    """The match results of one class, image by image, in the order images were added."""

    def __init__(self) -> None:
        self.scores: list[np.ndarray] = []  # (D,) float64, highest first within an image
        self.ranks: list[np.ndarray] = []  # (D,) position within its image, for maxDets 1 and 10
        self.outcomes: list[np.ndarray] = []  # (D, A, T) uint8: _TP, _FP or _IGNORED
        self.num_gt = np.zeros(len(AREA_RANGES), np.int64)  # non-ignored ground truth per area range


class DetectionEvaluator:
    """COCO box (``iou_type="bbox"``) or instance-mask (``"segm"``) evaluation, one image at a time.

    ``num_classes``, when given, bounds the class ids (``0 <= id < num_classes``);
    it does not add classes that never occur.

    >>> ev = DetectionEvaluator(num_classes=3)
    >>> ev.add_image(np.array([[0.0, 0.0, 10.0, 10.0]]), np.array([2]), np.array([0.8]),
    ...              np.zeros((0, 4)), np.zeros(0, int))
    >>> ev.evaluate().per_class_AP
    {2: -1.0}
    """

    def __init__(self, num_classes: int | None = None, iou_type: str = "bbox"):
        self.num_classes = check_optional_int(num_classes, "num_classes", minimum=1)
        self.iou_type = check_choice(iou_type, IOU_TYPES, "iou_type")
        self.num_images = 0
        self._classes: dict[int, _ClassResults] = {}

    def __repr__(self) -> str:
        return (
            f"DetectionEvaluator(iou_type={self.iou_type!r}, num_classes={self.num_classes}, "
            f"images={self.num_images}, classes={len(self._classes)})"
        )

    def add_image(
        self,
        pred_xyxy: np.ndarray | None,
        pred_labels: np.ndarray,
        pred_scores: np.ndarray,
        gt_xyxy: np.ndarray | None,
        gt_labels: np.ndarray,
        *,
        pred_masks: np.ndarray | None = None,
        gt_masks: np.ndarray | None = None,
    ) -> None:
        """Match one image's predictions to its ground truth and keep the results.

        Boxes are (N, 4) pixel xyxy, labels (N,) class ids, scores (N,); any side
        may be empty. With ``iou_type="segm"`` the (N, H, W) boolean masks are
        required and the boxes may be None (when given they are checked, not used).
        Nothing is kept when an argument is wrong.
        """
        labels = _class_ids(pred_labels, "pred_labels", self.num_classes)
        gt_ids = _class_ids(gt_labels, "gt_labels", self.num_classes)
        scores = _scores(pred_scores, labels.size)
        segm = self.iou_type == "segm"
        boxes = _boxes(pred_xyxy, "pred_xyxy", labels.size, optional=segm)
        gt_boxes = _boxes(gt_xyxy, "gt_xyxy", gt_ids.size, optional=segm)
        if segm:
            masks = _masks(pred_masks, "pred_masks", labels.size)
            gt_m = _masks(gt_masks, "gt_masks", gt_ids.size)
            if len(masks) and len(gt_m) and masks.shape[1:] != gt_m.shape[1:]:
                raise ConfigError(
                    f"pred_masks and gt_masks must have the same (H, W), got {masks.shape[1:]} and {gt_m.shape[1:]}"
                )
            area = masks.sum(axis=(1, 2), dtype=np.int64).astype(np.float64)
            gt_area = gt_m.sum(axis=(1, 2), dtype=np.int64).astype(np.float64)
        else:
            for name, value in (("pred_masks", pred_masks), ("gt_masks", gt_masks)):
                if value is not None:
                    raise ConfigError(f"{name} is used only with iou_type='segm', but this evaluator is 'bbox'")
            boxes, gt_boxes = _to_xywh(boxes), _to_xywh(gt_boxes)
            area, gt_area = boxes[:, 2] * boxes[:, 3], gt_boxes[:, 2] * gt_boxes[:, 3]

        results = []
        for k in np.union1d(labels, gt_ids).tolist():
            det = np.flatnonzero(labels == k)
            # COCOeval: highest score first (stable among ties), at most maxDets[-1] per image and class
            det = det[np.argsort(-scores[det], kind="mergesort")][: MAX_DETS[-1]]
            gt = np.flatnonzero(gt_ids == k)
            if segm:
                iou = _mask_iou(masks[det], gt_m[gt])
            else:
                iou = _box_iou(boxes[det], gt_boxes[gt])
            outcome = np.empty((det.size, len(AREA_RANGES), IOU_THRESHOLDS.size), np.uint8)
            num_gt = np.empty(len(AREA_RANGES), np.int64)
            matches: dict[bytes, np.ndarray] = {}  # area ranges that ignore the same ground truth match alike
            for a, (lo, hi) in enumerate(AREA_RANGES):
                gt_ignore = (gt_area[gt] < lo) | (gt_area[gt] > hi)
                key = gt_ignore.tobytes()
                if key not in matches:
                    matches[key] = _match(iou, gt_ignore)
                det_outside = (area[det] < lo) | (area[det] > hi)
                # unmatched detections outside the area range are ignored, not false positives
                outcome[:, a, :] = np.where((matches[key] == _FP) & det_outside[:, None], _IGNORED, matches[key])
                num_gt[a] = gt.size - np.count_nonzero(gt_ignore)
            results.append((k, scores[det], outcome, num_gt))

        # stored only once the whole image is done, so a bad argument leaves no half-added image
        for k, s, outcome, num_gt in results:
            store = self._classes.setdefault(k, _ClassResults())
            store.scores.append(s)
            store.ranks.append(np.arange(s.size, dtype=np.int16))
            store.outcomes.append(outcome)
            store.num_gt += num_gt
        self.num_images += 1

    def merge(self, other: DetectionEvaluator) -> None:
        """Add ``other``'s images after this one's, as if they had been added here in their order.

        Lets each shard be matched where it is loaded (a worker process) and the
        step's evaluators be joined in shard order: the result, ties included,
        is that of one evaluator fed every image in turn. ``other`` is not changed.

        >>> a, b = DetectionEvaluator(), DetectionEvaluator()
        >>> b.add_image(np.array([[0.0, 0.0, 4.0, 4.0]]), np.array([1]), np.array([0.5]),
        ...             np.array([[0.0, 0.0, 4.0, 4.0]]), np.array([1]))
        >>> a.merge(b)
        >>> a.num_images, round(a.evaluate().mAP, 6)
        (1, 1.0)
        """
        if not isinstance(other, DetectionEvaluator):
            raise ConfigError(f"merge() takes a DetectionEvaluator, got {type(other).__name__}")
        if other.iou_type != self.iou_type or other.num_classes != self.num_classes:
            raise ConfigError(
                f"cannot merge {other!r} into {self!r}: iou_type and num_classes must be the same"
            )
        for k, theirs in other._classes.items():
            mine = self._classes.setdefault(k, _ClassResults())
            mine.scores += theirs.scores
            mine.ranks += theirs.ranks
            mine.outcomes += theirs.outcomes
            mine.num_gt = mine.num_gt + theirs.num_gt
        self.num_images += other.num_images

    def image_ap(self) -> float:
        """COCO AP (IoU .50:.95, area all, 100 detections) of the images added so far, without the rest.

        What ``COCOeval`` reports as ``stats[0]`` for these images alone, computed
        only for that number (cheap enough to call on a one-image evaluator, to
        rank images): the mean over the classes with ground truth of the
        interpolated precision. ``NO_GT`` when no image has ground truth.

        >>> ev = DetectionEvaluator()
        >>> ev.add_image(np.array([[0.0, 0.0, 4.0, 4.0]]), np.array([0]), np.array([0.9]),
        ...              np.array([[0.0, 0.0, 4.0, 8.0]]), np.array([0]))
        >>> round(ev.image_ap(), 6)   # IoU 0.5: found at the first of the 10 thresholds only
        0.1
        """
        values = []
        for store in self._classes.values():
            npig = int(store.num_gt[0])
            if npig == 0:
                continue
            scores = np.concatenate(store.scores)
            order = np.argsort(-scores, kind="mergesort")
            outcomes = np.concatenate(store.outcomes)[order][:, 0, :]
            precision, _ = _precision_recall(outcomes, npig)
            values.append(float(np.mean(precision)))
        return float(np.mean(values)) if values else NO_GT

    def evaluate(self) -> DetectionMetrics:
        """COCOeval's ``accumulate`` and ``summarize`` over every image added so far.

        >>> DetectionEvaluator().evaluate().mAP
        -1.0
        """
        classes = sorted(self._classes)
        shape_t = (IOU_THRESHOLDS.size, RECALL_THRESHOLDS.size, len(classes), len(AREA_RANGES), len(MAX_DETS))
        precision = -np.ones(shape_t)  # COCOeval's eval["precision"]: (T, R, K, A, M)
        recall = -np.ones((IOU_THRESHOLDS.size, len(classes), len(AREA_RANGES), len(MAX_DETS)))
        curves = {}
        for ki, k in enumerate(classes):
            store = self._classes[k]
            scores = np.concatenate(store.scores)
            ranks = np.concatenate(store.ranks)
            outcomes = np.concatenate(store.outcomes)
            # stable: tied scores keep image order, then within-image order, as in COCOeval
            order = np.argsort(-scores, kind="mergesort")
            scores, ranks, outcomes = scores[order], ranks[order], outcomes[order]
            curves[k] = _ClassCurve(scores, outcomes[:, 0, _T50].copy(), int(store.num_gt[0]))
            for a in range(len(AREA_RANGES)):
                npig = int(store.num_gt[a])
                if npig == 0:
                    continue  # no ground truth: stays -1, as in COCOeval
                for m, max_det in enumerate(MAX_DETS):
                    kept = outcomes[ranks < max_det, a, :]
                    precision[:, :, ki, a, m], recall[:, ki, a, m] = _precision_recall(kept, npig)

        def mean(values: np.ndarray) -> float:
            valid = values[values > -1]
            return float(np.mean(valid)) if valid.size else NO_GT

        all_, small, medium, large = range(len(AREA_RANGES))
        m100 = len(MAX_DETS) - 1
        stats = {
            "mAP": mean(precision[:, :, :, all_, m100]),
            "AP50": mean(precision[_T50, :, :, all_, m100]),
            "AP75": mean(precision[_T75, :, :, all_, m100]),
            "APs": mean(precision[:, :, :, small, m100]),
            "APm": mean(precision[:, :, :, medium, m100]),
            "APl": mean(precision[:, :, :, large, m100]),
            "AR1": mean(recall[:, :, all_, 0]),
            "AR10": mean(recall[:, :, all_, 1]),
            "AR100": mean(recall[:, :, all_, m100]),
            "ARs": mean(recall[:, :, small, m100]),
            "ARm": mean(recall[:, :, medium, m100]),
            "ARl": mean(recall[:, :, large, m100]),
        }
        per_class = {k: mean(precision[:, :, ki, all_, m100]) for ki, k in enumerate(classes)}
        return DetectionMetrics(
            **stats, per_class_AP=per_class, iou_type=self.iou_type, num_images=self.num_images, _curves=curves
        )


# --------------------------------------------------------------------------- COCOeval's steps


def _match(iou: np.ndarray, gt_ignore: np.ndarray) -> np.ndarray:
    """COCOeval.evaluateImg's greedy matching at every IoU threshold → (D, T) codes _TP, _FP or _IGNORED.

    ``iou`` is (D, G) with detections highest score first; _IGNORED means matched to ignored ground truth.
    """
    d_count, g_count = iou.shape
    t_count = IOU_THRESHOLDS.size
    outcome = np.full((d_count, t_count), _FP, np.uint8)
    if d_count and g_count:
        taken = np.zeros((t_count, g_count), bool)
        # COCOeval sorts regular ground truth before ignored and stops at the first ignored one once it
        # holds a regular match: so ignored ground truth is only a fallback
        groups = [(np.flatnonzero(~gt_ignore), _TP), (np.flatnonzero(gt_ignore), _IGNORED)]
        groups = [(idx, code) for idx, code in groups if idx.size]
        reachable = iou.max(axis=1) >= IOU_THRESHOLDS[0]  # the rest match nothing at any threshold
        for d in np.flatnonzero(reachable):
            open_t = np.ones(t_count, bool)
            for idx, code in groups:
                values = iou[d, idx]
                ok = ~taken[:, idx] & (values[None, :] >= IOU_THRESHOLDS[:, None]) & open_t[:, None]
                # COCOeval replaces its best match on ">=", so the last of equal IoUs wins
                last_best = idx.size - 1 - np.argmax(np.where(ok, values[None, :], -1.0)[:, ::-1], axis=1)
                hit = ok.any(axis=1)
                taken[hit, idx[last_best[hit]]] = True
                outcome[d, hit] = code
                open_t &= ~hit
    return outcome


def _precision_recall(outcome: np.ndarray, npig: int) -> tuple[np.ndarray, np.ndarray]:
    """COCOeval.accumulate for one class, area and maxDets: (T, R) interpolated precision, (T,) recall.

    ``outcome`` is (N, T) for the detections of every image, highest score first.
    """
    tp_sum = np.cumsum(outcome == _TP, axis=0).astype(float).T  # (T, N)
    fp_sum = np.cumsum(outcome == _FP, axis=0).astype(float).T
    n = tp_sum.shape[1]
    precision = np.zeros((IOU_THRESHOLDS.size, RECALL_THRESHOLDS.size))
    recall = np.zeros(IOU_THRESHOLDS.size)
    if n == 0:
        return precision, recall
    for t in range(IOU_THRESHOLDS.size):
        rc = tp_sum[t] / npig
        pr = tp_sum[t] / (fp_sum[t] + tp_sum[t] + np.spacing(1))
        recall[t] = rc[-1]
        pr = np.maximum.accumulate(pr[::-1])[::-1]  # precision envelope: best precision at any higher recall
        inds = np.searchsorted(rc, RECALL_THRESHOLDS, side="left")
        found = inds < n  # recall levels never reached keep precision 0
        precision[t, found] = pr[inds[found]]
    return precision, recall


def _box_iou(dt: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(D, G) IoU of xywh boxes, with pycocotools' bbIou arithmetic so ties at a threshold fall the same way."""
    x, y, w, h = (dt[:, i, None] for i in range(4))
    gx, gy, gw, gh = (gt[None, :, i] for i in range(4))
    iw = np.minimum(w + x, gw + gx) - np.maximum(x, gx)
    ih = np.minimum(h + y, gh + gy) - np.maximum(y, gy)
    inter = iw * ih
    union = w * h + gw * gh - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((iw > 0) & (ih > 0), inter / union, 0.0)


def _mask_iou(dt: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(D, G) IoU of boolean masks in pixel counts, 0 where they do not overlap (pycocotools' rleIou)."""
    d_count, g_count = dt.shape[0], gt.shape[0]
    if d_count == 0 or g_count == 0:
        return np.zeros((d_count, g_count))
    pixels = dt.shape[1] * dt.shape[2]
    dt = dt.reshape(d_count, pixels)
    gt = gt.reshape(g_count, pixels)
    # intersections only happen where some ground truth is on
    on = np.flatnonzero(gt.any(axis=0))
    inter = np.zeros((d_count, g_count))
    for start in range(0, on.size, _MASK_CHUNK):
        cols = on[start : start + _MASK_CHUNK]
        inter += dt[:, cols].astype(np.float32) @ gt[:, cols].astype(np.float32).T
    d_area = dt.sum(axis=1, dtype=np.int64).astype(np.float64)
    g_area = gt.sum(axis=1, dtype=np.int64).astype(np.float64)
    union = d_area[:, None] + g_area[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(inter > 0, inter / union, 0.0)


# --------------------------------------------------------------------------- argument checks


def _class_ids(values: Any, name: str, num_classes: int | None) -> np.ndarray:
    """(N,) int64 class ids from integers or integral floats (the TF Object Detection API's float classes)."""
    arr = np.asarray(values)
    if arr.size == 0:
        return np.zeros(0, np.int64)
    if arr.ndim != 1:
        raise ConfigError(f"{name} must be a 1D array of class ids with shape (N,), but got shape {arr.shape}")
    integral = arr.dtype.kind in "iu" or (
        arr.dtype.kind == "f" and bool(np.all(np.isfinite(arr))) and bool(np.all(arr == np.round(arr)))
    )
    if not integral:
        raise ConfigError(f"{name} must hold integer class ids, got dtype {arr.dtype} with values {arr[:5].tolist()}")
    ids = arr.astype(np.int64)
    bad = ids < 0
    if num_classes is not None:
        bad |= ids >= num_classes
    if bad.any():
        expected = f"0..{num_classes - 1}" if num_classes is not None else ">= 0"
        raise ConfigError(f"{name} must be class ids {expected}, got {int(ids[bad][0])}")
    return ids


def _scores(values: Any, n: int) -> np.ndarray:
    """(N,) finite float64 scores, one per predicted label."""
    arr = np.asarray(values)
    if arr.size == 0 and n == 0:
        return np.zeros(0, np.float64)
    if arr.shape != (n,) or arr.dtype.kind not in "iuf":
        raise ConfigError(
            f"pred_scores must be a numeric array with shape ({n},) like pred_labels, but got "
            f"{arr.dtype} with shape {arr.shape}"
        )
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ConfigError(f"pred_scores must be finite, got {int(np.sum(~np.isfinite(arr)))} NaN or infinite values")
    return arr


def _boxes(values: Any, name: str, n: int, *, optional: bool) -> np.ndarray:
    """(N, 4) finite, ordered float64 pixel xyxy boxes, one per label (None allowed when ``optional``)."""
    if values is None:
        if optional:
            return np.zeros((n, 4), np.float64)
        raise ConfigError(f"{name} must be an (N, 4) array of pixel xyxy boxes, got None")
    arr = np.asarray(values)
    if arr.size == 0 and n == 0:
        return np.zeros((0, 4), np.float64)
    if arr.shape != (n, 4) or arr.dtype.kind not in "iuf":
        raise ConfigError(
            f"{name} must be a numeric array with shape ({n}, 4) (one xyxy box per label), but got "
            f"{arr.dtype} with shape {arr.shape}"
        )
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ConfigError(f"{name} must be finite, got NaN or infinite coordinates")
    inverted = (arr[:, 2] < arr[:, 0]) | (arr[:, 3] < arr[:, 1])
    if inverted.any():
        raise ConfigError(
            f"{name} must be pixel xyxy with x1 <= x2 and y1 <= y2, got {int(inverted.sum())} inverted boxes "
            f"(first: {arr[inverted][0].tolist()}); convert with exporter.render.to_pixel_xyxy"
        )
    return arr


def _to_xywh(xyxy: np.ndarray) -> np.ndarray:
    """The xywh boxes a COCO json would hold (the floats pycocotools computes IoU and area from)."""
    return np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1)


def _masks(values: Any, name: str, n: int) -> np.ndarray:
    """(N, H, W) bool masks, one per label, from bool or 0/1 integer arrays."""
    if values is None:
        raise ConfigError(f"{name} must be an (N, H, W) array of boolean masks for iou_type='segm', got None")
    arr = np.asarray(values)
    if arr.size == 0 and n == 0:
        return np.zeros((0, 0, 0), bool) if arr.ndim != 3 else arr.astype(bool)
    if arr.ndim != 3 or arr.shape[0] != n:
        raise ConfigError(f"{name} must have shape ({n}, H, W) (one mask per label), but got shape {arr.shape}")
    if arr.dtype == bool:
        return arr
    if arr.dtype.kind in "iu" and np.all((arr == 0) | (arr == 1)):
        return arr.astype(bool)
    raise ConfigError(
        f"{name} must be boolean (or 0/1 integer) masks, got dtype {arr.dtype}; threshold soft masks first"
    )
