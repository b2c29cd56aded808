"""ShardWriter and detections as detection code holds them: per-image lists, padding, warnings, metadata."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter import ConfigError, ShardWriter, open_run
from exporter.shards import find_shard_files
from exporter.validation import validate_shard

NAMES = ["person", "bike", "car"]
H, W, P = 6, 8, 3


class FakeTensor:
    """What the writer may rely on in a torch tensor: ``detach().cpu().numpy()`` (torch is not installed)."""

    def __init__(self, array):
        self.array = np.asarray(array)
        self.calls: list[str] = []

    def detach(self):
        self.calls.append("detach")
        return self

    def cpu(self):
        self.calls.append("cpu")
        return self

    def numpy(self):
        self.calls.append("numpy")
        return self.array

    def __array__(self, dtype=None, copy=None):  # pragma: no cover - torch raises here when grad is on
        raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead.")


def _image_detections(rng, m: int, g: int) -> dict[str, np.ndarray]:
    """One image's detections as torchvision-style code holds them: pixel xyxy rows."""
    xy = rng.uniform(0, 4, (m + g, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(0, 3, (m + g, 2))], axis=1).astype(np.float32)
    kp = rng.uniform(0, 7, (m + g, P, 2)).astype(np.float32)
    return {
        "boxes": boxes[:m],
        "box_labels": rng.integers(0, 3, m),
        "box_scores": rng.uniform(0, 1, m).astype(np.float32),
        "instance_masks": rng.uniform(size=(m, H, W)) > 0.5,
        "keypoints": kp[:m],
        "keypoint_scores": rng.uniform(0, 9, (m, P)).astype(np.float32),
        "gt_boxes": boxes[m:],
        "gt_box_labels": rng.integers(0, 3, g),
        "gt_instance_masks": rng.uniform(size=(g, H, W)) > 0.5,
        "gt_keypoints": kp[m:],
    }


def _write(root, batches, **options):
    with ShardWriter(root, step=5, class_names=NAMES, box_format="xyxy", box_coords="pixels", **options) as w:
        for batch in batches:
            fields = {k: [img[k] for img in batch] for k in batch[0]}
            w.add(images=np.zeros((len(batch), H, W, 3), np.uint8), **fields)
    return w


@settings(max_examples=30, deadline=None)
@given(data=st.data(), sizes=st.lists(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 3)), min_size=1, max_size=4), min_size=1, max_size=3))
def test_per_image_lists_round_trip_padded(tmp_path_factory, data, sizes):
    root = tmp_path_factory.mktemp("ragged")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    batches = [[_image_detections(rng, m, g) for m, g in batch] for batch in sizes]
    _write(root, batches)
    assert [validate_shard(f) for f in find_shard_files(root)] == [[]] * len(find_shard_files(root))
    got = [b.arrays for b in open_run(root).iter_batches()]
    # every shard holds whole add() batches here, so shard i, example j is image j of some batch
    images = [img for batch in batches for img in batch]
    rows = [(a, j) for a in got for j in range(len(a["boxes"]))]
    assert len(rows) == len(images)
    for (a, j), img in zip(rows, images, strict=True):
        for prefix, count in (("", "num_boxes"), ("gt_", "gt_num_boxes")):
            k = int(a[count][j])
            assert k == len(img[f"{prefix}boxes"])
            for name in img:
                if name.startswith(prefix) and (prefix or not name.startswith("gt_")):
                    np.testing.assert_array_equal(a[name][j, :k], img[name], err_msg=name)
        m = a["boxes"].shape[1]
        assert (a["box_labels"][j, a["num_boxes"][j] : m] == -1).all()  # padding the renderer never draws
        assert np.isnan(a["keypoints"][j, a["num_boxes"][j] :]).all()
        assert not a["instance_masks"][j, a["num_boxes"][j] :].any()


