"""render_example / render_grid / render_confusion_matrix behaviour (pixels, not looks: see test_golden)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image, ImageChops

from exporter.errors import ConfigError, RenderError
from exporter.render import RenderOptions, class_color, colors, render_confusion_matrix, render_example, render_grid

H, W = 48, 64


def image():
    y, x = np.mgrid[0:H, 0:W]
    return np.stack([x * 3, y * 4, np.full_like(x, 90)], axis=-1).astype(np.uint8)


BASE = {
    "images": image(),
    "boxes": np.array([[0.1, 0.1, 0.5, 0.5], [0.5, 0.5, 0.9, 0.9]], np.float32),
    "box_labels": np.array([1, 2]),
    "box_scores": np.array([0.9, 0.6], np.float32),
}
PIXELS = RenderOptions(min_size=0, draw_caption=False)


def same(a: Image.Image, b: Image.Image) -> bool:
    return a.size == b.size and ImageChops.difference(a, b).getbbox() is None


def test_small_images_are_upscaled_by_an_integer_factor_keeping_the_aspect_ratio():
    img = render_example({"images": np.zeros((28, 28), np.uint8)})
    assert img.size == (140, 140)  # 28 * 5 >= 128
    img = render_example({"images": np.zeros((H, W, 3), np.uint8)}, RenderOptions(min_size=100))
    assert img.size == (W * 3, H * 3)
    img = render_example({"images": np.zeros((300, 200, 3), np.uint8)})
    assert img.size == (200, 300)


def test_padding_rows_beyond_num_boxes_are_ignored():
    padded = dict(BASE, boxes=np.concatenate([BASE["boxes"], [[0, 0, 1, 1]] * 3]), num_boxes=np.int32(2))
    padded["box_labels"] = np.array([1, 2, 5, 5, 5])
    padded["box_scores"] = np.array([0.9, 0.6, 1.0, 1.0, 1.0], np.float32)
    assert same(render_example(padded, PIXELS), render_example(BASE, PIXELS))


def test_non_finite_boxes_are_ignored():
    bad = dict(BASE)
    bad["boxes"] = np.concatenate([BASE["boxes"], [[np.nan, 0, 1, 1], [0, 0, np.inf, 1]]]).astype(np.float32)
    bad["box_labels"] = np.array([1, 2, 3, 4])
    bad["box_scores"] = np.array([0.9, 0.6, 1.0, 1.0], np.float32)
    assert same(render_example(bad, PIXELS), render_example(BASE, PIXELS))


def test_score_threshold_and_max_boxes_keep_the_best_boxes():
    only_first = {k: (v[:1] if k != "images" else v) for k, v in BASE.items()}
    expected = render_example(only_first, PIXELS)
    assert same(render_example(BASE, dataclasses.replace(PIXELS, score_threshold=0.7)), expected)
    assert same(render_example(BASE, dataclasses.replace(PIXELS, max_boxes=1)), expected)
    nothing = render_example({"images": image()}, PIXELS)
    assert same(render_example(BASE, dataclasses.replace(PIXELS, max_boxes=0)), nothing)


def test_boxes_are_coloured_by_class_or_by_match():
    ex = dict(BASE, boxes=BASE["boxes"][:1], box_labels=np.array([3]), box_scores=np.array([0.9]))
    # the box spans 0.1..0.5 of the image: its left edge is at x = 6.4 → pixel 6, drawn inward
    mid_y = int(0.3 * H)
    assert render_example(ex, PIXELS).getpixel((6, mid_y)) == class_color(3)
    ex.update(gt_boxes=np.array([[0.1, 0.1, 0.5, 0.5]]), gt_box_labels=np.array([3]))
    matched = render_example(ex, dataclasses.replace(PIXELS, match_iou=0.5, draw_gt=False))
    assert matched.getpixel((6, mid_y)) == colors.TP
    ex["gt_box_labels"] = np.array([4])  # other class: no match
    assert (
        render_example(ex, dataclasses.replace(PIXELS, match_iou=0.5, draw_gt=False)).getpixel((6, mid_y)) == colors.FP
    )


def test_gt_boxes_are_dashed_and_draw_gt_false_hides_them():
    ex = {
        "images": np.full((H, W, 3), 128, np.uint8),
        "gt_boxes": np.array([[0.0, 0.0, 1.0, 1.0]]),
        "gt_box_labels": np.array([1]),
    }
    img = np.asarray(render_example(ex, PIXELS))
    left_edge = {tuple(p) for p in img[:, 0]}
    assert class_color(1) in left_edge and (0, 0, 0) in left_edge
    hidden = render_example(ex, dataclasses.replace(PIXELS, draw_gt=False))
    assert same(hidden, render_example({"images": ex["images"]}, PIXELS))


@pytest.mark.parametrize(
    "fields, strip",
    [
        ({"labels": 3, "pred_labels": 3}, colors.CORRECT),
        ({"labels": 3, "pred_labels": 4, "pred_scores": 0.5}, colors.WRONG),
        ({"labels": 3, "probs": np.array([0.1, 0.2, 0.0, 0.7])}, colors.CORRECT),  # pred from argmax(probs)
        ({"pred_labels": 4}, colors.NEUTRAL),
        ({"ids": np.str_("img-7")}, colors.NEUTRAL),
    ],
)
def test_caption_strip_colour(fields, strip):
    img = render_example({"images": image(), **fields}, RenderOptions(min_size=0))
    assert img.width == W and img.height > H
    assert img.getpixel((0, H)) == strip


def test_no_caption_when_disabled_or_nothing_to_say():
    assert render_example({"images": image(), "labels": 1}, PIXELS).size == (W, H)
    assert render_example({"images": image()}, RenderOptions(min_size=0)).size == (W, H)


def test_out_of_range_class_ids_do_not_crash():
    ex = dict(BASE, box_labels=np.array([-7, 10**9]), labels=np.int64(99), pred_labels=np.int64(-1))
    render_example(ex, RenderOptions(class_names=["a", "b"], topk=2))


def test_float_class_ids_from_detection_apis_work():
    ex = dict(BASE, box_labels=np.array([1.0, np.nan], np.float32))
    render_example(ex, RenderOptions(class_names=["a", "b"]))


def test_topk_strip_adds_rows():
    ex = {"images": image(), "probs": np.array([0.1, 0.6, 0.3])}
    without = render_example(ex, RenderOptions(min_size=0, draw_caption=False))
    one = render_example(ex, RenderOptions(min_size=0, draw_caption=False, topk=1))
    three = render_example(ex, RenderOptions(min_size=0, draw_caption=False, topk=3))
    assert without.height < one.height < three.height
    assert three.height == render_example(ex, RenderOptions(min_size=0, draw_caption=False, topk=10)).height


def test_side_by_side_has_two_panels_of_the_image_size():
    img = render_example(dict(BASE, gt_boxes=BASE["boxes"]), RenderOptions(min_size=0, side_by_side=True))
    assert img.width > 2 * W and img.height > H


def test_render_options_are_frozen_and_store_tuples():
    o = RenderOptions(class_names=["a"], mean=[0.5, 0.5, 0.5], value_range=[0, 1])
    assert o.class_names == ("a",) and o.mean == (0.5, 0.5, 0.5) and o.value_range == (0.0, 1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        o.topk = 3
    hash(o)


def test_options_must_be_render_options():
    with pytest.raises(ConfigError, match="RenderOptions"):
        render_example({"images": image()}, {"topk": 3})


# --- grid and confusion matrix -----------------------------------------------


def test_grid_cells_of_different_sizes():
    ims = [Image.new("RGB", (10, 20), "red"), Image.new("RGB", (30, 5), "blue"), Image.new("L", (7, 7), 255)]
    sheet = render_grid(ims, pad=2)  # 2 columns: widths 10 and 30, rows 20 and 7
    assert sheet.size == (2 + 10 + 2 + 30 + 2, 2 + 20 + 2 + 7 + 2)
    assert sheet.getpixel((2, 2)) == (255, 0, 0)
    assert sheet.getpixel((14, 2)) == (0, 0, 255)
    assert sheet.getpixel((2, 24)) == (255, 255, 255)
    assert sheet.getpixel((0, 0)) == colors.BACKGROUND
    assert render_grid(ims, cols=1, pad=0).size == (30, 32)
    assert render_grid(ims, cols=10, pad=0).size == (47, 20)


@pytest.mark.parametrize(
    "images, kwargs, error, match",
    [
        ([], {}, RenderError, "at least one image"),
        ([np.zeros((2, 2, 3))], {}, RenderError, "PIL images"),
        ([Image.new("RGB", (2, 2))], {"cols": 0}, ConfigError, "cols must be >= 1"),
        ([Image.new("RGB", (2, 2))], {"pad": -1}, ConfigError, "pad must be >= 0"),
        ([Image.new("RGB", (2, 2))], {"background": (1, 2)}, ConfigError, "background"),
    ],
)
def test_grid_errors(images, kwargs, error, match):
    with pytest.raises(error, match=match):
        render_grid(images, **kwargs)


def test_confusion_matrix_scales_with_classes():
    small = render_confusion_matrix(np.array([[3, 1], [0, 4]]))
    big = render_confusion_matrix(np.eye(12, dtype=int) * 10, [f"class {i}" for i in range(12)])
    assert small.mode == big.mode == "RGB"
    assert big.width > small.width and big.height > small.height
    render_confusion_matrix(np.ones((100, 100)))  # no text in the cells, still drawn
    render_confusion_matrix(np.array([[0.5, 0.5], [0.0, 0.0]]), ["only one name"])


@pytest.mark.parametrize(
    "matrix, match",
    [
        (np.zeros((2, 3)), "square"),
        (np.zeros((0, 0)), "square"),
        (np.zeros(4), "square"),
        (np.array([[1, -1], [0, 1]]), ">= 0"),
        (np.array([[1, np.nan], [0, 1]]), "finite"),
        (np.array([["a"]]), "numeric"),
    ],
)
def test_confusion_matrix_errors(matrix, match):
    with pytest.raises(RenderError, match=match):
        render_confusion_matrix(matrix)


def test_upscaling_stops_at_a_long_side_of_4096():
    assert render_example({"images": np.zeros((1, 1000), np.uint8)}).size == (4000, 4)
