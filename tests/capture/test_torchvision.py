"""torchvision detection outputs through to_fields and the writer, with numpy stand-ins shaped as torchvision's.

torch is not installed here (and must not be): the stand-ins are numpy arrays, and tensors whose only
way out is ``.detach().cpu().numpy()``, as a CUDA tensor that requires grad.
"""

from __future__ import annotations

import numpy as np
import pytest

from exporter import ConfigError, ShardWriter, open_run
from exporter.capture.torchvision import WRITER_OPTIONS, to_fields
from exporter.coco import PERSON_KEYPOINTS, PERSON_SKELETON
from exporter.shards import find_shard_files
from exporter.validation import validate_shard

H, W, P = 24, 32, 17
#: the start of weights.meta["categories"] of torchvision's COCO detectors: labels index it directly
CATEGORIES = ["__background__", "person", "bicycle", "car"]


class CudaTensor:
    """A tensor that refuses ``__array__`` (on the GPU, requires grad) but gives ``.detach().cpu().numpy()``."""

    def __init__(self, array):
        self._array = np.asarray(array)
        self._ready = False

    def detach(self):
        return self

    def cpu(self):
        self._ready = True
        return self

    def numpy(self):
        if not self._ready:
            raise TypeError("can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu() first.")
        return self._array

    def __array__(self, dtype=None, copy=None):
        raise TypeError("can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu() first.")


def _prediction(rng, m: int, *, tensor=np.asarray) -> dict:
    """What keypointrcnn / maskrcnn return for one image in eval mode (dtypes as torch gives them)."""
    xy = rng.uniform(0, 16, (m, 2)).astype(np.float32)
    kp = np.concatenate([rng.uniform(0, 24, (m, P, 2)), np.ones((m, P, 1))], axis=2).astype(np.float32)
    return {
        "boxes": tensor(np.concatenate([xy, xy + 8], axis=1)),
        "labels": tensor(rng.integers(1, 4, m).astype(np.int64)),
        "scores": tensor(np.sort(rng.uniform(0, 1, m)).astype(np.float32)[::-1].copy()),
        "masks": tensor(rng.uniform(0, 1, (m, 1, H, W)).astype(np.float32)),
        "keypoints": tensor(kp),
        "keypoints_scores": tensor(rng.normal(0, 5, (m, P)).astype(np.float32)),
    }


def _target(rng, g: int, image_id: int) -> dict:
    """A detection-references target: uint8 masks, keypoints with COCO visibility 0/1/2."""
    xy = rng.uniform(0, 16, (g, 2)).astype(np.float32)
    kp = np.concatenate([rng.uniform(0, 24, (g, P, 2)), rng.integers(0, 3, (g, P, 1))], axis=2).astype(np.float32)
    return {
        "boxes": np.concatenate([xy, xy + 5], axis=1),
        "labels": rng.integers(1, 4, g).astype(np.int64),
        "masks": (rng.uniform(size=(g, H, W)) > 0.5).astype(np.uint8),
        "keypoints": kp,
        "image_id": np.array(image_id),  # torch: tensor(image_id) or an int
    }


def test_outputs_and_targets_become_per_image_fields():
    rng = np.random.default_rng(0)
    outputs, targets = [_prediction(rng, 3), _prediction(rng, 0)], [_target(rng, 2, 42), _target(rng, 1, 7)]
    f = to_fields(outputs, targets)
    assert sorted(f) == sorted(
        ["boxes", "box_labels", "box_scores", "instance_masks", "keypoints", "keypoint_scores",
         "gt_boxes", "gt_box_labels", "gt_instance_masks", "gt_keypoints", "ids"]
    )
    assert [len(b) for b in f["boxes"]] == [3, 0] and [len(b) for b in f["gt_boxes"]] == [2, 1]
    np.testing.assert_array_equal(f["instance_masks"][0], outputs[0]["masks"][:, 0] > 0.5)
    assert f["instance_masks"][1].shape == (0, H, W) and f["gt_instance_masks"][0].dtype == bool
    np.testing.assert_array_equal(f["keypoints"][0], outputs[0]["keypoints"][..., :2])
    gt_kp, v = f["gt_keypoints"][0], targets[0]["keypoints"][..., 2]
    assert np.isnan(gt_kp[v == 0]).all() and not np.isnan(gt_kp[v > 0]).any()
    np.testing.assert_array_equal(gt_kp[v > 0], targets[0]["keypoints"][..., :2][v > 0])
    assert f["ids"].tolist() == [42, 7]


