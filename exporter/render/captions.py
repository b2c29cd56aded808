"""The text under the picture: the caption strip and the top-k probability bars.

The caption reads "#7 | pred: cat 0.93 | true: dog": its parts are joined by
" | " while they fit the width and a part too wide is word-wrapped; the strip
is green when the prediction is right, red when wrong, grey when there is
nothing to compare. When boxes are matched (``match_iou``) it also counts them:
"TP 2 FP 1 FN 0" (true and false positives, missed ground truth). Scores are written with two decimals everywhere
(``score_text``), on boxes too.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from . import colors
from .classes import NO_CLASS, class_name
from .colors import Color
from .example import Example
from .text import label_size, paste_label


def score_text(score: float) -> str:
    """How a score or probability is written.

    >>> score_text(0.934)
    '0.93'
    """
    return f"{score:.2f}"


def counts_text(tp: int, fp: int, missed: int) -> str:
    """How the matched boxes of one picture are counted in its caption.

    >>> counts_text(2, 1, 0)
    'TP 2 FP 1 FN 0'
    """
    return f"TP {int(tp)} FP {int(fp)} FN {int(missed)}"


def caption(example: Example, counts: tuple[int, int, int] | None = None) -> tuple[list[str], Color] | None:
    """Caption parts and background: (["#id", "pred: cat 0.93", "true: dog"], green/red/neutral), or None.

    ``counts`` (true positives, false positives, missed) adds a ``counts_text`` part.
    """
    names = example.class_names
    parts = []
    if example.example_id is not None:
        parts.append(f"#{example.example_id}")
    if example.pred_label is not None:
        text = f"pred: {class_name(example.pred_label, names)}"
        if example.score is not None:
            text += f" {score_text(example.score)}"
        parts.append(text)
    if example.label is not None:
        parts.append(f"true: {class_name(example.label, names)}")
    if counts is not None:
        parts.append(counts_text(*counts))
    if not parts:
        return None
    pred, true = example.pred_label, example.label
    if pred is None or true is None or NO_CLASS in (pred, true):
        bg = colors.NEUTRAL
    else:
        bg = colors.CORRECT if pred == true else colors.WRONG
    return parts, bg


def fit_caption(parts: list[str], width: int, size: int, pad: int) -> tuple[list[str], int]:
    """Caption lines and font size: parts joined by " | " while they fit, a part too wide word-wrapped.

    The font (``size``) only shrinks, down to 8 px, when a single word is wider
    than ``width`` minus ``pad`` on each side.
    """
    room = width - 2 * pad
    while True:
        lines: list[str] = []
        for part in parts:
            joined = f"{lines[-1]} | {part}" if lines else part
            if lines and label_size(joined, size)[0] <= room:
                lines[-1] = joined
            else:
                lines += wrap(part, size, room)
        if size <= 8 or all(label_size(line, size)[0] <= room for line in lines):
            return lines, size
        size -= 1


def wrap(text: str, size: int, room: int) -> list[str]:
    """Greedy word wrap of ``text`` into lines whose labels are at most ``room`` wide at ``size``."""
    lines: list[str] = []
    current = ""
    for word in text.split(" "):
        candidate = f"{current} {word}" if current else word
        if current and label_size(candidate, size)[0] > room:
            lines.append(current)
            current = word
        else:
            current = candidate
    lines.append(current)
    return lines


def topk_rows(example: Example, k: int) -> list[tuple[str, float, Color]] | None:
    """(class name, probability, bar colour) of the ``k`` most probable classes; the true class's bar is green."""
    probs = example.probs
    if probs is None:
        return None
    order = np.argsort(-np.where(np.isnan(probs), -np.inf, probs), kind="stable")[:k]
    return [
        (class_name(int(c), example.class_names), float(probs[c]), colors.CORRECT if c == example.label else colors.BAR)
        for c in order
    ]


def draw_topk(
    img: Image.Image,
    draw: ImageDraw.ImageDraw,
    rows: list[tuple[str, float, Color]],
    y: int,
    width: int,
    size: int,
    pad: int,
) -> None:
    """Bar chart rows from ``y`` down: class name, a bar as long as the probability, the value."""
    _, row_h = label_size("x", size)
    name_w = min(max(label_size(name, size)[0] for name, _, _ in rows), width // 3)
    value_w = label_size("0.00", size)[0]
    bar_x = pad + name_w
    bar_room = max(0, width - bar_x - value_w - 2 * pad)
    for name, p, bar in rows:
        paste_label(img, name, pad, y, size, colors.WHITE, colors.BACKGROUND, bounds=(0, y, bar_x, y + row_h))
        frac = min(max(p, 0.0), 1.0) if math.isfinite(p) else 0.0
        bar_w = round(frac * bar_room)
        if bar_w > 0:
            draw.rectangle((bar_x, y + pad // 2, bar_x + bar_w - 1, y + row_h - 1 - pad // 2), fill=bar)
        paste_label(img, score_text(p), bar_x + bar_w + pad // 2, y, size, colors.WHITE, colors.BACKGROUND)
        y += row_h
