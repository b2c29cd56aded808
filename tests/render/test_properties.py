"""Property tests: every supported image layout x dtype x value range is drawable, inputs stay untouched."""

from __future__ import annotations

import dataclasses
import math

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from exporter.errors import ConfigError, RenderError
from exporter.render import ReadOptions, RenderOptions, colors, draw_example, read_example, render_example, to_rgb_uint8

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

DTYPES = [
    np.uint8,
    np.uint16,
    np.uint32,
    np.int8,
    np.int16,
    np.int32,
    np.int64,
    np.float16,
    np.float32,
    np.float64,
    np.bool_,
]
VALUE_RANGES = [None, "minmax", (0.0, 1.0), (-1.0, 1.0), (0.0, 255.0), (-1000.0, 5.0)]


@st.composite
def images(draw, max_side: int = 12):
    """(array, layout actually used, H, W, channels): the layout is passed explicitly or left to the guess."""
    layout = draw(st.sampled_from(["HW", "HWC", "CHW"]))
    c = draw(st.sampled_from([1, 3, 4]))
    h = draw(st.integers(1, max_side))
    w = draw(st.integers(1, max_side))
    shape = {"HW": (h, w), "HWC": (h, w, c), "CHW": (c, h, w)}[layout]
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    elements = hnp.from_dtype(dtype, allow_nan=True, allow_infinity=True) if dtype.kind == "f" else None
    arr = draw(hnp.arrays(dtype, shape, elements=elements))
    if draw(st.booleans()):
        return arr, layout, layout, h, w
    # the documented guess rule
    if arr.ndim == 2:
        guessed = "HW"
    elif arr.shape[2] in (1, 3, 4):
        guessed = "HWC"
    else:
        guessed = "CHW"
    gh, gw = arr.shape[:2] if guessed != "CHW" else arr.shape[1:]
    return arr, None, guessed, gh, gw


def stats(channels: int):
    """None, one number, or one number per channel."""
    return st.one_of(
        st.none(),
        st.floats(-2, 2, allow_nan=False),
        st.lists(st.floats(-2, 2, allow_nan=False), min_size=channels, max_size=channels),
    )


def same(a: np.ndarray, b: np.ndarray) -> bool:
    """Bitwise equality (NaN-safe)."""
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@SETTINGS
@given(data=st.data())
def test_to_rgb_uint8_accepts_every_supported_input(data):
    arr, layout, used, h, w = data.draw(images())
    channels = 1 if used == "HW" else (arr.shape[2] if used == "HWC" else arr.shape[0])
    value_range = data.draw(st.sampled_from(VALUE_RANGES))
    mean = data.draw(stats(channels))
    std = data.draw(stats(channels))
    bgr = data.draw(st.booleans())
    before = arr.copy()

    out = to_rgb_uint8(arr, layout=layout, bgr=bgr, value_range=value_range, mean=mean, std=std)

    assert out.dtype == np.uint8
    assert out.shape == (h, w, 3)
    assert out.flags.c_contiguous
    assert not np.shares_memory(out, arr)
    assert same(arr, before)
    if channels == 1:  # grey is replicated, but for NaN/inf pixels, which are magenta
        grey = arr if arr.ndim == 2 else arr.reshape(h, w)
        finite = np.isfinite(grey) if grey.dtype.kind == "f" else np.ones((h, w), bool)
        assert (out[finite][:, 0] == out[finite][:, 1]).all() and (out[finite][:, 1] == out[finite][:, 2]).all()
        assert (out[~finite] == (255, 0, 255)).all()


@SETTINGS
@given(
    arr=hnp.arrays(
        st.sampled_from([np.float16, np.float32, np.float64]),
        hnp.array_shapes(min_dims=2, max_dims=2, max_side=10),
        elements=st.floats(-1e4, 1e4, width=16) | st.sampled_from([np.nan, np.inf, -np.inf]),
    ),
    value_range=st.sampled_from([None, "minmax", (0.0, 1.0), (0.0, 255.0)]),
)
def test_non_finite_floats_are_magenta_and_finite_ones_are_not(arr, value_range):
    out = to_rgb_uint8(arr, value_range=value_range)
    bad = ~np.isfinite(arr)
    assert (out[bad] == colors.NONFINITE).all()
    assert (out[~bad][:, 0] == out[~bad][:, 1]).all()  # grey: never magenta


