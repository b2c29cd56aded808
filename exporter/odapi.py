"""TensorFlow Object Detection API dictionaries → canonical fields.

ODAPI models return ``detection_boxes`` (normalized ymin, xmin, ymax, xmax — the
shard default ``yxyx``/``normalized``), ``detection_classes`` (1-based, as
floats), ``detection_scores`` and ``num_detections``; its eval dicts add
``groundtruth_*``, ``original_image`` and ``key``. ``to_canonical`` renames
them and shifts classes to 0-based so they index ``class_names`` made by
``class_names_from_label_map``. Other keys pass through unchanged, so a dict
that is already canonical is returned as it is.
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
}


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
        if key in out:
            raise ConfigError(f"ODAPI dict maps two keys onto field '{key}'; pass only one of them")
        if kind == "class":
            value = np.rint(np.asarray(value, dtype=np.float64)).astype(np.int32) - label_offset
        elif kind == "count":
            value = np.rint(np.asarray(value, dtype=np.float64)).astype(np.int32)
        out[key] = value
    return out


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
