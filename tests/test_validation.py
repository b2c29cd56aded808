"""Format 1.1 validation: instance masks, keypoints, their metadata, and mask ids checked like box labels."""

from __future__ import annotations

import json

import numpy as np
import pytest

from exporter import ShardFormatError
from exporter.schema import FORMAT_VERSION, META_KEY, ShardMeta
from exporter.shards import Shard, write_shard
from exporter.validation import check_arrays, validate_shard

N, M, G, P, H, W = 2, 3, 2, 4, 6, 8


def _detections(**changes: np.ndarray | None) -> dict[str, np.ndarray]:
    """A valid 1.1 batch: 2 images, 3 predicted and 2 true boxes (pixel xyxy), masks and 4 keypoints each."""
    boxes = np.tile(np.array([1.0, 1.0, 5.0, 4.0]), (N, M, 1))
    keypoints = np.tile(np.array([2.0, 3.0]), (N, M, P, 1))
    keypoints[:, :, 3] = np.nan  # a keypoint that is not there
    arrays = {
        "images": np.zeros((N, H, W, 3), np.uint8),
        "boxes": boxes,
        "box_labels": np.array([[0, 1, -1], [2, -1, -1]]),
        "box_scores": np.full((N, M), 0.5, np.float32),
        "num_boxes": np.array([2, 1]),
        "instance_masks": np.zeros((N, M, H, W), bool),
        "keypoints": keypoints,
        "keypoint_scores": np.ones((N, M, P), np.float32),
        "gt_boxes": boxes[:, :G].copy(),
        "gt_box_labels": np.array([[0, 1], [2, 0]]),
        "gt_num_boxes": np.array([2, 2]),
        "gt_instance_masks": np.ones((N, G, H, W), np.uint8),
        "gt_keypoints": keypoints[:, :G].copy(),
        "masks": np.full((N, H, W), 2, np.int32),
        "gt_masks": np.full((N, H, W), 255, np.uint8),
    }
    arrays.update(changes)
    return {k: v for k, v in arrays.items() if v is not None}


META = dict(
    class_names=["a", "b", "c"],
    box_format="xyxy",
    box_coords="pixels",
    keypoint_names=["nose", "left_eye", "right_eye", "tail"],
    keypoint_edges=[[0, 1], [0, 2]],
    mask_background=255,
)


def _meta(**changes) -> ShardMeta:
    return ShardMeta(step=1, dump_id="d", shard_index=0, num_examples=N, **{**META, **changes})


def _problems(arrays: dict[str, np.ndarray], **meta) -> list[str]:
    return [f"field '{f}': {m}" if f else m for f, m in check_arrays(_meta(**meta), arrays)]


def test_a_full_detection_shard_is_valid_and_round_trips(tmp_path):
    arrays = _detections()
    path = write_shard(tmp_path, _meta(), arrays)
    assert validate_shard(path) == []
    shard = Shard(path)
    assert shard.meta.format_version == FORMAT_VERSION == "1.1"
    assert (shard.meta.keypoint_names, shard.meta.keypoint_edges, shard.meta.mask_background) == (
        META["keypoint_names"], [[0, 1], [0, 2]], 255,
    )
    got = shard.load()
    for key, value in arrays.items():
        np.testing.assert_array_equal(got[key], value, err_msg=key)  # NaN keypoints stay NaN


