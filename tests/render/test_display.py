"""Text laid out at the size it is shown at: grid cells, comparisons and TensorBoard cards keep readable labels.

The measure is the ink of the caption text in the output picture: the caption strip is a flat grey
(a prediction without a true label to compare with) with white text, so the text's rows are found
pixel by pixel; the caption "pred: dog 0.93" inks from the top of "d" to the bottom of "p". An 11 px
font, the smallest the renderer uses where a picture is shown, inks 10 rows for it (12 px: 12 rows).
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from exporter import ShardWriter, open_run
from exporter.examples import compare
from exporter.render import (
    GRID_CELL,
    ReadOptions,
    RenderOptions,
    class_color,
    colors,
    render_example,
    render_grid,
    thumbnail,
)
from exporter.render.colors import text_color
from exporter.render.compose import TENSORBOARD_CARD
from exporter.render.text import label_image

#: Ink rows of one caption line at the smallest font used where a picture is shown (11 px).
MIN_INK = 10
SIZES = {"huge": (2000, 3000), "tiny": (16, 16)}  # (H, W)
CLASSES = ["dog", "cat"]


def example(h: int, w: int) -> dict[str, np.ndarray]:
    """A black picture with one predicted box of class 0 and a predicted class: the caption "pred: dog 0.93"."""
    return {
        "images": np.zeros((h, w, 3), np.uint8),
        "boxes": np.array([[0.25, 0.25, 0.75, 0.75]], np.float32),
        "box_labels": np.array([0]),
        "box_scores": np.array([0.93], np.float32),
        "pred_labels": np.int64(0),
        "pred_scores": np.float32(0.93),
    }


def strips(img: Image.Image, color=colors.NEUTRAL, tolerance: int = 40) -> list[tuple[int, int, int, int]]:
    """(x0, y0, x1, y1) of every caption strip of ``color`` in ``img`` (one per tile of a sheet)."""
    a = np.asarray(img).astype(int)
    mask = np.abs(a - np.array(color)).sum(axis=-1) < tolerance
    found = []
    for r0, r1 in _runs(mask.any(axis=1)):
        for c0, c1 in _runs(mask[r0:r1].any(axis=0)):
            sub = mask[r0:r1, c0:c1]
            rows, cols = np.flatnonzero(sub.any(axis=1)), np.flatnonzero(sub.any(axis=0))
            if len(rows) >= 4 and len(cols) >= 8:  # a strip, not a stray pixel of a resampled edge
                found.append((c0 + cols[0], r0 + rows[0], c0 + cols[-1] + 1, r0 + rows[-1] + 1))
    return found


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each run of True."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], flags.astype(int), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def caption_ink(img: Image.Image, strip: tuple[int, int, int, int], color=colors.NEUTRAL) -> int:
    """The height of the tallest line of text in a caption strip: rows holding pixels much brighter than it."""
    x0, y0, x1, y1 = strip
    a = np.asarray(img)[y0:y1, x0:x1].astype(int)
    ink = (a.sum(axis=-1) - sum(color)) > 150  # white text, antialiased edges included from half-way
    return max(end - start for start, end in _runs(ink.any(axis=1)))


def ink_heights(img: Image.Image) -> list[int]:
    found = strips(img)
    assert found, "no caption strip found"
    return [caption_ink(img, s) for s in found]


def fit_into(img: Image.Image, box: tuple[int, int]) -> Image.Image:
    """``img`` scaled (up or down) to fit ``box``, as TensorBoard's ``object-fit: contain`` shows it."""
    k = min(box[0] / img.width, box[1] / img.height)
    return img.resize((max(1, round(img.width * k)), max(1, round(img.height * k))), Image.Resampling.BICUBIC)


CELL = RenderOptions(display_size=GRID_CELL)
READ = ReadOptions(class_names=CLASSES)


@pytest.mark.parametrize("name", sorted(SIZES))
def test_a_picture_drawn_for_a_grid_cell_fits_it_with_readable_text(name):
    img = render_example(example(*SIZES[name]), CELL, READ)
    assert max(img.size) <= GRID_CELL
    (height,) = ink_heights(img)
    assert height >= MIN_INK
    assert height == 12  # the 12 px font of a 320 px display, whatever the source size


def test_grid_tiles_of_very_different_sources_get_the_same_label_sizes():
    tiles = [render_example(example(*SIZES[n]), CELL, READ) for n in ("huge", "tiny")]
    sheet = render_grid(tiles)
    heights = ink_heights(sheet)
    assert len(heights) == 2 and heights[0] == heights[1] >= MIN_INK
    # box labels too: the same label image, pixel for pixel, on both tiles
    color = class_color(0)
    label = label_image("dog 0.93", 12, text_color(color), color)
    for tile in tiles:
        a, p = np.asarray(tile), np.asarray(label)
        hits = [
            (y, x)
            for y, x in np.argwhere((a[: -p.shape[0] + 1, : -p.shape[1] + 1] == p[0, 0]).all(axis=-1))
            if (a[y : y + p.shape[0], x : x + p.shape[1]] == p).all()
        ]
        assert hits, "the box label is not the 12 px one"


