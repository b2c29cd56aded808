"""Validation: every problem of a shard's arrays, against its metadata and the canonical fields.

``check_arrays`` is what ``export`` runs on every shard it reads and what
``validate_shard`` reports; both name the file and the field. The rules for
image layouts and box formats come from ``schema``, as the renderer's do.

``validate_shard`` also reports warnings (``Problem.level == "warning"``):
things that are valid and export, but that a user would want to know about
because the picture will not show them as they might expect (``check_warnings``):

* images holding NaN or ±inf pixels (drawn magenta: ``render/image.py``);
* boxes entirely outside the image (not drawn), among the first ``num_boxes``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from .errors import ShardError, ShardTooLargeError
from .schema import (
    BOX_GROUPS,
    CANONICAL_FIELDS,
    CORNER_FORMATS,
    STEP_DIR_PREFIX,
    ShardMeta,
    image_layout,
    is_field_name,
    step_dirname,
)
from .shards import DEFAULT_MAX_BYTES, Problem, Shard, shard_path
from .storage import Location

#: Fields holding class ids: ``masks``/``gt_masks`` are bounded by the mask names (else the class names), the
#: others by the class names; ``box_labels``/``gt_box_labels`` only within ``num_boxes``/``gt_num_boxes``.
_CLASS_ID_FIELDS = ("labels", "pred_labels", "box_labels", "gt_box_labels", "masks", "gt_masks")


def validate_shard(
    path: str | os.PathLike | Location, *, max_bytes: int = DEFAULT_MAX_BYTES,
    storage_options: Mapping[str, Any] | None = None,
) -> list[Problem]:
    """Every problem found in one shard file (or URL), each naming the file and the field. Empty = valid."""
    where = shard_path(path, storage_options)
    p = str(where) if isinstance(where, Location) else str(path)
    try:
        shard = Shard(where, max_bytes=max_bytes)
        arrays = shard.load()
    except (ShardError, ShardTooLargeError) as exc:
        return [Problem.from_error(p, exc)]
    problems = [Problem(p, m, f) for f, m in check_arrays(shard.meta, arrays)]
    parent = where.parent.name
    if parent.startswith(STEP_DIR_PREFIX) and parent != step_dirname(shard.meta.step):
        problems.append(Problem(p, f"lies in folder {parent} but its metadata says step {shard.meta.step}"))
    if not problems:  # the warnings read values, which only well-formed arrays have
        problems = [Problem(p, m, f, level="warning") for f, m in check_warnings(shard.meta, arrays)]
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
        elif spec.kind == "binary":
            if kind not in "biu":
                problems.append((name, f"has dtype {arr.dtype}, expected bool masks (threshold soft masks first)"))
            elif arr.shape[1] and 0 in arr.shape[2:]:
                problems.append((name, f"has shape {arr.shape}: an empty mask cannot be drawn"))
        elif kind not in "biuf":
            problems.append((name, f"has dtype {arr.dtype}, expected numbers"))
        elif spec.kind == "box" and arr.shape[-1] != 4:
            problems.append((name, f"has shape {arr.shape}, expected (N, M, 4)"))
        elif spec.kind == "point" and arr.shape[-1] != 2:
            problems.append((name, f"has shape {arr.shape}, expected (N, M, P, 2): x, y per keypoint"))
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
    rows = {boxes: _box_rows(a, boxes) for boxes in BOX_GROUPS}
    # NaN/inf pixels are no error: images hold whatever the model saw (masked depth, a bad
    # normalisation...) and the renderer draws them magenta (render/image.py); check_warnings counts them.
    for name in _CLASS_ID_FIELDS:
        if name not in a or not a[name].size:
            continue
        ids = a[name]
        if name.endswith("masks"):
            # mask ids are checked like box labels, against the mask names (else the class names);
            # the background id means "no class" and may lie outside them (255, -1...)
            limit, what = (nmask, "mask class names") if nmask else (ncls, "class names (no mask_class_names)")
            ends = _id_range(ids, meta.mask_background)
            if ends is None:
                continue
            lo, hi = ends
        else:
            limit, what = ncls, "class names"
            box_rows = rows["gt_boxes" if name.startswith("gt_") else "boxes"] if name.endswith("box_labels") else None
            if box_rows is not None and box_rows.shape == ids.shape:
                ids = ids[box_rows]  # rows beyond num_boxes are padding: never checked
                if not ids.size:
                    continue
            lo, hi = int(ids.min()), int(ids.max())
        if lo < 0 and name not in ("box_labels", "gt_box_labels"):
            problems.append((name, f"has negative class id {lo}"))
        if limit is not None and hi >= limit:
            problems.append((name, f"has class id {hi}, outside the {limit} {what}"))
    for name in ("pred_scores", "probs", "box_scores"):
        if name in a and a[name].dtype.kind == "f" and not np.isfinite(a[name]).all():
            problems.append((name, "has NaN/inf scores"))
    for boxes, (count, parallel) in BOX_GROUPS.items():
        if boxes not in a:
            present = [f for f in (count, *parallel) if f in a]
            if present:
                problems.append((present[0], f"is present but '{boxes}' is not"))
            continue
        shape = a[boxes].shape[:2]
        for name in parallel:
            if name in a and a[name].shape[:2] != shape:
                dims = "" if a[name].ndim == 2 else "its first two dims "
                problems.append((name, f"has shape {a[name].shape}, expected {dims}{shape} to match '{boxes}'"))
        m = shape[1]
        if count in a:
            c = a[count]
            if c.size and (c.min() < 0 or c.max() > m):
                problems.append((count, f"has values in [{c.min()}, {c.max()}], expected 0..{m} (the padded box count)"))
                continue
        valid = rows[boxes]
        if valid is None:
            continue
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
    problems.extend(_check_instances(meta, a, rows))
    return problems


def _box_rows(a: Mapping[str, np.ndarray], boxes: str) -> np.ndarray | None:
    """(N, M) bool: which rows of ``boxes`` are boxes (within its count), not padding; None if it cannot say."""
    if boxes not in a:
        return None
    n, m = a[boxes].shape[:2]
    count = a.get(BOX_GROUPS[boxes][0])
    if count is None:
        return np.ones((n, m), dtype=bool)
    if count.size and (count.min() < 0 or count.max() > m):
        return None
    return np.arange(m)[None, :] < count[:, None]


def _id_range(ids: np.ndarray, background: int | None) -> tuple[int, int] | None:
    """Smallest and largest id of a class map, leaving out ``background``; None if nothing else is there."""
    lo, hi = int(ids.min()), int(ids.max())
    if background is None or background not in (lo, hi):
        return lo, hi  # the background id is not at an end: the ends are classes
    rest = ids[ids != background]
    return (int(rest.min()), int(rest.max())) if rest.size else None


def _check_instances(
    meta: ShardMeta, a: Mapping[str, np.ndarray], rows: Mapping[str, np.ndarray | None]
) -> list[tuple[str | None, str]]:
    """Format 1.1: instance masks and keypoints against their boxes, each other and the keypoint metadata."""
    problems: list[tuple[str | None, str]] = []
    for name in ("instance_masks", "gt_instance_masks"):
        if name in a and a[name].dtype.kind != "b" and a[name].size and (a[name].min() < 0 or a[name].max() > 1):
            problems.append((name, "holds values other than 0 and 1, expected bool masks (nonzero = inside the instance)"))
    pred, gt = a.get("instance_masks"), a.get("gt_instance_masks")
    if pred is not None and gt is not None and pred.shape[1] and gt.shape[1] and pred.shape[2:] != gt.shape[2:]:
        problems.append(
            ("gt_instance_masks", f"has masks of {gt.shape[2:]}, expected the (H, W) {pred.shape[2:]} of 'instance_masks'")
        )
    if "keypoint_scores" in a:
        if "keypoints" not in a:
            problems.append(("keypoint_scores", "is present but 'keypoints' is not"))
        elif a["keypoint_scores"].shape != a["keypoints"].shape[:3]:
            want = a["keypoints"].shape[:3]
            problems.append(("keypoint_scores", f"has shape {a['keypoint_scores'].shape}, expected {want} to match 'keypoints'"))
    counts = {name: a[name].shape[2] for name in ("keypoints", "gt_keypoints") if name in a}
    if len(set(counts.values())) > 1:
        problems.append(("gt_keypoints", f"has {counts['gt_keypoints']} keypoints per box, 'keypoints' has {counts['keypoints']}"))
    if counts:
        name, p = next(iter(counts.items()))
        if meta.keypoint_names is not None and len(meta.keypoint_names) != p:
            problems.append((name, f"has {p} keypoints per box, but metadata 'keypoint_names' names {len(meta.keypoint_names)}"))
        if meta.keypoint_edges:
            worst = max(max(e) for e in meta.keypoint_edges)
            if worst >= p:
                problems.append((name, f"has {p} keypoints per box, but metadata 'keypoint_edges' joins keypoint {worst}"))
    for name, boxes in (("keypoints", "boxes"), ("gt_keypoints", "gt_boxes")):
        valid = rows.get(boxes)
        if name not in a or valid is None or a[name].shape[:2] != valid.shape:
            continue
        k = a[name][valid].astype(np.float64).reshape(-1, 2)
        if np.isinf(k).any():
            problems.append((name, "has infinite coordinates (NaN marks a missing keypoint)"))
            continue
        k = k[~np.isnan(k).any(axis=1)]
        if meta.box_coords == "normalized" and k.size and (k.min() < -0.05 or k.max() > 1.05):
            problems.append(
                (name, f"has coordinates in [{k.min():.3g}, {k.max():.3g}] but box_coords is 'normalized' (0..1)")
            )
        if name == "keypoints" and "keypoint_scores" in a and a["keypoint_scores"].shape[:2] == valid.shape:
            s = a["keypoint_scores"][valid]
            if s.dtype.kind == "f" and np.isinf(s).any():
                problems.append(("keypoint_scores", "has infinite scores (NaN marks a missing keypoint)"))
    return problems


def check_warnings(meta: ShardMeta, arrays: Mapping[str, np.ndarray]) -> list[tuple[str | None, str]]:
    """What is valid but will not show as expected: ``[(field, message), ...]`` for arrays ``check_arrays`` passed.

    Not part of ``check_arrays``: ``export`` refuses a shard with problems, and these do not make one bad.
    """
    warnings: list[tuple[str | None, str]] = []
    images = arrays.get("images")
    layout = image_layout(images.shape[1:], meta.image_layout) if images is not None else None
    if images is not None and images.dtype.kind == "f" and images.size:
        channels = {"HWC": -1, "CHW": 1}.get(layout or "HW")
        bad = ~np.isfinite(images)
        if channels is not None:  # a pixel is bad when a drawn channel is (alpha is not drawn)
            bad = np.take(bad, range(min(3, images.shape[channels])), axis=channels).any(axis=channels)
        if bad.any():
            per_image = bad.reshape(len(bad), -1).sum(axis=1)
            warnings.append(
                (
                    "images",
                    f"has {int(per_image.sum())} NaN/inf pixels in {int((per_image > 0).sum())} of {len(bad)} "
                    "images; they are drawn magenta",
                )
            )
    size: tuple[float, float] | None = None
    if meta.box_coords == "normalized":
        size = (1.0, 1.0)
    elif images is not None:  # pixels: the image's own width and height
        h, w = images.shape[2:4] if layout == "CHW" else images.shape[1:3]
        size = (float(w), float(h))
    for boxes, count in (("boxes", "num_boxes"), ("gt_boxes", "gt_num_boxes")):
        if size is None or boxes not in arrays or not arrays[boxes].size:
            continue
        b = arrays[boxes].astype(np.float64)
        valid = np.ones(b.shape[:2], dtype=bool)
        if count in arrays:
            valid = np.arange(b.shape[1])[None, :] < arrays[count][:, None]
        x1, y1, x2, y2 = _corners(b[valid], meta.box_format)
        outside = (x2 <= 0) | (y2 <= 0) | (x1 >= size[0]) | (y1 >= size[1])  # as the renderer decides
        if outside.any():
            zeros = int((b[valid][outside] == 0).all(axis=1).sum())
            hint = f"; {zeros} of them are all zeros: padding? write '{count}'" if zeros and count not in arrays else ""
            warnings.append((boxes, f"has {int(outside.sum())} boxes entirely outside the image (not drawn){hint}"))
    return warnings


def _corners(b: np.ndarray, box_format: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """x1, y1, x2, y2 of (K, 4) boxes in ``box_format``, for the outside test only.

    ``render/boxes.py`` is where boxes are converted for drawing; the file format's layer cannot import the
    renderer, so this is the same arithmetic, kept to the four lines the test needs.
    """
    a0, a1, a2, a3 = b.T
    if box_format == "xyxy":
        return a0, a1, a2, a3
    if box_format == "yxyx":
        return a1, a0, a3, a2
    if box_format == "xywh":
        return a0, a1, a0 + a2, a1 + a3
    return a0 - a2 / 2, a1 - a3 / 2, a0 + a2 / 2, a1 + a3 / 2  # cxcywh
