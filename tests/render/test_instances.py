"""Instance masks and keypoints: read with their boxes, drawn only where their box is, in its colour."""

from __future__ import annotations

import numpy as np
import pytest

from exporter.errors import RenderError
from exporter.render import Boxes, Example, ReadOptions, RenderOptions, class_color, read_example, render_example
from exporter.render.colors import BLACK, FP, TP

S, F = 40, 5  # a black S x S image upscaled F times: image pixel (y, x) is canvas pixels F*y..F*y+F-1
PIXELS = ReadOptions(box_format="xyxy", box_coords="pixels")


def square(y0: int, y1: int, x0: int, x1: int, size: int = S) -> np.ndarray:
    m = np.zeros((size, size), bool)
    m[y0:y1, x0:x1] = True
    return m


def detections(**extra) -> dict[str, np.ndarray]:
    """Two predicted boxes (cat 0.9 at the top left, dog 0.6 at the bottom right) with a square mask each."""
    fields = {
        "images": np.zeros((S, S, 3), np.uint8),
        "boxes": np.array([[2, 2, 20, 20], [20, 20, 38, 38]], np.float32),
        "box_labels": np.array([1, 2]),
        "box_scores": np.array([0.9, 0.6], np.float32),
        "instance_masks": np.stack([square(6, 16, 6, 16), square(24, 34, 24, 34)]),
    }
    fields.update(extra)
    return fields


def draw(fields, read=PIXELS, **style) -> np.ndarray:
    style = {"min_size": S * F, "mask_alpha": 1.0, "draw_caption": False, **style}
    img = np.asarray(render_example(fields, RenderOptions(**style), read))
    assert img.shape == (S * F, S * F, 3)
    return img


