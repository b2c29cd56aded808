"""Semantic segmentation metrics: hand-computed IoUs on tiny maps, random maps against a naive count."""

from __future__ import annotations

import doctest
import subprocess
import sys

import numpy as np
import pytest

from exporter.errors import ConfigError
from exporter.metrics import segmentation
from exporter.metrics.segmentation import MAX_CLASSES, NO_PIXELS, SegmentationEvaluator, SegmentationMetrics


def evaluate(pairs, **kwargs) -> SegmentationMetrics:
    ev = SegmentationEvaluator(**kwargs)
    for pred, gt in pairs:
        ev.add(np.asarray(pred), np.asarray(gt))
    return ev.result()


# (name, evaluator options, [(pred, gt), ...], pixel accuracy, {class: IoU})
BY_HAND = [
    (
        "ignored pixels count nowhere",
        {},
        [([[0, 1, 1], [1, 2, 0]], [[0, 0, 1], [1, 2, 255]])],
        # pairs (gt, pred): (0,0) (0,1) (1,1) (1,1) (2,2); the prediction under 255 is dropped
        4 / 5,
        {0: 1 / 2, 1: 2 / 3, 2: 1.0},
    ),
    (
        "a prediction outside 0..K-1 is wrong and counts against the gt class only",
        {"num_classes": 2},
        [([[0, 7], [-3, 1]], [[0, 1], [1, 1]])],
        2 / 4,
        {0: 1.0, 1: 1 / 3},
    ),
    (
        "a class only predicted has IoU 0; a class seen nowhere is left out",
        {"num_classes": 4},
        [([[3, 3], [0, 0]], [[0, 0], [0, 0]])],
        2 / 4,
        {0: 2 / 4, 3: 0.0},
    ),
    (
        "several images add up",
        {"num_classes": 2},
        [([[0, 0]], [[0, 1]]), ([[1, 1]], [[1, 1]])],
        3 / 4,
        {0: 1 / 2, 1: 2 / 3},
    ),
    (
        "K grows with the ids seen, earlier counts kept",
        {},
        [([[0, 1]], [[0, 1]]), ([[5, 5]], [[5, 0]])],
        3 / 4,
        {0: 1 / 2, 1: 1.0, 5: 1 / 2},
    ),
    (
        "a predicted ignore_index is never a class",
        {},
        [([[255, 1]], [[0, 1]])],
        1 / 2,
        {0: 0.0, 1: 1.0},
    ),
    (
        "ignore_index None counts every pixel, 255 included",
        {"ignore_index": None},
        [([[0, 255]], [[0, 255]])],
        1.0,
        {0: 1.0, 255: 1.0},
    ),
    (
        "another ignore_index",
        {"num_classes": 3, "ignore_index": -1},
        [([[2, 2, 1]], [[-1, 2, 1]])],
        1.0,
        {1: 1.0, 2: 1.0},
    ),
]


@pytest.mark.parametrize("name, options, pairs, accuracy, ious", BY_HAND, ids=[c[0] for c in BY_HAND])
def test_by_hand(name, options, pairs, accuracy, ious):
    m = evaluate(pairs, **options)
    assert m.pixel_accuracy == pytest.approx(accuracy)
    assert m.per_class_iou == pytest.approx(ious)
    assert list(m.per_class_iou) == sorted(ious)
    assert m.mean_iou == pytest.approx(np.mean(list(ious.values())))


def naive(pairs, k: int, ignore: int | None) -> tuple[float, dict[int, float]]:
    """Pixel accuracy and IoU counted pixel by pixel, class by class."""
    right = total = 0
    inter, union = np.zeros(k), np.zeros(k)
    for pred, gt in pairs:
        valid = gt != ignore if ignore is not None else np.ones(gt.shape, bool)
        right += np.count_nonzero(valid & (pred == gt))
        total += np.count_nonzero(valid)
        for c in range(k):
            inter[c] += np.count_nonzero(valid & (gt == c) & (pred == c))
            union[c] += np.count_nonzero(valid & ((gt == c) | (pred == c)))
    return right / total, {c: inter[c] / union[c] for c in range(k) if union[c] > 0}


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("fixed_k", [True, False])
def test_random_maps_equal_a_naive_count(seed, fixed_k):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 12))
    pairs = []
    for _ in range(int(rng.integers(1, 5))):
        h, w = rng.integers(1, 40, 2)
        gt = rng.integers(0, k, (h, w))
        gt[rng.random((h, w)) < 0.1] = 255
        pred = np.where(rng.random((h, w)) < 0.6, gt, rng.integers(0, k, (h, w)))
        if fixed_k:  # ids outside 0..K-1 and the ignore index among the predictions
            pred[rng.random((h, w)) < 0.05] = rng.choice([-1, k, k + 3, 255])
        pairs.append((pred.astype(rng.choice([np.uint8, np.int32, np.int64])), gt))
    m = evaluate(pairs, num_classes=k if fixed_k else None)
    accuracy, ious = naive(pairs, k, 255)
    assert m.pixel_accuracy == pytest.approx(accuracy, abs=1e-12)
    assert m.per_class_iou == pytest.approx(ious, abs=1e-12)
    assert m.mean_iou == pytest.approx(np.mean(list(ious.values())), abs=1e-12)
    assert m.confusion.sum() == sum(np.count_nonzero(g != 255) for _, g in pairs)
    assert m.num_classes == k if fixed_k else m.num_classes <= k


