"""Draw one ``Example`` as one picture: ``draw_example(example, style)``; ``render_example`` reads and draws.

Output layout, top to bottom:

* with ``side_by_side=True``, a header strip naming the two panels;
* the panel(s): the image, integer-upscaled (nearest) so its shortest side is
  at least ``min_size`` (but the long side not beyond 4096, nor beyond
  ``display_size``), with masks blended, boxes (with their instance masks and
  keypoints) drawn on it; the aspect
  ratio of the input is kept exactly. With ``display_size``, a picture bigger
  than that is first shrunk (bicubic) so the whole output fits a
  ``display_size`` square, text included, and the aspect ratio is kept to the
  pixel;
* a caption strip when there is a classification result or an id
  ("#7 | pred: cat 0.93 | true: dog"), green when right, red when wrong;
* a top-k probability bar chart when ``topk > 0`` and ``probs`` is present.

So the output is as wide as the panel(s) and may be taller than them.

Text is laid out for the size the picture is shown at (never below an 11 px
font there), so labels are drawn after any shrinking, never shrunk with it:

* ``display_size=D`` (what ``Examples.grid``/``compare`` pass, with
  ``GRID_CELL``): the output is drawn at that size, and fonts and lines are
  chosen for ``D`` alone, so every tile of a sheet has the same label size,
  whatever its source size;
* ``display_size=None`` (the export's per-example images): the picture keeps
  its pixels, so TensorBoard's "actual size" view shows every detail; but by
  default TensorBoard fits each image into its card, about ``TENSORBOARD_CARD``
  (320 x 240 px), enlarging or shrinking it. Fonts and lines are the bigger of
  what reads at the picture's own size and what still shows at 11 px once it
  is fitted into that card, so a 3000 x 2000 image gets a 103 px font that
  shows as 11 px in the card (and in the step grid, which shrinks it to
  ``GRID_CELL``); a picture that fits the card is drawn as it always was.
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
from .boxes import drawn_order, match_boxes
from .captions import caption, draw_topk, fit_caption, score_text, topk_rows
from .classes import NO_CLASS, class_name
from .colors import Color, class_color, text_color
from .example import Boxes, Example, read_example
from .keypoints import draw_keypoints
from .masks import blend_into, instance_into, outline_dashed_into
from .options import GtMaskStyle, ReadOptions, RenderOptions
from .text import label_size, paste_box_label, paste_label

_MIN_FONT = 11
_MAX_UPSCALED_SIDE = 4096

#: The box TensorBoard fits an image into by default: the Time Series dashboard's image cards are at least
#: 335 px wide (``minmax(335px, 1fr)`` columns) and 320 px tall, of which about 240 are left for the image
#: under the card's heading and step slider (``object-fit: contain``); the older Images dashboard's cards are
#: 350 px wide (``width: 100%``). Both enlarge small images and shrink big ones until "actual size" is toggled.
TENSORBOARD_CARD: tuple[int, int] = (320, 240)


@dataclasses.dataclass(frozen=True)
class _Sizes:
    """Font and line sizes in canvas pixels: text must stay legible from 128 px to thousands."""

    font: int
    line: int
    dash: int
    pad: int

    @classmethod
    def make(cls, font: int, line: int) -> _Sizes:
        return cls(font=font, line=line, dash=3 * line + 2, pad=max(2, font // 3))

    @classmethod
    def for_size(cls, short_side: int) -> _Sizes:
        """For a picture shown at its own size: grows slower than the image (11 px at 128-224, 18 at 512)."""
        return cls.make(int(max(_MIN_FONT, round(7 + short_side / 48))), int(max(2, round(short_side / 200))))

    @classmethod
    def for_display(cls, longest_side: int) -> _Sizes:
        """For any picture shown within a ``longest_side`` square: as for a 4:3 one of that size (12 px at 320)."""
        return cls.for_size(round(longest_side * 3 / 4))

    def scaled(self, k: float) -> _Sizes:
        return _Sizes.make(max(1, round(self.font * k)), max(1, round(self.line * k)))

    def at_least(self, other: _Sizes) -> _Sizes:
        return _Sizes.make(max(self.font, other.font), max(self.line, other.line))


_SMALLEST = _Sizes.make(_MIN_FONT, 2)  # the smallest text and lines that read, in displayed pixels


@dataclasses.dataclass
class _Panel:
    """One panel: where it sits on the canvas and what is drawn on it."""

    x: int
    y: int
    fills: tuple[np.ndarray, ...]  # class maps blended in this order
    outline: np.ndarray | None  # a gt class map drawn as dashed boundaries over the fills
    gt: Boxes | None
    pred: Boxes | None
    title: str = ""
    gt_instances: GtMaskStyle = "outline"  # gt instance masks: dashed outline; "fill": blended too; "none"

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

    A box's instance mask and keypoints are drawn only when the box is, in its
    colour. Predicted masks are blended (``mask_alpha``) with a solid outline;
    gt masks, like gt boxes, are dashed outlines (class colour on black) over the
    predictions; with ``gt_mask="fill"`` they are blended too, under the
    predictions, with ``"none"`` not drawn; in the ``side_by_side`` gt panel
    they are blended and dashed. Keypoints are dots (radius box line + 2) joined
    by the ``keypoint_edges`` skeleton, predicted ones filled, gt ones hollow
    rings; a keypoint that is NaN, outside the image or scored below
    ``score_threshold`` is not drawn, nor is an edge with such an end.
    The example is not modified.

    >>> draw_example(Example(np.zeros((64, 48, 3), np.uint8)), RenderOptions(min_size=0)).size
    (48, 64)
    """
    check_type(example, Example, "example", "an Example (read_example makes one from arrays)")
    check_type(style, RenderOptions, "style")
    o = style
    rgb = example.image
    h0, w0 = rgb.shape[:2]
    names = example.class_names
    strip = caption(example) if o.draw_caption else None
    strip_bg = strip[1] if strip is not None else colors.BACKGROUND
    topk = topk_rows(example, o.topk) if o.topk > 0 else None
    panels_n = 2 if o.side_by_side else 1

    f = _upscale_factor(h0, w0, o.min_size)
    if o.display_size is None:
        h, w = h0 * f, w0 * f
        # readable at its own size, and at least the smallest readable size once TensorBoard fits it into a card
        t = _fit_scale(w, h, panels_n, TENSORBOARD_CARD, _SMALLEST, strip, topk)
        sizes = _Sizes.for_size(min(h, w)).at_least(_SMALLEST.scaled(1 / t))
    else:
        d = o.display_size
        sizes = _Sizes.for_display(d)
        gap = _gap(sizes) if o.side_by_side else 0
        f = max(1, min(f, (d - gap) // (panels_n * w0), d // h0))  # upscaling stops at the display size
        k = f * _fit_scale(w0 * f, h0 * f, panels_n, (d, d), sizes, strip, topk, most=1.0)
        if k >= 1:
            f = int(k)
        else:  # shrink before drawing, so text and lines are drawn at the size they are seen
            f = 0
            size = (max(1, round(w0 * k)), max(1, round(h0 * k)))
            rgb = np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BICUBIC, reducing_gap=2.0))
    h, w = (h0 * f, w0 * f) if f else rgb.shape[:2]
    scale = (w / w0, h / h0)  # canvas pixels per original pixel, for boxes

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

    if matched is not None and missed is not None and o.draw_caption:  # per-image counts join the caption
        strip = caption(example, (int(matched.sum()), int((~matched).sum()), int(missed.sum())))
        strip_bg = strip[1] if strip is not None else colors.BACKGROUND

    masks, gt_masks = example.mask, example.gt_mask if o.draw_gt else None
    gap = _gap(sizes)
    header_h = label_size("x", sizes.font)[1] if o.side_by_side else 0
    if o.side_by_side:
        panels = [
            _Panel(0, header_h, _present(gt_masks), None, gt_drawn, None, "ground truth", gt_instances="fill"),
            _Panel(w + gap, header_h, _present(masks), None, None, pred, "prediction"),
        ]
        width = 2 * w + gap
    else:
        fills, outline = _present(masks), None
        if gt_masks is not None and (o.gt_mask == "fill" or (o.gt_mask == "outline" and masks is None)):
            fills = (gt_masks, *fills)  # under the prediction
        elif gt_masks is not None and o.gt_mask == "outline":
            outline = gt_masks
        panels = [_Panel(0, 0, fills, outline, gt_drawn, pred, gt_instances=o.gt_mask)]
        width = w
    caption_lines, caption_size, caption_h = _caption_layout(strip, width, sizes)
    topk_h = _topk_height(topk, sizes)
    height = header_h + h + caption_h + topk_h

    canvas = np.empty((height, width, 3), dtype=np.uint8)
    if width != w or height != h:
        _fill(canvas, colors.BACKGROUND)
    if caption_lines:
        _fill(canvas[header_h + h : header_h + h + caption_h], strip_bg)
    for p in panels:
        region = canvas[p.y : p.y + h, p.x : p.x + w]
        if f <= 1:  # as it is, or already shrunk
            region[...] = rgb
        else:
            region.reshape(h0, f, w0, f, 3)[...] = rgb[:, None, :, None, :]
        for mask in p.fills:
            blend_into(
                region,
                mask,
                alpha=o.mask_alpha,
                background=example.mask_background,
                outline=o.mask_outline,
                outline_width=max(1, sizes.line // 2),
            )
        if p.outline is not None:
            outline_dashed_into(region, p.outline, background=example.mask_background, width=sizes.line, dash=sizes.dash)
        _draw_instances(region, p, matched, missed, o.mask_alpha, sizes)
    # dashed gt boxes are cheaper as numpy slices than as Pillow calls, and go under the predictions
    gt_labels = [
        _draw_gt(canvas, p.gt, missed, names, scale, p.bounds(w, h), sizes) if p.gt is not None else []
        for p in panels
    ]
    img = Image.fromarray(canvas)
    draw = ImageDraw.Draw(img)

    for p, p_gt_labels in zip(panels, gt_labels, strict=True):
        bounds = p.bounds(w, h)
        pred_labels = _draw_pred(draw, p.pred, matched, names, scale, bounds, sizes) if p.pred is not None else []
        _draw_poses(draw, p, matched, missed, example.keypoint_edges, o.score_threshold, scale, bounds, sizes)
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
                img, line, sizes.pad, y, caption_size, colors.WHITE, strip_bg, bounds=(0, y, width, height)
            )[3]
        y = header_h + h + caption_h
    if topk:
        draw_topk(img, draw, topk, y + sizes.pad, width, sizes.font, sizes.pad)
    return img


