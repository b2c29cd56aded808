"""Mask blending, colours and label placement."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from exporter.errors import ConfigError
from exporter.render import blend_mask, class_color
from exporter.render.text import get_font, label_image, label_size, paste_label

IMG = np.full((4, 4, 3), 100, np.uint8)
MASK = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 2, 2], [2, 2, 2, 2]])


def test_background_class_is_not_drawn_and_alpha_one_is_the_class_colour():
    out = blend_mask(IMG, MASK, alpha=1.0)
    assert out[0, 0].tolist() == [100, 100, 100]
    assert out[0, 3].tolist() == list(class_color(1))
    assert out[3, 0].tolist() == list(class_color(2))


def test_background_none_draws_every_class():
    out = blend_mask(IMG, MASK, alpha=1.0, background=None)
    assert out[0, 0].tolist() == list(class_color(0))


def test_half_alpha_blends():
    out = blend_mask(IMG, MASK, alpha=0.5)
    r, g, b = class_color(1)
    assert out[0, 3].tolist() == [(100 + r + 1) // 2, (100 + g + 1) // 2, (100 + b + 1) // 2]


def test_outline_paints_boundaries_opaque():
    out = blend_mask(IMG, MASK, alpha=0.0, outline=True)
    assert out[1, 2].tolist() == list(class_color(1))  # next to class 2 below
    assert out[2, 0].tolist() == list(class_color(2))  # next to background above
    assert out[0, 0].tolist() == [100, 100, 100]


def test_smaller_mask_is_resized_nearest():
    out = blend_mask(np.zeros((4, 4, 3), np.uint8), np.array([[0, 1], [2, 0]]), alpha=1.0)
    assert (out[:2, 2:] == class_color(1)).all()
    assert (out[2:, :2] == class_color(2)).all()
    assert (out[:2, :2] == 0).all()


def test_inputs_are_not_modified():
    img, mask = IMG.copy(), MASK.copy()
    blend_mask(img, mask, alpha=1.0, outline=True)
    np.testing.assert_array_equal(img, IMG)
    np.testing.assert_array_equal(mask, MASK)


@pytest.mark.parametrize("alpha", [-0.1, 1.1, "x"])
def test_bad_alpha(alpha):
    with pytest.raises(ConfigError, match="alpha"):
        blend_mask(IMG, MASK, alpha=alpha)


def test_fonts_and_labels_are_cached():
    assert get_font(13) is get_font(13)
    assert label_image("cat 0.93", 13, (0, 0, 0), (255, 0, 0)) is label_image("cat 0.93", 13, (0, 0, 0), (255, 0, 0))
    assert label_image("cat 0.93", 13, (0, 0, 0), (255, 0, 0)).size == label_size("cat 0.93", 13)


@pytest.mark.parametrize("x, y", [(-50, -50), (1000, 1000), (90, 5), (-3, 90)])
def test_labels_stay_inside_the_image(x, y):
    canvas = Image.new("RGB", (100, 100))
    x0, y0, x1, y1 = paste_label(canvas, "person 0.99", x, y, 12, (255, 255, 255), (255, 0, 0))
    assert 0 <= x0 < x1 <= 100 and 0 <= y0 < y1 <= 100


def test_label_wider_than_image_is_cut_not_moved_out():
    canvas = Image.new("RGB", (20, 10))
    assert paste_label(canvas, "a very long label", 5, 5, 12, (255, 255, 255), (255, 0, 0)) == (0, 0, 20, 10)