@SETTINGS
@given(
    arr=hnp.arrays(np.float64, (4, 5), elements=st.floats(-1e6, 1e6)),
    value_range=st.sampled_from([(0.0, 255.0), (0.0, 1.0), (-1.0, 1.0)]),
)
def test_values_are_clipped_never_wrapped(arr, value_range):
    lo, hi = value_range
    out = to_rgb_uint8(arr, value_range=value_range)[..., 0]
    assert (out[arr >= hi] == 255).all()
    assert (out[arr <= lo] == 0).all()


@pytest.mark.parametrize(
    "image, value_range, expected",
    [
        (np.full((2, 2), 300.0), (0, 255), 255),
        (np.full((2, 2), 300.0, np.float32), (0.0, 255.0), 255),
        (np.full((2, 2), -20.0), (0, 255), 0),
        (np.full((2, 2), 300, np.int32), (0, 255), 255),
        (np.full((2, 2), 300, np.uint16), (0, 255), 255),
        (np.full((2, 2), 1.5), (0, 1), 255),
    ],
)
def test_never_wrap_around(image, value_range, expected):
    assert (to_rgb_uint8(image, value_range=value_range) == expected).all()


# --- render_example ----------------------------------------------------------


def box_arrays(max_rows: int = 5):
    return hnp.arrays(
        np.float32,
        st.tuples(st.integers(0, max_rows), st.just(4)),
        elements=st.floats(-0.5, 1.5, width=32) | st.sampled_from([np.nan, np.inf, -np.inf, 2.0**100]),
    )