def _gap(sizes: _Sizes) -> int:
    """Space between the two panels of ``side_by_side``."""
    return max(4, sizes.line * 2)


def _caption_layout(strip: tuple[list[str], Color] | None, width: int, sizes: _Sizes) -> tuple[list[str], int, int]:
    """The caption's lines, font size and strip height at ``width`` (none: ``[]``, the font, 0)."""
    if not strip:
        return [], sizes.font, 0
    lines, size = fit_caption(strip[0], width, sizes.font, sizes.pad)
    return lines, size, sum(label_size(t, size)[1] for t in lines) + sizes.pad


def _topk_height(topk: list | None, sizes: _Sizes) -> int:
    return len(topk) * label_size("x", sizes.font)[1] + 2 * sizes.pad if topk else 0


def _fit_scale(
    w: int,
    h: int,
    panels: int,
    box: tuple[int, int],
    sizes: _Sizes,
    strip: tuple[list[str], Color] | None,
    topk: list | None,
    most: float = math.inf,
) -> float:
    """The scale (at most ``most``) at which ``panels`` panels of w x h, with their text at ``sizes``, fit ``box``.

    The text does not scale: only the panels do. The caption's height depends on the width it wraps
    in, so the scale is refined a few times. When the text alone is nearly as tall as the box, the
    panels keep at least a quarter of the box's longest side (the output is then taller than the box).
    """
    bw, bh = box
    gap = _gap(sizes) if panels == 2 else 0
    fixed = (label_size("x", sizes.font)[1] if panels == 2 else 0) + _topk_height(topk, sizes)
    floor = min(most, max(bw, bh) / 4 / max(w, h))
    s = min(most, (bw - gap) / (panels * w), (bh - fixed) / h)
    for _ in range(4):
        s = max(s, floor)
        caption_h = _caption_layout(strip, panels * max(1, round(w * s)) + gap, sizes)[2]
        fits = min(most, (bw - gap) / (panels * w), (bh - fixed - caption_h) / h)
        if fits >= s:
            break
        s = fits
    return max(s, floor)


