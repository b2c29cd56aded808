"""COCO detection metrics against pycocotools' COCOeval, run on the same generated images.

Every case builds a COCO ground-truth dataset and a results list from the same
arrays it feeds ``DetectionEvaluator``: image ids 1..N in the order of
``add_image``, ground-truth area = box ``w * h`` (mask pixel count for
"segm"), categories = every class id used in ground truth or predictions.
"""

from __future__ import annotations

import contextlib
import doctest
import io

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from exporter.errors import ConfigError
from exporter.metrics import detection
from exporter.metrics.detection import NO_GT, STAT_NAMES, DetectionEvaluator, DetectionMetrics

W, H = 640, 480
TOLERANCE = 1e-4  # the promise; in practice the numbers are equal to the last bit


# --------------------------------------------------------------------------- the reference


def coco_reference(images: list[dict], iou_type: str = "bbox") -> tuple[np.ndarray, dict[int, float], COCOeval]:
    """pycocotools' stats, per-category AP and the COCOeval object for ``images``."""
    gt_anns, results, classes = [], [], set()
    height, width = _image_size(images)
    for image_id, im in enumerate(images, start=1):
        for i, label in enumerate(np.asarray(im["gt_labels"]).tolist()):
            ann = {"id": len(gt_anns) + 1, "image_id": image_id, "category_id": int(label), "iscrowd": 0}
            if iou_type == "bbox":
                x1, y1, x2, y2 = np.asarray(im["gt_xyxy"], np.float64)[i].tolist()
                ann.update(bbox=[x1, y1, x2 - x1, y2 - y1], area=(x2 - x1) * (y2 - y1))
            else:
                rle = _rle(im["gt_masks"][i])
                ann.update(segmentation=rle, area=float(mask_utils.area(rle)), bbox=mask_utils.toBbox(rle).tolist())
            gt_anns.append(ann)
            classes.add(int(label))
        for i, label in enumerate(np.asarray(im["pred_labels"]).tolist()):
            res = {"image_id": image_id, "category_id": int(label), "score": float(im["pred_scores"][i])}
            if iou_type == "bbox":
                x1, y1, x2, y2 = np.asarray(im["pred_xyxy"], np.float64)[i].tolist()
                res["bbox"] = [x1, y1, x2 - x1, y2 - y1]
            else:  # no "bbox" key: loadRes then takes the mask area, as for real segm results
                res["segmentation"] = _rle(im["pred_masks"][i])
            results.append(res)
            classes.add(int(label))
    dataset = {
        "images": [{"id": i, "height": height, "width": width} for i in range(1, len(images) + 1)],
        "categories": [{"id": k, "name": str(k)} for k in sorted(classes)],
        "annotations": gt_anns,
    }
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = dataset
        gt.createIndex()
        if results:
            dt = gt.loadRes(results)
        else:  # loadRes cannot take an empty list (it looks at results[0])
            dt = COCO()
            dt.dataset = {"images": dataset["images"], "categories": dataset["categories"], "annotations": []}
            dt.createIndex()
        ev = COCOeval(gt, dt, iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    per_class = {}
    for ki, k in enumerate(ev.params.catIds):
        p = ev.eval["precision"][:, :, ki, 0, -1]
        per_class[int(k)] = float(np.mean(p[p > -1])) if np.any(p > -1) else -1.0
    return np.asarray(ev.stats), per_class, ev


def _rle(mask: np.ndarray) -> dict:
    return mask_utils.encode(np.asfortranarray(np.asarray(mask, np.uint8)))


def _image_size(images: list[dict]) -> tuple[int, int]:
    for im in images:
        for key in ("gt_masks", "pred_masks"):
            if key in im and np.asarray(im[key]).ndim == 3:
                return im[key].shape[1:]
    return H, W


def ours(images: list[dict], iou_type: str = "bbox", **kwargs) -> DetectionMetrics:
    ev = DetectionEvaluator(iou_type=iou_type, **kwargs)
    for im in images:
        ev.add_image(**im)
    return ev.evaluate()


# --------------------------------------------------------------------------- generated images


def image(pred=(), labels=(), scores=(), gt=(), gt_labels=()) -> dict:
    """One image's arrays, as ``add_image`` keywords."""
    return {
        "pred_xyxy": np.asarray(pred, np.float64).reshape(-1, 4),
        "pred_labels": np.asarray(labels, np.int64),
        "pred_scores": np.asarray(scores, np.float64),
        "gt_xyxy": np.asarray(gt, np.float64).reshape(-1, 4),
        "gt_labels": np.asarray(gt_labels, np.int64),
    }


def random_boxes(rng: np.random.Generator, n: int, min_side: float = 4, max_side: float = 300) -> np.ndarray:
    """``n`` boxes with log-uniform sides: small, medium and large in one image."""
    w = np.exp(rng.uniform(np.log(min_side), np.log(max_side), n))
    h = np.clip(w * np.exp(rng.normal(0, 0.4, n)), 1, H - 1)
    x1, y1 = rng.uniform(0, W - w), rng.uniform(0, H - h)
    return np.stack([x1, y1, x1 + w, y1 + h], axis=1)


def jitter(rng: np.random.Generator, boxes: np.ndarray, scale: float) -> np.ndarray:
    """Boxes moved by a fraction ``scale`` of their size, corners kept ordered."""
    size = np.tile(boxes[:, 2:] - boxes[:, :2], 2)
    out = boxes + rng.normal(0, scale, boxes.shape) * size
    return np.concatenate([np.minimum(out[:, :2], out[:, 2:]), np.maximum(out[:, :2], out[:, 2:])], axis=1)


def random_images(
    seed: int,
    n_images: int = 12,
    n_classes: int = 4,
    max_gt: int = 8,
    *,
    score_decimals: int | None = None,
    no_gt_every: int = 0,
    no_pred_every: int = 0,
) -> list[dict]:
    """Detections near the ground truth (some of the wrong class, some doubled) and false alarms."""
    rng = np.random.default_rng(seed)
    images = []
    for i in range(n_images):
        gt = random_boxes(rng, int(rng.integers(0, max_gt + 1)))
        gt_labels = rng.integers(0, n_classes, len(gt))
        found = rng.random(len(gt)) < 0.8
        doubled = rng.random(len(gt)) < 0.2
        src = np.concatenate([np.flatnonzero(found), np.flatnonzero(doubled)])
        pred = np.concatenate([jitter(rng, gt[src], 0.08), random_boxes(rng, int(rng.poisson(2)))])
        labels = np.concatenate([gt_labels[src], rng.integers(0, n_classes, len(pred) - len(src))])
        relabel = rng.random(len(labels)) < 0.1
        labels[relabel] = rng.integers(0, n_classes, int(relabel.sum()))
        scores = rng.random(len(pred))
        if score_decimals is not None:
            scores = np.round(scores, score_decimals)
        if no_gt_every and i % no_gt_every == 0:
            gt, gt_labels = gt[:0], gt_labels[:0]
        if no_pred_every and i % no_pred_every == 1:
            pred, labels, scores = pred[:0], labels[:0], scores[:0]
        images.append(image(pred, labels, scores, gt, gt_labels))
    return images


def crowded_image(seed: int) -> list[dict]:
    """More than 100 detections of one class in an image (COCOeval keeps the top 100 per class)."""
    rng = np.random.default_rng(seed)
    gt = random_boxes(rng, 40, 10, 120)
    gt_labels = rng.integers(0, 2, 40)
    pred = np.concatenate([jitter(rng, np.repeat(gt, 4, axis=0), 0.15), random_boxes(rng, 60)])
    labels = np.concatenate([np.repeat(gt_labels, 4), rng.integers(0, 2, 60)])
    crowded = image(pred, labels, rng.random(len(pred)), gt, gt_labels)
    return [crowded, *random_images(seed + 1, n_images=3, n_classes=2)]


def area_boundaries() -> list[dict]:
    """Ground truth and detections with areas at and next to 32² and 96² (COCO's size limits)."""
    sides = [(31, 31), (32, 32), (16, 64), (33, 33), (95, 95), (96, 96), (48, 192), (97, 97), (31.999, 32.001)]
    images = []
    for shift in (0.0, 3.0, 7.5):
        gt, pred = [], []
        for j, (w, h) in enumerate(sides):
            x, y = 10 + 200 * (j % 3), 10 + 150 * (j // 3)
            gt.append([x, y, x + w, y + h])
            pred.append([x + shift, y, x + w + shift, y + h * 1.1])
        n = len(sides)
        images.append(image(pred, [0] * n, np.linspace(0.9, 0.1, n), gt, [0] * n))
    return images


def score_ties() -> list[dict]:
    """Equal scores within and across images: COCOeval's stable sort decides the ranking."""
    images = random_images(7, n_images=10, n_classes=3, score_decimals=1)
    images.append(
        image([[0, 0, 50, 50], [0, 0, 50, 50], [100, 100, 150, 150]], [0, 0, 0], [0.5, 0.5, 0.5], [[0, 0, 50, 50]], [0])
    )
    return images


def iou_on_thresholds() -> list[dict]:
    """Integer boxes whose IoU is exactly 0.5, 0.75 or 0.95: a match needs IoU >= threshold."""
    gt = [[0, 0, 100, 100], [200, 0, 300, 100], [0, 200, 100, 300]]
    pred = [[0, 0, 100, 200], [200, 0, 300, 75], [0, 200, 100, 295]]  # IoU 0.5, 0.75, 0.95
    return [image(pred, [1, 1, 1], [0.9, 0.8, 0.7], gt, [1, 1, 1])]


def equal_iou_last_wins() -> list[dict]:
    """A detection with equal IoU to two ground truths takes the later one (COCOeval's ">=")."""
    gt = [[0, 0, 20, 10], [10, 0, 30, 10]]  # A, B
    pred = [[10, 0, 20, 10], [0, 0, 10, 10]]  # IoU .5 with A and B; then IoU .5 with A only
    return [image(pred, [0, 0], [0.9, 0.8], gt, [0, 0])]


def only_in_predictions() -> list[dict]:
    images = random_images(11, n_images=6, n_classes=3)
    extra = random_boxes(np.random.default_rng(0), 3)
    images[2]["pred_xyxy"] = np.concatenate([images[2]["pred_xyxy"], extra])
    images[2]["pred_labels"] = np.concatenate([images[2]["pred_labels"], [7, 7, 7]])
    images[2]["pred_scores"] = np.concatenate([images[2]["pred_scores"], [0.99, 0.5, 0.01]])
    return images


def only_in_gt() -> list[dict]:
    images = random_images(12, n_images=6, n_classes=3)
    images[4]["gt_xyxy"] = np.concatenate([images[4]["gt_xyxy"], [[10, 10, 60, 90]]])
    images[4]["gt_labels"] = np.concatenate([images[4]["gt_labels"], [9]])
    return images


def float_labels() -> list[dict]:
    """Class ids as integral floats, as the TF Object Detection API writes them."""
    images = random_images(13, n_images=4)
    for im in images:
        im["pred_labels"] = im["pred_labels"].astype(np.float32)
    return images


BOX_CASES = {
    **{f"random-{seed}": random_images(seed) for seed in range(6)},
    "many-images-and-classes": random_images(100, n_images=60, n_classes=10, max_gt=12),
    "images-without-gt": random_images(20, no_gt_every=3),
    "images-without-detections": random_images(21, no_pred_every=2),
    "no-detections-at-all": [image(gt=[[0, 0, 40, 40]], gt_labels=[0]), image(gt=[[5, 5, 200, 200]], gt_labels=[1])],
    "no-gt-at-all": [image([[0, 0, 40, 40]], [0], [0.3]), image()],
    "empty-images-only": [image(), image()],
    "over-100-detections": crowded_image(30),
    "area-boundaries": area_boundaries(),
    "score-ties": score_ties(),
    "iou-on-thresholds": iou_on_thresholds(),
    "equal-iou-last-wins": equal_iou_last_wins(),
    "class-only-in-predictions": only_in_predictions(),
    "class-only-in-gt": only_in_gt(),
    "float-labels": float_labels(),
}


@pytest.mark.parametrize("case", BOX_CASES)
def test_bbox_metrics_equal_cocoeval(case):
    images = BOX_CASES[case]
    ref_stats, ref_per_class, _ = coco_reference(images)
    m = ours(images)
    np.testing.assert_allclose(m.stats, ref_stats, atol=TOLERANCE, rtol=0)
    assert m.per_class_AP.keys() == ref_per_class.keys()
    for k, ap in ref_per_class.items():
        assert m.per_class_AP[k] == pytest.approx(ap, abs=TOLERANCE), f"class {k}"
    assert m.num_images == len(images)


def test_the_cases_cover_what_they_claim():
    """Guard against generators drifting into cases that test nothing."""
    stats = {name: coco_reference(images)[0] for name, images in BOX_CASES.items()}
    assert all(s[3] > -1 and s[4] > -1 and s[5] > -1 for name, s in stats.items() if name.startswith("random"))
    assert stats["no-gt-at-all"].tolist() == [-1.0] * 12
    assert stats["no-detections-at-all"][0] == 0
    counts = np.bincount(BOX_CASES["over-100-detections"][0]["pred_labels"])
    assert counts.min() > 100
    _, per_class, _ = coco_reference(BOX_CASES["class-only-in-predictions"])
    assert per_class[7] == -1.0
    _, per_class, _ = coco_reference(BOX_CASES["class-only-in-gt"])
    assert per_class[9] == 0.0
    # the equal-IoU case tells "last wins" from "first wins": both detections are true positives at IoU 0.5
    assert stats["equal-iou-last-wins"][1] == pytest.approx(1.0)


def test_values_without_ground_truth_are_minus_one():
    m = ours(BOX_CASES["class-only-in-predictions"])
    assert m.per_class_AP[7] == NO_GT
    m = ours([image([[0, 0, 40, 40]], [0], [0.3])])
    assert m.stats == (NO_GT,) * 12 and m.per_class_AP == {0: NO_GT}
    assert DetectionEvaluator().evaluate().scalars() == dict.fromkeys(STAT_NAMES, NO_GT)


def test_at_most_100_detections_per_image_and_class_are_kept():
    crowded = BOX_CASES["over-100-detections"][0]
    m = ours([crowded])
    for k in (0, 1):
        tp, fp = m.pr_curve(k)[:2, 0]
        assert tp + fp == 100



@pytest.mark.parametrize("case", ["random-0", "score-ties", "over-100-detections", "class-only-in-predictions"])
@pytest.mark.parametrize("cut", [0, 1, 3])
def test_merged_evaluators_equal_one_fed_every_image(case, cut):
    """Shards matched apart (in workers) and merged in order give the numbers of one pass, ties included."""
    images = BOX_CASES[case]
    whole = ours(images)
    first, second = DetectionEvaluator(), DetectionEvaluator()
    for im in images[:cut]:
        first.add_image(**im)
    for im in images[cut:]:
        second.add_image(**im)
    first.merge(second)
    merged = first.evaluate()
    assert merged.stats == whole.stats and merged.per_class_AP == whole.per_class_AP
    assert merged.num_images == len(images) and second.num_images == len(images) - cut  # other unchanged
    for k in whole.per_class_AP:
        np.testing.assert_array_equal(merged.pr_curve(k), whole.pr_curve(k))


def test_merge_refuses_another_kind_of_evaluator():
    with pytest.raises(ConfigError, match="iou_type and num_classes must be the same"):
        DetectionEvaluator().merge(DetectionEvaluator(iou_type="segm"))
    with pytest.raises(ConfigError, match="merge\\(\\) takes a DetectionEvaluator, got dict"):
        DetectionEvaluator().merge({})  # type: ignore[arg-type]


@pytest.mark.parametrize("case", ["random-1", "random-2", "over-100-detections", "area-boundaries", "score-ties"])
def test_image_ap_is_cocoeval_map_of_each_image_alone(case):
    for im in BOX_CASES[case]:
        ev = DetectionEvaluator()
        ev.add_image(**im)
        ref = coco_reference([im])[0][0]
        assert ev.image_ap() == pytest.approx(ref, abs=TOLERANCE)
        assert ev.image_ap() == pytest.approx(ev.evaluate().mAP, abs=1e-12)

# --------------------------------------------------------------------------- PR curves


def _reference_curve(ev: COCOeval, class_id: int, thresholds: np.ndarray) -> np.ndarray:
    """tp, fp, fn per score threshold from COCOeval's own per-image matches (IoU 0.5, area all, 100 dets)."""
    scores, tp_flags, fp_flags, num_gt = [], [], [], 0
    for e in ev.evalImgs:
        if e is None or e["category_id"] != class_id or list(e["aRng"]) != [0, 1e10]:
            continue
        matched, ignored = e["dtMatches"][0] > 0, e["dtIgnore"][0] > 0
        scores += list(e["dtScores"])
        tp_flags += list(matched & ~ignored)
        fp_flags += list(~matched & ~ignored)
        num_gt += int(np.count_nonzero(e["gtIgnore"] == 0))
    s, tp_f, fp_f = np.asarray(scores), np.asarray(tp_flags, bool), np.asarray(fp_flags, bool)
    tp = np.array([np.count_nonzero(tp_f & (s >= t)) for t in thresholds], np.float64)
    fp = np.array([np.count_nonzero(fp_f & (s >= t)) for t in thresholds], np.float64)
    return np.stack([tp, fp, num_gt - tp])


@pytest.mark.parametrize("case", ["random-0", "random-3", "score-ties", "over-100-detections", "area-boundaries"])
@pytest.mark.parametrize("num_thresholds", [127, 11, 2])
def test_pr_curve_counts_equal_cocoeval_matches(case, num_thresholds):
    images = BOX_CASES[case]
    _, _, ev = coco_reference(images)
    m = ours(images)
    thresholds = np.arange(num_thresholds) / (num_thresholds - 1)
    for ki, k in enumerate(ev.params.catIds):
        curve = m.pr_curve(int(k), num_thresholds)
        assert curve.shape == (6, num_thresholds) and curve.dtype == np.float64
        tp, fp, tn, fn, precision, recall = curve
        np.testing.assert_array_equal(np.stack([tp, fp, fn]), _reference_curve(ev, int(k), thresholds))
        np.testing.assert_array_equal(tn, 0)
        np.testing.assert_allclose(precision, tp / np.maximum(1e-7, tp + fp))
        np.testing.assert_allclose(recall, tp / np.maximum(1e-7, tp + fn))
        coco_recall = ev.eval["recall"][0, ki, 0, -1]  # IoU 0.5, area all, maxDets 100
        if coco_recall > -1:  # scores are in [0, 1]: threshold 0 takes every kept detection
            assert recall[0] == pytest.approx(coco_recall, abs=1e-12)
        # more demanding thresholds never find more
        assert np.all(np.diff(tp) <= 0) and np.all(np.diff(fp) <= 0) and np.all(np.diff(fn) >= 0)
        assert np.all(np.diff(recall) <= 0)
        assert np.all((precision >= 0) & (precision <= 1))


def test_pr_curve_of_an_unseen_class_is_zero():
    m = ours(BOX_CASES["random-0"])
    np.testing.assert_array_equal(m.pr_curve(55), np.zeros((6, 127)))


def test_pr_curve_by_hand():
    # two gts; detections: a hit at 0.9, a false alarm at 0.6, a hit at 0.3
    m = ours(
        [
            image(
                [[0, 0, 10, 10], [50, 50, 60, 60], [20, 20, 30, 30]],
                [0, 0, 0],
                [0.9, 0.6, 0.3],
                [[0, 0, 10, 10], [20, 20, 30, 30]],
                [0, 0],
            )
        ]
    )
    tp, fp, _, fn, precision, recall = m.pr_curve(0, num_thresholds=5)  # thresholds 0, .25, .5, .75, 1
    assert tp.tolist() == [2, 2, 1, 1, 0]
    assert fp.tolist() == [1, 1, 1, 0, 0]
    assert fn.tolist() == [0, 0, 1, 1, 2]
    np.testing.assert_allclose(precision, [2 / 3, 2 / 3, 0.5, 1, 0])
    np.testing.assert_allclose(recall, [1, 1, 0.5, 0.5, 0])


# --------------------------------------------------------------------------- instance masks


def random_mask_images(
    seed: int, n_images: int = 6, n_classes: int = 3, size: tuple[int, int] = (96, 128)
) -> list[dict]:
    """Ellipse masks of all COCO sizes, detections as shifted ellipses plus false alarms and empty masks."""
    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[:h, :w]

    def ellipses(n: int) -> np.ndarray:
        cy, cx = rng.uniform(0, h, n), rng.uniform(0, w, n)
        ry, rx = np.exp(rng.uniform(np.log(2), np.log(70), (2, n)))
        return ((yy[None] - cy[:, None, None]) / ry[:, None, None]) ** 2 + (
            (xx[None] - cx[:, None, None]) / rx[:, None, None]
        ) ** 2 <= 1

    images = []
    for i in range(n_images):
        g = int(rng.integers(0, 6))
        gt_masks = ellipses(g)
        gt_labels = rng.integers(0, n_classes, g)
        found = np.flatnonzero(rng.random(g) < 0.8)
        shifted = [np.roll(gt_masks[j], tuple(rng.integers(-3, 4, 2)), axis=(0, 1)) for j in found]
        pred_masks = np.concatenate([np.reshape(np.array(shifted, bool), (-1, h, w)), ellipses(int(rng.poisson(1.5)))])
        if i % 3 == 2:  # an empty predicted mask: area 0, IoU 0 with everything
            pred_masks = np.concatenate([pred_masks, np.zeros((1, h, w), bool)])
        labels = np.concatenate([gt_labels[found], rng.integers(0, n_classes, len(pred_masks) - len(found))])
        images.append({
            "pred_xyxy": None, "pred_labels": labels, "pred_scores": rng.random(len(labels)),
            "gt_xyxy": None, "gt_labels": gt_labels, "pred_masks": pred_masks, "gt_masks": gt_masks,
        })  # fmt: skip
    return images


MASK_CASES = {
    **{f"random-{seed}": random_mask_images(seed) for seed in range(4)},
    "large-image": random_mask_images(9, n_images=3, size=(300, 400)),
}


@pytest.mark.parametrize("case", MASK_CASES)
def test_segm_metrics_equal_cocoeval(case):
    images = MASK_CASES[case]
    ref_stats, ref_per_class, _ = coco_reference(images, "segm")
    m = ours(images, "segm")
    np.testing.assert_allclose(m.stats, ref_stats, atol=TOLERANCE, rtol=0)
    assert m.per_class_AP == pytest.approx(ref_per_class, abs=TOLERANCE)
    assert m.iou_type == "segm"


def test_segm_accepts_boxes_and_uint8_masks():
    images = MASK_CASES["random-0"]
    m = ours(images, "segm")
    ev = DetectionEvaluator(iou_type="segm")
    for im in images:
        boxes = np.tile([0.0, 0.0, 1.0, 1.0], (len(im["pred_labels"]), 1))
        gt_boxes = np.tile([0.0, 0.0, 1.0, 1.0], (len(im["gt_labels"]), 1))
        ev.add_image(
            boxes,
            im["pred_labels"],
            im["pred_scores"],
            gt_boxes,
            im["gt_labels"],
            pred_masks=im["pred_masks"].astype(np.uint8),
            gt_masks=im["gt_masks"],
        )
    assert ev.evaluate().stats == m.stats


# --------------------------------------------------------------------------- arguments


GOOD = image([[0, 0, 10, 10], [5, 5, 20, 20]], [0, 1], [0.5, 0.7], [[0, 0, 10, 10]], [1])


@pytest.mark.parametrize(
    "change, message",
    [
        ({"pred_xyxy": np.zeros((2, 3))}, r"pred_xyxy must be a numeric array with shape \(2, 4\)"),
        ({"gt_xyxy": np.zeros((2, 4))}, r"gt_xyxy must be a numeric array with shape \(1, 4\)"),
        ({"pred_scores": np.array([0.5])}, r"pred_scores must be a numeric array with shape \(2,\)"),
        ({"pred_labels": np.array([[0, 1]])}, r"pred_labels must be a 1D array"),
        ({"pred_labels": np.array([0.5, 1.0])}, "pred_labels must hold integer class ids"),
        ({"gt_labels": np.array([True])}, "gt_labels must hold integer class ids"),
        ({"gt_labels": np.array([-1])}, "gt_labels must be class ids >= 0, got -1"),
        ({"pred_xyxy": np.array([[0, 0, 10, 10], [0, np.nan, 1, 1]])}, "pred_xyxy must be finite"),
        ({"gt_xyxy": np.array([[10, 0, 0, 10]])}, r"1 inverted boxes .* exporter\.render\.to_pixel_xyxy"),
        ({"pred_scores": np.array([0.5, np.nan])}, "pred_scores must be finite"),
        ({"pred_xyxy": None}, "pred_xyxy must be an .* got None"),
        ({"pred_masks": np.zeros((2, 4, 4), bool)}, "pred_masks is used only with iou_type='segm'"),
    ],
)
def test_bad_arguments_are_refused_and_leave_nothing_behind(change, message):
    ev = DetectionEvaluator()
    ev.add_image(**GOOD)
    before = ev.evaluate()
    with pytest.raises(ConfigError, match=message):
        ev.add_image(**{**GOOD, **change})
    assert ev.num_images == 1 and ev.evaluate() == before


MASKS = {"pred_masks": np.zeros((2, 8, 8), bool), "gt_masks": np.ones((1, 8, 8), bool)}


@pytest.mark.parametrize(
    "change, message",
    [
        ({"pred_masks": None}, r"pred_masks must be an \(N, H, W\) array"),
        ({"gt_masks": np.ones((2, 8, 8), bool)}, r"gt_masks must have shape \(1, H, W\)"),
        ({"gt_masks": np.ones((1, 8, 9), bool)}, "must have the same"),
        ({"pred_masks": np.full((2, 8, 8), 0.7)}, "threshold soft masks first"),
        ({"pred_masks": np.full((2, 8, 8), 3, np.uint8)}, "boolean"),
    ],
)
def test_bad_masks_are_refused(change, message):
    ev = DetectionEvaluator(iou_type="segm")
    ev.add_image(**GOOD, **MASKS)
    with pytest.raises(ConfigError, match=message):
        ev.add_image(**GOOD, **{**MASKS, **change})
    assert ev.num_images == 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_classes": 0}, "num_classes must be None or an integer >= 1, got 0"),
        ({"num_classes": 2.0}, "num_classes must be None or an integer"),
        ({"iou_type": "keypoints"}, "iou_type must be one of bbox, segm, got 'keypoints'"),
    ],
)
def test_bad_evaluator_options(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        DetectionEvaluator(**kwargs)


def test_num_classes_bounds_the_class_ids():
    ev = DetectionEvaluator(num_classes=2)
    with pytest.raises(ConfigError, match=r"pred_labels must be class ids 0..1, got 2"):
        ev.add_image(**{**GOOD, "pred_labels": np.array([0, 2])})


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m: m.pr_curve(-1), "class_id must be an integer >= 0"),
        (lambda m: m.pr_curve(0, num_thresholds=1), r"num_thresholds must be an integer in 2..127, got 1"),
        (lambda m: m.pr_curve(0, num_thresholds=128), "num_thresholds must be an integer in 2..127"),
        (lambda m: DetectionMetrics(*[0.5] * 11, 1.5, per_class_AP={}), r"ARl must be a float in \[0, 1\] or -1.0"),
        (lambda m: DetectionMetrics(*[0.5] * 12, per_class_AP={-1: 0.5}), "per_class_AP keys must be class ids >= 0"),
        (lambda m: DetectionMetrics(*[0.5] * 12, per_class_AP=[0.5]), "per_class_AP must be a dict"),
    ],
)
def test_bad_metric_arguments(call, message):
    with pytest.raises(ConfigError, match=message):
        call(ours([GOOD]))


def test_docstring_examples_run():
    result = doctest.testmod(detection)
    assert result.attempted > 0 and result.failed == 0
