"""to_rgb_uint8: exact values for each dtype, range rule, layout and channel handling."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from exporter.render import to_rgb_uint8


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
        # NaN is black, infinities go to the ends of the range
        (np.array([np.nan, np.inf, -np.inf, 0.5]), {}, [0, 255, 0, 128]),
        (np.array([np.nan, np.nan]), {}, [0, 0]),
        (np.array([4.0, 4.0]), {"value_range": "minmax"}, [0, 0]),  # constant: black, no division by zero
        # mean/std undo a normalisation before the range is chosen
        (np.array([-2.0, 0.0, 2.0]), {"mean": 0.5, "std": 0.25}, [0, 128, 255]),
        (np.array([-1.0, 0.0, 1.0], np.float32), {"mean": [127.5], "std": [127.5]}, [0, 128, 255]),
    ],
)
def test_values(values, kwargs, expected):
    out = to_rgb_uint8(values.reshape(1, -1), **kwargs)
    assert out[0, :, 0].tolist() == expected
    assert (out[..., 0] == out[..., 2]).all()  # grey replicated


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
