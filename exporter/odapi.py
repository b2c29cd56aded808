"""TensorFlow Object Detection API dictionaries → canonical fields.

ODAPI models return ``detection_boxes`` (normalized ymin, xmin, ymax, xmax — the
shard default ``yxyx``/``normalized``), ``detection_classes`` (1-based, as
floats), ``detection_scores`` and ``num_detections``; its eval dicts add
``groundtruth_*``, ``original_image`` and ``key``. ``to_canonical`` renames
them and shifts classes to 0-based so they index ``class_names`` made by
``class_names_from_label_map``. Other keys pass through unchanged, so a dict
that is already canonical is returned as it is.

Instances (format 1.1): ``detection_masks`` → ``instance_masks`` (bool, soft
masks thresholded at 0.5 as ODAPI's evaluation does; the box-relative masks a
Mask R-CNN SavedModel returns, e.g. (M, 33, 33), are first pasted into the
image when the dict holds the image to size them), ``detection_keypoints``
(normalized y, x) → ``keypoints`` (normalized x, y, the shard's order),
``detection_keypoint_scores`` → ``keypoint_scores``, and the ``groundtruth_``
ones alike; ``groundtruth_keypoint_visibilities`` makes invisible keypoints NaN.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .errors import ConfigError

#: ODAPI key → (canonical field, kind): "class" keys are shifted by the label offset.
ODAPI_KEYS: dict[str, tuple[str, str]] = {
    "detection_boxes": ("boxes", "float"),
    "detection_scores": ("box_scores", "float"),
    "detection_classes": ("box_labels", "class"),
    "num_detections": ("num_boxes", "count"),
    "groundtruth_boxes": ("gt_boxes", "float"),
    "groundtruth_classes": ("gt_box_labels", "class"),
    "num_groundtruth_boxes": ("gt_num_boxes", "count"),
    "original_image": ("images", "keep"),
    "key": ("ids", "keep"),
    "detection_masks": ("instance_masks", "mask"),
    "groundtruth_instance_masks": ("gt_instance_masks", "mask"),
    "detection_keypoints": ("keypoints", "yx"),
    "detection_keypoint_scores": ("keypoint_scores", "keep"),
    "groundtruth_keypoints": ("gt_keypoints", "yx"),
    "groundtruth_keypoint_visibilities": ("gt_keypoints", "visibility"),  # folded into gt_keypoints as NaN
}
#: Soft masks above this are inside the instance (ODAPI's eval_util uses 0.5 too).
MASK_THRESHOLD = 0.5


def is_odapi(fields: Mapping[str, Any]) -> bool:
    return any(k in ODAPI_KEYS and k not in ("key",) for k in fields)


def to_canonical(fields: Mapping[str, Any], *, label_offset: int = 1) -> dict[str, Any]:
    """Rename ODAPI keys to canonical fields; ``label_offset`` (1 for ODAPI) is subtracted from classes.

    >>> out = to_canonical({"detection_classes": np.array([[1.0, 3.0]]), "num_detections": np.array([2.0])})
    >>> out["box_labels"].tolist(), out["num_boxes"].tolist()
    ([[0, 2]], [2])
    """
    if not is_odapi(fields):
        return dict(fields)
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if key == "image" and "original_image" not in fields:
            key, kind = "images", "keep"  # the preprocessed input, when no original image is given
        elif key == "source_id" and "key" not in fields:
            key, kind = "ids", "keep"
        elif key in ODAPI_KEYS:
            key, kind = ODAPI_KEYS[key]
        else:
            kind = "keep"
        if kind == "visibility":
            continue  # applied to gt_keypoints below
        if key in out:
            raise ConfigError(f"ODAPI dict maps two keys onto field '{key}'; pass only one of them")
        if kind == "class":
            value = np.rint(np.asarray(value, dtype=np.float64)).astype(np.int32) - label_offset
        elif kind == "count":
            value = np.rint(np.asarray(value, dtype=np.float64)).astype(np.int32)
        elif kind == "yx":
            value = np.asarray(value)[..., ::-1]  # ODAPI keypoints are (y, x); shards hold (x, y)
        elif kind == "mask":
            value = _image_masks(fields, key, np.asarray(value))
        out[key] = value
    visible = fields.get("groundtruth_keypoint_visibilities")
    if visible is not None and "gt_keypoints" in out:
        points = np.asarray(out["gt_keypoints"], dtype=np.float64)
        out["gt_keypoints"] = np.where(np.asarray(visible, dtype=bool)[..., None], points, np.nan)
    return out


def _image_masks(fields: Mapping[str, Any], key: str, masks: np.ndarray) -> np.ndarray:
    """(N, M, H, W) bool image masks from ODAPI's masks: thresholded, and pasted into the image if box-relative."""
    image = fields.get("original_image", fields.get("image"))
    size = None if image is None else _image_size(np.asarray(image))
    boxes = fields.get("detection_boxes" if key == "instance_masks" else "groundtruth_boxes")
    if masks.ndim == 4 and size is not None and masks.shape[2:] != size and boxes is not None:
        counts = fields.get("num_detections" if key == "instance_masks" else "num_groundtruth_boxes")
        boxes = np.asarray(boxes, dtype=np.float64)
        out = np.zeros((*masks.shape[:2], *size), dtype=bool)
        for i in range(masks.shape[0]):
            m = masks.shape[1] if counts is None else int(np.rint(np.asarray(counts).reshape(-1)[i]))
            out[i, :m] = reframe_box_masks(masks[i, :m], boxes[i, :m], *size)
        return out
    return masks > MASK_THRESHOLD if masks.dtype.kind == "f" else masks.astype(bool)