@st.composite
def examples(draw):
    arr, layout, _, h, w = draw(images(max_side=10))
    ex = {"images": arr}
    ids = st.integers(-5, 30)
    if draw(st.booleans()):
        boxes = draw(box_arrays())
        m = boxes.shape[0]
        ex["boxes"] = boxes
        if draw(st.booleans()):
            ex["box_labels"] = np.array(draw(st.lists(ids, min_size=m, max_size=m)), dtype=np.int64)
        if draw(st.booleans()):
            ex["box_scores"] = draw(hnp.arrays(np.float32, (m,), elements=st.floats(0, 1, width=32) | st.just(np.nan)))
        if draw(st.booleans()):
            ex["num_boxes"] = np.int32(draw(st.integers(-1, m + 2)))
    if draw(st.booleans()):
        gt = draw(box_arrays())
        ex["gt_boxes"] = gt
        ex["gt_box_labels"] = np.array(draw(st.lists(ids, min_size=gt.shape[0], max_size=gt.shape[0])), np.int64)
    for name in ("masks", "gt_masks"):
        if draw(st.booleans()):
            mh, mw = draw(st.sampled_from([(h, w), (max(1, h // 2), max(1, w // 2)), (2 * h, 2 * w)]))
            ex[name] = draw(hnp.arrays(np.int32, (mh, mw), elements=st.integers(-1, 25)))
    for name in ("labels", "pred_labels"):
        if draw(st.booleans()):
            ex[name] = np.int64(draw(ids))
    if draw(st.booleans()):
        ex["pred_scores"] = np.float32(draw(st.floats(0, 1, width=32) | st.just(np.nan)))
    if draw(st.booleans()):
        k = draw(st.integers(1, 12))
        ex["probs"] = draw(hnp.arrays(np.float32, (k,), elements=st.floats(0, 1, width=32) | st.just(np.nan)))
    if draw(st.booleans()):
        ex["ids"] = draw(st.sampled_from([np.int64(7), np.str_("img-001.jpg"), np.bytes_(b"abc")]))
    read = ReadOptions(
        layout=layout,
        class_names=draw(st.sampled_from([None, ["bg", "cat", "dog"], [f"class {i}" for i in range(20)]])),
        value_range=draw(st.sampled_from(VALUE_RANGES)),
        box_format=draw(st.sampled_from([None, "yxyx", "xyxy", "xywh", "cxcywh"])),
        box_coords=draw(st.sampled_from([None, "normalized", "pixels"])),
        bgr=draw(st.booleans()),
        mask_background=draw(st.sampled_from([None, 0, "none"])),
    )
    options = RenderOptions(
        side_by_side=draw(st.booleans()),
        match_iou=draw(st.sampled_from([None, 0.5])),
        mask_outline=draw(st.booleans()),
        topk=draw(st.integers(0, 4)),
        min_size=draw(st.sampled_from([0, 16, 64])),
        score_threshold=draw(st.sampled_from([0.0, 0.5])),
        max_boxes=draw(st.sampled_from([0, 2, 100])),
        draw_gt=draw(st.booleans()),
        draw_caption=draw(st.booleans()),
    )
    return ex, options, read, h, w


@SETTINGS
@given(case=examples())
def test_render_example_accepts_every_supported_input(case):
    ex, options, read, h, w = case
    before = {k: np.array(v, copy=True) for k, v in ex.items()}

    img = render_example(ex, options, read)

    assert isinstance(img, Image.Image) and img.mode == "RGB"
    short = min(h, w)
    f = 1 if short >= options.min_size else math.ceil(options.min_size / short)
    if options.side_by_side:
        assert img.width > 2 * w * f and img.height > h * f
    else:
        assert img.width == w * f and img.height >= h * f
    for k, v in ex.items():
        assert same(np.asarray(v), before[k]), f"render_example modified field {k!r}"


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=examples())
def test_the_legacy_read_keywords_draw_exactly_what_read_options_draw(case):
    ex, options, read, _, _ = case
    expected = np.asarray(draw_example(read_example(ex, read), options))
    given = {
        f.name: getattr(read, f.name) for f in dataclasses.fields(read) if getattr(read, f.name) not in (None, False)
    }
    if "mask_background" in given:  # its old keyword: background_class, None drawing every id
        background = given.pop("mask_background")
        given["background_class"] = None if background == "none" else background
    legacy = options
    if given and given != {"background_class": 0}:  # 0, background_class's old default, sets nothing
        with pytest.warns(DeprecationWarning):
            legacy = dataclasses.replace(options, **given)
        unset_zero = dataclasses.replace(read, mask_background=None) if read.mask_background == 0 else read
        assert legacy.legacy_read == unset_zero
    np.testing.assert_array_equal(np.asarray(render_example(ex, legacy)), expected)


@SETTINGS
@given(data=st.data())
def test_image_alone_is_drawn_exactly_upscaled(data):
    arr, layout, _, h, w = data.draw(images())
    min_size = data.draw(st.sampled_from([0, 8, 30]))
    img = np.asarray(render_example({"images": arr}, RenderOptions(min_size=min_size), ReadOptions(layout=layout)))
    short = min(h, w)
    f = 1 if short >= min_size else math.ceil(min_size / short)
    expected = to_rgb_uint8(arr, layout=layout).repeat(f, axis=0).repeat(f, axis=1)
    np.testing.assert_array_equal(img, expected)


# --- errors ------------------------------------------------------------------


@pytest.mark.parametrize(
    "image, kwargs, error, match",
    [
        (np.array([[1, None]], dtype=object), {}, RenderError, "dtype object"),
        (np.zeros((4, 4, 3), np.complex64), {}, RenderError, "dtype complex64"),
        (np.array([["a", "b"]]), {}, RenderError, "dtype <U1"),
        (np.zeros((1, 1, 4, 4, 3)), {}, RenderError, r"got 5-d shape \(1, 1, 4, 4, 3\)"),
        (np.zeros((2, 4, 4, 3)), {}, RenderError, "not a batch"),
        (np.zeros(5), {}, RenderError, "got 1-d"),
        (np.zeros((0, 4, 3)), {}, RenderError, "empty"),
        (np.zeros((4, 0)), {}, RenderError, "empty"),
        (np.zeros((5, 6, 7)), {}, RenderError, "cannot guess the layout"),
        (np.zeros((4, 4, 3)), {"layout": "HW"}, RenderError, "needs a 2-d image"),
        (np.zeros((4, 4)), {"layout": "CHW"}, RenderError, "needs a 3-d image"),
        (np.zeros((4, 4, 2)), {"layout": "HWC"}, RenderError, "1, 3 or 4 channels, got 2"),
        (np.zeros((4, 4, 3)), {"layout": "NHWC"}, ConfigError, "layout must be one of"),
        (np.zeros((4, 4, 3)), {"mean": [1, 2]}, RenderError, "mean has 2 values"),
        (np.zeros((4, 4, 3)), {"std": [np.nan]}, RenderError, "std must be finite"),
        (np.zeros((4, 4, 3)), {"value_range": (1, 0)}, ConfigError, "low < high"),
        (np.zeros((4, 4, 3)), {"value_range": "auto"}, ConfigError, "value_range must be"),
        (np.zeros((4, 4, 3), np.uint8), {"value_range": 5}, ConfigError, "value_range must be"),
    ],
)
def test_to_rgb_uint8_errors(image, kwargs, error, match):
    with pytest.raises(error, match=match):
        to_rgb_uint8(image, **kwargs)
