"""Class colours: enough distinct ones for COCO, a pure function of the id, readable text, reserved colours apart."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from exporter.render import blend_mask, class_color, colors
from exporter.render.colors import (
    PALETTE,
    RESERVED,
    class_colors,
    contrast_ratio,
    generate_palette,
    text_color,
    to_oklab,
)

#: Smallest OKLab distance between any two of the first 80 class colours (the old 20-colour list's closest
#: pair was 0.072 apart; 0.02 is about the smallest difference one sees between two patches side by side).
MIN_DISTANCE_80 = 0.07
#: Smallest OKLab distance from a class colour to a reserved one (TP, FP, missed, gt, unknown, NaN...).
MIN_RESERVED_DISTANCE = 0.06
#: WCAG AA for normal text.
MIN_CONTRAST = 4.5


def pairwise(lab: np.ndarray) -> np.ndarray:
    d = np.linalg.norm(lab[:, None] - lab[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    return d


def test_the_committed_palette_is_what_the_documented_algorithm_makes():
    assert generate_palette() == PALETTE
    assert len(PALETTE) == 128 and len(set(PALETTE)) == 128


@pytest.mark.parametrize("n", [80, 91])  # COCO's 80 classes; its ids, which run to 90
def test_coco_classes_get_distinct_colours_far_apart(n):
    ids = range(n)
    got = [class_color(i) for i in ids]
    assert len(set(got)) == n
    assert pairwise(to_oklab(got)).min() >= MIN_DISTANCE_80 - (0.005 if n > 80 else 0)


def test_class_colours_keep_away_from_the_reserved_colours():
    ids = [*range(128), -1, -7, 128, 1000, 10**9, 2**63 - 1, -(2**63), 10**30]
    lab = to_oklab([class_color(i) for i in ids])
    reserved = to_oklab(RESERVED)
    assert np.linalg.norm(lab[:, None] - reserved[None], axis=-1).min() >= MIN_RESERVED_DISTANCE
    assert set(RESERVED) >= {colors.TP, colors.FP, colors.MISSED, colors.GT, colors.UNKNOWN, colors.NONFINITE}


def test_a_class_colour_is_a_pure_function_of_the_id():
    assert class_color(0) == (60, 90, 255) and class_color(1) == (45, 135, 45)  # the table, not a run's order
    assert class_color(-1) == (10, 178, 113) and class_color(128) == (130, 224, 140)  # hashed, fixed forever
    assert class_color(np.int64(5)) == class_color(5) == PALETTE[5]
    # another process (another hash seed, another cache) gives the same colours
    code = "from exporter.render import class_color; print([class_color(i) for i in (3, 79, -2, 500, 10**12)])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == str([class_color(i) for i in (3, 79, -2, 500, 10**12)])


def test_ids_beyond_the_table_get_colours_of_their_own():
    beyond = [class_color(i) for i in [*range(128, 328), *range(-200, 0)]]
    assert len(set(beyond)) >= 395  # 400 hashed colours, almost all different
    assert not set(beyond) & set(PALETTE[:80])
    lab = to_oklab(beyond)
    assert ((lab[:, 0] >= 0.55) & (lab[:, 0] <= 0.92)).all()  # the palette's lightness band


def test_text_on_every_class_colour_is_readable():
    ids = [*range(128), *range(-50, 0), *range(128, 178)]
    worst = min(contrast_ratio(text_color(class_color(i)), class_color(i)) for i in ids)
    assert worst >= MIN_CONTRAST
    for c in (colors.TP, colors.FP, colors.MISSED, colors.GT, colors.UNKNOWN, colors.NONFINITE):
        assert contrast_ratio(text_color(c), c) >= MIN_CONTRAST
    assert text_color(colors.WHITE) == colors.BLACK and text_color(colors.BLACK) == colors.WHITE


def test_class_colors_is_class_color_for_every_element():
    ids = np.array([[0, 1, 127, 128], [-1, 10**9, 5, 128]])
    expected = np.array([[class_color(int(i)) for i in row] for row in ids], np.uint8)
    np.testing.assert_array_equal(class_colors(ids), expected)
    assert class_colors(np.zeros((0,), np.int64)).shape == (0, 3)


def test_masks_use_the_class_colours_beyond_the_table_too():
    out = blend_mask(np.zeros((1, 3, 3), np.uint8), np.array([[3, 200, -4]]), alpha=1.0)
    assert [tuple(p) for p in out[0].tolist()] == [class_color(3), class_color(200), class_color(-4)]
