"""to_rgb_uint8: exact values for each dtype, range rule, layout and channel handling."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from exporter import ShardWriter, open_run
from exporter.render import ReadOptions, RenderOptions, colors, render_example, to_rgb_uint8


@pytest.mark.parametrize(
    "values, kwargs, expected",
    [
        # automatic ranges by dtype
        (np.array([0, 7, 255], np.uint8), {}, [0, 7, 255]),
        (np.array([0, 32768, 65535], np.uint16), {}, [0, 128, 255]),
        (np.array([False, True, True]), {}, [0, 255, 255]),
        # automatic ranges by value (floats and other ints)
        (np.array([0.0, 0.5, 1.0]), {}, [0, 128, 255]),
        (np.array([-1.0, 0.0, 1.0], np.float32), {}, [0, 128, 255]),
        (np.array([0.0, 100.0, 255.0], np.float16), {}, [0, 100, 255]),
        (np.array([-5.0, 0.0, 5.0]), {}, [0, 128, 255]),  # min..max
        (np.array([0, 200, 17], np.int32), {}, [0, 200, 17]),  # within [0, 255]
        (np.array([0, 500, 1000], np.int64), {}, [0, 128, 255]),  # min..max
        (np.array([0, 1, 1], np.int8), {}, [0, 255, 255]),  # within [0, 1]
        # explicit ranges and minmax
        (np.array([10, 15, 20], np.uint8), {"value_range": "minmax"}, [0, 128, 255]),
        (np.array([0.0, 0.5, 1.0]), {"value_range": (0, 255)}, [0, 1, 1]),
        (np.array([-300.0, 100.0, 300.0]), {"value_range": (0, 255)}, [0, 100, 255]),
        (np.array([3, 3, 3], np.uint8), {"value_range": (0, 255)}, [3, 3, 3]),
        # NaN and infinities are magenta (the red channel checked here is 255), finite values keep the range
        (np.array([np.nan, np.inf, -np.inf, 0.5]), {}, [255, 255, 255, 128]),
        (np.array([np.nan, np.nan]), {}, [255, 255]),
        (np.array([4.0, 4.0]), {"value_range": "minmax"}, [0, 0]),  # constant: black, no division by zero
        # mean/std undo a normalisation before the range is chosen
        (np.array([-2.0, 0.0, 2.0]), {"mean": 0.5, "std": 0.25}, [0, 128, 255]),
        (np.array([-1.0, 0.0, 1.0], np.float32), {"mean": [127.5], "std": [127.5]}, [0, 128, 255]),
        # ... and then the range is that of the statistics, not a guess: [0, 1], or [0, 255] for 0..255 statistics
        (np.array([-1e-7, 0.5, 0.75], np.float32), {"mean": 0.0, "std": 1.0}, [0, 128, 191]),  # not [-1, 1]
        (np.array([-0.5, 0.0, 0.5]), {"mean": 0.5, "std": 1.0}, [0, 128, 255]),
        (np.array([-1.0, 0.0, 1.0]), {"mean": 100.0, "std": 50.0}, [50, 100, 150]),  # not 50..150 stretched
        (np.array([0.2, 0.4, 1.0]), {"std": 255.0}, [51, 102, 255]),  # a std above 1 means 0..255 too
        (np.array([-1.0, 0.5, 1.0]), {"mean": 100.0, "std": 50.0, "value_range": "minmax"}, [0, 191, 255]),
        (np.array([-1.0, 0.0, 1.0]), {"mean": 0.5, "std": 0.5, "value_range": (0.0, 2.0)}, [0, 64, 128]),
    ],
)
def test_values(values, kwargs, expected):
    out = to_rgb_uint8(values.reshape(1, -1), **kwargs)
    assert out[0, :, 0].tolist() == expected
    finite = np.isfinite(values)
    assert (out[0, finite, 0] == out[0, finite, 2]).all()  # grey replicated


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_pixel_is_magenta_whatever_its_other_channels(dtype, bad):
    img = np.full((2, 3, 3), 0.25, dtype)
    img[1, 2, 1] = bad  # one channel of one pixel
    for kwargs in ({}, {"value_range": (0, 1)}, {"value_range": "minmax"}, {"mean": 0.5, "std": 0.1}):
        out = to_rgb_uint8(img, **kwargs)
        assert out[1, 2].tolist() == list(colors.NONFINITE) == [255, 0, 255], kwargs
        others = out.reshape(-1, 3)[:-1]
        assert (others == others[0]).all() and others[0].tolist() != [255, 0, 255]
    assert to_rgb_uint8(np.full((1, 1), bad, dtype))[0, 0].tolist() == [255, 0, 255]  # grey too
    assert to_rgb_uint8(img, layout="HWC", bgr=True)[1, 2].tolist() == [255, 0, 255]


def test_a_non_finite_alpha_is_not_drawn():
    rgba = np.full((1, 2, 4), 0.5, np.float32)
    rgba[0, 0, 3] = np.nan  # alpha is dropped, so its NaN does not reach the picture
    assert to_rgb_uint8(rgba)[0, 0].tolist() == [128, 128, 128]


def test_overflow_after_mean_std_is_white_not_magenta():
    out = to_rgb_uint8(np.array([[3e38, 0.5]], np.float32), mean=0.0, std=10.0)  # 3e39 overflows float32
    assert out[0, :, 0].tolist() == [255, 5] and out[0, 0].tolist() == [255, 255, 255]


IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
IMAGENET_MEAN_255, IMAGENET_STD_255 = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)


def original_pixels() -> np.ndarray:
    """(16, 20, 3) uint8 photo-like pixels: random, every level 0 and 255 present, and the issue's [230, 120, 81]."""
    rng = np.random.default_rng(7)
    px = rng.integers(0, 256, (16, 20, 3), dtype=np.uint8)
    px[0, 0], px[0, 1], px[0, 2] = (230, 120, 81), (0, 0, 0), (255, 255, 255)
    return px


