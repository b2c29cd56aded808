"""Per-image detections of a shard: boxes read in every format, matches, per-image AP, best IoU, box classes."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

from exporter.errors import ConfigError
from exporter.metrics import images as per_image
from exporter.metrics.images import ImageStats, image_size, image_stats, shard_images
from exporter.metrics.step import StepMetrics, measure_shard
from exporter.render import ReadOptions

from .test_detection import coco_reference, image

W, H = 40, 30
# Three images of one shard, pixel xyxy, padded to 3 boxes: labels -1 and zeros beyond the counts.
GT = np.array([[[0, 0, 10, 10], [20, 10, 30, 30], [0, 0, 0, 0]],
               [[5, 5, 15, 15], [0, 0, 0, 0], [0, 0, 0, 0]],
               [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]], float)  # fmt: skip
GT_LABELS = np.array([[0, 1, -1], [2, -1, -1], [-1, -1, -1]])
GT_COUNT = np.array([2, 1, 0])
PRED = np.array([[[0, 0, 10, 12], [20, 10, 30, 20], [1, 1, 3, 3]],
                 [[5, 5, 15, 15], [30, 20, 40, 30], [0, 0, 0, 0]],
                 [[2, 2, 8, 8], [0, 0, 0, 0], [0, 0, 0, 0]]], float)  # fmt: skip
LABELS = np.array([[0, 1, 0], [1, 2, -1], [0, -1, -1]])
SCORES = np.array([[0.9, 0.8, 0.1], [0.7, 0.6, 0.0], [0.5, 0.0, 0.0]])
COUNT = np.array([3, 2, 1])
# image 0: cat IoU 10/12 (found), dog IoU 0.5 (found at 0.5), a stray cat at 0.1
# image 1: the bird is boxed as a dog (a false positive and a miss); a bird elsewhere (false positive)
# image 2: no ground truth, one cat


def shard(box_format: str = "xyxy", box_coords: str = "pixels") -> dict[str, np.ndarray]:
    """The shard's arrays with its boxes written in ``box_format`` / ``box_coords``."""
    def enc(b):
        x1, y1, x2, y2 = np.moveaxis(b, -1, 0)
        if box_coords == "normalized":
            x1, x2, y1, y2 = x1 / W, x2 / W, y1 / H, y2 / H
        cols = {"xyxy": (x1, y1, x2, y2), "yxyx": (y1, x1, y2, x2), "xywh": (x1, y1, x2 - x1, y2 - y1),
                "cxcywh": ((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1)}[box_format]
        return np.stack(cols, axis=-1)

    return {"boxes": enc(PRED), "box_labels": LABELS, "box_scores": SCORES, "num_boxes": COUNT,
            "gt_boxes": enc(GT), "gt_box_labels": GT_LABELS, "gt_num_boxes": GT_COUNT}  # fmt: skip


def stats(arrays=None, read=ReadOptions(box_format="xyxy", box_coords="pixels"), **kwargs) -> ImageStats:
    kwargs.setdefault("iou", 0.5)
    kwargs.setdefault("need", per_image.STATS)
    return image_stats(shard() if arrays is None else arrays, read, (H, W, 3), **kwargs)


@pytest.mark.parametrize(
    "box_format, box_coords", [("yxyx", "normalized"), ("xywh", "pixels"), ("cxcywh", "normalized"), ("xyxy", "pixels")]
)
def test_boxes_are_read_in_every_format_as_pixel_xyxy(box_format, box_coords):
    read = ReadOptions(box_format=box_format, box_coords=box_coords)
    got = list(shard_images(shard(box_format, box_coords), read, (H, W, 3)))
    assert len(got) == 3
    for im, i in zip(got, range(3), strict=True):
        np.testing.assert_allclose(im.pred, PRED[i][: COUNT[i]][LABELS[i][: COUNT[i]] >= 0], atol=1e-9)
        np.testing.assert_allclose(im.gt, GT[i][: GT_COUNT[i]], atol=1e-9)
    assert got[1].labels.tolist() == [1, 2] and got[1].pred_rows.tolist() == [0, 1]
    assert got[0].scores.tolist() == [0.9, 0.8, 0.1] and got[2].gt_labels.tolist() == []


def test_counts_at_one_iou_follow_the_drawing_rules():
    s = stats()
    assert (s.tp.tolist(), s.fp.tolist(), s.missed.tolist()) == ([2, 0, 0], [1, 2, 1], [0, 1, 0])
    s = stats(iou=0.75)  # the dog's 0.5 no longer matches
    assert (s.tp.tolist(), s.fp.tolist(), s.missed.tolist()) == ([1, 0, 0], [2, 2, 1], [1, 1, 0])
    s = stats(min_score=0.65)  # the boxes a picture shows at --score-threshold 0.65
    assert (s.tp.tolist(), s.fp.tolist(), s.missed.tolist()) == ([2, 1 - 1, 0], [0, 1, 0], [0, 1, 0])
    s = stats(max_boxes=1)
    assert (s.tp.tolist(), s.fp.tolist(), s.missed.tolist()) == ([1, 0, 0], [0, 1, 1], [1, 1, 0])


def test_image_ap_is_cocoeval_of_each_image_alone():
    s = stats()
    for i in range(2):
        n, g = COUNT[i], GT_COUNT[i]
        keep = LABELS[i][:n] >= 0
        ref = coco_reference(
            [image(PRED[i][:n][keep], LABELS[i][:n][keep], SCORES[i][:n][keep], GT[i][:g], GT_LABELS[i][:g])]
        )[0][0]
        assert s.ap[i] == pytest.approx(ref, abs=1e-12)
    assert s.ap[2] == 0.0  # detections and no ground truth: all false
    assert np.isnan(stats(_without_detections()).ap[2])  # nothing at all: nothing to measure


def _without_detections():
    arrays = shard()
    arrays["num_boxes"] = np.array([3, 2, 0])
    return arrays


def test_best_iou_is_the_mean_over_ground_truth_of_the_best_same_class_prediction():
    s = stats()
    assert s.best_iou[0] == pytest.approx((100 / 120 + 0.5) / 2)
    assert s.best_iou[1] == 0.0  # the bird's only overlap is a dog
    assert np.isnan(s.best_iou[2])


def test_box_classes_are_the_classes_of_ground_truth_and_shown_predictions():
    s = stats()
    assert sorted(zip(s.class_image.tolist(), s.class_id.tolist(), strict=True)) == [(0, 0), (0, 1), (1, 1), (1, 2), (2, 0)]
    s = stats(min_score=0.95)  # predictions hidden: the ground truth's classes remain
    assert sorted(zip(s.class_image.tolist(), s.class_id.tolist(), strict=True)) == [(0, 0), (0, 1), (1, 2)]
    gt_only = {k: v for k, v in shard().items() if not k.startswith(("box", "num"))}
    s = stats(gt_only, need={"classes"})
    assert sorted(zip(s.class_image.tolist(), s.class_id.tolist(), strict=True)) == [(0, 0), (0, 1), (1, 2)]


def test_without_labels_on_one_side_matching_is_class_agnostic():
    arrays = shard()
    del arrays["gt_box_labels"]
    s = stats(arrays)
    assert (s.tp.tolist(), s.fp.tolist(), s.missed.tolist()) == ([2, 1, 0], [1, 1, 1], [0, 0, 0])
    m = StepMetrics(1)
    m.add(measure_shard(arrays, ReadOptions(box_format="xyxy", box_coords="pixels"), (H, W, 3)))
    assert m.result().class_agnostic and list(m.result().detection.per_class_AP) == [0]


def test_only_what_is_asked_for_is_computed_and_concat_shifts_positions():
    s = stats(need={"counts"})
    assert s.ap is None and s.best_iou is None and s.class_image is None and s.tp is not None
    both = ImageStats.concat([stats(need={"classes", "ap"}), stats(need={"classes", "ap"})])
    assert len(both) == 6 and both.tp is None and both.class_image.max() == 5 and both.ap.shape == (6,)
    with pytest.raises(ConfigError, match=r"unknown image stats \['area'\]"):
        stats(need={"area"})


def test_normalized_boxes_need_an_image_size():
    with pytest.raises(ConfigError, match=r"normalized boxes need the image size, but the shard has no 'images' field"):
        image_stats(shard("yxyx", "normalized"), ReadOptions(), None, need={"counts"}, iou=0.5)
    with pytest.raises(ConfigError, match=r"images of shape \(5, 5, 5\)"):
        image_stats(shard("yxyx", "normalized"), ReadOptions(), (5, 5, 5), need={"counts"}, iou=0.5)
    assert image_size((3, 30, 40), None) == (40, 30) and image_size((30, 40), "HW") == (40, 30)
    assert image_size(None, None) is None and image_size((30, 40, 3), "CHW") is None


def test_docstring_examples_run():
    from exporter.metrics import step

    for module in (per_image, step):
        assert doctest.testmod(module).failed == 0
