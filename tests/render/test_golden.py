"""Golden images: the renderer's output compared pixel for pixel with PNGs under tests/golden/.

Regenerate after an intended change with::

    SUMMARY_EXPORTER_REGEN_GOLDEN=1 python -m pytest tests/render/test_golden.py

and look at the PNGs before committing them. Font rasterisation can change
between Pillow versions, so the images are only comparable with the Pillow
major.minor in tests/golden/PILLOW_VERSION, which the ``dev`` extra pins: with
another Pillow the tests fail (they never skip, so a Pillow upgrade cannot
silently switch them off) and say how to regenerate.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import PIL
import pytest
from PIL import Image, ImageChops

from exporter.render import ReadOptions, RenderOptions, render_confusion_matrix, render_example, render_grid

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
PYPROJECT = GOLDEN.parent.parent / "pyproject.toml"
REGEN = os.environ.get("SUMMARY_EXPORTER_REGEN_GOLDEN") == "1"
REGEN_COMMAND = "SUMMARY_EXPORTER_REGEN_GOLDEN=1 python -m pytest tests/render/test_golden.py"
PILLOW = ".".join(PIL.__version__.split(".")[:2])
_version_file = GOLDEN / "PILLOW_VERSION"
RECORDED = _version_file.read_text().strip() if _version_file.exists() else None

_written: set[str] = set()


def check_pillow() -> None:
    """Fail, saying what to do, when this Pillow is not the one the golden images were made with."""
    if REGEN or RECORDED == PILLOW:
        return
    pytest.fail(
        f"the golden images in {GOLDEN} were made with Pillow {RECORDED}, but this is Pillow {PIL.__version__}: "
        "font rasterisation may differ, so they cannot be compared. Install the Pillow the dev extra pins "
        f"(pip install 'pillow=={RECORDED}.*'), or, to move to this Pillow, regenerate them with "
        f"`{REGEN_COMMAND}`, look at the PNGs, and change the dev extra's pin in pyproject.toml to "
        f"pillow=={PILLOW}.*",
        pytrace=False,
    )


def test_pillow_is_the_one_the_golden_images_were_made_with():
    check_pillow()


def test_the_dev_extra_pins_that_pillow():
    assert f'"pillow=={RECORDED}.*"' in PYPROJECT.read_text(), (
        f"tests/golden/PILLOW_VERSION says {RECORDED}: pin the same Pillow in the dev extra of pyproject.toml"
    )


def check_golden(name: str, img: Image.Image) -> None:
    """Compare with tests/golden/<name>.png; in regen mode write it (once per run, later calls compare)."""
    check_pillow()
    path = GOLDEN / f"{name}.png"
    if REGEN and name not in _written:
        GOLDEN.mkdir(exist_ok=True)
        img.save(path, optimize=True)
        _version_file.write_text(PILLOW + "\n")
        _written.add(name)
        return
    if not path.exists():
        pytest.fail(f"no golden image {path}; create it with `{REGEN_COMMAND}`")
    with Image.open(path) as f:
        expected = f.convert("RGB")
    assert img.mode == "RGB"
    assert img.size == expected.size, f"{name}: size {img.size} but the golden image is {expected.size}"
    diff = ImageChops.difference(img, expected).getbbox()
    assert diff is None, (
        f"{name}: differs from {path} inside {diff}; if the change is intended, regenerate with "
        f"`{REGEN_COMMAND}` and look at the image"
    )


H, W = 48, 64  # x values are whole pixels and y values multiples of 3, so every format is exact in float
CLASSES = ["background", "cat", "dog", "bird", "car"]


def scene() -> np.ndarray:
    """A deterministic 48x64 RGB test picture: a gradient with two flat shapes."""
    y, x = np.mgrid[0:H, 0:W]
    img = np.stack([40 + x * 2, 60 + y * 2, 160 - x], axis=-1).astype(np.uint8)
    img[6:30, 8:40] = (200, 160, 90)
    img[27:42, 34:58] = (70, 90, 150)
    return img


def express(xyxy: list[list[float]], box_format: str, box_coords: str) -> np.ndarray:
    """Pixel xyxy boxes written in another format and coord mode (the inverse of to_pixel_xyxy)."""
    b = np.array(xyxy, dtype=np.float64)
    x1, y1, x2, y2 = b.T
    if box_format == "yxyx":
        out = np.stack([y1, x1, y2, x2], 1)
    elif box_format == "xyxy":
        out = b
    elif box_format == "xywh":
        out = np.stack([x1, y1, x2 - x1, y2 - y1], 1)
    else:
        out = np.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], 1)
    if box_coords == "normalized":
        scale = [H, W, H, W] if box_format == "yxyx" else [W, H, W, H]
        out = out / np.array(scale, dtype=np.float64)
    return out.astype(np.float32)


PRED = [[8, 6, 40, 30], [32, 24, 60, 42]]
GT = [[10, 9, 40, 33]]


@pytest.mark.parametrize("box_coords", ["normalized", "pixels"])
@pytest.mark.parametrize("box_format", ["yxyx", "xyxy", "xywh", "cxcywh"])
def test_every_box_format_draws_the_same_picture(box_format, box_coords):
    example = {
        "images": scene(),
        "boxes": express(PRED, box_format, box_coords),
        "box_labels": np.array([1, 2]),
        "box_scores": np.array([0.93, 0.61], np.float32),
        "gt_boxes": express(GT, box_format, box_coords),
        "gt_box_labels": np.array([1]),
    }
    read = ReadOptions(class_names=CLASSES, box_format=box_format, box_coords=box_coords)
    check_golden("boxes", render_example(example, RenderOptions(), read))  # one file for all 8 ways


def digit() -> np.ndarray:
    """A 28x28 float 'seven' in [0, 1], MNIST-like."""
    img = np.zeros((28, 28), np.float32)
    img[6:9, 7:21] = 1.0
    for i in range(14):
        img[9 + i, 18 - i // 2 : 21 - i // 2] = 0.8
    return img


@pytest.mark.parametrize(
    "name, pred, probs",
    [
        ("caption_right", 7, [0.01, 0.02, 0.01, 0.01, 0.01, 0.01, 0.01, 0.9, 0.01, 0.01]),
        ("caption_wrong", 1, [0.01, 0.6, 0.01, 0.01, 0.01, 0.01, 0.01, 0.33, 0.01, 0.0]),
    ],
)
def test_classification_caption(name, pred, probs):
    example = {
        "images": digit(),
        "labels": np.int64(7),
        "pred_labels": np.int64(pred),
        "pred_scores": np.float32(max(probs)),
        "probs": np.array(probs, np.float32),
        "ids": np.int64(1234),
    }
    read = ReadOptions(class_names=[str(i) for i in range(10)])
    check_golden(name, render_example(example, RenderOptions(topk=3), read))


def class_map() -> np.ndarray:
    """A 24x32 class map (half the image size): background, a cat square, a dog square, a bird strip."""
    m = np.zeros((24, 32), np.int32)
    m[3:15, 4:20] = 1
    m[13:21, 17:29] = 2
    m[0:3, :] = 3
    return m


def test_masks_with_outline():
    example = {"images": scene(), "masks": class_map()}
    check_golden("masks_outline", render_example(example, RenderOptions(mask_outline=True, mask_alpha=0.4)))


def test_side_by_side():
    gt_mask = class_map()
    pred_mask = np.roll(gt_mask, 2, axis=1)
    example = {
        "images": scene(),
        "boxes": express(PRED, "yxyx", "normalized"),
        "box_labels": np.array([1, 2]),
        "box_scores": np.array([0.93, 0.61], np.float32),
        "gt_boxes": express(GT + [[34, 27, 58, 42]], "yxyx", "normalized"),
        "gt_box_labels": np.array([1, 4]),
        "masks": pred_mask,
        "gt_masks": gt_mask,
    }
    check_golden(
        "side_by_side", render_example(example, RenderOptions(side_by_side=True), ReadOptions(class_names=CLASSES))
    )


def test_gt_mask_outline_over_the_predicted_fill():
    gt_mask = class_map()
    example = {
        "images": scene(),
        "masks": np.roll(gt_mask, 2, axis=1),
        "gt_masks": gt_mask,
        "gt_boxes": express([[34, 27, 58, 42]], "xyxy", "pixels"),
        "gt_box_labels": np.array([4]),
    }
    read = ReadOptions(class_names=CLASSES, box_format="xyxy", box_coords="pixels")
    check_golden("gt_mask_outline", render_example(example, RenderOptions(mask_alpha=0.4), read))


def match_example() -> dict[str, np.ndarray]:
    """Two predictions on one gt box (one is a TP, one a FP), one prediction on nothing, one gt box missed."""
    return {
        "images": scene(),
        "boxes": express([[8, 6, 40, 30], [9, 6, 40, 33], [44, 3, 62, 15]], "xyxy", "pixels"),
        "box_labels": np.array([1, 1, 2]),
        "box_scores": np.array([0.95, 0.7, 0.55], np.float32),
        "gt_boxes": express([[10, 9, 40, 33], [34, 27, 58, 42]], "xyxy", "pixels"),
        "gt_box_labels": np.array([1, 4]),
    }


def test_true_and_false_positives():
    read = ReadOptions(class_names=CLASSES, box_format="xyxy", box_coords="pixels")
    check_golden("match", render_example(match_example(), RenderOptions(match_iou=0.5), read))


def test_the_legacy_read_keywords_draw_the_same_picture():
    with pytest.warns(DeprecationWarning, match="ReadOptions"):
        legacy = RenderOptions(class_names=CLASSES, box_format="xyxy", box_coords="pixels", match_iou=0.5)
    check_golden("match", render_example(match_example(), legacy))


def test_grid():
    style, read = RenderOptions(min_size=64), ReadOptions(class_names=CLASSES)
    cells = [
        render_example({"images": scene(), "labels": np.int64(1), "pred_labels": np.int64(1)}, style, read),
        render_example({"images": digit()}, style, read),
        render_example({"images": scene()[::2, ::2], "masks": class_map()}, style, read),
    ]
    check_golden("grid", render_grid(cells))


def test_confusion_matrix():
    matrix = np.array([[50, 2, 3, 0], [4, 40, 6, 1], [0, 5, 45, 2], [1, 1, 0, 60]])
    check_golden("confusion_matrix", render_confusion_matrix(matrix, ["cat", "dog", "bird", "airplane"]))


def ellipse(cx: float, cy: float, rx: float, ry: float, h: int = H, w: int = W) -> np.ndarray:
    """An (h, w) bool ellipse mask, in pixels of an h x w image."""
    y, x = np.mgrid[0:h, 0:w]
    return ((x + 0.5 - cx) / rx) ** 2 + ((y + 0.5 - cy) / ry) ** 2 <= 1


def test_instance_masks():
    """Predicted instances blended and outlined, gt instances dashed; a box under the threshold and padding not."""
    half = np.stack(  # predicted masks at half the image's resolution: resized nearest to it
        [ellipse(12, 9, 8, 6, H // 2, W // 2), ellipse(23, 17, 6, 4, H // 2, W // 2),
         ellipse(5, 20, 3, 3, H // 2, W // 2), np.ones((H // 2, W // 2), bool)]
    )
    example = {
        "images": scene(),
        "boxes": express([[8, 6, 40, 30], [34, 24, 58, 42], [4, 33, 16, 45], [0, 0, 64, 48]], "xyxy", "pixels"),
        "box_labels": np.array([1, 2, 3, 4]),
        "box_scores": np.array([0.93, 0.61, 0.2, 0.99], np.float32),  # bird: under the threshold
        "num_boxes": np.int64(3),  # the fourth row is padding, whatever it holds
        "instance_masks": half,
        "gt_boxes": express([[12, 9, 42, 33], [44, 3, 62, 15]], "xyxy", "pixels"),
        "gt_box_labels": np.array([1, 4]),
        "gt_instance_masks": np.stack([ellipse(27, 21, 14, 11), ellipse(53, 9, 8, 5)]),
    }
    read = ReadOptions(class_names=CLASSES, box_format="xyxy", box_coords="pixels")
    check_golden("instance_masks", render_example(example, RenderOptions(score_threshold=0.3), read))


def test_keypoints():
    """A predicted skeleton over a true one: a NaN keypoint (no hand, no arm) and a low-score one (no foot)."""
    pose = np.array([[24, 9], [24, 14], [15, 18], [33, 18], [24, 24], [18, 33], [30, 33]], np.float64)
    edges = [[0, 1], [1, 2], [1, 3], [1, 4], [4, 5], [4, 6]]  # head, neck, hands, hip, feet
    predicted = pose + [3, 1]
    predicted[3] = np.nan  # right hand: no keypoint
    scores = np.full(len(pose), 0.9)
    scores[6] = 0.1  # right foot: under the threshold
    example = {
        "images": scene(),
        "boxes": express([[12, 6, 40, 42]], "xyxy", "normalized"),
        "box_labels": np.array([1]),
        "box_scores": np.array([0.88], np.float32),
        "keypoints": (predicted / [W, H])[None].astype(np.float32),  # normalized, as the boxes
        "keypoint_scores": scores[None].astype(np.float32),
        "gt_boxes": express([[13, 6, 36, 39]], "xyxy", "normalized"),
        "gt_box_labels": np.array([1]),
        "gt_keypoints": (pose / [W, H])[None].astype(np.float32),
    }
    read = ReadOptions(class_names=CLASSES, box_format="xyxy", box_coords="normalized", keypoint_edges=edges)
    check_golden("keypoints", render_example(example, RenderOptions(score_threshold=0.3), read))
