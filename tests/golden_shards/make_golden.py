"""Make the golden format-v1 shards. Run ONCE per numpy major, never to "fix" a failing test:

    .venv/tf215/bin/python tests/golden_shards/make_golden.py tests/golden_shards/v1/numpy1   # numpy 1.26
    .venv/core/bin/python  tests/golden_shards/make_golden.py tests/golden_shards/v1/numpy2   # numpy 2.x

These files are the promise that shards written today load, validate and export in every later
version: tests read them with ``expected_arrays()`` below, which must stay the same forever.
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


def main(out: str) -> None:
    from exporter import ShardWriter

    for step, compress in ((100, False), (200, True)):
        with ShardWriter(out, step=step, class_names=CLASS_NAMES, mask_class_names=CLASS_NAMES,
                         examples_per_shard=5, compress=compress, meta={"golden": True}) as w:
            arrays = expected_arrays(step)
            w.add(**{k: v[:3] for k, v in arrays.items()})
            w.add(**{k: v[3:] for k, v in arrays.items()})


if __name__ == "__main__":
    main(sys.argv[1])
