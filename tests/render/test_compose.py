"""draw_example / render_example behaviour (pixels, not looks: see test_golden)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image, ImageChops

from exporter.errors import ConfigError, RenderError
from exporter.render import (
    Boxes,
    Example,
    ReadOptions,
    RenderOptions,
    class_color,
    colors,
    draw_example,
    read_example,
    render_example,
)
from exporter.render.classes import NO_CLASS
from exporter.render.colors import text_color
from exporter.render.text import label_image

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


def shows(img: Image.Image, label: Image.Image) -> bool:
    """Whether ``label`` (a label image) appears, pixel for pixel, somewhere in ``img``."""
    a, p = np.asarray(img), np.asarray(label)
    ph, pw = p.shape[:2]
    corner = (a[: a.shape[0] - ph + 1, : a.shape[1] - pw + 1] == p[0, 0]).all(axis=-1)
    return any((a[y : y + ph, x : x + pw] == p).all() for y, x in np.argwhere(corner))


def box_label(text: str, color) -> Image.Image:
    """The label a box of ``color`` gets at the 11 px font of a picture drawn at 144 x 192."""
    return label_image(text, 11, text_color(color), color)


# At the default min_size a 48 x 64 image is drawn 3x: BASE's first box spans x 19..95, y 14..71 (inclusive) and
# its label sits inside its top-left corner, so its bottom edge (2 px: rows 70-71) is free; the second box's
# bottom edge is row 129.
FIRST_BOX_EDGE, SECOND_BOX_EDGE = (50, 71), (120, 129)


def test_render_example_is_read_then_draw():
    read = ReadOptions(class_names=["a", "b", "c"])
    arrays = dict(BASE, labels=np.int64(1), probs=np.array([0.2, 0.7, 0.1]))
    example = read_example(arrays, read)
    style = RenderOptions(topk=2, match_iou=0.5)
    assert same(render_example(arrays, style, read), draw_example(example, style))
    assert same(render_example(arrays), draw_example(read_example(arrays)))


def test_a_hand_built_example_is_drawn_like_a_read_one():
    read = read_example(BASE, ReadOptions(class_names=["a", "b", "c"]))
    built = Example(
        image=image(),
        pred=Boxes(
            np.array([[6.4, 4.8, 32.0, 24.0], [32.0, 24.0, 57.6, 43.2]]), np.array([1, 2]), np.array([0.9, 0.6])
        ),
        class_names=("a", "b", "c"),
    )
    np.testing.assert_allclose(built.pred.xyxy, read.pred.xyxy, rtol=1e-6)
    assert same(draw_example(built, PIXELS), draw_example(dataclasses.replace(built, pred=read.pred), PIXELS))


def test_small_images_are_upscaled_by_an_integer_factor_keeping_the_aspect_ratio():
    img = render_example({"images": np.zeros((28, 28), np.uint8)})
    assert img.size == (140, 140)  # 28 * 5 >= 128
    img = render_example({"images": np.zeros((H, W, 3), np.uint8)}, RenderOptions(min_size=100))
    assert img.size == (W * 3, H * 3)
    img = render_example({"images": np.zeros((300, 200, 3), np.uint8)})
    assert img.size == (200, 300)


def test_upscaling_stops_at_a_long_side_of_4096():
    assert render_example({"images": np.zeros((1, 1000), np.uint8)}).size == (4000, 4)


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


def test_score_threshold_is_style_applied_when_drawing():
    example = read_example(BASE)
    assert len(example.pred) == 2  # the record keeps every box
    strict = dataclasses.replace(PIXELS, score_threshold=0.7)
    assert same(draw_example(example, strict), render_example(BASE, strict))
    assert len(example.pred) == 2  # and drawing does not change it


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
        ({"labels": np.float32(np.nan), "pred_labels": 3}, colors.NEUTRAL),  # an unreadable class compares to nothing
    ],
)
def test_caption_strip_colour(fields, strip):
    img = render_example({"images": image(), **fields}, RenderOptions(min_size=0))
    assert img.width == W and img.height > H
    assert img.getpixel((0, H)) == strip


def test_no_caption_when_disabled_or_nothing_to_say():
    assert render_example({"images": image(), "labels": 1}, PIXELS).size == (W, H)
    assert render_example({"images": image()}, RenderOptions(min_size=0)).size == (W, H)


def test_out_of_range_class_ids_are_shown_as_numbers_in_their_class_colour():
    ex = dict(BASE, box_labels=np.array([-7, 10**9]), labels=np.int64(99), pred_labels=np.int64(-1))
    img = render_example(ex, RenderOptions(), ReadOptions(class_names=["a", "b"]))
    # ids beyond the palette and negative ones have colours of their own (hashed), not those of classes 0..127
    assert len({class_color(-7), class_color(10**9), *colors.PALETTE}) == len(colors.PALETTE) + 2
    assert img.getpixel(FIRST_BOX_EDGE) == class_color(-7)
    assert img.getpixel(SECOND_BOX_EDGE) == class_color(10**9)
    assert shows(img, box_label("-7 0.90", class_color(-7)))
    assert shows(img, box_label("1000000000 0.60", class_color(10**9)))
    assert img.getpixel((0, 3 * H)) == colors.WRONG  # "pred: -1 | true: 99"


def test_out_of_range_true_class_gets_no_green_bar():
    ex = {"images": image(), "labels": np.int64(99), "probs": np.array([0.3, 0.7])}
    bars = np.asarray(render_example(ex, RenderOptions(topk=2, draw_caption=False)))[3 * H :]
    assert (bars == colors.BAR).all(axis=-1).any() and not (bars == colors.CORRECT).all(axis=-1).any()
    shown = np.asarray(render_example(dict(ex, labels=np.int64(1)), RenderOptions(topk=2, draw_caption=False)))
    assert (shown[3 * H :] == colors.CORRECT).all(axis=-1).any()


def test_float_class_ids_from_detection_apis_are_rounded_and_nan_is_unknown():
    ex = dict(BASE, box_labels=np.array([1.2, np.nan], np.float32))
    img = render_example(ex, RenderOptions(), ReadOptions(class_names=["a", "b"]))
    assert same(
        img,
        render_example(
            dict(BASE, box_labels=np.array([1, NO_CLASS])), RenderOptions(), ReadOptions(class_names=["a", "b"])
        ),
    )
    assert img.getpixel(FIRST_BOX_EDGE) == class_color(1)
    assert img.getpixel(SECOND_BOX_EDGE) == colors.UNKNOWN
    assert shows(img, box_label("b 0.90", class_color(1)))
    assert shows(img, box_label("? 0.60", colors.UNKNOWN))


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


def test_the_example_is_not_modified_by_drawing():
    example = read_example(dict(BASE, masks=np.ones((H, W), np.int64)))
    before = (example.image.copy(), example.pred.xyxy.copy(), example.mask.copy())
    draw_example(example, RenderOptions(mask_outline=True, match_iou=0.5, score_threshold=0.7))
    for now, then in zip((example.image, example.pred.xyxy, example.mask), before, strict=True):
        np.testing.assert_array_equal(now, then)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: render_example({"images": image()}, {"topk": 3}), "style must be a RenderOptions, got dict"),
        (lambda: render_example({"images": image()}, RenderOptions(), {"layout": "HWC"}), "read must be a ReadOptions"),
        (lambda: draw_example({"images": image()}), r"example must be an Example \(read_example makes one"),
        (lambda: draw_example(read_example({"images": image()}), ReadOptions()), "style must be a RenderOptions"),
    ],
)
def test_options_and_example_must_have_their_types(call, match):
    with pytest.raises(ConfigError, match=match):
        call()


def test_reading_errors_come_from_read_example():
    with pytest.raises(RenderError, match="no 'images' field"):
        render_example({"labels": np.int64(1)})


# --- a gt mask in the single panel ---------------------------------------------------------------------------

GT_MASK = np.zeros((H, W), np.int64)
GT_MASK[12:36, 16:48] = 3
PRED_MASK = np.roll(GT_MASK, 6, axis=1)


def test_a_gt_mask_is_a_dashed_outline_over_the_predicted_fill():
    both = np.asarray(render_example({"images": image(), "masks": PRED_MASK, "gt_masks": GT_MASK}, PIXELS))
    pred_only = np.asarray(render_example({"images": image(), "masks": PRED_MASK}, PIXELS))
    line = 2  # at 48 x 64 the lines are 2 px
    edge = np.zeros((H, W), bool)
    edge[12:36, 16:48] = True
    edge[12 + line : 36 - line, 16 + line : 48 - line] = False  # the gt region's border, 2 px inside it
    np.testing.assert_array_equal(both[~edge], pred_only[~edge])  # everywhere else: the prediction's fill
    ring = both[edge]
    dashes, gaps = (ring == class_color(3)).all(axis=-1), (ring == 0).all(axis=-1)
    assert (dashes | gaps).all() and dashes.sum() > 0.3 * len(ring) and gaps.sum() > 0.3 * len(ring)


def test_gt_mask_style_fill_none_and_only_a_gt_mask():
    arrays = {"images": image(), "masks": PRED_MASK, "gt_masks": GT_MASK}
    none = render_example(arrays, dataclasses.replace(PIXELS, gt_mask="none"))
    assert same(none, render_example({"images": image(), "masks": PRED_MASK}, PIXELS))
    filled = np.asarray(render_example(arrays, dataclasses.replace(PIXELS, gt_mask="fill")))
    under = np.asarray(render_example({"images": image(), "masks": GT_MASK}, PIXELS))
    expected = np.asarray(render_example({"images": under, "masks": PRED_MASK}, PIXELS))  # gt first, then pred
    np.testing.assert_array_equal(filled, expected)
    # without a predicted mask the gt mask is filled, as it always was; "none" hides it
    gt_only = {"images": image(), "gt_masks": GT_MASK}
    for style in ("outline", "fill"):
        drawn = render_example(gt_only, dataclasses.replace(PIXELS, gt_mask=style))
        assert same(drawn, render_example({"images": image(), "masks": GT_MASK}, PIXELS))
    assert same(render_example(gt_only, dataclasses.replace(PIXELS, gt_mask="none")), Image.fromarray(image()))
    assert same(render_example(arrays, dataclasses.replace(PIXELS, draw_gt=False)), none)


def test_side_by_side_still_fills_the_gt_mask_in_its_own_panel():
    arrays = {"images": image(), "masks": PRED_MASK, "gt_masks": GT_MASK}
    styles = [RenderOptions(side_by_side=True, min_size=0, gt_mask=g) for g in ("outline", "fill", "none")]
    first, *others = [render_example(arrays, s) for s in styles]
    assert all(same(first, other) for other in others)
