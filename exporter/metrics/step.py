"""A step's detection and segmentation metrics: each shard measured where it is loaded, joined in shard order.

``measure_shard`` runs in the process that loaded the shard (an export worker,
or the parent with one worker): it matches every image's boxes (and instance
masks) with ``DetectionEvaluator`` and counts class maps with
``SegmentationEvaluator``, and returns those small evaluators, never the
arrays. ``StepMetrics`` merges them in shard order (``merge`` keeps the
order, so ties rank as in one pass over the step) and gives the step's
numbers. So the parent holds one step's match results (a few bytes per
detection) and one confusion matrix, never a step's boxes or masks.

What is measured, from the fields a shard has:

* ``boxes`` + ``gt_boxes``: COCO box AP/AR (``iou_type="bbox"``), boxes read
  as ``exporter.metrics.images`` reads them;
* ``instance_masks`` + ``gt_instance_masks`` too: COCO mask AP/AR (``"segm"``);
* ``masks`` + ``gt_masks``: pixel accuracy and IoU. Ground-truth pixels equal
  to ``ignore_index`` (default 255), or negative (a negative background id),
  count nowhere; every other id is a class, the background (``mask_background``)
  included, as in PASCAL VOC's mIoU. A predicted map of another size than the
  ground truth is resized to it (nearest), as it is drawn.

A shard whose data cannot be measured (normalized boxes without images, class
ids beyond ``segmentation.MAX_CLASSES``...) drops that metric for its whole
step, with a note saying why: a number computed from part of a step would pass
for the step's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

from ..errors import ExporterError
from ..render import ReadOptions
from ..render.masks import resize_nearest
from .classification import FIELDS as CLASSIFICATION_FIELDS
from .detection import PR_CURVE_THRESHOLDS, DetectionEvaluator, DetectionMetrics
from .images import BOX_FIELDS, INSTANCE_FIELDS, has_detections, shard_images
from .segmentation import SegmentationEvaluator, SegmentationMetrics

#: Every field the step metrics read: what a shard that draws nothing loads for them.
METRIC_FIELDS = (*CLASSIFICATION_FIELDS, *BOX_FIELDS, *INSTANCE_FIELDS, "masks", "gt_masks")
#: Ground-truth mask pixels with this id count nowhere, unless told otherwise (VOC's "void").
DEFAULT_IGNORE_INDEX = 255

_WHAT = {"detection": "detection", "mask_detection": "instance mask", "segmentation": "segmentation"}


@dataclasses.dataclass
class ShardMetrics:
    """What one shard adds to its step: evaluators (None: nothing of that kind to measure) and failures."""

    detection: DetectionEvaluator | None = None
    mask_detection: DetectionEvaluator | None = None
    segmentation: SegmentationEvaluator | None = None
    class_agnostic: bool = False  # boxes matched without classes: a side has no labels
    failed: dict[str, str] = dataclasses.field(default_factory=dict)  # kind -> why it could not be measured


def measure_shard(
    arrays: Mapping[str, np.ndarray],
    read: ReadOptions,
    image_shape: Sequence[int] | None,
    *,
    ignore_index: int | None = DEFAULT_IGNORE_INDEX,
) -> ShardMetrics:
    """Match one shard's detections and count its class maps (see the module docstring).

    ``read`` is how the shard is read (``options.read_options_for``),
    ``image_shape`` the shape of one of its images (None without ``images``).
    """
    out = ShardMetrics()
    if has_detections(arrays):
        instances = "instance_masks" in arrays and "gt_instance_masks" in arrays
        try:
            boxes = DetectionEvaluator()
            masks = DetectionEvaluator(iou_type="segm") if instances else None
            for i, im in enumerate(shard_images(arrays, read, image_shape)):
                labels, gt_labels = im.classes()
                out.class_agnostic = not im.labelled
                boxes.add_image(im.pred, labels, im.scores, im.gt, gt_labels)
                if masks is not None:
                    masks.add_image(
                        None, labels, im.scores, None, gt_labels,
                        pred_masks=arrays["instance_masks"][i][im.pred_rows],
                        gt_masks=arrays["gt_instance_masks"][i][im.gt_rows],
                    )  # fmt: skip
            out.detection, out.mask_detection = boxes, masks
        except ExporterError as exc:
            out.failed["detection"] = str(exc)
            if instances:
                out.failed["mask_detection"] = str(exc)
    if "masks" in arrays and "gt_masks" in arrays:
        try:
            out.segmentation = _count_maps(arrays["masks"], arrays["gt_masks"], ignore_index)
        except ExporterError as exc:
            out.failed["segmentation"] = str(exc)
    return out


def _count_maps(pred: np.ndarray, gt: np.ndarray, ignore_index: int | None) -> SegmentationEvaluator:
    ev = SegmentationEvaluator(ignore_index=ignore_index)
    for p, g in zip(pred, gt, strict=True):
        p, g = p.astype(np.int64), g.astype(np.int64)  # bool maps are classes 0 and 1
        if p.shape != g.shape:
            p = resize_nearest(p, *g.shape)
        named = g >= 0
        if not named.all():  # a negative background id is no class: leave its pixels out
            p, g = p[named][None, :], g[named][None, :]
        ev.add(p, g)
    return ev


@dataclasses.dataclass(frozen=True)
class StepResults:
    """One step's numbers: None where the step had nothing of that kind (or it could not be measured)."""

    detection: DetectionMetrics | None = None
    mask_detection: DetectionMetrics | None = None
    segmentation: SegmentationMetrics | None = None
    class_agnostic: bool = False