@pytest.mark.parametrize(
    "changes, meta, expected",
    [
        # shapes against the boxes and each other
        ({"instance_masks": np.zeros((N, 2, H, W), bool)}, {},
         "field 'instance_masks': has shape (2, 2, 6, 8), expected its first two dims (2, 3) to match 'boxes'"),
        ({"gt_instance_masks": np.zeros((N, 3, H, W), bool)}, {}, "to match 'gt_boxes'"),
        ({"keypoints": np.zeros((N, 1, P, 2))}, {}, "field 'keypoints': has shape (2, 1, 4, 2), expected its first two dims (2, 3)"),
        ({"keypoints": np.zeros((N, M, P, 3))}, {}, "field 'keypoints': has shape (2, 3, 4, 3), expected (N, M, P, 2)"),
        ({"keypoint_scores": np.ones((N, M, 5))}, {}, "field 'keypoint_scores': has shape (2, 3, 5), expected (2, 3, 4) to match 'keypoints'"),
        ({"keypoints": None}, {}, "field 'keypoint_scores': is present but 'keypoints' is not"),
        ({"gt_keypoints": np.zeros((N, G, 3, 2))}, {"keypoint_names": None}, "field 'gt_keypoints': has 3 keypoints per box, 'keypoints' has 4"),
        ({"boxes": None, "box_labels": None, "box_scores": None, "num_boxes": None, "keypoints": None, "keypoint_scores": None},
         {}, "field 'instance_masks': is present but 'boxes' is not"),
        ({"gt_boxes": None, "gt_box_labels": None, "gt_num_boxes": None}, {}, "field 'gt_instance_masks': is present but 'gt_boxes' is not"),
        ({"gt_instance_masks": np.zeros((N, G, H + 1, W), bool)}, {}, "expected the (H, W) (6, 8) of 'instance_masks'"),
        # dtypes and values
        ({"instance_masks": np.full((N, M, H, W), 0.7, np.float32)}, {}, "has dtype float32, expected bool masks (threshold soft masks first)"),
        ({"gt_instance_masks": np.full((N, G, H, W), 255, np.uint8)}, {}, "field 'gt_instance_masks': holds values other than 0 and 1"),
        ({"instance_masks": np.zeros((N, M, 0, W), bool)}, {}, "an empty mask cannot be drawn"),
        ({"keypoints": np.full((N, M, P, 2), np.inf)}, {}, "field 'keypoints': has infinite coordinates"),
        ({"keypoint_scores": np.full((N, M, P), -np.inf)}, {}, "field 'keypoint_scores': has infinite scores"),
        ({"gt_keypoints": np.full((N, G, P, 2), 3.0)}, {"box_coords": "normalized", "box_format": "yxyx"},
         "field 'gt_keypoints': has coordinates in [3, 3] but box_coords is 'normalized'"),
        # keypoint metadata against the arrays
        ({}, {"keypoint_names": ["nose"], "keypoint_edges": None}, "field 'keypoints': has 4 keypoints per box, but metadata 'keypoint_names' names 1"),
        ({}, {"keypoint_names": None, "keypoint_edges": [[0, 4]]}, "but metadata 'keypoint_edges' joins keypoint 4"),
        # mask ids checked like box labels, against mask_class_names (else class_names), background allowed
        ({"masks": np.full((N, H, W), 3, np.int32)}, {}, "field 'masks': has class id 3, outside the 3 class names (no mask_class_names)"),
        ({"masks": np.full((N, H, W), -2, np.int32)}, {}, "field 'masks': has negative class id -2"),
        ({"gt_masks": np.full((N, H, W), 2, np.uint8)}, {"mask_class_names": ["bg", "fg"]}, "field 'gt_masks': has class id 2, outside the 2 mask class names"),
        ({"gt_masks": np.full((N, H, W), 255, np.uint8)}, {"mask_background": 0}, "field 'gt_masks': has class id 255, outside the 3 class names"),
        ({"gt_masks": np.full((N, H, W), 255, np.uint8)}, {"mask_background": None}, "field 'gt_masks': has class id 255"),
        # box labels within num_boxes; padding rows are never checked
        ({"box_labels": np.array([[0, 7, -1], [2, -1, -1]])}, {}, "field 'box_labels': has class id 7, outside the 3 class names"),
        ({"gt_box_labels": np.array([[0, 3], [2, 0]])}, {}, "field 'gt_box_labels': has class id 3"),
    ],
)
def test_problems_name_the_field(changes, meta, expected):
    problems = _problems(_detections(**changes), **meta)
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize(
    "changes, meta",
    [
        ({"box_labels": np.array([[0, 1, 99], [2, 99, 99]])}, {}),  # beyond num_boxes: padding
        ({"masks": np.where(np.eye(H, W, dtype=bool), 255, 1)[None].repeat(N, 0)}, {}),  # background 255 among classes
        ({"gt_masks": np.full((N, H, W), -1)}, {"mask_background": -1}),  # a negative background id
        ({"masks": np.zeros((N, H, W), np.int32), "gt_masks": np.ones((N, H, W), np.uint8)},
         {"mask_background": None}),  # every id a class
        ({"gt_masks": np.full((N, H, W), 4)}, {"mask_class_names": ["bg", "a", "b", "c", "d"]}),  # mask names win
        ({"instance_masks": np.zeros((N, 0, H, W), bool), "boxes": np.zeros((N, 0, 4)), "box_labels": np.zeros((N, 0), int),
          "box_scores": np.zeros((N, 0)), "num_boxes": np.zeros(N, int), "keypoints": np.zeros((N, 0, P, 2)),
          "keypoint_scores": np.zeros((N, 0, P))}, {}),  # no detections at all
        ({"instance_masks": np.zeros((N, M, H, W), np.uint8), "gt_instance_masks": np.zeros((N, G, H, W), np.int64)}, {}),
        ({"keypoints": np.full((N, M, P, 2), 0.5), "gt_keypoints": np.full((N, G, P, 2), np.nan),
          "boxes": np.tile([0.1, 0.1, 0.5, 0.5], (N, M, 1)), "gt_boxes": np.tile([0.1, 0.1, 0.5, 0.5], (N, G, 1))},
         {"box_coords": "normalized"}),
        ({"keypoints": np.full((N, M, P, 2), 1e6)}, {}),  # pixels: not range-checked, as boxes are not
    ],
)
def test_valid_variants(changes, meta):
    assert _problems(_detections(**changes), **meta) == []