def test_one_batch_pads_to_its_largest_image_and_fills_the_counts(tmp_path):
    with ShardWriter(tmp_path, box_format="xyxy", box_coords="pixels") as w:
        w.add(
            boxes=[np.array([[1, 2, 3, 4]], np.float32), np.zeros((0, 4), np.float32), [[0, 0, 5, 5], [1, 1, 2, 2]]],
            box_labels=[[2], [], [0, 1]],
            box_scores=[[0.9], [], [0.5, 0.4]],
            gt_boxes=[[[0, 0, 1, 1]], [[0, 0, 2, 2]], []],
            gt_box_labels=[np.array([1], np.uint8), np.array([0], np.uint8), np.array([], np.uint8)],
        )
    a = next(open_run(tmp_path).iter_batches()).arrays
    assert a["boxes"].shape == (3, 2, 4) and a["boxes"].dtype == np.float64
    assert a["num_boxes"].tolist() == [1, 0, 2] and a["gt_num_boxes"].tolist() == [1, 1, 0]
    assert a["box_labels"].tolist() == [[2, -1], [-1, -1], [0, 1]]
    assert a["gt_box_labels"].dtype.kind == "i" and a["gt_box_labels"].tolist() == [[1], [0], [-1]]  # uint8 widened for -1
    np.testing.assert_array_equal(a["boxes"][1], 0)


def test_mask_rcnn_masks_of_shape_m_1_h_w_and_tensors_are_taken(tmp_path):
    masks = FakeTensor(np.random.default_rng(0).uniform(size=(2, 1, H, W)) > 0.5)
    with ShardWriter(tmp_path, box_format="xyxy", box_coords="pixels") as w:
        w.add(boxes=[FakeTensor([[0, 0, 2, 2], [1, 1, 3, 3]])], instance_masks=[masks])
    a = next(open_run(tmp_path).iter_batches()).arrays
    assert a["instance_masks"].shape == (1, 2, H, W)
    np.testing.assert_array_equal(a["instance_masks"][0], masks.array[:, 0])
    assert masks.calls == ["detach", "cpu", "numpy"]


def test_dense_input_padded_with_minus_one_is_understood_through_num_boxes(tmp_path, caplog):
    boxes = np.array([[[0.1, 0.1, 0.5, 0.5], [-1, -1, -1, -1]]], np.float32)
    with caplog.at_level(logging.WARNING, logger="exporter.writer"), ShardWriter(tmp_path, class_names=NAMES) as w:
        w.add(boxes=boxes, box_labels=np.array([[1, -1]]), box_scores=np.array([[0.8, -1.0]]), num_boxes=np.array([1]))
    assert caplog.records == []
    assert [validate_shard(f) for f in find_shard_files(tmp_path)] == [[]]


def test_a_count_given_with_lists_is_kept_when_it_fits(tmp_path):
    with ShardWriter(tmp_path) as w:
        w.add(boxes=[[[0.1, 0.1, 0.2, 0.2], [-1, -1, -1, -1]]], box_labels=[[0, -1]], num_boxes=[1])
    assert next(open_run(tmp_path).iter_batches()).arrays["num_boxes"].tolist() == [1]


@pytest.mark.parametrize(
    "fields, match",
    [
        ({"boxes": [np.zeros((1, 4))], "box_labels": np.zeros((1, 1), int)},
         "field 'boxes' is a list of per-image arrays, so 'box_labels' must be one too"),
        ({"boxes": [np.zeros((2, 4))], "box_labels": [[0]]}, r"must hold as many rows per image, got \[2\] and \[1\]"),
        ({"boxes": [np.zeros((2, 4))], "num_boxes": [3]}, r"field 'num_boxes' \[3\] does not fit 'boxes'"),
        ({"boxes": [np.zeros(4)]}, r"each with 2 dims .* but item 0 has shape \(4,\)"),
        ({"instance_masks": [np.zeros((1, 4, 4)), np.zeros((1, 5, 5))], "boxes": [np.zeros((1, 4))] * 2},
         "differ beyond their row count"),
        ({"boxes": (b for b in [np.zeros((1, 4))])}, "field 'boxes' is a generator, which is read only once"),
        ({"labels": (i for i in range(3))}, r"pass a list or an array, e\.g\. list\(\.\.\.\)"),
        ({"labels": iter([1, 2])}, "is a list_iterator"),
        ({"images": [np.zeros((4, 4)), np.zeros((5, 5))]}, r"list of arrays of different shapes \[\(4, 4\), \(5, 5\)\]"),
    ],
)
def test_structural_mistakes_are_config_errors(tmp_path, fields, match):
    with ShardWriter(tmp_path) as w, pytest.raises(ConfigError, match=match):
        w.add(**fields)