def _image_size(images: np.ndarray) -> tuple[int, int] | None:
    """(H, W) of a batch of (N, H, W, C) or (N, H, W) images."""
    return (int(images.shape[1]), int(images.shape[2])) if images.ndim in (3, 4) else None


def reframe_box_masks(
    box_masks: np.ndarray, boxes: np.ndarray, height: int, width: int, *, threshold: float = MASK_THRESHOLD
) -> np.ndarray:
    """Box-relative (M, h, w) soft masks → (M, height, width) bool image masks, like ODAPI's ``reframe_box_masks_to_image_masks``.

    ``boxes`` are normalized (ymin, xmin, ymax, xmax). Each image pixel inside a
    box samples the box's mask bilinearly at its centre; pixels outside stay False.

    >>> reframe_box_masks(np.ones((1, 2, 2)), np.array([[0.0, 0.5, 0.5, 1.0]]), 4, 4).astype(int)[0]
    array([[0, 0, 1, 1],
           [0, 0, 1, 1],
           [0, 0, 0, 0],
           [0, 0, 0, 0]])
    """
    box_masks = np.asarray(box_masks, dtype=np.float64)
    out = np.zeros((len(box_masks), height, width), dtype=bool)
    for k, (mask, (y0, x0, y1, x1)) in enumerate(zip(box_masks, np.asarray(boxes, dtype=np.float64), strict=True)):
        rows, wy = _interpolation(y0, y1, height, mask.shape[0])
        cols, wx = _interpolation(x0, x1, width, mask.shape[1])
        if rows.size and cols.size:
            out[k, rows[:, None], cols[None, :]] = wy @ mask @ wx.T > threshold
    return out


def _interpolation(lo: float, hi: float, size: int, cells: int) -> tuple[np.ndarray, np.ndarray]:
    """Image pixels whose centre lies in [lo, hi] (normalized), and their (pixels, cells) bilinear weights."""
    if not (np.isfinite(lo) and np.isfinite(hi)) or hi <= lo or cells == 0:
        return np.zeros(0, int), np.zeros((0, cells))
    centres = (np.arange(size) + 0.5) / size
    pixels = np.flatnonzero((centres >= lo) & (centres <= hi))
    at = np.clip((centres[pixels] - lo) / (hi - lo) * cells - 0.5, 0, cells - 1)  # in mask cells
    left = np.floor(at).astype(int)
    right = np.minimum(left + 1, cells - 1)
    frac = at - left
    weights = np.zeros((pixels.size, cells))
    np.add.at(weights, (np.arange(pixels.size), left), 1 - frac)
    np.add.at(weights, (np.arange(pixels.size), right), frac)
    return pixels, weights


def class_names_from_label_map(label_map: Mapping[int, Any], *, label_offset: int = 1) -> list[str]:
    """An ODAPI category index ``{1: {"id": 1, "name": "cat"}, ...}`` (or ``{1: "cat"}``) → 0-based names.

    Gaps in the ids become ``"class_<id>"`` so positions stay right.

    >>> class_names_from_label_map({1: {"id": 1, "name": "cat"}, 3: {"id": 3, "name": "dog"}})
    ['cat', 'class_2', 'dog']
    """
    if not label_map:
        raise ConfigError("the label map is empty")
    names: dict[int, str] = {}
    for key, entry in label_map.items():
        cid = int(entry.get("id", key)) if isinstance(entry, Mapping) else int(key)
        name = entry.get("name", entry.get("display_name")) if isinstance(entry, Mapping) else entry
        if cid < label_offset:
            raise ConfigError(f"label map id {cid} is below the label offset {label_offset}")
        names[cid - label_offset] = str(name)
    return [names.get(i, f"class_{i + label_offset}") for i in range(max(names) + 1)]
