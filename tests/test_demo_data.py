"""The demo's synthetic shapes (numpy only) and, when TensorFlow Estimator is installed, its capture run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from exporter.demo import CLASS_NAMES, MASK_CLASS_NAMES, make_shapes

CASES = [  # (n, size, max_shapes, seed)
    (48, 64, 3, 0),
    (48, 64, 3, 7),
    (32, 64, 1, 3),
    (32, 32, 5, 11),
    (24, 96, 4, 2),
    (32, 16, 2, 5),
]


def _pixel_boxes(data: dict[str, np.ndarray]) -> np.ndarray:
    """gt_boxes in whole pixels (yxyx, end exclusive); fails if a box does not lie on the pixel grid."""
    size = data["images"].shape[1]
    px = data["gt_boxes"].astype(np.float64) * size
    np.testing.assert_allclose(px, np.rint(px), atol=1e-3, err_msg="box edges must lie on pixel edges")
    return np.rint(px).astype(int)


@pytest.mark.parametrize("n, size, max_shapes, seed", CASES)
def test_fields_have_canonical_shapes_and_dtypes(n, size, max_shapes, seed):
    data = make_shapes(n, size=size, seed=seed, max_shapes=max_shapes)
    expected = {
        "images": ((n, size, size, 3), np.uint8),
        "labels": ((n,), np.int32),
        "gt_boxes": ((n, max_shapes, 4), np.float32),
        "gt_box_labels": ((n, max_shapes), np.int32),
        "gt_num_boxes": ((n,), np.int32),
        "gt_masks": ((n, size, size), np.int32),
    }
    assert set(data) == set(expected) | {"ids"}
    for name, (shape, dtype) in expected.items():
        assert data[name].shape == shape, name
        assert data[name].dtype == dtype, name
    assert data["ids"].shape == (n,) and data["ids"].dtype.kind == "U"


@pytest.mark.parametrize("seed", [0, 1, 123])
def test_same_seed_same_data_other_seed_other_data(seed):
    a, b = make_shapes(16, seed=seed), make_shapes(16, seed=seed)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    other = make_shapes(16, seed=seed + 1)
    assert not np.array_equal(a["images"], other["images"])


def test_example_depends_only_on_seed_and_index():
    small, large = make_shapes(5, seed=4), make_shapes(12, seed=4)
    for name in small:
        np.testing.assert_array_equal(small[name], large[name][:5], err_msg=name)


def test_ids_are_unique_and_name_the_index():
    ids = make_shapes(300)["ids"]
    assert len(set(ids.tolist())) == 300
    assert ids[0] == "shape-00000" and ids[42] == "shape-00042" and ids[299] == "shape-00299"


@pytest.mark.parametrize("n, size, max_shapes, seed", CASES)
def test_boxes_are_padded_and_ordered(n, size, max_shapes, seed):
    data = make_shapes(n, size=size, seed=seed, max_shapes=max_shapes)
    count = data["gt_num_boxes"]
    assert count.min() >= 1 and count.max() <= max_shapes
    valid = np.arange(max_shapes)[None, :] < count[:, None]
    assert (data["gt_boxes"][~valid] == 0).all()
    assert (data["gt_box_labels"][~valid] == -1).all()
    labels = data["gt_box_labels"][valid]
    assert labels.min() >= 0 and labels.max() < len(CLASS_NAMES)
    b = data["gt_boxes"][valid]
    assert b.min() >= 0 and b.max() <= 1
    assert (b[:, 2] > b[:, 0]).all() and (b[:, 3] > b[:, 1]).all()
    assert data["gt_masks"].min() >= 0 and data["gt_masks"].max() < len(MASK_CLASS_NAMES)


@pytest.mark.parametrize("n, size, max_shapes, seed", CASES)
def test_each_box_tightly_bounds_its_shape_pixels(n, size, max_shapes, seed):
    """Boxes bound the visible pixels: each edge of a box touches a pixel of its class inside it,
    and every shape pixel lies inside a box of its class. (Exact: boxes are made from the visible
    pixels, so no tolerance is needed where shapes overlap.)"""
    data = make_shapes(n, size=size, seed=seed, max_shapes=max_shapes)
    boxes = _pixel_boxes(data)
    for i in range(n):
        mask = data["gt_masks"][i]
        covered = np.zeros((len(MASK_CLASS_NAMES), size, size), bool)
        for j in range(data["gt_num_boxes"][i]):
            y0, x0, y1, x1 = boxes[i, j]
            cls = data["gt_box_labels"][i, j] + 1
            inside = mask[y0:y1, x0:x1] == cls
            edges = (inside[0].any(), inside[-1].any(), inside[:, 0].any(), inside[:, -1].any())
            assert all(edges), f"example {i} box {j} {boxes[i, j]} is not tight (edges touched: {edges})"
            covered[cls, y0:y1, x0:x1] = True
        for cls in range(1, len(MASK_CLASS_NAMES)):
            stray = (mask == cls) & ~covered[cls]
            assert not stray.any(), f"example {i}: {int(stray.sum())} {MASK_CLASS_NAMES[cls]} pixels outside its boxes"


@pytest.mark.parametrize("size", [16, 64, 96])
def test_a_single_shape_box_is_the_bounding_box_of_the_mask(size):
    data = make_shapes(40, size=size, seed=9, max_shapes=1)
    boxes = _pixel_boxes(data)
    for i in range(40):
        rows = np.flatnonzero(data["gt_masks"][i].any(1))
        cols = np.flatnonzero(data["gt_masks"][i].any(0))
        assert boxes[i, 0].tolist() == [rows[0], cols[0], rows[-1] + 1, cols[-1] + 1]
        assert np.unique(data["gt_masks"][i]).tolist() == [0, data["labels"][i] + 1]


@pytest.mark.parametrize("n, size, max_shapes, seed", CASES)
def test_label_is_the_class_of_the_largest_shape(n, size, max_shapes, seed):
    data = make_shapes(n, size=size, seed=seed, max_shapes=max_shapes)
    np.testing.assert_array_equal(data["labels"], data["gt_box_labels"][:, 0])
    boxes = _pixel_boxes(data)
    lo, hi = max(2, round(size / 5)), max(3, size // 2)
    checked = 0
    for i in range(n):
        k = data["gt_num_boxes"][i]
        b = boxes[i, :k]
        # The largest shape is drawn last, whole: its box is a full shape, size/5 .. size/2 across.
        assert lo <= b[0, 2] - b[0, 0] <= hi and lo <= b[0, 3] - b[0, 1] <= hi, f"example {i}: {b[0]}"
        disjoint = all(
            min(b[p, 2], b[q, 2]) <= max(b[p, 0], b[q, 0]) or min(b[p, 3], b[q, 3]) <= max(b[p, 1], b[q, 1])
            for p in range(k)
            for q in range(p + 1, k)
        )
        if k < 2 or not disjoint:
            continue  # with overlapping boxes the mask alone cannot tell whose pixels are whose
        area = [
            int((data["gt_masks"][i][y0:y1, x0:x1] == data["gt_box_labels"][i, j] + 1).sum())
            for j, (y0, x0, y1, x1) in enumerate(b)
        ]
        assert area[0] == max(area), f"example {i}: shape areas {area}, label is the first"
        checked += 1
    assert max_shapes == 1 or checked > 0


def test_images_show_bright_shapes_on_a_dark_background():
    data = make_shapes(32, seed=1)
    for image, mask in zip(data["images"], data["gt_masks"], strict=True):
        brightest = image.max(axis=-1).astype(int)
        assert np.median(brightest[mask > 0]) > 150
        assert np.median(brightest[mask == 0]) < 90


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(n=-1), "n must be"),
        (dict(n=2.5), "n must be"),
        (dict(n=2, size=8), "size must be"),
        (dict(n=2, max_shapes=0), "max_shapes must be"),
    ],
)
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_shapes(**kwargs)


def test_zero_examples():
    data = make_shapes(0)
    assert data["images"].shape == (0, 64, 64, 3) and data["ids"].shape == (0,)


def test_importing_the_demo_does_not_import_tensorflow():
    code = "import sys, exporter.demo; sys.exit('tensorflow' in sys.modules)"
    root = Path(__file__).resolve().parents[1]  # so the child finds this checkout of exporter
    assert subprocess.run([sys.executable, "-c", code], cwd=root).returncode == 0


def test_run_capture_dumps_two_checkpoints_and_the_model_learns(tmp_path):
    pytest.importorskip("tensorflow_estimator")
    from exporter.demo import run_capture
    from exporter.shards import open_run

    messages: list[str] = []
    shards = run_capture(
        tmp_path, train_steps=(100, 200), train_examples=512, eval_examples=48, batch_size=16, progress=messages.append
    )

    assert shards == tmp_path / "shards"
    run = open_run(shards)
    assert run.steps == [100, 200]
    assert run.class_names == CLASS_NAMES
    accuracy = {}
    for step in run.steps:
        batches = list(run.iter_batches(step))
        assert sum(len(b) for b in batches) == 48
        assert batches[0].meta.mask_class_names == MASK_CLASS_NAMES
        labels = np.concatenate([b.arrays["labels"] for b in batches])
        pred = np.concatenate([b.arrays["pred_labels"] for b in batches])
        accuracy[step] = float((labels == pred).mean())
        fields = batches[0].arrays
        assert fields["boxes"].shape[1:] == (1, 4) and fields["masks"].shape[1:] == (64, 64)
    assert accuracy[200] > 0.5, accuracy
    assert any("step 200" in m for m in messages), messages
