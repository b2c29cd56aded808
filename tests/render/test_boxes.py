"""Box conversion (every format x coord mode), the box-count and drawn-box rules, IoU and greedy matching."""

from __future__ import annotations

import numpy as np
import pytest

from exporter.errors import ConfigError, RenderError
from exporter.render import box_count, drawn_order, iou_matrix, match_boxes, to_pixel_xyxy, to_pixel_xyxy_keep

W, H = 200, 100
PIXEL_XYXY = [20.0, 10.0, 120.0, 60.0]

# the same box, written in every format and coord mode
SAME_BOX = [
    ("yxyx", "pixels", [10, 20, 60, 120]),
    ("yxyx", "normalized", [0.1, 0.1, 0.6, 0.6]),
    ("xyxy", "pixels", [20, 10, 120, 60]),
    ("xyxy", "normalized", [0.1, 0.1, 0.6, 0.6]),
    ("xywh", "pixels", [20, 10, 100, 50]),
    ("xywh", "normalized", [0.1, 0.1, 0.5, 0.5]),
    ("cxcywh", "pixels", [70, 35, 100, 50]),
    ("cxcywh", "normalized", [0.35, 0.35, 0.5, 0.5]),
]


@pytest.mark.parametrize("box_format, box_coords, box", SAME_BOX)
def test_every_format_gives_the_same_pixel_box(box_format, box_coords, box):
    out = to_pixel_xyxy(np.array([box], dtype=np.float32), box_format, box_coords, W, H)
    assert out.dtype == np.float64 and out.shape == (1, 4)
    np.testing.assert_allclose(out[0], PIXEL_XYXY, atol=1e-9)


@pytest.mark.parametrize(
    "box_format, box",
    [
        ("xyxy", [120, 60, 20, 10]),  # both corners swapped
        ("yxyx", [60, 120, 10, 20]),
        ("xywh", [120, 60, -100, -50]),  # negative size
        ("cxcywh", [70, 35, -100, -50]),
    ],
)
def test_inverted_boxes_are_sorted(box_format, box):
    out = to_pixel_xyxy(np.array([box]), box_format, "pixels", W, H)
    np.testing.assert_allclose(out[0], PIXEL_XYXY)


def test_non_finite_rows_are_dropped_and_reported_in_keep():
    boxes = np.array([[0, 0, 1, 1], [np.nan, 0, 1, 1], [0, np.inf, 1, 1], [0.5, 0.5, 1, 1]])
    out, keep = to_pixel_xyxy_keep(boxes, "xyxy", "normalized", W, H)
    assert keep.tolist() == [True, False, False, True]
    np.testing.assert_allclose(out, [[0, 0, 200, 100], [100, 50, 200, 100]])


def test_input_is_not_modified():
    boxes = np.array([[0.6, 0.6, 0.1, 0.1]])
    before = boxes.copy()
    to_pixel_xyxy(boxes, "xyxy", "normalized", W, H)
    np.testing.assert_array_equal(boxes, before)


@pytest.mark.parametrize("boxes", [np.zeros((0, 4)), np.zeros((0,)), []])
def test_empty_input_gives_zero_rows(boxes):
    assert to_pixel_xyxy(boxes, "yxyx", "normalized", W, H).shape == (0, 4)


@pytest.mark.parametrize(
    "boxes, box_format, box_coords, width, height, error, match",
    [
        (np.zeros((3,)), "xyxy", "pixels", W, H, RenderError, r"shape \(M, 4\), but got shape \(3,\)"),
        (np.zeros((2, 5)), "xyxy", "pixels", W, H, RenderError, r"got shape \(2, 5\)"),
        (np.array([["a", "b", "c", "d"]]), "xyxy", "pixels", W, H, RenderError, "numeric"),
        (np.zeros((1, 4)), "xyxy2", "pixels", W, H, ConfigError, "box_format must be one of"),
        (np.zeros((1, 4)), "xyxy", "percent", W, H, ConfigError, "box_coords must be one of"),
        (np.zeros((1, 4)), "xyxy", "pixels", 0, H, ConfigError, "positive"),
    ],
)
def test_bad_boxes_raise(boxes, box_format, box_coords, width, height, error, match):
    with pytest.raises(error, match=match):
        to_pixel_xyxy(boxes, box_format, box_coords, width, height)


@pytest.mark.parametrize(
    "a, b, expected",
    [
        ([0, 0, 10, 10], [0, 0, 10, 10], 1.0),
        ([0, 0, 10, 10], [20, 20, 30, 30], 0.0),
        ([0, 0, 2, 2], [1, 0, 3, 2], 1 / 3),
        ([0, 0, 10, 10], [0, 0, 5, 10], 0.5),
        ([0, 0, 0, 0], [0, 0, 0, 0], 0.0),  # empty union: 0, not NaN
    ],
)
def test_iou(a, b, expected):
    assert iou_matrix(np.array([a]), np.array([b]))[0, 0] == pytest.approx(expected)