def at(img: np.ndarray, y: int, x: int) -> tuple[int, int, int]:
    """The colour at the centre of image pixel (y, x)."""
    return tuple(img[F * y + F // 2, F * x + F // 2].tolist())


def area(img: np.ndarray, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    """The canvas pixels of image pixels y0..y1-1, x0..x1-1."""
    return img[F * y0 : F * y1, F * x0 : F * x1]


def test_a_predicted_mask_is_filled_in_its_box_colour_inside_the_mask_only():
    img = draw(detections())
    assert at(img, 10, 10) == class_color(1) and at(img, 28, 28) == class_color(2)
    assert at(img, 4, 10) == BLACK  # inside the cat box, outside its mask
    assert at(img, 10, 30) == BLACK  # outside every mask and box


def test_a_mask_is_outlined_in_its_box_colour():
    img = draw(detections(), mask_alpha=0.0)
    cat, top, bottom = class_color(1), 6 * F, 16 * F - 1  # the mask's first and last canvas rows
    assert {tuple(p) for p in img[[top, bottom], 8 * F : 14 * F].reshape(-1, 3).tolist()} == {cat}
    assert {tuple(p) for p in img[8 * F : 14 * F, top].tolist()} == {cat}
    assert at(img, 10, 10) == BLACK and not img[top - 1, 8 * F : 14 * F].any()  # inside, and just outside


def test_half_alpha_blends_the_colour():
    img = draw(detections(), mask_alpha=0.5)
    expected = [(c * 128 + 128) >> 8 for c in class_color(1)]
    assert list(at(img, 10, 10)) == expected


def test_masks_take_the_match_colour_of_their_box():
    fields = detections(gt_boxes=np.array([[2, 2, 20, 20]], np.float32), gt_box_labels=np.array([1]))
    img = draw(fields, match_iou=0.5)
    assert at(img, 10, 10) == TP and at(img, 28, 28) == FP


@pytest.mark.parametrize(
    "extra, style",
    [
        ({"num_boxes": np.int64(1)}, {}),  # the dog is padding
        ({}, {"score_threshold": 0.7}),  # the dog is below the threshold
        ({}, {"max_boxes": 1}),  # only the best box is drawn
        ({"boxes": np.array([[2, 2, 20, 20], [np.nan, 20, 38, 38]], np.float32)}, {}),  # a box that cannot be read
    ],
)
def test_no_mask_where_its_box_is_not_drawn(extra, style):
    img = draw(detections(**extra), **style)
    assert at(img, 10, 10) == class_color(1)
    assert not area(img, 22, 36, 22, 36).any(), "the dog's mask (or box) was drawn"


def test_a_mask_of_another_size_is_resized_nearest_to_the_image():
    small = np.stack([square(3, 8, 3, 8, size=S // 2), np.zeros((S // 2, S // 2), bool)])
    img = draw(detections(instance_masks=small))
    assert at(img, 6, 6) == class_color(1) and at(img, 15, 15) == class_color(1)
    assert at(img, 5, 10) == BLACK and at(img, 16, 10) == BLACK


def test_gt_masks_are_dashed_outlines_over_the_prediction():
    fields = detections(
        gt_boxes=np.array([[4, 4, 18, 18]], np.float32),
        gt_box_labels=np.array([3]),
        gt_instance_masks=square(8, 30, 8, 30)[None],
    )
    img = draw(fields)
    edge = img[8 * F, 21 * F : 30 * F]  # the gt mask's top edge, off the boxes: its class colour on black
    colours = {tuple(p) for p in edge.tolist()}
    assert colours == {class_color(3), BLACK}
    assert at(img, 20, 20) == BLACK  # not filled
    assert at(img, 10, 10) == class_color(1)  # the prediction's fill shows through
    assert area(img, 9, 19, 29, 30).any()  # the right edge of the gt mask...
    assert not area(draw(fields, gt_mask="none"), 9, 19, 29, 30).any()  # ..."none": no gt outline (nor fill)
    assert at(draw(fields, gt_mask="fill"), 20, 20) == class_color(3)


def test_boxes_without_masks_and_masks_without_boxes_change_nothing():
    plain = draw(detections(instance_masks=None))
    assert at(plain, 10, 10) == BLACK
    no_boxes = {"images": np.zeros((S, S, 3), np.uint8), "instance_masks": square(6, 16, 6, 16)[None]}
    assert not draw(no_boxes).any()


POSE = np.array([[10, 12], [10, 20], [4, 32], [16, 32]], np.float64)  # head, neck, two feet: pixel x, y
EDGES = [[0, 1], [1, 2], [1, 3]]


def pose_fields(points=POSE, scores=None, **extra):
    fields = {
        "images": np.zeros((S, S, 3), np.uint8),
        "boxes": np.array([[1, 8, 30, 39]], np.float32),
        "box_labels": np.array([1]),
        "box_scores": np.array([0.9], np.float32),
        "keypoints": np.asarray(points, np.float32)[None],
    }
    if scores is not None:
        fields["keypoint_scores"] = np.asarray(scores, np.float32)[None]
    fields.update(extra)
    return fields


def pose_read(**kwargs):
    return ReadOptions(box_format="xyxy", box_coords="pixels", keypoint_edges=EDGES, **kwargs)


def canvas(img, x, y):
    """The colour of the canvas pixel where image point (x, y) falls."""
    return tuple(img[int(y * F), int(x * F)].tolist())


def test_keypoints_are_dots_joined_by_the_skeleton_in_the_box_colour():
    img = draw(pose_fields(), pose_read())
    cat = class_color(1)
    for x, y in POSE:
        assert canvas(img, x, y) == cat
    assert canvas(img, 10, 16) == cat  # on the head-neck line
    assert canvas(img, 8, 16) == BLACK  # beside it


def test_without_edges_only_the_dots_are_drawn():
    img = draw(pose_fields(), PIXELS)
    assert canvas(img, 10, 12) == class_color(1) and canvas(img, 10, 16) == BLACK


def test_a_nan_keypoint_and_its_edges_are_not_drawn():
    points = POSE.copy()
    points[0] = np.nan
    img = draw(pose_fields(points), pose_read())
    assert not area(img, 10, 19, 8, 13).any(), "the head or the head-neck line was drawn"
    assert canvas(img, 7, 26) == class_color(1)  # neck to left foot is still drawn


def test_a_keypoint_scored_below_the_threshold_is_not_drawn():
    img = draw(pose_fields(scores=[0.9, 0.9, 0.9, 0.1]), pose_read(), score_threshold=0.5)
    assert not area(img, 26, 35, 14, 20).any(), "the low-score foot or its edge was drawn"
    assert canvas(img, 4, 32) == class_color(1)
    nan_score = draw(pose_fields(scores=[0.9, 0.9, 0.9, np.nan]), pose_read())
    assert not area(nan_score, 26, 35, 14, 20).any()


def test_no_keypoints_where_their_box_is_not_drawn():
    assert not area(draw(pose_fields(), pose_read(), score_threshold=0.95), 9, 38, 2, 29).any()
    assert not draw(pose_fields(num_boxes=np.int64(0)), pose_read()).any()


def test_gt_keypoints_are_hollow_rings():
    fields = {
        "images": np.zeros((S, S, 3), np.uint8),
        "gt_boxes": np.array([[1, 8, 30, 39]], np.float32),
        "gt_box_labels": np.array([1]),
        "gt_keypoints": POSE[None],
    }
    img = draw(fields, PIXELS)  # no skeleton: its lines would reach the centres
    x, y = (POSE[2] * F).astype(int)
    assert tuple(img[y, x].tolist()) == BLACK  # the centre of a ring is empty
    assert class_color(1) in {tuple(p) for p in img[y - 4 : y + 5, x - 4 : x + 5].reshape(-1, 3).tolist()}


def test_normalized_keypoints_are_fractions_of_the_image():
    fields = pose_fields(POSE / S, boxes=np.array([[1, 8, 30, 39]], np.float32) / S)
    normalized = ReadOptions(box_format="xyxy", box_coords="normalized", keypoint_edges=EDGES)
    np.testing.assert_array_equal(draw(fields, normalized), draw(pose_fields(), pose_read()))


def test_one_examples_masks_are_read_as_a_view_of_its_arrays():
    fields = detections()
    ex = read_example(fields, PIXELS)
    assert np.shares_memory(ex.pred.masks, fields["instance_masks"])  # nothing copied for all-valid boxes
    assert read_example(detections(num_boxes=np.int64(1)), PIXELS).pred.masks.shape == (1, S, S)


def test_soft_and_mask_rcnn_shaped_masks_are_read():
    soft = detections()["instance_masks"][:, None].astype(np.float32) * 0.8  # (M, 1, H, W) probabilities
    ex = read_example(detections(instance_masks=soft), PIXELS)
    np.testing.assert_array_equal(ex.pred.masks, detections()["instance_masks"])


@pytest.mark.parametrize(
    "extra, match",
    [
        ({"instance_masks": np.zeros((2, S), bool)}, "'instance_masks' must be \\(M, H, W\\)"),
        ({"instance_masks": np.zeros((1, S, S), bool)}, "'instance_masks' has 1 rows but there are 2 boxes"),
        ({"instance_masks": np.zeros((2, S, S), "U1")}, "bool or 0/1 integer masks"),
        ({"keypoints": np.zeros((2, 3), np.float32)}, "'keypoints' must be \\(M, P, 2\\)"),
        (
            {"keypoints": np.zeros((2, 3, 2), np.float32), "keypoint_scores": np.zeros((2, 4), np.float32)},
            "'keypoint_scores' has shape \\(2, 4\\), but there are keypoints of shape \\(2, 3, 2\\)",
        ),
        ({"keypoint_scores": np.zeros((2, 4), np.float32)}, "but there are no keypoints"),
    ],
)
def test_bad_instance_fields_name_the_field(extra, match):
    with pytest.raises(RenderError, match=match):
        read_example(detections(**extra), PIXELS)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"masks": np.zeros((2, 4, 4), bool)}, "masks must be a 3D np.ndarray with shape \\(1, h, w\\)"),
        ({"keypoints": np.zeros((1, 3), np.float64)}, "keypoints must be a 3D np.ndarray with shape \\(1, P, 2\\)"),
        ({"keypoint_scores": np.zeros((1, 3))}, "keypoint_scores were given without keypoints"),
        (
            {"keypoints": np.zeros((1, 3, 2)), "keypoint_scores": np.zeros((1, 2))},
            "keypoint_scores must be a 2D np.ndarray with shape \\(1, 3\\)",
        ),
    ],
)
def test_boxes_check_their_instances(kwargs, match):
    with pytest.raises(RenderError, match=match):
        Boxes(np.array([[0.0, 0.0, 4.0, 4.0]]), **kwargs)


def test_take_keeps_instances_with_their_boxes():
    b = Boxes(np.array([[0.0, 0, 4, 4], [1, 1, 3, 3]]), masks=np.eye(2, dtype=bool)[:, :, None].repeat(3, 2),
              keypoints=np.arange(8.0).reshape(2, 2, 2), keypoint_scores=np.array([[0.1, 0.2], [0.3, 0.4]]))
    t = b.take(np.array([1]))
    assert t.masks.shape == (1, 2, 3) and t.keypoints.tolist() == [[[4.0, 5.0], [6.0, 7.0]]]
    assert t.keypoint_scores.tolist() == [[0.3, 0.4]]


@pytest.mark.parametrize("edges", [[[0, -1]], [[0, 1, 2]], "01", [[0.5, 1]]])
def test_bad_keypoint_edges_are_refused(edges):
    with pytest.raises(RenderError, match="keypoint_edges must be a list of \\[a, b\\] pairs"):
        Example(np.zeros((2, 2, 3), np.uint8), keypoint_edges=edges)


def test_edges_beyond_the_keypoints_are_skipped():
    img = draw(pose_fields(), ReadOptions(box_format="xyxy", box_coords="pixels", keypoint_edges=[[0, 1], [1, 9]]))
    assert canvas(img, 10, 16) == class_color(1)
