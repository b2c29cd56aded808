"""Validation: every problem of a shard's arrays, against its metadata and the canonical fields.

``check_arrays`` is what ``export`` runs on every shard it reads and what
``validate_shard`` reports; both name the file and the field. The rules for
image layouts and box formats come from ``schema``, as the renderer's do.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .errors import ShardError, ShardTooLargeError
from .schema import (
    CANONICAL_FIELDS,
    CORNER_FORMATS,
    STEP_DIR_PREFIX,
    ShardMeta,
    image_layout,
    is_field_name,
    step_dirname,
)
from .shards import DEFAULT_MAX_BYTES, Problem, Shard

#: Fields holding class ids, and which of the metadata's name lists bounds them.
_CLASS_ID_FIELDS = ("labels", "pred_labels", "box_labels", "gt_box_labels", "masks", "gt_masks")


def validate_shard(path: str | os.PathLike, *, max_bytes: int = DEFAULT_MAX_BYTES) -> list[Problem]:
    """Every problem found in one shard file, each naming the file and the field. Empty = valid.

    What is odd but exportable (NaN/inf pixels) is not a problem: it is a
    ``UserWarning`` naming the file (``validate`` prints ``warning: ...``).
    """
    try:
        shard = Shard(path, max_bytes=max_bytes)
        arrays = shard.load()
    except (ShardError, ShardTooLargeError) as exc:
        return [Problem.from_error(path, exc)]
    p = str(path)
    problems = [Problem(p, m, f) for f, m in check_arrays(shard.meta, arrays)]
    if not problems and "images" in arrays and (bad := nonfinite_pixels(arrays["images"])):
        warnings.warn(nonfinite_note(p, bad, arrays["images"].size), stacklevel=2)
    parent = Path(path).parent.name
    if parent.startswith(STEP_DIR_PREFIX) and parent != step_dirname(shard.meta.step):
        problems.append(Problem(p, f"lies in folder {parent} but its metadata says step {shard.meta.step}"))
    return problems


def check_arrays(meta: ShardMeta, arrays: Mapping[str, np.ndarray]) -> list[tuple[str | None, str]]:
    """Check arrays against the metadata and the canonical fields: ``[(field, message), ...]``."""
    problems: list[tuple[str | None, str]] = []
    n = meta.num_examples
    if not arrays:
        problems.append((None, "holds no fields"))
    for name, arr in arrays.items():
        if not is_field_name(name):
            problems.append((name, "is not a valid field name (letters, digits, '_')"))
            continue
        if arr.ndim == 0 or arr.shape[0] != n:
            problems.append((name, f"has shape {arr.shape}, expected a leading N={n} (metadata num_examples)"))
            continue
        spec = CANONICAL_FIELDS.get(name)
        if spec is None:
            continue
        if arr.ndim not in spec.ranks:
            problems.append((name, f"has shape {arr.shape}, expected {spec.doc}"))
            continue
        kind = arr.dtype.kind
        if spec.kind == "id":
            if kind not in "iuU":
                problems.append((name, f"has dtype {arr.dtype}, expected integers or text"))
        elif spec.kind == "int":
            if kind not in "iub":
                problems.append((name, f"has dtype {arr.dtype}, expected integer class ids"))
        elif kind not in "biuf":
            problems.append((name, f"has dtype {arr.dtype}, expected numbers"))
        elif spec.kind == "box" and arr.shape[-1] != 4:
            problems.append((name, f"has shape {arr.shape}, expected (N, M, 4)"))
        elif name in ("images", "masks", "gt_masks") and 0 in arr.shape[1:]:
            problems.append((name, f"has shape {arr.shape}: an empty picture cannot be drawn"))
        elif name == "images" and image_layout(arr.shape[1:], meta.image_layout) is None:
            problems.append((name, f"has shape {arr.shape}, {_layout_expectation(meta.image_layout)}"))
        elif name == "probs" and arr.shape[1] == 0:
            problems.append((name, f"has shape {arr.shape}, expected at least one class (N, K>0)"))
    if problems:
        return problems
    problems.extend(_check_values(meta, arrays))
    return problems


def nonfinite_pixels(images: np.ndarray) -> int:
    """How many values of ``images`` are NaN or infinite (0 for integer images)."""
    if images.dtype.kind not in "fc":
        return 0
    return int(images.size - np.count_nonzero(np.isfinite(images)))


def nonfinite_note(path: str | os.PathLike, count: int, total: int) -> str:
    """The warning about NaN/inf pixels, the same from ``validate`` and ``export``."""
    return (
        f"{path}: field 'images' has {count} NaN or infinite pixel value(s) (of {total}): they have no colour "
        "to show (a bad normalisation, or a masked input?)"
    )


def _layout_expectation(layout: str | None) -> str:
    if layout == "HW":
        return "expected (N,H,W) for metadata image_layout 'HW'"
    if layout in ("HWC", "CHW"):
        where = "last" if layout == "HWC" else "second"
        return f"expected 1, 3 or 4 channels on the {where} axis for metadata image_layout '{layout}'"
    return "expected 1, 3 or 4 channels: (N,H,W,C) or (N,C,H,W)"


def _check_values(meta: ShardMeta, a: Mapping[str, np.ndarray]) -> list[tuple[str | None, str]]:
    problems: list[tuple[str | None, str]] = []
    ncls = len(meta.class_names) if meta.class_names else None
    nmask = len(meta.mask_class_names) if meta.mask_class_names else None
    # NaN/inf pixels are not a problem: images hold whatever the model saw (masked depth, a bad
    # normalisation...) and the renderer draws them in a stand-in colour (render/image.py); they are
    # warned about (nonfinite_note), by validate_shard and by export.
    for name in _CLASS_ID_FIELDS:
        if name in a and a[name].size:
            lo, hi = int(a[name].min()), int(a[name].max())
            if lo < 0 and name not in ("box_labels", "gt_box_labels"):
                problems.append((name, f"has negative class id {lo}"))
            limit, what = (nmask, "mask class names") if name.endswith("masks") else (ncls, "class names")
            if limit is not None and hi >= limit:
                problems.append((name, f"has class id {hi}, outside the {limit} {what}"))
    for name in ("pred_scores", "probs", "box_scores"):
        if name in a and a[name].dtype.kind == "f" and not np.isfinite(a[name]).all():
            problems.append((name, "has NaN/inf scores"))
    for boxes, count, labels in (("boxes", "num_boxes", "box_labels"), ("gt_boxes", "gt_num_boxes", "gt_box_labels")):
        if boxes not in a:
            if count in a or labels in a:
                problems.append((count if count in a else labels, f"is present but '{boxes}' is not"))
            continue
        m = a[boxes].shape[1]
        for parallel in (labels, "box_scores") if boxes == "boxes" else (labels,):
            if parallel in a and a[parallel].shape[:2] != a[boxes].shape[:2]:
                problems.append(
                    (parallel, f"has shape {a[parallel].shape}, expected {a[boxes].shape[:2]} to match '{boxes}'")
                )
        valid = np.ones(a[boxes].shape[:2], dtype=bool)
        if count in a:
            c = a[count]
            if c.size and (c.min() < 0 or c.max() > m):
                problems.append((count, f"has values in [{c.min()}, {c.max()}], expected 0..{m} (the padded box count)"))
                continue
            valid = np.arange(m)[None, :] < c[:, None]
        b = a[boxes][valid].astype(np.float64)
        if not b.size:
            continue
        if not np.isfinite(b).all():
            problems.append((boxes, "has NaN/inf coordinates"))
            continue
        if meta.box_format in CORNER_FORMATS:
            inverted = (b[:, 2] < b[:, 0]) | (b[:, 3] < b[:, 1])
        else:
            inverted = (b[:, 2] < 0) | (b[:, 3] < 0)
        if inverted.any():
            problems.append((boxes, f"has {int(inverted.sum())} inverted boxes (for box_format '{meta.box_format}')"))
        if meta.box_coords == "normalized" and (b.min() < -0.05 or b.max() > 1.05):
            problems.append(
                (boxes, f"has coordinates in [{b.min():.3g}, {b.max():.3g}] but box_coords is 'normalized' (0..1)")
            )
    return problems
