"""Selections: every mode, compositions, the fields they read, and the errors they raise."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.errors import ConfigError
from exporter.metrics.images import ImageStats
from exporter.select import Selection

CLASSES = ["cat", "dog", "owl"]
# position:                0    1    2    3    4     5    6    7
LABELS = np.array([0, 1, 2, 0, 1, 2, 0, 1], dtype=np.int32)
PRED = np.array([0, 2, 2, 1, 1, 0, 0, 2], dtype=np.int32)  # wrong at 1, 3, 5, 7
SCORES = np.array([0.9, 0.8, 0.3, 0.6, 0.5, 0.95, 0.2, 0.7], dtype=np.float32)
IDS = np.array(list("abcdefgh"))
ARRAYS = {"labels": LABELS, "pred_labels": PRED, "pred_scores": SCORES, "ids": IDS}

# No pred_labels, no pred_scores: both come from probs (argmax, and the probability there).
PROBS = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.2, 0.5, 0.3], [0.1, 0.1, 0.8]], dtype=np.float32)
FROM_PROBS = {"labels": np.array([0, 1, 2, 0]), "probs": PROBS}  # pred 0 2 1 2 (wrong at 1, 2, 3), scores .7 .6 .5 .8
# pred_labels that are not the argmax: the score is the probability of the predicted class.
PRED_NOT_ARGMAX = {"labels": np.array([0, 1, 2, 0]), "pred_labels": np.array([1, 2, 1, 2]), "probs": PROBS}


@pytest.mark.parametrize(
    "selection, arrays, expected",
    [
        (Selection(), ARRAYS, [0, 1, 2, 3, 4, 5, 6, 7]),
        (Selection(classes=[0]), ARRAYS, [0, 3, 6]),
        (Selection(classes="dog"), ARRAYS, [1, 4, 7]),
        (Selection(classes=["owl", "cat"]), ARRAYS, [0, 2, 3, 5, 6]),
        (Selection(classes=np.array([1, 2])), ARRAYS, [1, 2, 4, 5, 7]),
        (Selection(classes=[7]), ARRAYS, []),
        (Selection(misclassified=True), ARRAYS, [1, 3, 5, 7]),
        (Selection(correct=True), ARRAYS, [0, 2, 4, 6]),
        (Selection(min_score=0.6), ARRAYS, [0, 1, 3, 5, 7]),
        (Selection(max_score=0.5), ARRAYS, [2, 4, 6]),
        (Selection(min_score=0.5, max_score=0.8), ARRAYS, [1, 3, 4, 7]),
        (Selection(most_confident_wrong=2), ARRAYS, [5, 1]),  # ranked, not step order
        (Selection(most_confident_wrong=10), ARRAYS, [5, 1, 7, 3]),
        (Selection(most_confident_wrong=0), ARRAYS, []),
        (Selection(least_confident_correct=3), ARRAYS, [6, 2, 4]),
        (Selection(ids=["h", "b"]), ARRAYS, [1, 7]),  # step order, not the order asked
        (Selection(ids="c"), ARRAYS, [2]),
        (Selection(ids=IDS[[3, 0]]), ARRAYS, [0, 3]),
        (Selection(per_class=1), ARRAYS, [0, 1, 2]),
        (Selection(per_class=2), ARRAYS, [0, 1, 2, 3, 4, 5]),
        (Selection(limit=3), ARRAYS, [0, 1, 2]),
        (Selection(limit=0), ARRAYS, []),
        # several conditions: filters, then ranking, then per_class, then the cuts
        (Selection(classes=[0], misclassified=True), ARRAYS, [3]),
        (Selection(misclassified=True, per_class=1), ARRAYS, [1, 3, 5]),
        (Selection(most_confident_wrong=3, per_class=1), ARRAYS, [5, 1, 3]),  # quota applied to the ranking
        (Selection(most_confident_wrong=2, classes=["dog"]), ARRAYS, [1, 7]),
        (Selection(classes="dog", limit=1), ARRAYS, [1]),  # the first dog, not "dogs among the first one"
        (Selection(misclassified=True, min_score=0.7), ARRAYS, [1, 5, 7]),
        (Selection(correct=True, ids=list("abcde"), limit=2), ARRAYS, [0, 2]),
        (Selection(least_confident_correct=4, max_score=0.5), ARRAYS, [6, 2, 4]),
        # a & b, and where()
        (Selection(classes=[0]) & Selection(misclassified=True), ARRAYS, [3]),
        (Selection(classes="dog") & Selection(limit=1), ARRAYS, [1]),
        (Selection(ids=list("abc")) & Selection(ids=list("bcd")), ARRAYS, [1, 2]),
        (Selection(limit=5) & Selection(limit=2), ARRAYS, [0, 1]),
        (Selection(min_score=0.3) & Selection(min_score=0.7) & Selection(max_score=0.9), ARRAYS, [0, 1, 7]),
        (Selection(most_confident_wrong=3) & Selection(most_confident_wrong=1), ARRAYS, [5]),
        (Selection(classes=["cat", "dog"]) & Selection(classes=["dog", "owl"]), ARRAYS, [1, 4, 7]),
        (Selection(misclassified=True).where(classes=[2]), ARRAYS, [5]),
        # predictions and scores from probs
        (Selection(misclassified=True), FROM_PROBS, [1, 2, 3]),
        (Selection(correct=True), FROM_PROBS, [0]),
        (Selection(most_confident_wrong=2), FROM_PROBS, [3, 1]),
        (Selection(min_score=0.6), FROM_PROBS, [0, 1, 3]),
        (Selection(min_score=0.55), PRED_NOT_ARGMAX, [1, 3]),  # probs at pred_labels: .2 .6 .5 .8
        (Selection(misclassified=True), PRED_NOT_ARGMAX, [0, 1, 2, 3]),
        # fields a selection does not read may have other lengths
        (Selection(limit=1), {"labels": LABELS, "ids": IDS[:3]}, [0]),
        (Selection(classes=[0]), {"labels": LABELS, "pred_labels": PRED[:3]}, [0, 3, 6]),
    ],
)
def test_select(selection, arrays, expected):
    before = {k: v.copy() for k, v in arrays.items()}
    got = selection.select(arrays, CLASSES)
    assert got.dtype == np.int64
    assert got.tolist() == expected
    for k, v in arrays.items():  # inputs are not modified
        np.testing.assert_array_equal(v, before[k])


def test_nan_scores_rank_last_and_fall_outside_ranges():
    arrays = {
        "labels": np.zeros(4, int),
        "pred_labels": np.ones(4, int),
        "pred_scores": np.array([0.5, np.nan, 0.9, 0.1]),
    }
    assert Selection(most_confident_wrong=4).select(arrays).tolist() == [2, 0, 3, 1]
    assert Selection(min_score=0.0).select(arrays).tolist() == [0, 2, 3]


def test_limit_needs_no_fields_but_the_count():
    assert Selection(limit=2).select({}, n=5).tolist() == [0, 1]
    assert Selection().select({}, n=3).tolist() == [0, 1, 2]
    with pytest.raises(ConfigError, match="pass n="):
        Selection(limit=2).select({})


@pytest.mark.parametrize(
    "selection, arrays, class_names, error",
    [
        (
            Selection(misclassified=True),
            {"labels": LABELS, "pred_scores": SCORES},
            CLASSES,
            r"misclassified needs 'labels' and 'pred_labels' \(or 'probs'\); the input has: labels, pred_scores",
        ),
        (Selection(correct=True), {"pred_labels": PRED}, CLASSES, r"correct needs 'labels' and 'pred_labels'"),
        (Selection(classes=[0]), {"pred_labels": PRED}, CLASSES, r"classes needs 'labels'; the input has: pred_labels"),
        (Selection(per_class=1), {"ids": IDS}, CLASSES, r"per_class needs 'labels'"),
        (Selection(min_score=0.5), {"labels": LABELS}, CLASSES, r"min_score needs 'pred_scores' \(or 'probs'\)"),
        (
            Selection(most_confident_wrong=3),
            {"labels": LABELS, "pred_labels": PRED},
            CLASSES,
            r"most_confident_wrong needs 'pred_scores' \(or 'probs'\)",
        ),
        (Selection(ids=["a"]), {"labels": LABELS}, CLASSES, r"ids needs 'ids'"),
        (
            Selection(ids=["a", "zz", "b", "y", "x", "w"]),
            ARRAYS,
            CLASSES,
            r"ids not in the input: 'zz', 'y', 'x' \(and 1 more\)",
        ),
        (Selection(ids=[3]), ARRAYS, CLASSES, r"ids not in the input: 3; its ids look like: 'a', 'b', 'c'"),
        (Selection(classes=["cta"]), ARRAYS, CLASSES, r"unknown class name 'cta'; the classes are: cat, dog, owl"),
        (Selection(classes=["cat"]), ARRAYS, None, r"classes given by name \('cat'\) need class names"),
        (Selection(misclassified=True), {"labels": LABELS, "pred_labels": PRED[:3]}, CLASSES, r"different lengths"),
    ],
)
def test_select_errors(selection, arrays, class_names, error):
    with pytest.raises(ConfigError, match=error):
        selection.select(arrays, class_names)


@pytest.mark.parametrize(
    "make, error",
    [
        (lambda: Selection(misclassified=True, correct=True), r"misclassified and correct exclude each other"),
        (lambda: Selection(most_confident_wrong=3, correct=True), r"most_confident_wrong and correct exclude"),
        (
            lambda: Selection(misclassified=True, least_confident_correct=2),
            r"misclassified and least_confident_correct",
        ),
        (lambda: Selection(most_confident_wrong=0, least_confident_correct=0), r"exclude each other"),
        (lambda: Selection(misclassified=True) & Selection(correct=True), r"exclude each other"),
        (lambda: Selection(min_score=0.9, max_score=0.1), r"min_score 0.9 is above max_score 0.1"),
        (lambda: Selection(min_score=0.9) & Selection(max_score=0.1), r"min_score 0.9 is above max_score 0.1"),
        (lambda: Selection(classes=["cat"]) & Selection(classes=[0]), r"give both as names or both as ids"),
        (lambda: Selection(limit=-1), r"limit must be None or an integer >= 0, got -1"),
        (lambda: Selection(per_class=1.5), r"per_class must be None or an integer >= 0"),
        (lambda: Selection(most_confident_wrong=True), r"most_confident_wrong must be None or an integer >= 0"),
        (lambda: Selection(misclassified="yes"), r"misclassified must be True or False, got 'yes'"),
        (lambda: Selection(min_score="0.5"), r"min_score must be a finite number, got .0.5."),
        (lambda: Selection(max_score=float("nan")), r"max_score must be a finite number, got nan"),
        (
            lambda: Selection(classes=[1.5]),
            r"classes must be a list of class ids \(int\) or class names \(str\), got item 1.5",
        ),
        (lambda: Selection(classes=[True]), r"got item True"),
        (lambda: Selection(ids={"a": 1}), r"ids must be a list of example ids"),
        (lambda: Selection(ids=np.zeros((2, 2), int)), r"ids must be a 1-D array"),
        (lambda: Selection(limit=1) & 3, TypeError),
    ],
)
def test_construction_errors(make, error):
    if error is TypeError:
        with pytest.raises(TypeError):
            make()
        return
    with pytest.raises(ConfigError, match=error):
        make()


@pytest.mark.parametrize(
    "selection, fields",
    [
        (Selection(), set()),
        (Selection(limit=4), set()),
        (Selection(classes=["cat"]), {"labels"}),
        (Selection(per_class=2), {"labels"}),
        (Selection(misclassified=True), {"labels", "pred_labels", "probs"}),
        (Selection(correct=True), {"labels", "pred_labels", "probs"}),
        (Selection(min_score=0.1), {"pred_scores", "probs", "pred_labels"}),
        (Selection(most_confident_wrong=3), {"labels", "pred_labels", "probs", "pred_scores"}),
        (Selection(least_confident_correct=3), {"labels", "pred_labels", "probs", "pred_scores"}),
        (Selection(ids=["a"]), {"ids"}),
        (Selection(ids=["a"], classes=[0]), {"ids", "labels"}),
    ],
)
def test_fields_name_what_select_reads_never_images(selection, fields):
    assert selection.fields == fields
    # select() reads nothing else: given only those fields (the ones there are), it selects the same
    only = {k: v for k, v in ARRAYS.items() if k in fields}
    assert selection.select(only, CLASSES, n=len(LABELS)).tolist() == selection.select(ARRAYS, CLASSES).tolist()


@pytest.mark.parametrize(
    "selection, text",
    [
        (Selection(), "Selection()"),
        (Selection(classes="cat", limit=5), "Selection(classes=('cat',), limit=5)"),
        (Selection(misclassified=True, min_score=1), "Selection(misclassified=True, min_score=1.0)"),
        (Selection(ids=np.array([1, 2])), "Selection(ids=(1, 2))"),
        (Selection(ids=list("abcdef")), "Selection(ids=('a', 'b', 'c', ... 6 ids))"),
    ],
)
def test_repr(selection, text):
    assert repr(selection) == text


def test_and_is_the_selection_with_both_sets_of_conditions():
    a = Selection(classes=["cat", "dog"], misclassified=True, limit=5)
    b = Selection(classes=["dog"], min_score=0.5, per_class=2, limit=3)
    both = Selection(classes=["dog"], misclassified=True, min_score=0.5, per_class=2, limit=3)
    assert a & b == both
    assert b & a == both
    assert a.where(classes=["dog"], min_score=0.5, per_class=2, limit=3) == both
    assert hash(a & b) == hash(both)  # frozen: usable as a dict key
    assert Selection().everything and not a.everything
    assert Selection(most_confident_wrong=1).ranked and not a.ranked


# --------------------------------------------------------------------------- properties

_filters = st.builds(
    Selection,
    classes=st.none() | st.lists(st.integers(0, 2), max_size=3),
    misclassified=st.booleans(),
    min_score=st.none() | st.sampled_from([0.25, 0.5, 0.75]),
    max_score=st.none() | st.sampled_from([0.8, 1.0]),
    ids=st.none() | st.lists(st.sampled_from(list("abcdefgh")), max_size=4),
)


@settings(max_examples=60, deadline=None)
@given(a=_filters, b=_filters)
def test_filters_and_is_the_intersection(a, b):
    both = set(a.select(ARRAYS).tolist()) & set(b.select(ARRAYS).tolist())
    assert (a & b).select(ARRAYS).tolist() == sorted(both)
    assert (b & a).select(ARRAYS).tolist() == sorted(both)


@settings(max_examples=60, deadline=None)
@given(
    a=_filters,
    k=st.none() | st.integers(0, 5),
    per_class=st.none() | st.integers(0, 3),
    limit=st.none() | st.integers(0, 5),
)
def test_cuts_keep_a_subset_of_the_filtered_examples(a, k, per_class, limit):
    if k is not None and a.misclassified is False:
        a = a.where(misclassified=True)
    cut = (
        a.where(per_class=per_class, limit=limit)
        if k is None
        else a.where(most_confident_wrong=k, per_class=per_class, limit=limit)
    )
    got = cut.select(ARRAYS).tolist()
    assert set(got) <= set(a.select(ARRAYS).tolist())
    assert len(got) == len(set(got))
    if limit is not None:
        assert len(got) <= limit
    if per_class is not None:
        assert max(np.bincount(LABELS[got], minlength=3), default=0) <= per_class
    if k is None:
        assert got == sorted(got)  # step order
    else:
        assert list(SCORES[got]) == sorted(SCORES[got], reverse=True)


# --------------------------------------------------------------------------- detector conditions

# Six images: matches at some IoU, per-image AP, mean best IoU and the classes of their boxes, made by hand.
STATS = ImageStats(
    6,
    tp=np.array([1, 0, 0, 1, 1, 0]),
    fp=np.array([0, 0, 1, 0, 1, 0]),
    missed=np.array([0, 1, 0, 0, 1, 0]),
    ap=np.array([1.0, 0.0, 0.0, 0.5, 0.25, np.nan]),
    best_iou=np.array([1.0, 0.0, np.nan, 0.72, 0.5, np.nan]),
    class_image=np.array([0, 1, 2, 3, 4, 4]),
    class_id=np.array([0, 0, 1, 1, 0, 2]),
)
BOX_IDS = {"ids": np.array(list("abcdef"))}


@pytest.mark.parametrize(
    "selection, expected",
    [
        (Selection(any_missed=True), [1, 4]),
        (Selection(any_false_positive=True), [2, 4]),
        (Selection(any_false_positive=True, any_missed=True), [4]),
        (Selection(box_classes="owl"), [4]),
        (Selection(box_classes=[1, "owl"]), [2, 3, 4]),
        (Selection(worst=3), [1, 2, 4]),  # ranked by AP, ties in step order
        (Selection(worst=10), [1, 2, 4, 3, 0, 5]),  # nothing to measure: last
        (Selection(worst=2, worst_by="iou"), [1, 4]),
        (Selection(worst=2, worst_by="ap", box_classes="cat"), [1, 4]),
        (Selection(any_missed=True, ids=["e", "a"]), [4]),
        (Selection(worst=3, limit=2), [1, 2]),
        (Selection(any_missed=True) & Selection(box_classes="cat"), [1, 4]),
    ],
)
def test_detector_conditions(selection, expected):
    assert selection.select(BOX_IDS, CLASSES, stats=STATS).tolist() == expected
    assert selection.ranked == (selection.worst is not None)


def test_detector_conditions_read_the_stats_they_name():
    assert Selection(any_missed=True).image_stats == {"counts"}
    assert Selection(worst=2).image_stats == {"ap"} and Selection(worst=2, worst_by="iou").image_stats == {"best_iou"}
    assert Selection(box_classes=[0]).image_stats == {"classes"} and Selection(limit=1).image_stats == frozenset()
    boxes = {"boxes", "box_labels", "box_scores", "num_boxes", "gt_boxes", "gt_box_labels", "gt_num_boxes"}
    assert Selection(any_false_positive=True).fields == boxes and Selection(misclassified=True).fields & boxes == set()
    # only the parts asked for need be there
    assert Selection(any_missed=True).select({}, n=6, stats=ImageStats(6, **{k: getattr(STATS, k) for k in ("tp", "fp", "missed")})).tolist() == [1, 4]


@pytest.mark.parametrize(
    "call, error",
    [
        (
            lambda: Selection(any_missed=True).select({"boxes": np.zeros((6, 1, 4)), "gt_boxes": np.zeros((6, 1, 4))}),
            r"pass stats= \(exporter.metrics.images.image_stats\)",
        ),
        (lambda: Selection(worst=2).select({}, n=5, stats=STATS), r"n=5 but the fields of the input hold 6 examples"),
        (lambda: Selection(worst=2, ids=["a"]).select(BOX_IDS, stats=ImageStats(5, ap=np.zeros(5))), r"different lengths"),
        (lambda: Selection(worst=2).select({}, n=6, stats=ImageStats(6)), r"stats were computed without 'ap'"),
        (lambda: Selection(box_classes="cta").select(BOX_IDS, CLASSES, stats=STATS), r"unknown class name 'cta'"),
        (lambda: Selection(any_missed=True).check({"images", "labels"}), r"any_missed needs 'boxes' and 'gt_boxes'; the input has: images, labels"),
        (lambda: Selection(box_classes=[0]).check({"boxes"}), r"box_classes needs 'box_labels' or 'gt_box_labels'; the input has: boxes"),
        (lambda: Selection(worst=2, most_confident_wrong=2), r"most_confident_wrong and worst both rank the examples"),
        (lambda: Selection(worst_by="iou"), r"worst_by='iou' says how worst=k ranks, but worst is not set"),
        (lambda: Selection(worst=1, worst_by="area"), r"worst_by must be one of ap, iou, got 'area'"),
        (lambda: Selection(match_iou=0), r"match_iou must be > 0.0 and <= 1.0, got 0"),
        (lambda: Selection(any_missed=1), r"any_missed must be True or False, got 1"),
        (lambda: Selection(match_iou=0.5) & Selection(match_iou=0.7), r"cannot combine match_iou=0.5 with match_iou=0.7"),
        (lambda: Selection(box_classes=["cat"]) & Selection(box_classes=[0]), r"give both as names or both as ids"),
    ],
)
def test_detector_condition_errors(call, error):
    with pytest.raises(ConfigError, match=error):
        call()


def test_detector_conditions_compose_and_print():
    a = Selection(any_missed=True, match_iou=0.3, min_box_score=0.2, worst=5)
    b = Selection(box_classes=["cat", "owl"], min_box_score=0.4, worst=3, worst_by="ap")
    both = a & b
    assert both == b & a
    assert (both.match_iou, both.min_box_score, both.worst, both.worst_by, both.box_classes) == (0.3, 0.4, 3, "ap", ("cat", "owl"))
    assert repr(Selection(any_false_positive=True, worst=2)) == "Selection(any_false_positive=True, worst=2)"
