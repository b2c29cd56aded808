"""Draw one ``Example`` as one picture: ``draw_example(example, style)``; ``render_example`` reads and draws.

Output layout, top to bottom:

* with ``side_by_side=True``, a header strip naming the two panels;
* the panel(s): the image, integer-upscaled (nearest) so its shortest side is
  at least ``min_size`` (but the long side not beyond 4096), with masks blended
  and boxes drawn on it; the aspect ratio of the input is kept exactly;
* a caption strip when there is a classification result or an id
  ("#7 | pred: cat 0.93 | true: dog"), green when right, red when wrong;
* a top-k probability bar chart when ``topk > 0`` and ``probs`` is present.

So the output is as wide as the panel(s) and may be taller than them.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from .._checks import check_type
from . import colors
from .boxes import match_boxes
from .captions import caption, draw_topk, fit_caption, score_text, topk_rows
from .classes import NO_CLASS, class_name
from .colors import Color, class_color, text_color
from .example import Boxes, Example, read_example
from .masks import blend_into
from .options import ReadOptions, RenderOptions
from .text import label_size, paste_box_label, paste_label

_MIN_FONT = 11
_MAX_UPSCALED_SIDE = 4096


@dataclasses.dataclass(frozen=True)
class _Sizes:
    """Sizes that scale with the panel: text must stay legible from 128 px to thousands."""

    font: int
    line: int
    dash: int
    pad: int

    @classmethod
    def for_size(cls, short_side: int) -> _Sizes:
        # grows slower than the image: 11 px at 128-224, 18 at 512, 28 at 1024
        font = int(max(_MIN_FONT, round(7 + short_side / 48)))
        line = int(max(2, round(short_side / 200)))
        return cls(font=font, line=line, dash=3 * line + 2, pad=max(2, font // 3))


@dataclasses.dataclass
class _Panel:
    """One panel: where it sits on the canvas and what is drawn on it."""

    x: int
    y: int
    mask: np.ndarray | None
    gt: Boxes | None
    pred: Boxes | None
    title: str = ""

    def bounds(self, w: int, h: int) -> tuple[int, int, int, int]:
        """The panel's (x0, y0, x1, y1) on the canvas, exclusive end."""
        return self.x, self.y, self.x + w, self.y + h


_DEFAULT_STYLE = RenderOptions()


def render_example(
    arrays: Mapping[str, Any], style: RenderOptions = _DEFAULT_STYLE, read: ReadOptions | None = None
) -> Image.Image:
    """Read one example's arrays and draw them: ``draw_example(read_example(arrays, read), style)``.

    ``arrays`` maps canonical field names (or ODAPI keys) to arrays without a
    batch axis; only ``images`` is required. ``read`` defaults to the read
    keywords still given to ``RenderOptions`` (``style.legacy_read``), else to
    ``ReadOptions()``. Inputs are not modified.

    >>> img = render_example({"images": np.zeros((28, 28), np.uint8), "labels": np.int64(3)})
    >>> img.mode, img.width
    ('RGB', 140)
    """
    check_type(style, RenderOptions, "style")
    return draw_example(read_example(arrays, read or style.legacy_read or ReadOptions()), style)