@pytest.mark.parametrize("name", sorted(SIZES))
def test_the_export_picture_reads_in_a_tensorboard_card_and_in_the_step_grid(name):
    """display_size=None: the export keeps the pixels; text is sized for TensorBoard's card and the step grid."""
    h, w = SIZES[name]
    img = render_example(example(h, w), RenderOptions(), READ)
    assert img.width == max(w, 128)  # the pixels are kept (small ones upscaled, as ever)
    for shown in (fit_into(img, TENSORBOARD_CARD), thumbnail(img)):
        assert min(ink_heights(shown)) >= MIN_INK, shown.size
    assert min(ink_heights(fit_into(img, (350, 10_000)))) >= MIN_INK  # the older Images dashboard: 350 px wide


def test_small_pictures_keep_the_upscaling_rule_up_to_the_display_size():
    tiny = {"images": np.zeros((16, 16, 3), np.uint8)}
    assert render_example(tiny, CELL).size == (128, 128)  # min_size 128: x8, as without a display size
    assert render_example(tiny, RenderOptions(display_size=100)).size == (96, 96)  # x6: x8 would not fit
    assert render_example(tiny, RenderOptions(display_size=1000, min_size=512)).size == (512, 512)


@pytest.mark.parametrize("size", [(2000, 3000), (3000, 2000), (700, 90), (401, 333)])
def test_a_big_picture_is_shrunk_to_the_display_keeping_its_aspect_and_its_boxes(size):
    h, w = size
    img = np.zeros((h, w, 3), np.uint8)
    img[h // 4 : h // 2, w // 4 : w // 2] = 255  # a white block, boxed exactly
    box = np.array([[w // 4, h // 4, w // 2, h // 2]], np.float32)
    arrays = {"images": img, "boxes": box, "box_labels": np.array([1])}
    out = render_example(arrays, RenderOptions(display_size=200), ReadOptions(box_format="xyxy", box_coords="pixels"))
    assert max(out.size) == 200
    assert abs(out.width / out.height - w / h) <= max(w / h, h / w) / min(out.size)  # aspect kept to the pixel
    a = np.asarray(out).astype(int)
    color = np.array(class_color(1))
    outline = np.abs(a - color).sum(axis=-1) == 0
    ys, xs = np.nonzero(outline)
    sx, sy = out.width / w, out.height / h
    assert abs(xs.min() - w // 4 * sx) <= 1 and abs(ys.max() + 1 - h // 2 * sy) <= 1  # the box sits on the block


def test_side_by_side_fits_the_display_too():
    arrays = dict(example(2000, 3000), gt_boxes=np.array([[0.2, 0.2, 0.6, 0.6]], np.float32))
    img = render_example(arrays, RenderOptions(display_size=GRID_CELL, side_by_side=True, topk=0), READ)
    assert max(img.size) <= GRID_CELL
    assert ink_heights(img) == [12]


def test_a_display_too_small_for_the_text_still_draws():
    arrays = dict(example(300, 300), probs=np.array([0.6, 0.4], np.float32))
    img = render_example(arrays, RenderOptions(display_size=32, topk=2), READ)
    assert img.width <= 32 and img.height > 32  # the text does not shrink below readable; the picture gets taller


# --- the notebook: grid() and compare() on real runs ---------------------------------------------------------


@pytest.fixture(scope="module")
def big_and_small(tmp_path_factory):
    """Two runs of one step: "huge" of 3000 x 2000 images, "tiny" of 16 x 16, the same ids and results."""
    root = tmp_path_factory.mktemp("display")
    for name, (h, w) in SIZES.items():
        one = example(h, w)
        with ShardWriter(root / name, step=1, class_names=CLASSES, image_layout="HWC") as writer:
            writer.add(
                ids=np.array([7, 8]),
                **{k: np.stack([v, v]) for k, v in one.items() if k != "images"},
                images=np.stack([one["images"]] * 2),
            )
    return {name: open_run(root / name) for name in SIZES}


def test_notebook_grid_has_readable_text_whatever_the_image_size(big_and_small):
    heights = {}
    for name, run in big_and_small.items():
        sheet = run.examples().grid()
        assert sheet.height <= GRID_CELL + 8  # one row of cells of at most GRID_CELL, 4 px padding
        heights[name] = ink_heights(sheet)
        assert len(heights[name]) == 2
    assert set(heights["huge"]) == set(heights["tiny"]) == {13}  # "#7 | pred: dog 0.93": "|" inks 13 rows at 12 px


def test_notebook_compare_has_readable_text_of_one_size_on_both_sides(big_and_small):
    sheet = compare(big_and_small["huge"].examples(), big_and_small["tiny"].examples())
    heights = ink_heights(sheet)
    assert len(heights) == 4 and set(heights) == {13}  # "#7 | pred: dog 0.93" at 12 px, as in grid()


def test_notebook_grid_takes_another_display_size(big_and_small):
    sheet = big_and_small["huge"].examples().grid(display_size=160, max_examples=1)
    assert max(sheet.size) <= 160 + 8 and ink_heights(sheet) == [11]  # "#7 | pred: ..." at 11 px, the smallest
