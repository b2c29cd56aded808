"""read_example (arrays → Example) and the checks of the Example and Boxes records."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from exporter.errors import ConfigError, RenderError
from exporter.render import Boxes, Example, ReadOptions, read_example, render_example, to_rgb_uint8
from exporter.render.example import NO_CLASS

H, W = 20, 40
IMG = np.arange(H * W * 3, dtype=np.uint8).reshape(H, W, 3)


def test_only_an_image():
    ex = read_example({"images": IMG})
    np.testing.assert_array_equal(ex.image, IMG)
    assert ex.pred is ex.gt is ex.mask is ex.gt_mask is ex.probs is None
    assert ex.label is ex.pred_label is ex.score is ex.example_id is ex.class_names is None


def test_every_field_becomes_its_typed_record_field():
    arrays = {
        "images": IMG.astype(np.float32) / 255,
        "boxes": np.array([[0.1, 0.2, 0.5, 0.6], [0.0, 0.0, 1.0, 1.0], [9, 9, 9, 9]], np.float32),  # yxyx, normalized
        "box_labels": np.array([2, 1, 7], np.int32),
        "box_scores": np.array([0.25, 0.75, 1.0], np.float32),
        "num_boxes": np.int32(2),  # the third row is padding
        "gt_boxes": np.array([[0.5, 0.5, 1.0, 1.0]]),
        "gt_box_labels": np.array([1.0]),
        "masks": np.ones((H, W), np.uint8),
        "gt_masks": np.full((1, H // 2, W // 2), 2.0, np.float32),
        "labels": np.int64(1),
        "pred_labels": np.array([2]),
        "pred_scores": np.float32(0.5),
        "probs": np.array([0.1, 0.3, 0.6], np.float32),
        "ids": np.bytes_(b"img-7"),
    }
    ex = read_example(arrays, ReadOptions(class_names=["bg", "cat", "dog"]))
    np.testing.assert_array_equal(ex.image, to_rgb_uint8(arrays["images"]))
    assert ex.pred.xyxy.dtype == np.float64
    np.testing.assert_allclose(ex.pred.xyxy, [[8, 2, 24, 10], [0, 0, 40, 20]], rtol=1e-6)
    assert ex.pred.labels.dtype == np.int64 and ex.pred.labels.tolist() == [2, 1]
    assert ex.pred.scores.dtype == np.float64 and ex.pred.scores.tolist() == pytest.approx([0.25, 0.75])
    assert len(ex.pred) == 2  # every valid box, in the given order: thresholds are style, applied when drawing
    assert ex.gt.xyxy.tolist() == [[20, 10, 40, 20]] and ex.gt.labels.tolist() == [1] and ex.gt.scores is None
    assert ex.mask.dtype == ex.gt_mask.dtype == np.int64
    assert ex.mask.shape == (H, W) and ex.gt_mask.shape == (H // 2, W // 2) and (ex.gt_mask == 2).all()
    assert (ex.label, ex.pred_label, ex.example_id, ex.class_names) == (1, 2, "img-7", ("bg", "cat", "dog"))
    assert ex.score == pytest.approx(0.5) and isinstance(ex.score, float)
    assert ex.probs.dtype == np.float64 and ex.probs.tolist() == pytest.approx([0.1, 0.3, 0.6])


@pytest.mark.parametrize(
    "fields, pred_label, score",
    [
        ({"probs": np.array([0.1, 0.7, 0.2])}, 1, 0.7),  # the prediction is the arg-max, its score the probability
        ({"probs": np.array([np.nan, 0.2, np.inf, -1.0])}, 1, 0.2),  # NaN and inf never win
        ({"probs": np.array([np.nan, np.nan])}, None, None),
        ({"probs": np.array([0.1, 0.9]), "pred_labels": 0}, 0, 0.1),  # a given prediction wins
        ({"probs": np.array([0.1, 0.9]), "pred_labels": 5}, 5, None),  # no probability for a class out of range
        ({"probs": np.array([0.1, 0.9]), "pred_scores": 0.3}, 1, 0.3),
        ({"pred_labels": np.float32(2.6)}, 3, None),  # float ids are rounded
        ({"pred_labels": np.float32(np.nan)}, NO_CLASS, None),
        ({"pred_scores": np.str_("0.5")}, None, 0.5),
    ],
)
def test_prediction_and_score(fields, pred_label, score):
    ex = read_example({"images": IMG, **fields})
    assert ex.pred_label == pred_label
    assert ex.score == score if score is None else ex.score == pytest.approx(score)


@pytest.mark.parametrize(
    "ids, expected",
    [
        (np.int64(7), 7),
        (np.array([7]), 7),
        (np.str_("a.jpg"), "a.jpg"),
        (np.bytes_(b"a\xff"), "a\ufffd"),  # bytes decoded, bad bytes replaced
        (np.float64(2.5), 2.5),
        (np.array([True]), True),
    ],
)
def test_ids(ids, expected):
    got = read_example({"images": IMG, "ids": ids}).example_id
    assert got == expected and type(got) is type(expected)


def test_read_options_are_used_and_defaults_come_from_the_schema():
    chw_bgr = np.ascontiguousarray(IMG[..., ::-1].transpose(2, 0, 1))
    box = np.array([[4, 2, 20, 10]], np.float32)
    ex = read_example(
        {"images": chw_bgr, "boxes": box}, ReadOptions(layout="CHW", bgr=True, box_format="xyxy", box_coords="pixels")
    )
    np.testing.assert_array_equal(ex.image, IMG)
    assert ex.pred.xyxy.tolist() == [[4, 2, 20, 10]]
    # unset: yxyx, normalized (schema.DEFAULT_BOX_FORMAT / DEFAULT_BOX_COORDS)
    yxyx = np.array([[0.1, 0.25, 0.5, 0.75]])
    np.testing.assert_allclose(read_example({"images": IMG, "boxes": yxyx}).pred.xyxy, [[10, 2, 30, 10]])


def test_non_finite_boxes_are_dropped_with_their_labels_and_scores():
    arrays = {
        "images": IMG,
        "boxes": np.array([[0, 0, 1, 1], [np.nan, 0, 1, 1], [0, 0, 0.5, np.inf], [0, 0, 0.5, 0.5]]),
        "box_labels": np.array([1.0, 2.0, 3.0, np.nan]),
        "box_scores": np.array([0.1, 0.2, 0.3, 0.4]),
    }
    ex = read_example(arrays)
    assert ex.pred.xyxy.tolist() == [[0, 0, 40, 20], [0, 0, 20, 10]]
    assert ex.pred.labels.tolist() == [1, NO_CLASS] and ex.pred.scores.tolist() == [0.1, 0.4]


def test_float_class_maps_become_int64_with_non_finite_pixels_unreadable():
    ex = read_example({"images": IMG, "masks": np.array([[0.0, 1.7], [np.nan, -np.inf]])})
    assert ex.mask.tolist() == [[0, 1], [NO_CLASS, NO_CLASS]]  # class maps truncate, as they always did


def test_odapi_dicts_are_read_as_they_come():
    ex = read_example(
        {
            "original_image": IMG,
            "detection_boxes": np.array([[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]], np.float32),
            "detection_classes": np.array([1.0, 3.0], np.float32),  # 1-based
            "detection_scores": np.array([0.9, 0.4], np.float32),
            "num_detections": np.float32(1),
            "key": np.bytes_(b"k"),
        }
    )
    assert ex.pred.xyxy.tolist() == [[0, 0, 20, 10]] and ex.pred.labels.tolist() == [0] and ex.example_id == "k"


def test_inputs_are_not_modified_and_the_image_cannot_write_into_them():
    arrays = {"images": IMG.copy(), "boxes": np.array([[0.1, 0.1, 0.5, 0.5]]), "masks": np.ones((H, W), np.int64)}
    before = {k: v.copy() for k, v in arrays.items()}
    ex = read_example(arrays)
    for k, v in arrays.items():
        np.testing.assert_array_equal(v, before[k])
    assert not ex.image.flags.writeable
    assert not np.shares_memory(ex.mask, arrays["masks"])
    assert arrays["images"].flags.writeable  # the caller's array is left as it was


@pytest.mark.parametrize(
    "arrays, error, match",
    [
        ({}, RenderError, r"example has no 'images' field; it has \[\]"),
        ({"images": None, "labels": 1}, RenderError, r"example has no 'images' field; it has \['images', 'labels'\]"),
        ({"images": np.zeros((2, 8, 8, 3))}, RenderError, "not a batch"),
        (
            {"images": IMG, "boxes": np.zeros((2, 5))},
            RenderError,
            r"field 'boxes' must be a 2-d array with shape \(M, 4\)",
        ),
        (
            {"images": IMG, "boxes": np.zeros((3, 4)), "box_labels": np.zeros(2, int)},
            RenderError,
            "'box_labels' has 2 entries but there are 3",
        ),
        (
            {"images": IMG, "boxes": np.zeros((1, 4)), "box_labels": np.zeros((1, 1), int)},
            RenderError,
            "'box_labels' must be 1-d",
        ),
        (
            {"images": IMG, "boxes": np.zeros((1, 4)), "box_labels": np.array(["cat"])},
            RenderError,
            "'box_labels' must hold integer class ids",
        ),
        (
            {"images": IMG, "boxes": np.zeros((1, 4)), "box_scores": np.array(["high"])},
            RenderError,
            "'box_scores' must be numeric",
        ),
        (
            {"images": IMG, "boxes": np.zeros((1, 4)), "num_boxes": np.str_("1")},
            RenderError,
            "'num_boxes' must be a number of boxes",
        ),
        ({"images": IMG, "labels": np.array([1, 2])}, RenderError, "'labels' must be a scalar"),
        ({"images": IMG, "labels": np.str_("cat")}, RenderError, "'labels' must hold integer class ids"),
        ({"images": IMG, "pred_scores": np.str_("high")}, RenderError, "'pred_scores' must hold numbers"),
        ({"images": IMG, "probs": np.zeros((2, 3))}, RenderError, "'probs' must be a non-empty 1-d"),
        ({"images": IMG, "masks": np.zeros((2, 8, 8))}, RenderError, "'masks' must be a non-empty 2-d"),
        (
            {"images": IMG, "gt_masks": np.zeros((8, 8), complex)},
            RenderError,
            "field 'gt_masks' must hold integer class ids",
        ),
        (
            {"images": IMG, "detection_classes": np.zeros(1), "box_labels": np.zeros(1)},
            ConfigError,
            "two keys onto field 'box_labels'",
        ),
    ],
)
@pytest.mark.parametrize("read", [read_example, render_example])
def test_read_errors(arrays, error, match, read):
    with pytest.raises(error, match=match):
        read(arrays)


def test_read_must_be_read_options():
    with pytest.raises(ConfigError, match="read must be a ReadOptions, got dict"):
        read_example({"images": IMG}, {"layout": "HWC"})


# --- the records check themselves ----------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"xyxy": np.zeros(3)}, r"xyxy must be a 2D np.ndarray with shape \(K, 4\), but got shape \(3,\)"),
        ({"xyxy": np.zeros((2, 5))}, r"xyxy must be a 2D np.ndarray with shape \(K, 4\), but got shape \(2, 5\)"),
        ({"xyxy": [[0, 0, 1, 1]]}, r"xyxy must be a 2D np.ndarray with shape \(K, 4\), but got a list"),
        ({"xyxy": np.array([["a", "b", "c", "d"]])}, r"xyxy must be numeric, but got dtype <U1"),
        ({"xyxy": np.array([[0, 0, np.nan, 1]])}, r"xyxy must be finite"),
        ({"xyxy": np.array([[2.0, 0, 1, 1]])}, r"xyxy must have x1 <= x2 and y1 <= y2"),
        (
            {"xyxy": np.zeros((2, 4)), "labels": np.zeros(3, int)},
            r"labels must be a 1D np.ndarray with shape \(2,\) for 2 boxes, but got shape \(3,\)",
        ),
        (
            {"xyxy": np.zeros((2, 4)), "labels": [1, 2]},
            r"labels must be a 1D np.ndarray with shape \(2,\) for 2 boxes, but got a list",
        ),
        (
            {"xyxy": np.zeros((2, 4)), "labels": np.zeros(2)},
            r"labels must be integer class ids \(class_ids reads floats\), but got dtype float64",
        ),
        (
            {"xyxy": np.zeros((2, 4)), "scores": np.zeros((2, 1))},
            r"scores must be a 1D np.ndarray with shape \(2,\) for 2 boxes, but got shape \(2, 1\)",
        ),
        ({"xyxy": np.zeros((2, 4)), "scores": np.array(["a", "b"])}, r"scores must be numeric, but got dtype <U1"),
    ],
)
def test_boxes_errors(kwargs, match):
    with pytest.raises(RenderError, match=f"^{match}"):
        Boxes(**kwargs)


def test_boxes_convert_dtypes_and_take_keeps_rows_together():
    b = Boxes(
        np.array([[0, 0, 4, 4], [1, 1, 2, 3]], np.int32), np.array([3, 5], np.uint8), np.array([0.5, 0.25], np.float32)
    )
    assert (b.xyxy.dtype, b.labels.dtype, b.scores.dtype) == (np.float64, np.int64, np.float64)
    picked = b.take(np.array([1]))
    assert picked.xyxy.tolist() == [[1, 1, 2, 3]] and picked.labels.tolist() == [5] and picked.scores.tolist() == [0.25]
    assert len(Boxes(np.zeros((0, 4)))) == 0


U8 = np.zeros((4, 6, 3), np.uint8)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (
            {"image": np.zeros((4, 6))},
            RenderError,
            r"image must be a 3D np.ndarray with shape \(H, W, 3\), but got shape \(4, 6\)",
        ),
        (
            {"image": np.zeros((4, 6, 4), np.uint8)},
            RenderError,
            r"image must be a 3D np.ndarray with shape \(H, W, 3\), but got shape \(4, 6, 4\)",
        ),
        (
            {"image": np.zeros((0, 6, 3), np.uint8)},
            RenderError,
            r"image must be a 3D np.ndarray .* but got shape \(0, 6, 3\)",
        ),
        ({"image": [[[0, 0, 0]]]}, RenderError, r"image must be a 3D np.ndarray .* but got a list"),
        (
            {"image": np.zeros((4, 6, 3))},
            RenderError,
            r"image must be uint8 RGB, but got dtype float64; to_rgb_uint8 converts it",
        ),
        ({"image": U8, "pred": np.zeros((1, 4))}, RenderError, r"pred must be Boxes or None, but got a ndarray"),
        ({"image": U8, "gt": {"xyxy": []}}, RenderError, r"gt must be Boxes or None, but got a dict"),
        (
            {"image": U8, "mask": np.zeros((4, 6, 2), int)},
            RenderError,
            r"mask must be a non-empty 2D np.ndarray class map, but got shape \(4, 6, 2\)",
        ),
        (
            {"image": U8, "gt_mask": np.zeros((4, 6))},
            RenderError,
            r"gt_mask must be integer class ids \(read_class_map reads float maps\), but got dtype float64",
        ),
        ({"image": U8, "label": True}, RenderError, r"label must be an int class id or None, but got True"),
        ({"image": U8, "pred_label": 1.0}, RenderError, r"pred_label must be an int class id or None, but got 1.0"),
        ({"image": U8, "score": "0.5"}, RenderError, r"score must be a number or None, but got '0.5'"),
        (
            {"image": U8, "probs": np.zeros((2, 2))},
            RenderError,
            r"probs must be a non-empty 1D np.ndarray, but got shape \(2, 2\)",
        ),
        (
            {"image": U8, "probs": np.zeros(0)},
            RenderError,
            r"probs must be a non-empty 1D np.ndarray, but got shape \(0,\)",
        ),
        ({"image": U8, "example_id": b"x"}, RenderError, r"example_id must be an int, float or str, but got a bytes"),
        ({"image": U8, "class_names": "cat"}, ConfigError, r"class_names must be a list of strings or None, got 'cat'"),
    ],
)
def test_example_errors(kwargs, error, match):
    with pytest.raises(error, match=f"^{match}"):
        Example(**kwargs)


def test_example_normalises_what_it_can_and_is_frozen():
    ex = Example(U8, label=np.int32(2), score=np.float32(0.5), probs=np.array([1, 0]), class_names=["a", "b"])
    assert (ex.label, ex.score, ex.class_names) == (2, 0.5, ("a", "b")) and type(ex.label) is int
    assert ex.probs.dtype == np.float64
    with pytest.raises(dataclasses.FrozenInstanceError):
        ex.label = 3
    assert dataclasses.replace(ex, label=1).label == 1
    with pytest.raises(RenderError, match="label must be an int"):
        dataclasses.replace(ex, label="cat")  # replace checks again
