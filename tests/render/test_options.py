"""ReadOptions and RenderOptions: checked on construction, frozen, and the legacy read keywords of RenderOptions."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest

from exporter.errors import ConfigError
from exporter.render import ReadOptions, RenderOptions, render_example


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"score_threshold": float("nan")}, r"score_threshold must be a finite number, got nan"),
        ({"score_threshold": "0.5"}, r"score_threshold must be a finite number, got '0.5'"),
        ({"score_threshold": True}, r"score_threshold must be a finite number, got True"),
        ({"max_boxes": -1}, r"max_boxes must be an integer >= 0, got -1"),
        ({"max_boxes": 1.5}, r"max_boxes must be an integer >= 0, got 1.5"),
        ({"max_boxes": True}, r"max_boxes must be an integer >= 0, got True"),
        ({"side_by_side": "yes"}, r"side_by_side must be True or False, got 'yes'"),
        ({"side_by_side": 1}, r"side_by_side must be True or False, got 1"),
        ({"match_iou": 0.0}, r"match_iou must be > 0.0 and <= 1.0, got 0.0"),
        ({"match_iou": 1.5}, r"match_iou must be a number <= 1.0, got 1.5"),
        ({"match_iou": float("nan")}, r"match_iou must be a finite number, got nan"),
        ({"mask_alpha": 2}, r"mask_alpha must be a number in 0..1, got 2"),
        ({"mask_alpha": -0.1}, r"mask_alpha must be a number in 0..1, got -0.1"),
        ({"mask_alpha": True}, r"mask_alpha must be a finite number, got True"),
        ({"mask_outline": None}, r"mask_outline must be True or False, got None"),
        ({"background_class": 1.5}, r"background_class must be None or an integer, got 1.5"),
        ({"background_class": False}, r"background_class must be None or an integer, got False"),
        ({"topk": -1}, r"topk must be an integer >= 0, got -1"),
        ({"min_size": -1}, r"min_size must be an integer >= 0, got -1"),
        ({"min_size": 64.0}, r"min_size must be an integer >= 0, got 64.0"),
        ({"draw_gt": "no"}, r"draw_gt must be True or False, got 'no'"),
        ({"draw_caption": 0}, r"draw_caption must be True or False, got 0"),
        ({"gt_mask": "dashed"}, r"gt_mask must be one of outline, fill, none, got 'dashed'"),
        ({"gt_mask": None}, r"gt_mask must be one of outline, fill, none, got None"),
        ({"display_size": 0}, r"display_size must be None or an integer >= 32, got 0"),
        ({"display_size": 320.0}, r"display_size must be None or an integer >= 32, got 320.0"),
        ({"display_size": True}, r"display_size must be None or an integer >= 32, got True"),
        ({"legacy_read": {"class_names": ["cat"]}}, r"legacy_read must be a ReadOptions, got dict"),
    ],
)
def test_render_options_errors(kwargs, match):
    with pytest.raises(ConfigError, match=f"^{match}$"):
        RenderOptions(**kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"class_names": "cat"}, r"class_names must be a list of strings or None, got 'cat'"),
        ({"class_names": [1, 2]}, r"class_names must be a list of strings or None, got \[1, 2\]"),
        ({"class_names": 5}, r"class_names must be a list of strings or None, got 5"),
        ({"box_format": "ltrb"}, r"box_format must be one of yxyx, xyxy, xywh, cxcywh, got 'ltrb'"),
        ({"box_coords": "percent"}, r"box_coords must be one of normalized, pixels, got 'percent'"),
        ({"layout": "NHWC"}, r"layout must be one of HWC, CHW, HW, got 'NHWC'"),
        ({"bgr": 1}, r"bgr must be True or False, got 1"),
        ({"bgr": None}, r"bgr must be True or False, got None"),
        ({"value_range": (1, 0)}, r"value_range \(low, high\) must be finite with low < high, got \(1, 0\)"),
        ({"value_range": "auto"}, r"value_range must be None, 'minmax' or \(low, high\), got 'auto'"),
        ({"value_range": 5}, r"value_range must be None, 'minmax' or \(low, high\), got 5"),
        ({"mean": [1, 2]}, r"mean must be a number or a list of 1, 3 or 4 finite numbers, got \[1, 2\]"),
        ({"mean": [0.5, float("inf"), 0.5]}, r"mean must be a number or a list of 1, 3 or 4 finite numbers"),
        ({"std": "x"}, r"std must be a number or a list of 1, 3 or 4 numbers, got 'x'"),
        ({"mask_background": "None"}, r"mask_background must be an integer mask id, 'none' \(every id is a class\) or None"),
        ({"mask_background": 1.0}, r"mask_background must be an integer mask id, 'none'"),
        ({"mask_background": True}, r"mask_background must be an integer mask id, 'none'"),
    ],
)
def test_read_options_errors(kwargs, match):
    with pytest.raises(ConfigError, match=f"^{match}"):
        ReadOptions(**kwargs)


def test_read_options_default_to_not_set_and_store_tuples():
    assert ReadOptions() == ReadOptions(None, None, None, None, False, None, None, None, None)
    o = ReadOptions(class_names=["a"], mean=[0.5, 0.5, 0.5], std=2, value_range=[0, 1])
    assert o.class_names == ("a",) and o.mean == (0.5, 0.5, 0.5) and o.std == (2.0,) and o.value_range == (0.0, 1.0)
    assert o.box_format is o.box_coords is o.layout is None and o.bgr is False
    with pytest.raises(dataclasses.FrozenInstanceError):
        o.bgr = True
    assert hash(o) == hash(ReadOptions(class_names=("a",), mean=(0.5,) * 3, std=(2.0,), value_range=(0.0, 1.0)))


def test_render_options_are_frozen_style_only_and_work_with_replace():
    o = RenderOptions(topk=3, match_iou=0.5)
    assert {f.name for f in dataclasses.fields(o)} == {
        "score_threshold", "max_boxes", "side_by_side", "match_iou", "mask_alpha", "mask_outline",
        "topk", "min_size", "draw_gt", "draw_caption", "gt_mask", "display_size", "legacy_read",
    }  # fmt: skip
    assert o.legacy_read is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        o.topk = 4
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # replace on the style fields warns about nothing
        assert dataclasses.replace(o, topk=4) == RenderOptions(topk=4, match_iou=0.5)
    assert hash(o) == hash(RenderOptions(topk=3, match_iou=0.5))
    assert repr(o).startswith("RenderOptions(score_threshold=0.0, max_boxes=100,")


# --- the read keywords RenderOptions used to take ----------------------------------------------------------

LEGACY = {
    "class_names": ["cat", "dog"],
    "box_format": "xyxy",
    "box_coords": "pixels",
    "layout": "HWC",
    "bgr": True,
    "value_range": (0, 255),
    "mean": [0.5, 0.5, 0.5],
    "std": 0.25,
}


@pytest.mark.parametrize("name, value", list(LEGACY.items()))
def test_each_read_keyword_warns_and_lands_in_legacy_read(name, value):
    with pytest.warns(DeprecationWarning, match=rf"RenderOptions\({name}\) is deprecated: .*ReadOptions\({name}\)"):
        o = RenderOptions(topk=2, **{name: value})
    assert o.legacy_read == ReadOptions(**{name: value})
    assert o.topk == 2 and o == RenderOptions(topk=2, legacy_read=ReadOptions(**{name: value}))
    assert getattr(o, name) == getattr(ReadOptions(**{name: value}), name)  # old code reading it back still works
    assert getattr(RenderOptions(), name) is None


def test_the_warning_names_every_keyword_given_and_points_at_the_caller():
    with pytest.warns(DeprecationWarning) as caught:
        RenderOptions(class_names=["cat"], layout="HWC", min_size=0)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "RenderOptions(class_names, layout) is deprecated" in message
    assert "ReadOptions(class_names, layout)" in message and "ExportOptions(read=ReadOptions(...))" in message
    assert caught[0].filename == __file__


def test_legacy_read_survives_replace_without_warning_again():
    with pytest.warns(DeprecationWarning):
        old = RenderOptions(class_names=["cat", "dog"], bgr=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = dataclasses.replace(old, topk=3)
    assert again.legacy_read == old.legacy_read and again.topk == 3
    with pytest.warns(DeprecationWarning, match=r"RenderOptions\(layout\)"):
        more = dataclasses.replace(old, layout="CHW")  # a new read keyword is merged in, and warned about
    assert more.legacy_read == ReadOptions(class_names=["cat", "dog"], bgr=True, layout="CHW")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"class_names": "cat"}, "class_names must be a list of strings or None"),
        ({"box_format": "ltrb"}, "box_format must be one of yxyx, xyxy, xywh, cxcywh, got 'ltrb'"),
        ({"layout": "NHWC"}, "layout must be one of"),
        ({"value_range": (1, 0)}, "low < high"),
        ({"mean": [1, 2]}, "mean must be a number or a list of 1, 3 or 4"),
        ({"bgr": "yes"}, "bgr must be True or False"),
    ],
)
def test_legacy_keywords_are_checked_like_read_options(kwargs, match):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with pytest.raises(ConfigError, match=match):
            RenderOptions(**kwargs)


def _scene() -> np.ndarray:
    y, x = np.mgrid[0:24, 0:32]
    return np.stack([x * 8, y * 10, 255 - x * 8], axis=-1).astype(np.uint8)


def test_legacy_keywords_render_exactly_like_read_options():
    arrays = {
        "images": _scene()[..., ::-1].astype(np.float32) / 255,  # BGR floats
        "boxes": np.array([[2, 3, 20, 15], [10, 8, 30, 22]], np.float32),
        "box_labels": np.array([0, 1]),
        "box_scores": np.array([0.9, 0.7], np.float32),
        "labels": np.int64(1),
        "pred_labels": np.int64(1),
    }
    read = ReadOptions(class_names=["cat", "dog"], box_format="xyxy", box_coords="pixels", bgr=True, layout="HWC")
    expected = np.asarray(render_example(arrays, RenderOptions(topk=2), read))
    with pytest.warns(DeprecationWarning):
        legacy = RenderOptions(
            topk=2, class_names=["cat", "dog"], box_format="xyxy", box_coords="pixels", bgr=True, layout="HWC"
        )
    np.testing.assert_array_equal(np.asarray(render_example(arrays, legacy)), expected)
    # an explicit ReadOptions wins over the legacy keywords
    np.testing.assert_array_equal(np.asarray(render_example(arrays, legacy, read)), expected)
    default_read = np.asarray(render_example(arrays, legacy, ReadOptions()))
    assert default_read.shape != expected.shape or (default_read != expected).any()


# --- background_class became ReadOptions.mask_background ----------------------------------------------------


@pytest.mark.parametrize("value, setting", [(255, 255), (None, "none"), (3, 3)])
def test_background_class_warns_and_lands_in_legacy_read(value, setting):
    with pytest.warns(DeprecationWarning, match=r"RenderOptions\(background_class\) is deprecated: .*ReadOptions\(mask_background\)"):
        o = RenderOptions(topk=2, background_class=value)
    assert o.legacy_read == ReadOptions(mask_background=setting)
    assert o.background_class == value  # read back as before
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert dataclasses.replace(o, topk=3).legacy_read == o.legacy_read  # replace does not warn again


def test_background_class_zero_its_old_default_sets_nothing():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        o = RenderOptions(background_class=0)
    assert o == RenderOptions() and o.legacy_read is None and o.background_class == 0
    with pytest.raises(ConfigError, match=r"^background_class must be None or an integer, got 1.5$"):
        RenderOptions(background_class=1.5)


@pytest.mark.parametrize(
    "read, style, drawn",
    [
        (ReadOptions(), RenderOptions(), {1, 2}),  # unset: 0 is the background
        (ReadOptions(mask_background=2), RenderOptions(), {0, 1}),
        (ReadOptions(mask_background="none"), RenderOptions(), {0, 1, 2}),
        (None, {"background_class": None}, {0, 1, 2}),  # the deprecated keyword still works
        (None, {"background_class": 1}, {0, 2}),
    ],
)
def test_mask_background_decides_which_ids_are_drawn(read, style, drawn):
    from exporter.render.colors import class_color

    mask = np.array([[0, 1, 2]] * 3)
    arrays = {"images": np.zeros((3, 3, 3), np.uint8), "masks": mask}
    if isinstance(style, dict):
        with pytest.warns(DeprecationWarning):
            style = RenderOptions(**style)
    img = np.asarray(render_example(arrays, dataclasses.replace(style, mask_alpha=1.0, min_size=0, draw_caption=False), read))
    shown = {int(c) for c in range(3) if img[0, c].tolist() == list(class_color(c))}
    assert shown == drawn
