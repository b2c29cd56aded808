"""torchvision detection outputs → the writer's per-image fields, without importing torch.

torchvision's detectors (Faster/Mask/Keypoint R-CNN, RetinaNet, FCOS, SSD) return,
in eval mode, one dict per image:

* ``boxes`` (M, 4) float: **pixel (x1, y1, x2, y2)**, so the writer needs
  ``box_format="xyxy", box_coords="pixels"`` (``WRITER_OPTIONS``);
* ``labels`` (M,) int64 and ``scores`` (M,) float;
* Mask R-CNN: ``masks`` (M, 1, H, W) float probabilities, thresholded here at 0.5;
* Keypoint R-CNN: ``keypoints`` (M, P, 3) as (x, y, visibility) and
  ``keypoints_scores`` (M, P).

Training targets (the ``targets`` of the detection references) hold ``boxes``,
``labels``, ``masks`` (G, H, W) uint8 and ``keypoints`` (G, P, 3), whose
visibility 0 means "not labelled": that keypoint becomes NaN.

Labels index ``weights.meta["categories"]`` directly (it starts with
``"__background__"``), so those are the class names to give the writer;
``exporter.coco.PERSON_KEYPOINTS`` / ``PERSON_SKELETON`` name Keypoint R-CNN's
17 keypoints. Tensors are read through ``.detach().cpu().numpy()`` (or
``__array__``), so CUDA tensors and tensors that require grad work too.

>>> from exporter import ShardWriter                                          # doctest: +SKIP
>>> from exporter.capture.torchvision import WRITER_OPTIONS, to_fields        # doctest: +SKIP
>>> names = weights.meta["categories"]                                        # doctest: +SKIP
>>> with ShardWriter("eval_shards", step=epoch, class_names=names, **WRITER_OPTIONS) as w:  # doctest: +SKIP
...     for images, targets in loader:
...         w.add(**to_fields(model(images), targets, images=images))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .._checks import check_number
from ..errors import ConfigError
from ..shards import as_array

#: The writer options torchvision's boxes need: pixel (x1, y1, x2, y2).
WRITER_OPTIONS: dict[str, str] = {"box_format": "xyxy", "box_coords": "pixels"}

#: torchvision key → canonical field, for predictions and for targets.
_OUTPUT_KEYS = {"boxes": "boxes", "labels": "box_labels", "scores": "box_scores", "masks": "instance_masks",
                "keypoints": "keypoints", "keypoints_scores": "keypoint_scores"}
_TARGET_KEYS = {"boxes": "gt_boxes", "labels": "gt_box_labels", "masks": "gt_instance_masks", "keypoints": "gt_keypoints"}


def to_fields(
    outputs: Sequence[Mapping[str, Any]],
    targets: Sequence[Mapping[str, Any]] | None = None,
    *,
    images: Sequence[Any] | None = None,
    mask_threshold: float = 0.5,
) -> dict[str, Any]:
    """One batch of torchvision detections (and targets, and input images) → ``ShardWriter.add`` keywords.

    Box fields come as per-image lists, which the writer pads (``num_boxes``
    filled in). ``images`` (the list of (C, H, W) float tensors the model took)
    becomes an (N, C, H, W) array when they share one size; ``ids`` come from
    the targets' ``image_id`` when every target has one.

    >>> out = [{"boxes": np.array([[10.0, 20.0, 50.0, 60.0]]), "labels": np.array([1]), "scores": np.array([0.9])}]
    >>> fields = to_fields(out)
    >>> sorted(fields), fields["boxes"][0].tolist()
    (['box_labels', 'box_scores', 'boxes'], [[10.0, 20.0, 50.0, 60.0]])
    """
    threshold = check_number(mask_threshold, "mask_threshold", minimum=0.0, maximum=1.0)
    fields = _per_image(outputs, "outputs", _OUTPUT_KEYS, threshold)
    if targets is not None:
        if len(targets) != len(outputs):
            raise ConfigError(f"targets must hold one dict per image of outputs ({len(outputs)}), got {len(targets)}")
        fields.update(_per_image(targets, "targets", _TARGET_KEYS, threshold))
        if targets and all("image_id" in t for t in targets):
            fields["ids"] = np.array([as_array("image_id", t["image_id"]).reshape(-1)[0] for t in targets])
    if images is not None:
        fields["images"] = _images(images, len(outputs))
    return fields


def _per_image(dicts: Sequence[Mapping[str, Any]], what: str, keys: Mapping[str, str], threshold: float) -> dict[str, Any]:
    """Each torchvision key found in the dicts → a list of per-image numpy arrays under its canonical name."""
    if isinstance(dicts, Mapping) or not all(isinstance(d, Mapping) for d in dicts):
        raise ConfigError(f"{what} must be a list of dicts, one per image (as torchvision returns them)")
    fields: dict[str, Any] = {}
    for key, field in keys.items():
        have = [key in d for d in dicts]
        if not any(have):
            continue
        if not all(have):
            raise ConfigError(f"{what}: {have.count(False)} of {len(dicts)} dicts have no '{key}', the others do")
        values = [as_array(f"{what}[{i}]['{key}']", d[key]) for i, d in enumerate(dicts)]
        if key == "masks":
            values = [_binary_masks(v, f"{what}[{i}]['masks']", threshold) for i, v in enumerate(values)]
        elif key == "keypoints":
            values = [_points(v, f"{what}[{i}]['keypoints']") for i, v in enumerate(values)]
        fields[field] = values
    return fields


def _binary_masks(masks: np.ndarray, name: str, threshold: float) -> np.ndarray:
    """(M, 1, H, W) probabilities or (M, H, W) 0/1 masks → (M, H, W) bool."""
    if masks.ndim == 4 and masks.shape[1] == 1:
        masks = masks[:, 0]
    if masks.ndim != 3:
        raise ConfigError(f"{name} must have shape (M, 1, H, W) or (M, H, W), but got shape {masks.shape}")
    return masks > threshold if masks.dtype.kind == "f" else masks.astype(bool)


def _points(keypoints: np.ndarray, name: str) -> np.ndarray:
    """(M, P, 3) x, y, visibility → (M, P, 2) x, y with NaN where the visibility is 0."""
    if keypoints.ndim != 3 or keypoints.shape[2] not in (2, 3):
        raise ConfigError(f"{name} must have shape (M, P, 3) (x, y, visibility), but got shape {keypoints.shape}")
    xy = keypoints[..., :2].astype(np.result_type(keypoints.dtype, np.float32))
    if keypoints.shape[2] == 3:
        xy[keypoints[..., 2] == 0] = np.nan
    return xy


def _images(images: Sequence[Any], n: int) -> np.ndarray:
    """The model's list of (C, H, W) images as one (N, C, H, W) array."""
    arrays = [as_array(f"images[{i}]", image) for i, image in enumerate(images)]
    if len(arrays) != n:
        raise ConfigError(f"images must hold one image per dict of outputs ({n}), got {len(arrays)}")
    shapes = sorted({a.shape for a in arrays})
    if len(shapes) > 1:
        raise ConfigError(
            f"images differ in size {shapes}: a shard holds one image size, so call to_fields/add once per size "
            "(or per image)"
        )
    return np.stack(arrays) if arrays else np.zeros((0, 3, 1, 1), np.float32)