def normalised_nchw(px: np.ndarray, mean, std, scale: float, how: str = "float64") -> np.ndarray:
    """What a model is fed: (1, 3, H, W) float32 of (px / scale - mean) / std, computed in one of two usual ways.

    Both leave a few values just outside the original range when undone in float32 (green 0 comes back
    as -3e-8 from "float64", 1 + 1e-7 from "reciprocal"): the rounding that used to wash the picture out.
    """
    if how == "float64":  # numpy's default: float64 arithmetic, stored as float32
        x = ((px / scale - np.array(mean)) / np.array(std)).astype(np.float32)
    else:  # float32 throughout, dividing by std as a multiplication by its reciprocal
        x = (px.astype(np.float32) / np.float32(scale) - np.array(mean, np.float32)) * (1 / np.array(std, np.float32))
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


@pytest.mark.parametrize("how", ["float64", "reciprocal"])
@pytest.mark.parametrize(
    "mean, std, scale", [(IMAGENET_MEAN, IMAGENET_STD, 255.0), (IMAGENET_MEAN_255, IMAGENET_STD_255, 1.0)]
)
def test_mean_std_restore_normalised_pixels_within_one_level(mean, std, scale, how):
    px = original_pixels()
    batch = normalised_nchw(px, mean, std, scale, how)
    read = ReadOptions(mean=mean, std=std, layout="CHW")
    img = render_example({"images": batch[0]}, RenderOptions(min_size=0, draw_caption=False), read)
    out = np.asarray(img)
    assert out.shape == px.shape
    assert out[0, 0].tolist() == [230, 120, 81]  # was [243, 188, 168]: the range was guessed as [-1, 1]
    assert np.abs(out.astype(int) - px).max() <= 1


def test_mean_std_restore_normalised_pixels_in_the_notebook(tmp_path):
    px = original_pixels()
    batch = np.concatenate([normalised_nchw(px, IMAGENET_MEAN, IMAGENET_STD, 255.0)] * 2)
    with ShardWriter(tmp_path / "run", step=1, image_layout="CHW") as w:
        w.add(images=batch, labels=np.array([0, 1]))
    examples = open_run(tmp_path / "run").examples()
    img = examples.render(1, mean=IMAGENET_MEAN, std=IMAGENET_STD, min_size=0, draw_caption=False)
    out = np.asarray(img)
    assert out[0, 0].tolist() == [230, 120, 81]
    assert np.abs(out.astype(int) - px).max() <= 1


@pytest.mark.parametrize(
    "shape, layout, hw",
    [
        ((5, 7), None, (5, 7)),
        ((5, 7, 1), None, (5, 7)),
        ((5, 7, 3), None, (5, 7)),
        ((5, 7, 4), None, (5, 7)),
        ((3, 5, 7), None, (5, 7)),
        ((1, 5, 7), None, (5, 7)),
        ((4, 5, 7), None, (5, 7)),
        ((3, 5, 3), None, (3, 5)),  # last dim wins the guess
        ((3, 5, 3), "CHW", (5, 3)),
        ((5, 7), "HW", (5, 7)),
    ],
)
def test_layouts(shape, layout, hw):
    assert to_rgb_uint8(np.zeros(shape, np.uint8), layout=layout).shape == hw + (3,)


def test_chw_and_hwc_give_the_same_picture():
    hwc = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 10
    np.testing.assert_array_equal(to_rgb_uint8(hwc.transpose(2, 0, 1), layout="CHW"), to_rgb_uint8(hwc))


def test_bgr_swaps_channels_and_alpha_is_dropped():
    rgba = np.array([[[10, 20, 30, 40]]], np.uint8)
    assert to_rgb_uint8(rgba)[0, 0].tolist() == [10, 20, 30]
    assert to_rgb_uint8(rgba, bgr=True)[0, 0].tolist() == [30, 20, 10]
    assert to_rgb_uint8(rgba[..., :3].astype(np.float32) / 255, bgr=True)[0, 0].tolist() == [30, 20, 10]


def test_per_channel_mean_std_follow_the_input_channel_order():
    bgr = np.zeros((1, 1, 3), np.float32)
    out = to_rgb_uint8(bgr, bgr=True, mean=[0.0, 0.5, 1.0], std=1.0, value_range=(0, 1))
    assert out[0, 0].tolist() == [255, 128, 0]


def test_pil_image_input():
    img = Image.new("RGB", (4, 2), (1, 2, 3))
    out = to_rgb_uint8(img)
    assert out.shape == (2, 4, 3) and out[0, 0].tolist() == [1, 2, 3]


def test_output_is_a_new_array_even_for_uint8():
    img = np.zeros((2, 2, 3), np.uint8)
    out = to_rgb_uint8(img)
    out[...] = 255
    assert (img == 0).all()


def test_overflow_under_a_huge_range_casts_no_nan(recwarn):
    # 3e38 * 10 overflows to inf, and the scale of a (-1e308, 1e308) range is 0 in float32: inf * 0 is NaN
    out = to_rgb_uint8(np.array([[3e38, 1.0]], np.float32), mean=0.0, std=10.0, value_range=(-1e308, 1e308))
    assert out[0, :, 0].tolist() == [0, 128]
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]