def test_iou_matrix_shape():
    assert iou_matrix(np.zeros((3, 4)), np.zeros((5, 4))).shape == (3, 5)
    assert iou_matrix(np.zeros((0, 4)), np.zeros((5, 4))).shape == (0, 5)


GT = np.array([[0, 0, 10, 10], [50, 50, 60, 60]], dtype=float)


@pytest.mark.parametrize(
    "pred, scores, pred_labels, gt_labels, threshold, tp, missed",
    [
        # one good prediction per gt box
        ([[0, 0, 10, 10], [50, 50, 60, 60]], None, None, None, 0.5, [True, True], [False, False]),
        # two predictions on the same gt: the higher score takes it, the other is a FP
        ([[0, 0, 10, 9], [0, 0, 10, 10]], [0.9, 0.5], None, None, 0.5, [True, False], [False, True]),
        ([[0, 0, 10, 9], [0, 0, 10, 10]], [0.5, 0.9], None, None, 0.5, [False, True], [False, True]),
        # below the threshold
        ([[0, 0, 5, 10]], None, None, None, 0.6, [False], [True, True]),
        ([[0, 0, 5, 10]], None, None, None, 0.5, [True], [False, True]),
        # class-aware when both label arrays are given
        ([[0, 0, 10, 10]], None, [1], [2, 1], 0.5, [False], [True, True]),
        ([[0, 0, 10, 10]], None, [2], [2, 1], 0.5, [True], [False, True]),
        # no predictions at all: every gt is missed
        (np.zeros((0, 4)), None, None, None, 0.5, [], [True, True]),
    ],
)
def test_match_boxes(pred, scores, pred_labels, gt_labels, threshold, tp, missed):
    m = match_boxes(np.asarray(pred, float), GT, threshold, scores=scores, pred_labels=pred_labels, gt_labels=gt_labels)
    assert m.tp.tolist() == tp
    assert m.fp.tolist() == [not t for t in tp]
    assert m.missed.tolist() == missed


def test_match_boxes_reports_the_matched_gt_index():
    m = match_boxes(np.array([[50, 50, 60, 60], [1, 1, 2, 2]], float), GT, 0.5)
    assert m.pred_to_gt.tolist() == [1, -1]


def test_match_without_gt_makes_every_prediction_a_false_positive():
    m = match_boxes(np.array([[0, 0, 1, 1]], float), np.zeros((0, 4)), 0.5)
    assert m.fp.tolist() == [True] and m.missed.tolist() == []


@pytest.mark.parametrize("threshold", [-0.1, 1.5])
def test_match_threshold_out_of_range(threshold):
    with pytest.raises(ConfigError, match="iou_threshold"):
        match_boxes(GT, GT, threshold)


@pytest.mark.parametrize(
    "num, rows, expected",
    [(3, 10, 3), (np.int32(0), 4, 0), (-2, 4, 0), (12.0, 10, 10), (2.6, 10, 2), (float("nan"), 4, 4),
     (np.float32("inf"), 4, 4), (None, 4, 4), (np.array(5), 7, 5)],
)
def test_box_count_clamps_num_boxes_and_ignores_a_count_that_is_not_a_number(num, rows, expected):
    assert box_count(num, rows) == expected


@pytest.mark.parametrize(
    "scores, count, threshold, max_boxes, expected",
    [
        ([0.2, 0.9, 0.5, 0.9], 4, 0.0, 10, [1, 3, 2, 0]),  # best first; equal scores keep box order
        ([0.2, 0.9, 0.5, 0.9], 4, 0.5, 10, [1, 3, 2]),  # at the threshold is drawn
        ([0.2, 0.9, 0.5, 0.9], 4, 0.0, 2, [1, 3]),
        ([np.nan, 0.4, np.nan], 3, -1.0, 10, [1]),  # NaN scores are never drawn, whatever the threshold
        ([0.3], 1, 0.0, 0, []),
        (None, 5, 0.9, 3, [0, 1, 2]),  # no scores: no threshold, the first max_boxes
        (None, 2, 0.0, 3, [0, 1]),
    ],
)
def test_drawn_order_is_the_best_scores_above_the_threshold_up_to_the_cap(scores, count, threshold, max_boxes, expected):
    s = None if scores is None else np.array(scores, np.float64)
    got = drawn_order(s, count, threshold, max_boxes)
    assert got.tolist() == expected and got.dtype.kind == "i"


def test_docstring_examples_run():
    import doctest

    from exporter.render import boxes

    assert doctest.testmod(boxes).failed == 0
