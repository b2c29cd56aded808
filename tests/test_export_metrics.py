"""Detection and segmentation metrics through the whole export, read back with TensorBoard's own reader.

Detection runs have no classification ``labels``: boxes only, written in the box format each case
declares, in several shards per step (so per-shard matching is merged across shards and workers).
The reference is pycocotools' COCOeval on the very numbers stored in the shards, converted to pixels
here with plain arithmetic (not with the exporter's converter).
"""

from __future__ import annotations

import numpy as np
import pytest
from metrics.test_detection import TOLERANCE, coco_reference, image, jitter
from tbutil import read_events

from exporter import ShardWriter
from exporter.api import ExportOptions, export
from exporter.cli import main
from exporter.metrics.detection import STAT_NAMES
from exporter.options import read_options_for
from exporter.render import ReadOptions
from exporter.schema import ShardMeta

W, H = 200, 160
CLASSES = ["cat", "dog", "bird", "fish"]  # "fish" is only ever predicted: its AP is -1 and is not written
STEPS = (1000, 2000)


# --------------------------------------------------------------------------- a generated detector run


def boxes_in_image(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` pixel xyxy boxes inside the image, 4 to 150 px across: small, medium and large ones."""
    w = np.exp(rng.uniform(np.log(4), np.log(150), n))
    h = np.clip(w * np.exp(rng.normal(0, 0.3, n)), 3, H - 2)
    x1, y1 = rng.uniform(0, W - w), rng.uniform(0, H - h)
    return np.stack([x1, y1, x1 + w, y1 + h], axis=1)


def detector_images(step: int, n: int = 9) -> list[dict]:
    """One step's images as ``DetectionEvaluator.add_image`` keywords: near-misses, doubles, false alarms."""
    rng = np.random.default_rng(step)
    images = []
    for i in range(n):
        gt = boxes_in_image(rng, int(rng.integers(0 if i % 4 == 3 else 1, 6)))
        if i == 0:
            gt = np.concatenate([gt, [[20.0, 15.0, 150.0, 135.0]]])  # at least one large object
        gt_labels = rng.integers(0, 3, len(gt))
        found = np.flatnonzero(rng.random(len(gt)) < 0.8)
        pred = np.concatenate([jitter(rng, gt[found], 0.1), boxes_in_image(rng, int(rng.integers(0, 3)))])
        pred = np.clip(pred, 0, [W, H, W, H])
        labels = np.concatenate([gt_labels[found], rng.integers(0, 4, len(pred) - len(found))])
        scores = rng.random(len(pred))
        if step == STEPS[1]:
            scores = np.round(scores, 1)  # ties across shards: the merge must keep COCOeval's image order
        images.append(image(pred, labels, scores, gt, gt_labels))
    return images


def encode(xyxy: np.ndarray, box_format: str, box_coords: str) -> np.ndarray:
    """Pixel xyxy boxes written in a shard's format, as float32 (what a dump holds)."""
    x1, y1, x2, y2 = xyxy.T
    if box_coords == "normalized":
        x1, x2, y1, y2 = x1 / W, x2 / W, y1 / H, y2 / H
    columns = {
        "xyxy": (x1, y1, x2, y2),
        "yxyx": (y1, x1, y2, x2),
        "xywh": (x1, y1, x2 - x1, y2 - y1),
        "cxcywh": ((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1),
    }[box_format]
    return np.stack(columns, axis=1).astype(np.float32).reshape(-1, 4)


def decode(stored: np.ndarray, box_format: str, box_coords: str) -> np.ndarray:
    """The stored float32 boxes back in pixel xyxy (float64), by hand: the reference's input."""
    b = stored.astype(np.float64)
    a0, a1, a2, a3 = b.T
    x1, y1, x2, y2 = {
        "xyxy": (a0, a1, a2, a3),
        "yxyx": (a1, a0, a3, a2),
        "xywh": (a0, a1, a0 + a2, a1 + a3),
        "cxcywh": (a0 - a2 / 2, a1 - a3 / 2, a0 + a2 / 2, a1 + a3 / 2),
    }[box_format]
    if box_coords == "normalized":
        x1, x2, y1, y2 = x1 * W, x2 * W, y1 * H, y2 * H
    return np.stack([x1, y1, x2, y2], axis=1).reshape(-1, 4)


def write_detector_run(root, box_format: str, box_coords: str, *, masks: bool = False) -> dict[int, list[dict]]:
    """Write the run (ragged per-image lists, shards of 4); return per step what the reference sees."""
    expected = {}
    for step in STEPS:
        images = detector_images(step)
        seen = []
        with ShardWriter(root, step=step, class_names=CLASSES, box_format=box_format, box_coords=box_coords,
                         examples_per_shard=4) as w:
            for im in images:
                stored, gt_stored = (encode(im[k], box_format, box_coords) for k in ("pred_xyxy", "gt_xyxy"))
                fields = dict(
                    images=np.zeros((1, H, W, 3), np.uint8),
                    boxes=[stored], box_labels=[im["pred_labels"]], box_scores=[im["pred_scores"].astype(np.float32)],
                    gt_boxes=[gt_stored], gt_box_labels=[im["gt_labels"]],
                )
                ref = dict(im, pred_xyxy=decode(stored, box_format, box_coords),
                           gt_xyxy=decode(gt_stored, box_format, box_coords),
                           pred_scores=im["pred_scores"].astype(np.float32).astype(np.float64))
                if masks:
                    pm, gm = box_masks(ref["pred_xyxy"]), box_masks(ref["gt_xyxy"])
                    fields.update(instance_masks=[pm], gt_instance_masks=[gm])
                    ref.update(pred_masks=pm, gt_masks=gm)
                w.add(**fields)
                seen.append(ref)
        expected[step] = seen
    return expected


def box_masks(xyxy: np.ndarray) -> np.ndarray:
    """Instance masks: each box's pixels, minus a corner notch so masks are not their boxes."""
    yy, xx = np.mgrid[0:H, 0:W] + 0.5
    out = np.zeros((len(xyxy), H, W), bool)
    for k, (x1, y1, x2, y2) in enumerate(xyxy):
        out[k] = (xx >= x1) & (xx < x2) & (yy >= y1) & (yy < y2) & ~((xx < (x1 + x2) / 2) & (yy < (y1 + y2) / 2))
    return out


def scalars(acc) -> dict[str, dict[int, float]]:
    return {t: {e.step: e.value for e in acc.Scalars(t)} for t in acc.Tags()["scalars"]}


# --------------------------------------------------------------------------- detection


@pytest.mark.parametrize(
    "box_format, box_coords, workers",
    [("yxyx", "normalized", 1), ("xywh", "pixels", 2), ("cxcywh", "normalized", 2), ("xyxy", "pixels", 1)],
)
def test_detection_scalars_equal_cocoeval(tmp_path, box_format, box_coords, workers):
    expected = write_detector_run(tmp_path / "shards", box_format, box_coords)
    report = export(tmp_path / "shards", tmp_path / "tb", ExportOptions(workers=workers))
    assert report.warnings == []
    got = scalars(read_events(tmp_path / "tb"))
    assert "metrics/accuracy" not in got  # no labels: no classification numbers, and no complaint
    for step, images in expected.items():
        stats, per_class, _ = coco_reference(images)
        assert stats[0] > 0.1 and min(stats[3:6]) > -1, "the case must measure every area range"
        for name, value in zip(STAT_NAMES, stats, strict=True):
            assert got[f"metrics/detection/{name}"][step] == pytest.approx(value, abs=TOLERANCE), (step, name)
        assert per_class[3] == -1.0 and "metrics/detection/AP/fish" not in got  # -1: nothing to measure, not written
        for k in range(3):
            assert got[f"metrics/detection/AP/{CLASSES[k]}"][step] == pytest.approx(per_class[k], abs=TOLERANCE)


def test_detection_pr_curves_per_class_next_to_the_classification_ones(tmp_path):
    from tensorboard.util import tensor_util

    expected = write_detector_run(tmp_path / "shards", "yxyx", "normalized")
    export(tmp_path / "shards", tmp_path / "tb")
    acc = read_events(tmp_path / "tb")
    assert sorted(acc.Tags()["tensors"]) == sorted(f"pr_curve/detection/{c}" for c in CLASSES[:3])
    for k, name in enumerate(CLASSES[:3]):
        curves = acc.Tensors(f"pr_curve/detection/{name}")
        assert [c.step for c in curves] == list(STEPS)
        for curve, step in zip(curves, STEPS, strict=True):
            tp, fp, _, fn = tensor_util.make_ndarray(curve.tensor_proto)[:4, 0]  # threshold 0: every detection
            images = expected[step]
            assert tp + fn == sum(int(np.sum(im["gt_labels"] == k)) for im in images)
            assert tp + fp == sum(int(np.sum(im["pred_labels"] == k)) for im in images)
            _, _, ev = coco_reference(images)
            # COCOeval's matches at IoU 0.5, area "all": its true positives are ours
            matched = sum(
                int(np.sum(e["dtMatches"][0] > 0)) for e in ev.evalImgs
                if e is not None and e["category_id"] == k and e["aRng"] == [0, 1e10]
            )
            assert tp == matched


def test_instance_masks_give_mask_map_equal_to_cocoeval_segm(tmp_path):
    expected = write_detector_run(tmp_path / "shards", "xyxy", "pixels", masks=True)
    export(tmp_path / "shards", tmp_path / "tb", ExportOptions(workers=2))
    got = scalars(read_events(tmp_path / "tb"))
    for step, images in expected.items():
        stats, _, _ = coco_reference(images, "segm")
        box_stats, _, _ = coco_reference(images)
        assert got["metrics/detection/mask_mAP"][step] == pytest.approx(stats[0], abs=TOLERANCE)
        assert got["metrics/detection/mask_AP50"][step] == pytest.approx(stats[1], abs=TOLERANCE)
        assert got["metrics/detection/mAP"][step] == pytest.approx(box_stats[0], abs=TOLERANCE)
        assert abs(stats[0] - box_stats[0]) > 1e-3  # the masks are not the boxes: a real second evaluation


def test_no_metrics_writes_no_detection_numbers(tmp_path):
    write_detector_run(tmp_path / "shards", "yxyx", "normalized")
    export(tmp_path / "shards", tmp_path / "tb", ExportOptions(metrics=False))
    acc = read_events(tmp_path / "tb")
    assert acc.Tags()["scalars"] == [] and acc.Tags()["tensors"] == []


def test_detection_metrics_need_the_image_size_for_normalized_boxes(tmp_path):
    with ShardWriter(tmp_path / "shards", step=5, class_names=CLASSES) as w:
        w.add(boxes=[np.array([[0.1, 0.1, 0.5, 0.5]])], box_labels=[np.array([0])], box_scores=[np.array([0.9])],
              gt_boxes=[np.array([[0.1, 0.1, 0.5, 0.5]])], gt_box_labels=[np.array([0])])
    with pytest.warns(UserWarning, match="step 5: detection metrics not written: .*normalized boxes need the image size"):
        export(tmp_path / "shards", tmp_path / "tb")
    with ShardWriter(tmp_path / "pixels", step=5, class_names=CLASSES, box_format="xyxy", box_coords="pixels") as w:
        w.add(boxes=[np.array([[1.0, 1, 5, 5]])], box_labels=[np.array([0])], box_scores=[np.array([0.9])],
              gt_boxes=[np.array([[1.0, 1, 5, 5]])], gt_box_labels=[np.array([0])])
    export(tmp_path / "pixels", tmp_path / "tb2")  # pixel boxes need no image
    assert scalars(read_events(tmp_path / "tb2"))["metrics/detection/AP50"] == {5: pytest.approx(1.0)}


# --------------------------------------------------------------------------- segmentation

# Two tiny images; masks index ["background", "road", "car"]; 255 is void: the shards' mask_background (not
# drawn, allowed outside the names) and the default ignore index. "background" (0) is a class, as in VOC.
PRED = np.array([[[0, 1, 1], [2, 2, 0]], [[1, 1, 1], [0, 2, 255]]])
GT = np.array([[[0, 1, 2], [2, 2, 255]], [[1, 1, 0], [0, 2, 2]]])
# (gt, pred) pairs without the void gt pixel: (0,0) (1,1) (2,1) (2,2) (2,2) | (1,1) (1,1) (0,1) (0,0) (2,2) (2,255)
# background: tp 2, gt 3, pred 2 -> 2/3; road: tp 3, gt 3, pred 5 -> 3/5; car: tp 3, gt 5, pred 3 -> 3/5
BY_HAND = {"pixel_accuracy": 8 / 11, "IoU/background": 2 / 3, "IoU/road": 3 / 5, "IoU/car": 3 / 5}


def write_maps(root, step=7, **writer):
    with ShardWriter(root, step=step, mask_class_names=["background", "road", "car"], mask_background=255,
                     examples_per_shard=1, **writer) as w:
        w.add(images=np.zeros((2, 2, 3, 3), np.uint8), masks=PRED.astype(np.uint8), gt_masks=GT.astype(np.uint8))


@pytest.mark.parametrize("workers", [1, 2])
def test_segmentation_scalars_are_the_hand_computed_ious(tmp_path, workers):
    write_maps(tmp_path / "shards")
    export(tmp_path / "shards", tmp_path / "tb", ExportOptions(workers=workers))
    got = scalars(read_events(tmp_path / "tb"))
    for name, value in BY_HAND.items():
        assert got[f"metrics/segmentation/{name}"] == {7: pytest.approx(value)}, name
    assert got["metrics/segmentation/mean_iou"] == {7: pytest.approx((2 / 3 + 3 / 5 + 3 / 5) / 3)}
    assert not [t for t in got if t.startswith("metrics/detection")]


def test_ignore_index_none_counts_the_void_pixel_as_a_class(tmp_path, capsys):
    write_maps(tmp_path / "shards")
    assert main(["export", str(tmp_path / "shards"), str(tmp_path / "tb"), "--ignore-index", "none", "--no-progress"]) == 0
    got = scalars(read_events(tmp_path / "tb"))
    # the void gt pixel, predicted 0, now counts: 8 right of 12; class 255 has IoU 0 (gt 1, pred 1, tp 0)
    assert got["metrics/segmentation/pixel_accuracy"] == {7: pytest.approx(8 / 12)}
    assert got["metrics/segmentation/IoU/class_255"] == {7: pytest.approx(0.0)}
    assert got["metrics/segmentation/IoU/background"] == {7: pytest.approx(2 / 4)}  # pred 0 under the void pixel


def test_another_ignore_index_and_a_negative_background(tmp_path):
    gt = np.array([[[-1, 1], [1, 0]]])
    with ShardWriter(tmp_path / "shards", step=1, mask_class_names=["a", "b"], mask_background=-1) as w:
        w.add(images=np.zeros((1, 2, 2, 3), np.uint8), masks=np.array([[[0, 1], [1, 1]]]), gt_masks=gt)
    export(tmp_path / "shards", tmp_path / "tb", ExportOptions(ignore_index=0))
    got = scalars(read_events(tmp_path / "tb"))
    # the -1 background pixel is no class and the 0 pixel is ignored: two pixels of b, both right
    assert got["metrics/segmentation/pixel_accuracy"] == {1: 1.0}
    assert got["metrics/segmentation/IoU/b"] == {1: 1.0}
    assert "metrics/segmentation/IoU/a" not in got


# --------------------------------------------------------------------------- the mask background setting


@pytest.mark.parametrize(
    "meta, override, resolved",
    [(0, None, 0), (255, None, 255), (None, None, "none"), (255, 3, 3), (None, 0, 0), (7, "none", "none")],
)
def test_mask_background_comes_from_the_metadata_unless_overridden(meta, override, resolved):
    shard_meta = ShardMeta(step=1, dump_id="d", shard_index=0, num_examples=1, mask_background=meta)
    options = ExportOptions(read=ReadOptions(mask_background=override))
    assert read_options_for(options, shard_meta, None).mask_background == resolved


@pytest.mark.parametrize("flag, expected", [([], None), (["--mask-background", "255"], 255),
                                            (["--mask-background", "none"], "none")])
def test_mask_background_flag(flag, expected):
    from exporter.cli import _options, build_parser

    for command in ("export", "render"):
        args = build_parser().parse_args([command, "s", "out", *flag])
        assert _options(args).read.mask_background == expected


def test_export_leaves_the_metadata_background_undrawn(tmp_path):
    from exporter.api import render

    with ShardWriter(tmp_path / "shards", step=1, mask_class_names=["road", "car"], mask_background=255) as w:
        w.add(images=np.zeros((1, 4, 4, 3), np.uint8), masks=np.array([[[0, 0, 1, 1]] * 2 + [[255] * 4] * 2]))
    options = ExportOptions(render=ExportOptions().render.__class__(mask_alpha=1.0, min_size=0, draw_caption=False))
    (path,) = render(tmp_path / "shards", tmp_path / "png", options)
    from PIL import Image

    from exporter.render.colors import class_color

    px = np.asarray(Image.open(path))
    assert px[0, 0].tolist() == list(class_color(0)) and px[0, 3].tolist() == list(class_color(1))
    assert px[3, 0].tolist() == [0, 0, 0]  # 255 is the background: the image shows through
