"""Make the golden shards. Run ONCE per format version and numpy major, never to "fix" a failing test:

    .venv/tf215/bin/python tests/golden_shards/make_golden.py 1.1 tests/golden_shards/v1.1/numpy1   # numpy 1.26
    .venv/core/bin/python  tests/golden_shards/make_golden.py 1.1 tests/golden_shards/v1.1/numpy2   # numpy 2.x

These files are the promise that shards written today load, validate and export in every later
version: tests read them with ``expected_arrays()`` (format 1.0, under v1/) and
``expected_arrays_v1_1()`` (format 1.1, under v1.1/) below, which must stay the same forever.
The 1.0 shards were made the same way (``make_golden.py OUT``) by the 1.0 writer; today's writer
writes 1.1, so they cannot be made again.
"""

from __future__ import annotations

import sys

import numpy as np

CLASS_NAMES = ["cat", "dog", "bird"]


def expected_arrays(step: int) -> dict[str, np.ndarray]:
    """The arrays of one golden dump (8 examples), a pure function of the step."""
    n, h, w = 8, 12, 16
    yy, xx = np.mgrid[0:h, 0:w]
    images = np.stack([((yy * 7 + xx * 5 + i * 11 + step) % 256).astype(np.uint8) for i in range(n)])
    images = np.repeat(images[..., None], 3, axis=-1)
    images[..., 1] //= 2
    labels = np.arange(n) % 3
    probs = np.full((n, 3), 0.1, np.float32)
    probs[np.arange(n), (labels + (step // 100)) % 3] = 0.8
    boxes = np.zeros((n, 2, 4), np.float32)
    boxes[:, 0] = [0.1, 0.2, 0.6, 0.7]
    boxes[:, 1] = [0.3, 0.1, 0.9, 0.5]
    masks = ((yy[None] // 4 + xx[None] // 4 + np.arange(n)[:, None, None]) % 3).astype(np.int32)
    return {
        "images": images,
        "labels": labels.astype(np.int64),
        "probs": probs,
        "pred_labels": probs.argmax(1).astype(np.int64),
        "pred_scores": probs.max(1),
        "boxes": boxes,
        "box_labels": np.stack([labels, (labels + 1) % 3], axis=1).astype(np.int32),
        "box_scores": np.tile(np.array([0.9, 0.4], np.float32), (n, 1)),
        "num_boxes": (np.arange(n) % 3).astype(np.int32),
        "gt_boxes": boxes[:, :1].copy(),
        "gt_box_labels": labels[:, None].astype(np.int32),
        "gt_num_boxes": np.ones(n, np.int32),
        "masks": masks,
        "gt_masks": masks[:, ::-1].copy(),
        "ids": np.array([f"img-{i:03d}/ünï" for i in range(n)]),
        "extra_feature": np.linspace(0, 1, n * 2).reshape(n, 2),
    }


#: Format 1.1: detections with instance masks and keypoints, masks with a background id of 255.
MASK_CLASS_NAMES = ["road", "car", "sky"]
MASK_BACKGROUND = 255
KEYPOINT_NAMES = ["nose", "left_ear", "right_ear", "tail"]
KEYPOINT_EDGES = [[0, 1], [0, 2], [0, 3]]
#: Boxes per image: predicted (M = 3 after padding) and ground truth (G = 2).
NUM_BOXES = [2, 0, 3, 1, 2, 0]
GT_NUM_BOXES = [1, 2, 0, 1, 1, 1]


def expected_arrays_v1_1(step: int) -> dict[str, np.ndarray]:
    """The arrays of one golden 1.1 dump (6 examples), padded as the writer pads, a pure function of the step."""
    n, h, w, m, g, p = 6, 10, 14, 3, 2, 4
    yy, xx = np.mgrid[0:h, 0:w]
    grey = np.stack([((yy * 9 + xx * 3 + i * 17 + step) % 256).astype(np.uint8) for i in range(n)])
    masks = ((yy[None] // 3 + xx[None] // 5 + np.arange(n)[:, None, None]) % 4).astype(np.int32)
    masks[masks == 3] = MASK_BACKGROUND
    arrays = {
        "images": np.stack([grey, grey // 2, 255 - grey], axis=-1),
        "masks": masks,
        "gt_masks": masks[:, ::-1].astype(np.uint8),
        "ids": np.array([f"det-{k:02d}/ünï" for k in range(n)]),
    }
    for prefix, rows, counts, shift in (("", m, NUM_BOXES, 0.0), ("gt_", g, GT_NUM_BOXES, 0.5)):
        count = np.array(counts, np.int32)
        valid = np.arange(rows)[None, :] < count[:, None]
        i, j = np.meshgrid(np.arange(n), np.arange(rows), indexing="ij")
        x0, y0 = (1 + j + i % 3).astype(np.float32), (1 + j).astype(np.float32)  # 5 x 4 pixel boxes
        boxes = np.stack([x0, y0, x0 + 5, y0 + 4], axis=-1) + shift
        inside = (
            (xx >= x0[..., None, None]) & (xx < x0[..., None, None] + 5)
            & (yy >= y0[..., None, None]) & (yy < y0[..., None, None] + 4)
        )
        keypoints = np.stack([x0[..., None] + np.arange(p), y0[..., None] + np.arange(p) / 2], axis=-1) + shift
        keypoints[:, :, 3] = np.nan  # the tail is never seen
        arrays.update({
            f"{prefix}boxes": np.where(valid[..., None], boxes, 0).astype(np.float32),
            f"{prefix}box_labels": np.where(valid, (i + j) % 3, -1).astype(np.int64),
            f"{prefix}num_boxes": count,
            f"{prefix}instance_masks": inside & valid[..., None, None],
            f"{prefix}keypoints": np.where(valid[..., None, None], keypoints, np.nan).astype(np.float32),
        })
        if not prefix:
            arrays["box_scores"] = np.where(valid, 0.9 - 0.2 * j, 0).astype(np.float32)
            arrays["keypoint_scores"] = np.where(valid[..., None], np.linspace(0.1, 0.8, p), 0).astype(np.float32)
    arrays["gt_instance_masks"] = arrays["gt_instance_masks"].astype(np.uint8)  # uint8 0/1 masks stay uint8
    return arrays


def per_image(arrays: dict[str, np.ndarray]) -> dict[str, object]:
    """The 1.1 arrays as detection code holds them: one entry per image without its padding, no counts."""
    out: dict[str, object] = {}
    for name, value in arrays.items():
        group = "gt_" if name.startswith("gt_") else ""
        if name in ("num_boxes", "gt_num_boxes"):
            continue
        if name.removeprefix(group) in ("boxes", "box_labels", "box_scores", "instance_masks", "keypoints", "keypoint_scores"):
            out[name] = [value[i, :c] for i, c in enumerate(arrays[f"{group}num_boxes"])]
        else:
            out[name] = value
    return out


def main(version: str, out: str) -> None:
    from exporter import ShardWriter
    from exporter.schema import FORMAT_VERSION

    if version != FORMAT_VERSION:
        raise SystemExit(f"this writer writes format {FORMAT_VERSION}, not {version}: golden shards of {version} stay as made")
    for step, compress in ((100, False), (200, True)):
        with ShardWriter(out, step=step, class_names=CLASS_NAMES, mask_class_names=MASK_CLASS_NAMES,
                         mask_background=MASK_BACKGROUND, keypoint_names=KEYPOINT_NAMES, keypoint_edges=KEYPOINT_EDGES,
                         box_format="xyxy", box_coords="pixels", examples_per_shard=4, compress=compress,
                         meta={"golden": True}) as w:
            w.add(**per_image(expected_arrays_v1_1(step)))  # one batch: padded to its M = 3, cut into 4 + 2


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