def _present(mask: np.ndarray | None) -> tuple[np.ndarray, ...]:
    """``mask`` as a tuple of the class maps to fill: none, or that one."""
    return () if mask is None else (mask,)


def _kept(pred: Boxes | None, o: RenderOptions) -> Boxes | None:
    """Predicted boxes above the score threshold, at most ``max_boxes``, highest score first."""
    if pred is None:
        return None
    return pred.take(drawn_order(pred.scores, len(pred), o.score_threshold, o.max_boxes))


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


def _pixel_rects(xyxy: np.ndarray, scale: tuple[float, float], bounds: tuple[int, int, int, int]) -> list:
    """Boxes in original pixels → inclusive canvas rectangles clamped into the panel (None if outside it)."""
    bx0, by0, bx1, by1 = bounds
    w, h = bx1 - bx0, by1 - by0
    b = xyxy * np.array([scale[0], scale[1], scale[0], scale[1]])
    outside = (b[:, 2] <= 0) | (b[:, 3] <= 0) | (b[:, 0] >= w) | (b[:, 1] >= h)
    r = np.rint(np.clip(b, 0, np.array([w, h, w, h], dtype=np.float64))).astype(np.int64)
    # pixel p covers [p, p + 1): the right/bottom edge pixel is the one before x2
    r[:, 2:] = np.maximum(r[:, :2], r[:, 2:] - 1)
    r = np.minimum(r, [w - 1, h - 1, w - 1, h - 1]) + [bx0, by0, bx0, by0]
    return [None if out else tuple(rect) for out, rect in zip(outside.tolist(), r.tolist(), strict=True)]


