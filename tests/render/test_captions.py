"""The caption strip, its word wrap and the top-k rows, from an Example."""

from __future__ import annotations

import numpy as np
import pytest

from exporter.render import Example, colors
from exporter.render.captions import caption, fit_caption, score_text, topk_rows, wrap
from exporter.render.classes import NO_CLASS
from exporter.render.text import label_size

IMG = np.zeros((4, 4, 3), np.uint8)
NAMES = ("cat", "dog", "bird")


@pytest.mark.parametrize(
    "fields, parts, bg",
    [
        ({}, None, None),
        ({"label": 1, "pred_label": 1, "score": 0.934}, ["pred: dog 0.93", "true: dog"], colors.CORRECT),
        ({"label": 1, "pred_label": 0}, ["pred: cat", "true: dog"], colors.WRONG),
        ({"pred_label": 7}, ["pred: 7"], colors.NEUTRAL),  # out of range: the number
        ({"label": NO_CLASS, "pred_label": NO_CLASS}, ["pred: ?", "true: ?"], colors.NEUTRAL),
        ({"example_id": "img 7.jpg", "label": 2}, ["#img 7.jpg", "true: bird"], colors.NEUTRAL),
        ({"example_id": 7, "score": 0.5}, ["#7"], colors.NEUTRAL),  # a score without a prediction is not shown
    ],
)
def test_caption(fields, parts, bg):
    got = caption(Example(IMG, class_names=NAMES, **fields))
    assert got == (None if parts is None else (parts, bg))


@pytest.mark.parametrize("score, text", [(0.934, "0.93"), (1.0, "1.00"), (0.005, "0.01"), (float("nan"), "nan")])
def test_score_text(score, text):
    assert score_text(score) == text


def test_parts_are_joined_while_they_fit_and_wrapped_when_not():
    parts = ["#12", "pred: cat 0.93", "true: dog"]
    wide, size = fit_caption(parts, 1000, 11, 3)
    assert wide == ["#12 | pred: cat 0.93 | true: dog"] and size == 11
    narrow, size = fit_caption(parts, label_size("pred: cat 0.93", 11)[0] + 6, 11, 3)
    assert narrow == ["#12", "pred: cat 0.93", "true: dog"] and size == 11


def test_the_font_shrinks_only_for_a_word_wider_than_the_strip():
    word = "averyveryverylongimagename.jpg"
    room = label_size(word, 11)[0] - 1
    lines, size = fit_caption([f"#{word}"], room + 6, 11, 3)
    assert lines == [f"#{word}"] and 8 <= size < 11
    assert wrap("a b c", 11, label_size("a b", 11)[0]) == ["a b", "c"]


def test_topk_rows_are_the_most_probable_with_the_true_class_green():
    ex = Example(IMG, label=2, probs=np.array([0.2, np.nan, 0.5, 0.3]), class_names=NAMES)
    assert topk_rows(ex, 3) == [("bird", 0.5, colors.CORRECT), ("3", 0.3, colors.BAR), ("cat", 0.2, colors.BAR)]
    assert [name for name, _, _ in topk_rows(ex, 10)] == ["bird", "3", "cat", "dog"]  # NaN last
    assert topk_rows(Example(IMG), 3) is None


def test_matched_boxes_are_counted_in_the_caption():
    from exporter.render.captions import counts_text

    assert caption(Example(IMG), (2, 1, 0)) == (["TP 2 FP 1 FN 0"], caption(Example(IMG, example_id=1))[1])
    parts, _ = caption(Example(IMG, example_id=7, label=1, class_names=NAMES), (0, 0, 3))
    assert parts[0] == "#7" and parts[-1] == counts_text(0, 0, 3) == "TP 0 FP 0 FN 3"
    assert caption(Example(IMG)) is None  # nothing matched, nothing to say