def test_what_export_would_refuse_is_warned_once_per_field_and_written(tmp_path, caplog):
    bad = {
        "boxes": [np.array([[0.5, 0.5, 0.1, 0.9]])],  # inverted (ymax < ymin) within num_boxes
        "box_labels": [np.array([7])],  # beyond the 3 class names
        "masks": np.full((1, 4, 4), -3),  # negative mask id
    }
    with caplog.at_level(logging.WARNING, logger="exporter.writer"), ShardWriter(tmp_path, class_names=NAMES) as w:
        for _ in range(3):
            assert w.add(**bad) == 1  # never raises: the evaluation goes on
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3, messages
    for needle in ("field 'boxes' has 1 inverted boxes", "field 'box_labels' has class id 7, outside the 3 class names",
                   "field 'masks' has negative class id -3"):
        assert sum(needle in m for m in messages) == 1, (needle, messages)
    assert all("validate and export will refuse" in m for m in messages)
    assert open_run(tmp_path).num_examples() == 3
    assert {p.field for f in find_shard_files(tmp_path) for p in validate_shard(f)} == {"boxes", "box_labels", "masks"}


def test_mask_background_honoured_by_the_warning(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="exporter.writer"):
        with ShardWriter(tmp_path, mask_class_names=["road", "car"], mask_background=255) as w:
            w.add(masks=np.array([[[0, 1], [255, 255]]], np.uint8))
        assert caplog.records == []
        with ShardWriter(tmp_path, mask_class_names=["road", "car"]) as w:  # default background 0: 255 is a class
            w.add(masks=np.array([[[0, 1], [255, 255]]], np.uint8))
    (record,) = caplog.records
    assert "field 'masks' has class id 255, outside the 2 mask class names" in record.getMessage()


def test_keypoint_and_mask_metadata_reach_every_shard(tmp_path):
    with ShardWriter(tmp_path, keypoint_names=["a", "b", "c"], keypoint_edges=[(0, 1), [1, 2]], mask_background=None,
                     examples_per_shard=1) as w:
        w.add(labels=np.array([0, 1]))
    shards = open_run(tmp_path).shards()
    assert len(shards) == 2
    for s in shards:
        assert s.meta.format_version == "1.1"
        assert (s.meta.keypoint_names, s.meta.keypoint_edges, s.meta.mask_background) == (["a", "b", "c"], [[0, 1], [1, 2]], None)


@pytest.mark.parametrize(
    "options, match",
    [
        ({"keypoint_edges": [[0, 1, 2]]}, "keypoint_edges must be a list of"),
        ({"keypoint_edges": [[0, -1]]}, "pairs of keypoint indices >= 0"),
        ({"keypoint_edges": [[0, 1.5]]}, "pairs of keypoint indices >= 0"),
        ({"keypoint_edges": "01"}, "keypoint_edges must be a list of"),
        ({"keypoint_edges": [[0, 3]], "keypoint_names": ["a", "b", "c"]}, "beyond the 3 keypoint_names"),
        ({"keypoint_names": "nose"}, "keypoint_names must be a list of strings"),
        ({"mask_background": "0"}, "mask_background must be None or an integer"),
        ({"mask_background": True}, "mask_background must be None or an integer"),
    ],
)
def test_bad_detection_options_fail_at_construction(tmp_path, options, match):
    with pytest.raises(ConfigError, match=match):
        ShardWriter(tmp_path, **options)