def _class_box_color(cid: int) -> Color:
    """The colour of a box of class ``cid`` (a box whose class id was unreadable gets its own)."""
    return colors.UNKNOWN if cid == NO_CLASS else class_color(cid)


def _pred_colors(boxes: Boxes, matched: np.ndarray | None) -> list[Color]:
    """The colour of each predicted box, which its instance mask and keypoints share: TP/FP, else its class's."""
    if matched is not None:
        return [colors.TP if m else colors.FP for m in matched.tolist()]
    if boxes.labels is None:
        return [class_color(0)] * len(boxes)
    return [_class_box_color(cid) for cid in boxes.labels.tolist()]


def _gt_colors(boxes: Boxes, missed: np.ndarray | None) -> list[Color]:
    """The colour of each gt box, which its instance mask and keypoints share: missed/GT, else its class's."""
    if missed is not None:
        return [colors.MISSED if m else colors.GT for m in missed.tolist()]
    if boxes.labels is None:
        return [colors.GT] * len(boxes)
    return [_class_box_color(cid) for cid in boxes.labels.tolist()]


def _draw_instances(
    region: np.ndarray, p: _Panel, matched: np.ndarray | None, missed: np.ndarray | None, alpha: float, sizes: _Sizes
) -> None:
    """Draw the panel's instance masks into its canvas ``region`` in place, in their boxes' colours.

    Ground truth first (dashed outline, class colour on black like gt boxes; blended too when
    ``p.gt_instances`` is "fill"), then predictions lowest score first (blended fill and a solid
    outline), so the best is on top. Ground truth drawn only as outlines goes last, over the fills.
    """
    gt = p.gt if p.gt is not None and p.gt.masks is not None and p.gt_instances != "none" else None
    gt_fill = alpha if p.gt_instances == "fill" else 0.0
    gt_masks = [] if gt is None or gt.masks is None else list(zip(gt.masks, _gt_colors(gt, missed), strict=True))
    if gt_fill:
        for mask, color in gt_masks:
            instance_into(region, mask, color, alpha=gt_fill, outline_width=sizes.line, dash=sizes.dash)
    if p.pred is not None and p.pred.masks is not None:
        pred_colors = _pred_colors(p.pred, matched)
        for i in range(len(p.pred) - 1, -1, -1):
            instance_into(region, p.pred.masks[i], pred_colors[i], alpha=alpha, outline_width=max(1, sizes.line // 2))
    if not gt_fill:
        for mask, color in gt_masks:
            instance_into(region, mask, color, alpha=0.0, outline_width=sizes.line, dash=sizes.dash)


def _draw_poses(
    draw: ImageDraw.ImageDraw,
    p: _Panel,
    matched: np.ndarray | None,
    missed: np.ndarray | None,
    edges: Sequence[Sequence[int]] | None,
    threshold: float,
    scale: tuple[float, float],
    bounds: tuple[int, int, int, int],
    sizes: _Sizes,
) -> None:
    """Draw the panel's keypoints and skeletons: gt hollow, then predictions filled, lowest score first."""
    draw_one = functools.partial(
        draw_keypoints, draw, edges=edges, threshold=threshold, scale=scale, bounds=bounds, line=sizes.line
    )
    if p.gt is not None and p.gt.keypoints is not None:
        for points, color in zip(p.gt.keypoints, _gt_colors(p.gt, missed), strict=True):
            draw_one(points, color, scores=None, hollow=True)
    if p.pred is not None and p.pred.keypoints is not None:
        pred_colors = _pred_colors(p.pred, matched)
        scores = p.pred.keypoint_scores
        for i in range(len(p.pred) - 1, -1, -1):
            draw_one(p.pred.keypoints[i], pred_colors[i], scores=None if scores is None else scores[i], hollow=False)


def _draw_pred(draw, boxes: Boxes, matched, names: Sequence[str] | None, scale, bounds, sizes: _Sizes) -> list:
    """Draw predicted boxes (lowest score first, so the best is on top); return their labels, best first."""
    labels = []
    rects = _pixel_rects(boxes.xyxy, scale, bounds)
    box_colors = _pred_colors(boxes, matched)
    for i in range(boxes.xyxy.shape[0] - 1, -1, -1):
        rect = rects[i]
        if rect is None:
            continue
        cid = None if boxes.labels is None else int(boxes.labels[i])
        color = box_colors[i]
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
    canvas: np.ndarray, boxes: Boxes, missed, names: Sequence[str] | None, scale, bounds, sizes: _Sizes
) -> list:
    """Draw gt boxes dashed (colour on black) on the numpy canvas; return their labels, for the bottom-left corner."""
    labels = []
    rects = _pixel_rects(boxes.xyxy, scale, bounds)
    box_colors = _gt_colors(boxes, missed)
    for i in range(boxes.xyxy.shape[0]):
        rect = rects[i]
        if rect is None:
            continue
        cid = None if boxes.labels is None else int(boxes.labels[i])
        color = box_colors[i]
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
