"""Object Detection API instance outputs (format 1.1): masks, keypoints, their scores and visibilities."""

from __future__ import annotations

import numpy as np
import pytest

from exporter import ShardWriter, open_run
from exporter.odapi import reframe_box_masks, to_canonical
from exporter.shards import find_shard_files
from exporter.validation import validate_shard

H, W, P = 40, 60, 3
BOX = [0.25, 0.5, 0.75, 1.0]  # ymin, xmin, ymax, xmax: rows 10..29, columns 30..59 of the 40 x 60 image


def _odapi(masks: np.ndarray) -> dict[str, np.ndarray]:
    keypoints = np.array([[[[0.3, 0.6], [0.5, 0.7], [0.7, 0.9]], [[0, 0]] * P]], np.float32)  # (y, x), normalized
    return {
        "original_image": np.zeros((1, H, W, 3), np.uint8),
        "detection_boxes": np.array([[BOX, [0, 0, 0, 0]]], np.float32),
        "detection_classes": np.array([[2.0, 0.0]], np.float32),
        "detection_scores": np.array([[0.9, 0.0]], np.float32),
        "num_detections": np.array([1.0], np.float32),
        "detection_masks": masks,
        "detection_keypoints": keypoints,
        "detection_keypoint_scores": np.array([[[0.9, 0.2, 0.7], [0, 0, 0]]], np.float32),
        "groundtruth_boxes": np.array([[BOX]], np.float32),
        "groundtruth_classes": np.array([[2.0]], np.float32),
        "groundtruth_instance_masks": (masks[:, :1] > 0.5).astype(np.uint8) if masks.shape[2:] == (H, W) else
        np.zeros((1, 1, H, W), np.uint8),
        "groundtruth_keypoints": keypoints[:, :1],
        "groundtruth_keypoint_visibilities": np.array([[[True, False, True]]]),
    }


def _box_pixels() -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[10:30, 30:60] = True
    return m


def test_image_sized_soft_masks_are_thresholded_and_keypoints_become_x_y():
    soft = np.zeros((1, 2, H, W), np.float32)
    soft[0, 0] = np.where(_box_pixels(), 0.8, 0.3)
    out = to_canonical(_odapi(soft))
    assert out["instance_masks"].dtype == bool
    np.testing.assert_array_equal(out["instance_masks"][0, 0], _box_pixels())
    assert not out["instance_masks"][0, 1].any()
    np.testing.assert_allclose(out["keypoints"][0, 0], [[0.6, 0.3], [0.7, 0.5], [0.9, 0.7]])
    np.testing.assert_array_equal(out["keypoint_scores"], _odapi(soft)["detection_keypoint_scores"])
    gt = out["gt_keypoints"][0, 0]
    np.testing.assert_allclose(gt[[0, 2]], [[0.6, 0.3], [0.9, 0.7]])
    assert np.isnan(gt[1]).all()  # not visible
    assert "groundtruth_keypoint_visibilities" not in out and out["gt_instance_masks"].dtype == bool


@pytest.mark.parametrize("cells", [1, 15, 33])
def test_box_relative_masks_of_a_saved_model_are_pasted_into_the_image(cells):
    box_masks = np.zeros((1, 2, cells, cells), np.float32)
    box_masks[0, 0] = 0.9  # the whole box
    out = to_canonical(_odapi(box_masks))
    assert out["instance_masks"].shape == (1, 2, H, W)
    np.testing.assert_array_equal(out["instance_masks"][0, 0], _box_pixels())
    assert not out["instance_masks"][0, 1].any()  # beyond num_detections: never reframed


def test_reframing_samples_the_box_mask_where_each_pixel_falls():
    left_half = np.zeros((1, 4, 4))
    left_half[0, :, :2] = 1.0
    got = reframe_box_masks(left_half, np.array([BOX]), H, W)[0]
    want = np.zeros((H, W), bool)
    want[10:30, 30:45] = True  # the left half of the box's 30 columns
    np.testing.assert_array_equal(got, want)
    assert not reframe_box_masks(left_half, np.array([[0.5, 0.5, 0.5, 0.9]]), H, W).any()  # empty box


def test_an_odapi_instance_dict_through_the_writer_validates(tmp_path):
    box_masks = np.full((1, 2, 33, 33), 0.9, np.float32)
    with ShardWriter(tmp_path, class_names=["person", "bicycle", "car"], keypoint_names=["a", "b", "c"]) as w:
        w.add(**_odapi(box_masks))
    assert [validate_shard(f) for f in find_shard_files(tmp_path)] == [[]]
    a = next(open_run(tmp_path).iter_batches()).arrays
    assert sorted(a) == sorted(
        ["images", "boxes", "box_labels", "box_scores", "num_boxes", "instance_masks", "keypoints", "keypoint_scores",
         "gt_boxes", "gt_box_labels", "gt_instance_masks", "gt_keypoints"]
    )
    np.testing.assert_array_equal(a["instance_masks"][0, 0], _box_pixels())
    assert a["box_labels"].tolist() == [[1, -1]]