def draw_example(example: Example, style: RenderOptions = _DEFAULT_STYLE) -> Image.Image:
    """Draw one ``Example`` as one RGB image (see the module docstring for the layout).

    Predicted boxes above ``score_threshold`` (at most ``max_boxes``, best
    first) are coloured by class and labelled "name score"; gt boxes are dashed
    and labelled "gt: name" under their bottom-left corner; with ``match_iou``
    predictions are coloured TP (green) / FP (red), unmatched gt boxes are
    labelled "missed" (orange) and the caption counts them ("TP 2 FP 1 FN 0").
    The example is not modified.

    >>> draw_example(Example(np.zeros((64, 48, 3), np.uint8)), RenderOptions(min_size=0)).size
    (48, 64)
    """
    check_type(example, Example, "example", "an Example (read_example makes one from arrays)")
    check_type(style, RenderOptions, "style")
    o = style
    rgb = example.image
    h0, w0 = rgb.shape[:2]
    f = _upscale_factor(h0, w0, o.min_size)
    h, w = h0 * f, w0 * f
    sizes = _Sizes.for_size(min(h, w))
    names = example.class_names

    pred = _kept(example.pred, o)
    gt = example.gt
    matched = missed = None
    if o.match_iou is not None and pred is not None and gt is not None:
        both_labelled = pred.labels is not None and gt.labels is not None
        m = match_boxes(
            pred.xyxy,
            gt.xyxy,
            o.match_iou,
            scores=pred.scores,
            pred_labels=pred.labels if both_labelled else None,
            gt_labels=gt.labels if both_labelled else None,
        )
        matched, missed = m.tp, m.missed
    gt_drawn = gt if o.draw_gt else None

    counts = None if matched is None or missed is None else (int(matched.sum()), int((~matched).sum()), int(missed.sum()))
    strip = caption(example, counts) if o.draw_caption else None
    topk = topk_rows(example, o.topk) if o.topk > 0 else None

    masks, gt_masks = example.mask, example.gt_mask if o.draw_gt else None
    gap = max(4, sizes.line * 2)
    header_h = label_size("x", sizes.font)[1] if o.side_by_side else 0
    if o.side_by_side:
        panels = [
            _Panel(0, header_h, gt_masks, gt_drawn, None, "ground truth"),
            _Panel(w + gap, header_h, masks, None, pred, "prediction"),
        ]
        width = 2 * w + gap
    else:
        panels = [_Panel(0, 0, masks if masks is not None else gt_masks, gt_drawn, pred)]
        width = w
    caption_lines, caption_size = fit_caption(strip[0], width, sizes.font, sizes.pad) if strip else ([], sizes.font)
    caption_h = sum(label_size(t, caption_size)[1] for t in caption_lines) + (sizes.pad if caption_lines else 0)
    row_h = label_size("x", sizes.font)[1]
    topk_h = len(topk) * row_h + 2 * sizes.pad if topk else 0
    height = header_h + h + caption_h + topk_h

    canvas = np.empty((height, width, 3), dtype=np.uint8)
    if width != w or height != h:
        _fill(canvas, colors.BACKGROUND)
    if caption_lines:
        _fill(canvas[header_h + h : header_h + h + caption_h], strip[1])
    for p in panels:
        region = canvas[p.y : p.y + h, p.x : p.x + w]
        if f == 1:
            region[...] = rgb
        else:
            region.reshape(h0, f, w0, f, 3)[...] = rgb[:, None, :, None, :]
        if p.mask is not None:
            blend_into(
                region,
                p.mask,
                alpha=o.mask_alpha,
                background=example.mask_background,
                outline=o.mask_outline,
                outline_width=max(1, sizes.line // 2),
            )
    # dashed gt boxes are cheaper as numpy slices than as Pillow calls, and go under the predictions
    gt_labels = [
        _draw_gt(canvas, p.gt, missed, names, f, p.bounds(w, h), sizes) if p.gt is not None else [] for p in panels
    ]
    img = Image.fromarray(canvas)
    draw = ImageDraw.Draw(img)

    for p, p_gt_labels in zip(panels, gt_labels, strict=True):
        bounds = p.bounds(w, h)
        pred_labels = _draw_pred(draw, p.pred, matched, names, f, bounds, sizes) if p.pred is not None else []
        # labels go on after every box, so no box line crosses a label; best predictions pick their spot first
        taken: list[tuple[int, int, int, int]] = []
        for text, box, bg, where in pred_labels + p_gt_labels:
            paste_box_label(img, text, box, sizes.font, text_color(bg), bg, bounds=bounds, taken=taken, where=where)
        if p.title:
            paste_label(
                img, p.title, p.x, 0, sizes.font, colors.WHITE, colors.BACKGROUND, bounds=(p.x, 0, p.x + w, header_h)
            )

    y = header_h + h
    if caption_lines:
        y += sizes.pad // 2
        for line in caption_lines:
            y = paste_label(
                img, line, sizes.pad, y, caption_size, colors.WHITE, strip[1], bounds=(0, y, width, height)
            )[3]
        y = header_h + h + caption_h
    if topk:
        draw_topk(img, draw, topk, y + sizes.pad, width, sizes.font, sizes.pad)
    return img


def _kept(pred: Boxes | None, o: RenderOptions) -> Boxes | None:
    """Predicted boxes above the score threshold, at most ``max_boxes``, highest score first."""
    if pred is None:
        return None
    if pred.scores is not None:
        ok = np.flatnonzero(pred.scores >= o.score_threshold)  # NaN scores fail this and are dropped
        order = ok[np.argsort(-pred.scores[ok], kind="stable")][: o.max_boxes]
    else:
        order = np.arange(min(o.max_boxes, len(pred)))
    return pred.take(order)


def _fill(region: np.ndarray, color: Color) -> None:
    """``region[...] = color``, but one row built once and copied: numpy broadcasts a 3-value colour
    pixel by pixel, which cost more than half of a whole render."""
    region[...] = np.tile(np.asarray(color, np.uint8), (1, region.shape[1], 1))


def _upscale_factor(h: int, w: int, min_size: int) -> int:
    """The integer factor that brings the shortest side to at least ``min_size`` (long side capped)."""
    short = min(h, w)
    if short >= min_size:
        return 1
    # a 1 x 1000 strip must not become a 128 x 128000 canvas
    return max(1, min(math.ceil(min_size / short), _MAX_UPSCALED_SIDE // max(h, w)))


def _pixel_rects(xyxy: np.ndarray, f: int, bounds: tuple[int, int, int, int]) -> list:
    """Boxes in original pixels → inclusive canvas rectangles clamped into the panel (None if outside it)."""
    bx0, by0, bx1, by1 = bounds
    w, h = bx1 - bx0, by1 - by0
    b = xyxy * f
    outside = (b[:, 2] <= 0) | (b[:, 3] <= 0) | (b[:, 0] >= w) | (b[:, 1] >= h)
    r = np.rint(np.clip(b, 0, np.array([w, h, w, h], dtype=np.float64))).astype(np.int64)
    # pixel p covers [p, p + 1): the right/bottom edge pixel is the one before x2
    r[:, 2:] = np.maximum(r[:, :2], r[:, 2:] - 1)
    r = np.minimum(r, [w - 1, h - 1, w - 1, h - 1]) + [bx0, by0, bx0, by0]
    return [None if out else tuple(rect) for out, rect in zip(outside.tolist(), r.tolist(), strict=True)]


def _class_box_color(cid: int) -> Color:
    """The colour of a box of class ``cid`` (a box whose class id was unreadable gets its own)."""
    return colors.UNKNOWN if cid == NO_CLASS else class_color(cid)


def _draw_pred(draw, boxes: Boxes, matched, names: Sequence[str] | None, f: int, bounds, sizes: _Sizes) -> list:
    """Draw predicted boxes (lowest score first, so the best is on top); return their labels, best first."""
    labels = []
    rects = _pixel_rects(boxes.xyxy, f, bounds)
    for i in range(boxes.xyxy.shape[0] - 1, -1, -1):
        rect = rects[i]
        if rect is None:
            continue
        cid = None if boxes.labels is None else int(boxes.labels[i])
        if matched is not None:
            color = colors.TP if matched[i] else colors.FP
        elif cid is None:
            color = class_color(0)
        else:
            color = _class_box_color(cid)
        draw.rectangle(rect, outline=color, width=sizes.line)
        parts = []
        if cid is not None:
            parts.append(class_name(cid, names))
        if boxes.scores is not None:
            parts.append(score_text(boxes.scores[i]))
        if parts:
            labels.append((" ".join(parts), rect, color, "top"))
    return labels[::-1]


def _draw_gt(
    canvas: np.ndarray, boxes: Boxes, missed, names: Sequence[str] | None, f: int, bounds, sizes: _Sizes
) -> list:
    """Draw gt boxes dashed (colour on black) on the numpy canvas; return their labels, for the bottom-left corner."""
    labels = []
    rects = _pixel_rects(boxes.xyxy, f, bounds)
    for i in range(boxes.xyxy.shape[0]):
        rect = rects[i]
        if rect is None:
            continue
        cid = None if boxes.labels is None else int(boxes.labels[i])
        if missed is not None:
            color = colors.MISSED if missed[i] else colors.GT
        elif cid is None:
            color = colors.GT
        else:
            color = _class_box_color(cid)
        _dashed_rect(canvas, rect, color, sizes)
        prefix = "missed" if missed is not None and missed[i] else "gt"
        labels.append((f"{prefix}: {class_name(cid, names)}" if cid is not None else prefix, rect, color, "bottom"))
    return labels


def _dashed_rect(canvas: np.ndarray, rect: tuple[int, int, int, int], color: Color, sizes: _Sizes) -> None:
    """An inclusive rectangle of ``color`` dashes on black, ``sizes.line`` pixels thick inward, drawn in place."""
    x0, y0, x1, y1 = rect
    width = min(sizes.line, (x1 - x0) // 2 + 1, (y1 - y0) // 2 + 1)
    length_x, length_y = x1 - x0 + 1, y1 - y0 + 1
    stripe = _dash_stripe(color, width, sizes.dash, 1 << max(6, max(length_x, length_y) - 1).bit_length())
    canvas[y0 : y0 + width, x0 : x1 + 1] = stripe[:, :length_x]
    canvas[y1 - width + 1 : y1 + 1, x0 : x1 + 1] = stripe[:, :length_x]
    down = stripe[:, :length_y].transpose(1, 0, 2)
    canvas[y0 : y1 + 1, x0 : x0 + width] = down
    canvas[y0 : y1 + 1, x1 - width + 1 : x1 + 1] = down


@functools.lru_cache(maxsize=256)
def _dash_stripe(color: Color, width: int, dash: int, length: int) -> np.ndarray:
    """A cached (width, length, 3) strip of ``color`` dashes on black (lengths rounded up to a power of 2)."""
    stripe = np.empty((width, length, 3), dtype=np.uint8)
    stripe[...] = colors.BLACK
    stripe[:, (np.arange(length) // dash) % 2 == 0] = color
    stripe.setflags(write=False)
    return stripe