def test_a_format_1_0_shard_reads_with_the_defaults(tmp_path):
    """What a 1.0 writer left: no new keys. Its masks' background is class 0, as 1.0 renderers drew it."""
    meta = json.loads(_meta().to_json())
    for key in ("keypoint_names", "keypoint_edges", "mask_background"):
        del meta[key]
    meta["format_version"] = "1.0"
    path = tmp_path / "old.npz"
    np.savez(path, labels=np.array([0, 1]), masks=np.zeros((N, H, W), np.int32), **{META_KEY: np.array(json.dumps(meta))})
    shard = Shard(path)
    assert (shard.meta.keypoint_names, shard.meta.keypoint_edges, shard.meta.mask_background) == (None, None, 0)
    assert shard.meta.extra == {} and validate_shard(path) == []


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"mask_background": "0"}, "'mask_background' must be an integer mask id or null"),
        ({"mask_background": True}, "'mask_background' must be an integer"),
        ({"keypoint_names": "nose"}, "'keypoint_names' must be a list of strings"),
        ({"keypoint_edges": [[0, 1, 2]]}, "'keypoint_edges' must be a list of [a, b] pairs"),
        ({"keypoint_edges": [[0, -1]]}, "'keypoint_edges' must be a list of [a, b] pairs"),
        ({"keypoint_edges": [[0, True]]}, "'keypoint_edges' must be a list"),
        ({"keypoint_edges": [[0, 9]]}, "'keypoint_edges' joins keypoint 9, but 'keypoint_names' names 4 keypoints"),
    ],
)
def test_bad_keypoint_and_mask_metadata_is_refused(changes, match):
    meta = {**json.loads(_meta().to_json()), **changes}
    with pytest.raises(ShardFormatError, match=match.replace("[", r"\[").replace("]", r"\]")):
        ShardMeta.from_json(json.dumps(meta), path="x.npz")


def test_a_reader_of_1_1_warns_about_1_2_and_keeps_its_keys():
    meta = {**json.loads(_meta().to_json()), "format_version": "1.2", "keypoint_sigmas": [0.1] * 4}
    with pytest.warns(UserWarning, match="newer than this reader"):
        back = ShardMeta.from_json(json.dumps(meta), path="x.npz")
    assert back.extra == {"keypoint_sigmas": [0.1] * 4} and back.mask_background == 255