class StepMetrics:
    """The shards of one step, added in order; ``result()`` gives the step's numbers and ``notes`` what was left out.

    >>> m = StepMetrics(step=5)
    >>> m.add(measure_shard({"masks": np.array([[[1, 1]]]), "gt_masks": np.array([[[1, 0]]])}, ReadOptions(), None))
    >>> m.result().segmentation.per_class_iou
    {0: 0.0, 1: 0.5}
    """

    def __init__(self, step: int):
        self.step = step
        self._boxes: dict[str, DetectionEvaluator] = {}  # "detection" and "mask_detection"
        self._maps: SegmentationEvaluator | None = None
        self._failed: dict[str, str] = {}
        self._agnostic = False
        self.notes: list[str] = []

    def add(self, shard: ShardMetrics, source: str = "a shard") -> None:
        """Join one shard's evaluators after the earlier shards'."""
        for kind, why in shard.failed.items():
            if kind not in self._failed:
                self._failed[kind] = why
                self.notes.append(f"step {self.step}: {_WHAT[kind]} metrics not written: {source}: {why}")
        for kind, ev in (("detection", shard.detection), ("mask_detection", shard.mask_detection)):
            if ev is not None:
                if kind in self._boxes:
                    self._boxes[kind].merge(ev)
                else:
                    self._boxes[kind] = ev
        if shard.segmentation is not None:
            if self._maps is None:
                self._maps = shard.segmentation
            else:
                self._maps.merge(shard.segmentation)
        self._agnostic |= shard.class_agnostic and shard.detection is not None

    def result(self) -> StepResults:
        boxes = {k: ev.evaluate() for k, ev in self._boxes.items() if k not in self._failed}
        maps = self._maps.result() if self._maps is not None and "segmentation" not in self._failed else None
        return StepResults(
            detection=boxes.get("detection"),
            mask_detection=boxes.get("mask_detection"),
            segmentation=maps,
            class_agnostic=self._agnostic,
        )


class DetectionCurves:
    """Detection PR curves of some classes, in the shape ``EventWriter.add_pr_curves`` reads: curve ``i`` is ``class_ids[i]``'s."""

    def __init__(self, metrics: DetectionMetrics, class_ids: Sequence[int]):
        self._metrics = metrics
        self._ids = [int(k) for k in class_ids]
        self.num_thresholds = PR_CURVE_THRESHOLDS

    @property
    def num_classes(self) -> int:
        return len(self._ids)

    def curve(self, i: int) -> np.ndarray:
        return self._metrics.pr_curve(self._ids[i], self.num_thresholds)