def test_a_batch_through_the_writer_reads_back_and_validates(tmp_path):
    rng = np.random.default_rng(1)
    outputs = [_prediction(rng, m, tensor=CudaTensor) for m in (2, 4, 0)]
    targets = [_target(rng, g, i) for i, g in enumerate((1, 3, 2))]
    images = [CudaTensor(rng.uniform(0, 1, (3, H, W)).astype(np.float32)) for _ in range(3)]
    with ShardWriter(tmp_path, step=3, class_names=CATEGORIES, keypoint_names=PERSON_KEYPOINTS,
                     keypoint_edges=PERSON_SKELETON, **WRITER_OPTIONS) as w:
        w.add(**to_fields(outputs, targets, images=images))
    assert [validate_shard(f) for f in find_shard_files(tmp_path)] == [[]]
    batch = next(open_run(tmp_path).iter_batches())
    a = batch.arrays
    assert (batch.meta.box_format, batch.meta.box_coords) == ("xyxy", "pixels")
    assert a["images"].shape == (3, 3, H, W) and a["num_boxes"].tolist() == [2, 4, 0]
    assert a["gt_num_boxes"].tolist() == [1, 3, 2] and a["ids"].tolist() == [0, 1, 2]
    assert a["instance_masks"].shape == (3, 4, H, W) and a["keypoints"].shape == (3, 4, P, 2)
    for i, out in enumerate(outputs):
        k = len(out["boxes"]._array)
        np.testing.assert_array_equal(a["boxes"][i, :k], out["boxes"]._array)
        np.testing.assert_array_equal(a["box_labels"][i, :k], out["labels"]._array)
        np.testing.assert_array_equal(a["box_scores"][i, :k], out["scores"]._array)
        np.testing.assert_array_equal(a["instance_masks"][i, :k], out["masks"]._array[:, 0] > 0.5)
        np.testing.assert_array_equal(a["keypoint_scores"][i, :k], out["keypoints_scores"]._array)
        np.testing.assert_array_equal(a["images"][i], images[i]._array)


def test_person_keypoints_name_the_17_coco_keypoints():
    assert len(PERSON_KEYPOINTS) == P and PERSON_KEYPOINTS[0] == "nose" and PERSON_KEYPOINTS[-1] == "right_ankle"
    assert len(PERSON_SKELETON) == 19 and all(0 <= a < P and 0 <= b < P for a, b in PERSON_SKELETON)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: to_fields({"boxes": np.zeros((1, 4))}), "outputs must be a list of dicts"),
        (lambda: to_fields([{"boxes": np.zeros((1, 4)), "masks": np.zeros((1, 1, 2, 2))}, {"boxes": np.zeros((0, 4))}]),
         "1 of 2 dicts have no 'masks'"),
        (lambda: to_fields([{"masks": np.zeros((1, 2, 2, 2))}]), r"must have shape \(M, 1, H, W\) or \(M, H, W\)"),
        (lambda: to_fields([{"keypoints": np.zeros((1, 17))}]), r"must have shape \(M, P, 3\)"),
        (lambda: to_fields([{"boxes": np.zeros((0, 4))}], [{}, {}]), r"one dict per image of outputs \(1\), got 2"),
        (lambda: to_fields([{}, {}], images=[np.zeros((3, 4, 4)), np.zeros((3, 5, 4))]), "images differ in size"),
        (lambda: to_fields([{}], mask_threshold=2), "mask_threshold must be a number in 0.0..1.0"),
    ],
)
def test_mistakes_are_config_errors(call, match):
    with pytest.raises(ConfigError, match=match):
        call()
