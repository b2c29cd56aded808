"""Writing runs of shards for the tests: one deterministic data set, written by the real ShardWriter.

``run_arrays(step, n, ...)`` is a pure function of its arguments, so a test can recompute what a
step holds; ``write_run(root, steps=...)`` writes one dump per step with ``ShardWriter`` and returns
``root``. The ``make_run`` fixture (conftest.py) is ``write_run`` into the test's ``tmp_path``:

    shards = make_run(steps=(100, 200), ids=["a", "b", "c"], class_names=["cat", "dog"])

Tests whose subject is a particular array (a hostile value, an Object Detection API dict, the
writer's own batching) keep writing it with ``ShardWriter`` themselves.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from exporter import ShardWriter

CLASS_NAMES = ["cat", "dog", "bird"]
CLASSIFICATION = ("images", "labels", "probs", "pred_labels", "pred_scores", "ids")
DETECTION = ("boxes", "box_labels", "box_scores", "num_boxes", "gt_boxes", "gt_box_labels", "gt_num_boxes")
SEGMENTATION = ("masks", "gt_masks")
ALL_FIELDS = CLASSIFICATION + DETECTION + SEGMENTATION
#: Format 1.1 per-box fields, drawn only when asked for (with DETECTION): ALL_FIELDS keeps the 1.0 set.
INSTANCES = ("instance_masks", "gt_instance_masks", "keypoints", "keypoint_scores", "gt_keypoints")
#: The skeleton of the three ``keypoints`` of each box (top-left corner, centre, bottom-right corner).
KEYPOINT_EDGES = [[0, 1], [1, 2]]
DEFAULT_N = 6


def run_arrays(
    step: int,
    n: int = DEFAULT_N,
    *,
    num_classes: int = len(CLASS_NAMES),
    fields: Iterable[str] = CLASSIFICATION,
    ids: Sequence[Any] | None = None,
    image_shape: tuple[int, int] = (16, 16),
) -> dict[str, np.ndarray]:
    """The arrays of one step, seeded by ``step``: every field is drawn, then ``fields`` are kept.

    ``images`` are (n, H, W, 3) uint8 noise; ``labels`` take every class in turn, shuffled;
    ``pred_labels`` are the argmax of ``probs`` except that every third example is predicted right,
    so a step has right and wrong predictions and not always the argmax; ``pred_scores`` are the
    probabilities of the predicted classes. Three boxes per example (yxyx normalized, ``num_boxes``
    0..3), two ground-truth boxes each, and class maps for ``masks`` / ``gt_masks``. ``ids`` are
    ``id000``, ``id001``... unless given. The ``INSTANCES`` come from the boxes, without drawing
    more random numbers: each box's mask is its inside, its keypoints its top-left corner, centre
    and bottom-right corner (normalized x, y as the boxes), the centre scored 0.1, the others 0.9.
    """
    fields = tuple(fields)
    if unknown := sorted(set(fields) - set(ALL_FIELDS + INSTANCES)):
        raise ValueError(f"run_arrays has no field(s) {unknown}; it draws {list(ALL_FIELDS + INSTANCES)}")
    if ids is not None and len(ids) != n:
        raise ValueError(f"{len(ids)} ids for n={n} examples")
    h, w = image_shape
    k = num_classes
    rng = np.random.default_rng(step)
    images = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    labels = rng.permutation(np.arange(n) % k)
    probs = rng.dirichlet(np.ones(k), n).astype(np.float32)
    pred = probs.argmax(1)
    pred[::3] = labels[::3]
    corners = np.sort(rng.random((n, 3, 2, 2)), axis=2)  # (N, M, [min, max], [y, x])
    boxes = np.concatenate([corners[:, :, 0], corners[:, :, 1]], axis=-1).astype(np.float32)
    drawn = {
        "images": images,
        "labels": labels,
        "probs": probs,
        "pred_labels": pred,
        "pred_scores": probs[np.arange(n), pred],
        "boxes": boxes,
        "box_labels": rng.integers(0, k, (n, 3)),
        "box_scores": rng.random((n, 3)).astype(np.float32),
        "num_boxes": rng.integers(0, 4, n),
        "gt_boxes": boxes[:, :2] * 0.9,
        "gt_box_labels": rng.integers(0, k, (n, 2)),
        "gt_num_boxes": np.full(n, 2),
        "masks": rng.integers(0, k, (n, h, w)),
        "gt_masks": rng.integers(0, k, (n, h, w)),
        "ids": np.array([f"id{i:03d}" for i in range(n)] if ids is None else list(ids)),
    }
    if set(fields) & set(INSTANCES):
        drawn.update(_instances(drawn["boxes"], drawn["gt_boxes"], h, w))
    return {name: drawn[name] for name in fields}


def _instances(boxes: np.ndarray, gt_boxes: np.ndarray, h: int, w: int) -> dict[str, np.ndarray]:
    """Instance masks and keypoints of (N, M, 4) yxyx normalized boxes (see ``run_arrays``)."""
    def masks(b: np.ndarray) -> np.ndarray:
        y = (np.arange(h) + 0.5) / h
        x = (np.arange(w) + 0.5) / w
        inside_y = (y >= b[..., 0, None]) & (y <= b[..., 2, None])
        inside_x = (x >= b[..., 1, None]) & (x <= b[..., 3, None])
        return inside_y[..., :, None] & inside_x[..., None, :]

    def points(b: np.ndarray) -> np.ndarray:
        corner0, corner1 = b[..., [1, 0]], b[..., [3, 2]]
        return np.stack([corner0, (corner0 + corner1) / 2, corner1], axis=-2).astype(np.float32)

    scores = np.broadcast_to(np.array([0.9, 0.1, 0.9], np.float32), (*boxes.shape[:2], 3)).copy()
    return {
        "instance_masks": masks(boxes),
        "gt_instance_masks": masks(gt_boxes),
        "keypoints": points(boxes),
        "keypoint_scores": scores,
        "gt_keypoints": points(gt_boxes),
    }


def write_run(
    root: str | os.PathLike,
    *,
    steps: Iterable[int] = (1, 2),
    n: int | None = None,
    fields: Iterable[str] = CLASSIFICATION,
    class_names: Sequence[str] | None = CLASS_NAMES,
    ids: Sequence[Any] | None = None,
    image_shape: tuple[int, int] = (16, 16),
    **writer_kwargs: Any,
) -> Path:
    """One ShardWriter dump per step (in the order given) of ``run_arrays(step, ...)``; returns ``root``.

    ``n`` defaults to ``len(ids)``, else 6. Labels index ``class_names`` (three classes when it is
    None). ``writer_kwargs`` go to ``ShardWriter`` (``examples_per_shard``, ``compress``, ...).
    Writing into an existing run adds steps (or a second dump of a step) to it.
    """
    root = Path(root)
    if n is None:
        n = len(ids) if ids is not None else DEFAULT_N
    k = len(class_names) if class_names is not None else len(CLASS_NAMES)
    for step in steps:
        arrays = run_arrays(step, n, num_classes=k, fields=fields, ids=ids, image_shape=image_shape)
        with ShardWriter(root, step=step, class_names=class_names, **writer_kwargs) as w:
            w.add(**arrays)
    return root


def write_outcomes(
    root: str | os.PathLike,
    preds: dict[int, Sequence[int]],
    labels: Sequence[int],
    *,
    ids: Sequence[Any] | None = None,
    class_names: Sequence[str] | None = CLASS_NAMES,
    image_shape: tuple[int, int] = (16, 16),
    **writer_kwargs: Any,
) -> Path:
    """A classification run whose outcomes are given: ``preds[step]`` predicted for ``labels`` at each step.

    The images are the same noise at every step (seeded by the example count), so only the
    predictions change between steps: the flips wrong → right and right → wrong are exactly those
    of ``preds``. Scores are 0.5 + position / (2 n), distinct per example. ``ids`` default to
    ``id000``...; pass ``ids=()`` for none.
    """
    root = Path(root)
    n = len(labels)
    rng = np.random.default_rng(n)
    images = rng.integers(0, 256, (n, *image_shape, 3), dtype=np.uint8)
    fields: dict[str, Any] = {"images": images, "labels": np.asarray(labels, np.int64)}
    if ids is None:
        ids = [f"id{i:03d}" for i in range(n)]
    if len(ids):
        fields["ids"] = np.array(list(ids))
    for step, p in preds.items():
        scores = (0.5 + np.arange(n) / (2 * n)).astype(np.float32)
        with ShardWriter(root, step=step, class_names=class_names, **writer_kwargs) as w:
            w.add(**fields, pred_labels=np.asarray(p, np.int64), pred_scores=scores)
    return root
