"""render_grid, thumbnail and render_confusion_matrix."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from exporter.errors import ConfigError, RenderError
from exporter.render import GRID_CELL, colors, render_confusion_matrix, render_grid, thumbnail


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
        ([], {}, RenderError, "render_grid needs at least one image, got none"),
        ([np.zeros((2, 2, 3))], {}, RenderError, "render_grid takes PIL images, item 0 is a ndarray"),
        ([Image.new("RGB", (2, 2))], {"cols": 0}, ConfigError, "cols must be an integer >= 1, got 0"),
        ([Image.new("RGB", (2, 2))], {"cols": True}, ConfigError, "cols must be an integer >= 1, got True"),
        ([Image.new("RGB", (2, 2))], {"pad": -1}, ConfigError, "pad must be an integer >= 0, got -1"),
        ([Image.new("RGB", (2, 2))], {"background": (1, 2)}, ConfigError, r"background must be an \(r, g, b\) tuple"),
    ],
)
def test_grid_errors(images, kwargs, error, match):
    with pytest.raises(error, match=f"^{match}"):
        render_grid(images, **kwargs)


def _picture(w: int, h: int) -> Image.Image:
    rng = np.random.default_rng(w * 1000 + h)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


@pytest.mark.parametrize("size", [(640, 480), (321, 40), (40, 1000), (2000, 2000)])
def test_thumbnail_shrinks_to_the_cell_as_pillow_does_into_a_copy(size):
    img = _picture(*size)
    before = np.asarray(img).copy()
    small = thumbnail(img)
    assert max(small.size) == GRID_CELL == 320 and small is not img
    expected = img.copy()
    expected.thumbnail((GRID_CELL, GRID_CELL))
    assert small.size == expected.size
    np.testing.assert_array_equal(np.asarray(small), np.asarray(expected))
    np.testing.assert_array_equal(np.asarray(img), before)  # the input is left alone


@pytest.mark.parametrize("size", [(320, 320), (10, 300), (1, 1)])
def test_thumbnail_never_enlarges_and_returns_a_picture_that_fits_as_it_is(size):
    img = _picture(*size)
    assert thumbnail(img) is img


def test_thumbnail_cell():
    assert thumbnail(_picture(100, 50), cell=20).size == (20, 10)
    with pytest.raises(ConfigError, match="cell must be an integer >= 1, got 0"):
        thumbnail(_picture(4, 4), cell=0)


def test_confusion_matrix_scales_with_classes():
    small = render_confusion_matrix(np.array([[3, 1], [0, 4]]))
    big = render_confusion_matrix(np.eye(12, dtype=int) * 10, [f"class {i}" for i in range(12)])
    assert small.mode == big.mode == "RGB"
    assert big.width > small.width and big.height > small.height
    # above 40 classes the cells hold no text: the last cell (6 px: 640 // 100, 6 px from the edges) is one colour
    cells = np.asarray(render_confusion_matrix(np.ones((100, 100))))[-12:-6, -12:-6].reshape(-1, 3)
    assert len(np.unique(cells, axis=0)) == 1 and tuple(cells[0]) != colors.WHITE
    # fewer names than classes: the rest are numbered, as everywhere
    numbered = render_confusion_matrix(np.array([[0.5, 0.5], [0.0, 0.0]]), ["only one name", "1"])
    assert (
        render_confusion_matrix(np.array([[0.5, 0.5], [0.0, 0.0]]), ["only one name"]).tobytes() == numbered.tobytes()
    )


@pytest.mark.parametrize(
    "matrix, names, error, match",
    [
        (np.zeros((2, 3)), None, RenderError, "square"),
        (np.zeros((0, 0)), None, RenderError, "square"),
        (np.zeros(4), None, RenderError, "square"),
        (np.array([[1, -1], [0, 1]]), None, RenderError, ">= 0"),
        (np.array([[1, np.nan], [0, 1]]), None, RenderError, "finite"),
        (np.array([["a"]]), None, RenderError, "numeric"),
        (np.eye(2), "ab", ConfigError, "class_names must be a list of strings or None, got 'ab'"),
    ],
)
def test_confusion_matrix_errors(matrix, names, error, match):
    with pytest.raises(error, match=match):
        render_confusion_matrix(matrix, names)