def test_confusion_matrix_layout():
    m = evaluate([([[0, 1, 9]], [[0, 0, 1]])], num_classes=2)
    # rows gt 0, 1; columns pred 0, 1, "outside"
    np.testing.assert_array_equal(m.confusion, [[1, 1, 0], [0, 0, 1]])
    assert m.num_classes == 2


def test_nothing_added_is_minus_one():
    m = SegmentationEvaluator(num_classes=3).result()
    assert (m.pixel_accuracy, m.mean_iou, m.per_class_iou) == (NO_PIXELS, NO_PIXELS, {})
    assert evaluate([([[1]], [[255]])]).mean_iou == NO_PIXELS


@pytest.mark.parametrize(
    "options, message",
    [
        ({"num_classes": MAX_CLASSES + 1}, f"num_classes must be None or an integer in 1..{MAX_CLASSES}"),
        ({"num_classes": 0}, "num_classes must be None or an integer in 1..1000, got 0"),
        ({"num_classes": 3, "ignore_index": 2}, "ignore_index must not be one of the classes 0..2, got 2"),
        ({"ignore_index": "255"}, "ignore_index must be an integer"),
        ({"ignore_index": True}, "ignore_index must be an integer"),
    ],
)
def test_bad_options(options, message):
    with pytest.raises(ConfigError, match=message):
        SegmentationEvaluator(**options)


@pytest.mark.parametrize(
    "options, pred, gt, message",
    [
        ({}, [[0, 1]], [[0, 1], [1, 0]], r"same shape \(H, W\), got \(1, 2\) and \(2, 2\)"),
        ({}, [0, 1], [0, 1], r"pred must be an \(H, W\) integer class map, but got int64 with shape \(2,\)"),
        ({}, [[0.0, 1.0]], [[0, 1]], "take argmax over the class axis first"),
        ({}, [[True]], [[1]], "pred must be an .* integer class map, but got bool"),
        ({"num_classes": 2}, [[0, 1]], [[0, 2]], "gt must hold class ids 0..1 or ignore_index 255, got 2"),
        ({"num_classes": 2}, [[0, 1]], [[-1, 0]], "gt must hold class ids 0..1 or ignore_index 255, got -1"),
        ({}, [[0, 1]], [[0, MAX_CLASSES]], "at most MAX_CLASSES=1000 classes"),
        ({}, [[0, MAX_CLASSES]], [[0, 1]], "pass num_classes to count ids beyond it as wrong"),
    ],
)
def test_bad_maps_are_refused_and_leave_nothing_behind(options, pred, gt, message):
    ev = SegmentationEvaluator(**options)
    ev.add(np.array([[0, 1]]), np.array([[0, 1]]))
    before = ev.result().confusion
    with pytest.raises(ConfigError, match=message):
        ev.add(np.asarray(pred), np.asarray(gt))
    np.testing.assert_array_equal(ev.result().confusion, before)
    assert ev.num_images == 1


def test_many_classes_with_num_classes_given_count_as_wrong():
    m = evaluate([([[0, 5000]], [[0, 1]])], num_classes=2)
    assert m.per_class_iou == {0: 1.0, 1: 0.0}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"pixel_accuracy": 1.5}, r"pixel_accuracy must be a float in \[0, 1\] or -1.0"),
        ({"per_class_iou": {0: -1.0}}, r"per_class_iou\[0\] must be a float in \[0, 1\], got -1.0"),
        ({"per_class_iou": {"a": 0.5}}, "per_class_iou keys must be class ids"),
        ({"confusion": np.zeros((2, 2), np.int64)}, r"confusion must be an integer array with shape \(K, K \+ 1\)"),
    ],
)
def test_bad_records(kwargs, message):
    good = {"pixel_accuracy": 0.5, "mean_iou": 0.5, "per_class_iou": {0: 0.5}, "confusion": np.zeros((1, 2), np.int64)}
    with pytest.raises(ConfigError, match=message):
        SegmentationMetrics(**{**good, **kwargs})


def test_docstring_examples_run():
    result = doctest.testmod(segmentation)
    assert result.attempted > 0 and result.failed == 0


def test_metrics_import_numpy_only():
    code = (
        "import sys, exporter.metrics.detection, exporter.metrics.segmentation;"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'PIL', 'tensorboardX', 'pycocotools', 'tensorflow', 'torch'})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_merged_evaluators_add_up_and_grow():
    rng = np.random.default_rng(5)
    pairs = [(rng.integers(0, k, (6, 7)), rng.integers(0, k, (6, 7))) for k in (2, 5, 3)]
    whole = evaluate(pairs)
    a, b = SegmentationEvaluator(), SegmentationEvaluator()
    a.add(*pairs[0])
    for pred, gt in pairs[1:]:
        b.add(pred, gt)
    a.merge(b)
    merged = a.result()
    assert merged.per_class_iou == whole.per_class_iou and merged.pixel_accuracy == whole.pixel_accuracy
    np.testing.assert_array_equal(merged.confusion, whole.confusion)
    assert a.num_images == 3 and b.num_images == 2


def test_merge_needs_the_same_settings():
    with pytest.raises(ConfigError, match="num_classes and ignore_index must be the same"):
        SegmentationEvaluator(ignore_index=255).merge(SegmentationEvaluator(ignore_index=None))
