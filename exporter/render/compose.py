"""Compose one example's arrays into one picture; also contact sheets and confusion matrices.

``render_example`` output layout, top to bottom:

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

from ..errors import ConfigError, RenderError
from ..odapi import to_canonical
from .._checks import check_choice
from ..schema import BOX_COORDS, BOX_FORMATS, IMAGE_LAYOUTS
from . import colors
from .boxes import as_box_array, match_boxes, to_pixel_xyxy_keep
from .colors import Color, class_color, text_color
from .image import ValueRange, check_stat, check_value_range, rgb_view
from .masks import blend_into, check_alpha
from .text import get_font, label_size, line_height, paste_box_label, paste_label, text_width

_NO_ID = np.iinfo(np.int64).min  # a class id that was NaN/inf in a float array
_UNKNOWN_COLOR: Color = (160, 160, 160)
_MIN_FONT = 11
_MAX_UPSCALED_SIDE = 4096


@dataclasses.dataclass(frozen=True)
class RenderOptions:
    """How ``render_example`` draws; every field is checked on construction (ConfigError).

    * ``class_names``: id → name; ids out of range are shown as numbers.
    * ``score_threshold``, ``max_boxes``: predicted boxes kept (highest scores first).
    * ``box_format``, ``box_coords``: how ``boxes``/``gt_boxes`` are written (see ``boxes.py``).
    * ``side_by_side``: ground truth left, prediction right, instead of one overlay.
    * ``match_iou``: colour predictions TP/FP and gt boxes missed, instead of by class.
    * ``mask_alpha``, ``mask_outline``, ``background_class`` (None: draw class 0 too): masks.
    * ``topk``: rows of the probability bar chart (0: none).
    * ``min_size``: small images are upscaled by an integer factor up to this shortest side.
    * ``layout``, ``bgr``, ``value_range``, ``mean``, ``std``: passed to ``to_rgb_uint8``.
    * ``draw_gt``, ``draw_caption``: switch the gt overlay and the caption strip off.

    ``class_names``, ``value_range``, ``mean`` and ``std`` are stored as tuples.

    >>> RenderOptions(class_names=["cat", "dog"], box_format="xyxy", box_coords="pixels").class_names
    ('cat', 'dog')
    """

    class_names: Sequence[str] | None = None
    score_threshold: float = 0.0
    max_boxes: int = 100
    box_format: str = "yxyx"
    box_coords: str = "normalized"
    side_by_side: bool = False
    match_iou: float | None = None
    mask_alpha: float = 0.5
    mask_outline: bool = False
    topk: int = 0
    min_size: int = 128
    layout: str | None = None
    bgr: bool = False
    value_range: ValueRange = None
    mean: None | float | Sequence[float] = None
    std: None | float | Sequence[float] = None
    background_class: int | None = 0
    draw_gt: bool = True
    draw_caption: bool = True

    def __post_init__(self) -> None:
        set_ = functools.partial(object.__setattr__, self)  # frozen: normalised values go in this way
        if self.class_names is not None:
            set_("class_names", _names(self.class_names))
        score = _number(self.score_threshold, "score_threshold")
        if not math.isfinite(score):
            raise ConfigError(f"score_threshold must be finite, got {self.score_threshold!r}")
        _integer(self.max_boxes, "max_boxes", 0)
        check_choice(self.box_format, BOX_FORMATS, "box_format")
        check_choice(self.box_coords, BOX_COORDS, "box_coords")
        if self.match_iou is not None:
            iou = _number(self.match_iou, "match_iou")
            if not 0.0 < iou <= 1.0:
                raise ConfigError(f"match_iou must be None or in (0, 1], got {self.match_iou!r}")
        check_alpha(self.mask_alpha)
        _integer(self.topk, "topk", 0)
        _integer(self.min_size, "min_size", 0)
        if self.layout is not None and self.layout not in IMAGE_LAYOUTS:
            raise ConfigError(f"layout must be one of {', '.join(IMAGE_LAYOUTS)} or None, got {self.layout!r}")
        set_("value_range", check_value_range(self.value_range))
        for name in ("mean", "std"):
            set_(name, check_stat(getattr(self, name), name))
        if self.background_class is not None:
            _integer(self.background_class, "background_class", None)
        for name in ("side_by_side", "mask_outline", "bgr", "draw_gt", "draw_caption"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ConfigError(f"{name} must be True or False, got {getattr(self, name)!r}")


def _names(value: Any) -> tuple[str, ...]:
    """``class_names`` as a tuple of strings, or ConfigError."""
    if isinstance(value, str) or not isinstance(value, Sequence) or not all(isinstance(c, str) for c in value):
        raise ConfigError(f"class_names must be a list of strings or None, got {value!r}")
    return tuple(value)


def _number(value: Any, name: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    return float(value)


def _integer(value: Any, name: str, minimum: int | None) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


@dataclasses.dataclass(frozen=True)
class _Style:
    """Sizes that scale with the panel: text must stay legible from 128 px to thousands."""

    font: int
    line: int
    dash: int
    pad: int

    @classmethod
    def for_size(cls, short_side: int) -> _Style:
        # grows slower than the image: 11 px at 128-224, 18 at 512, 28 at 1024
        font = int(max(_MIN_FONT, round(7 + short_side / 48)))
        line = int(max(2, round(short_side / 200)))
        return cls(font=font, line=line, dash=3 * line + 2, pad=max(2, font // 3))


@dataclasses.dataclass
class _Boxes:
    """Boxes of one kind, in pixel xyxy of the original image, with parallel labels/scores."""

    xyxy: np.ndarray
    labels: np.ndarray | None  # int64, _NO_ID where unknown
    scores: np.ndarray | None


@dataclasses.dataclass
class _Panel:
    """One panel: where it sits on the canvas and what is drawn on it."""

    x: int
    y: int
    mask: np.ndarray | None
    mask_name: str
    gt: _Boxes | None
    pred: _Boxes | None
    title: str = ""

    def bounds(self, w: int, h: int) -> tuple[int, int, int, int]:
        """The panel's (x0, y0, x1, y1) on the canvas, exclusive end."""
        return self.x, self.y, self.x + w, self.y + h


_DEFAULT_OPTIONS = RenderOptions()


def render_example(example: Mapping[str, np.ndarray], options: RenderOptions = _DEFAULT_OPTIONS) -> Image.Image:
    """Draw one example (canonical field names → arrays without a batch axis) as one RGB image.

    Only ``images`` is required. Predicted boxes are coloured by class and
    labelled "name score"; gt boxes are dashed and labelled "gt: name" under
    their bottom-left corner; with ``match_iou`` predictions are coloured TP
    (green) / FP (red) and unmatched gt boxes are labelled "missed" (orange).
    See the module docstring for the layout. Inputs are not modified.

    >>> img = render_example({"images": np.zeros((28, 28), np.uint8), "labels": np.int64(3)})
    >>> img.mode, img.width
    ('RGB', 140)
    """
    if not isinstance(options, RenderOptions):
        raise ConfigError(f"options must be a RenderOptions, got {type(options).__name__}")
    example = to_canonical(example)  # an Object Detection API dict is drawn as it comes
    if "images" not in example:
        raise RenderError(f"example has no 'images' field; it has {sorted(example)}")
    o = options
    rgb = rgb_view(example["images"], layout=o.layout, bgr=o.bgr, value_range=o.value_range, mean=o.mean, std=o.std)
    h0, w0 = rgb.shape[:2]
    f = _upscale_factor(h0, w0, o.min_size)
    h, w = h0 * f, w0 * f
    style = _Style.for_size(min(h, w))

    pred = _pred_boxes(example, o, w0, h0)
    gt = _read_boxes(example, "gt_boxes", "gt_box_labels", None, "gt_num_boxes", o, w0, h0)
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

    caption = _caption(example, o) if o.draw_caption else None
    topk = _topk_rows(example, o) if o.topk > 0 else None

    masks, gt_masks = example.get("masks"), example.get("gt_masks") if o.draw_gt else None
    gap = max(4, style.line * 2)
    header_h = label_size("x", style.font)[1] if o.side_by_side else 0
    if o.side_by_side:
        panels = [
            _Panel(0, header_h, gt_masks, "gt_masks", gt_drawn, None, "ground truth"),
            _Panel(w + gap, header_h, masks, "masks", None, pred, "prediction"),
        ]
        width = 2 * w + gap
    else:
        mask, mask_name = (masks, "masks") if masks is not None else (gt_masks, "gt_masks")
        panels = [_Panel(0, 0, mask, mask_name, gt_drawn, pred)]
        width = w
    caption_lines, caption_size = _fit_caption(caption[0], width, style) if caption else ([], style.font)
    caption_h = sum(label_size(t, caption_size)[1] for t in caption_lines) + (style.pad if caption_lines else 0)
    row_h = label_size("x", style.font)[1]
    topk_h = len(topk) * row_h + 2 * style.pad if topk else 0
    height = header_h + h + caption_h + topk_h

    canvas = np.empty((height, width, 3), dtype=np.uint8)
    if width != w or height != h:
        _fill(canvas, colors.BACKGROUND)
    if caption_lines:
        _fill(canvas[header_h + h : header_h + h + caption_h], caption[1])
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
                background=o.background_class,
                outline=o.mask_outline,
                outline_width=max(1, style.line // 2),
                name=f"field '{p.mask_name}'",
            )
    # dashed gt boxes are cheaper as numpy slices than as Pillow calls, and go under the predictions
    gt_labels = [
        _draw_gt(canvas, p.gt, missed, o, f, p.bounds(w, h), style) if p.gt is not None else [] for p in panels
    ]
    img = Image.fromarray(canvas)
    draw = ImageDraw.Draw(img)

    for p, p_gt_labels in zip(panels, gt_labels, strict=True):
        bounds = p.bounds(w, h)
        pred_labels = _draw_pred(draw, p.pred, matched, o, f, bounds, style) if p.pred is not None else []
        # labels go on after every box, so no box line crosses a label; best predictions pick their spot first
        taken: list[tuple[int, int, int, int]] = []
        for text, box, bg, where in pred_labels + p_gt_labels:
            paste_box_label(img, text, box, style.font, text_color(bg), bg, bounds=bounds, taken=taken, where=where)
        if p.title:
            paste_label(
                img, p.title, p.x, 0, style.font, colors.WHITE, colors.BACKGROUND, bounds=(p.x, 0, p.x + w, header_h)
            )

    y = header_h + h
    if caption_lines:
        y += style.pad // 2
        for line in caption_lines:
            y = paste_label(
                img, line, style.pad, y, caption_size, colors.WHITE, caption[1], bounds=(0, y, width, height)
            )[3]
        y = header_h + h + caption_h
    if topk:
        _draw_topk(img, draw, topk, y + style.pad, width, style)
    return img


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


# --- reading fields -------------------------------------------------------


def _scalar(example: Mapping[str, Any], name: str) -> Any:
    """The single value of field ``name`` (a scalar, 0-d or 1-element array), or None if absent."""
    if name not in example or example[name] is None:
        return None
    a = np.asarray(example[name])
    if a.size != 1:
        raise RenderError(f"field '{name}' must be a scalar for one example, but got shape {a.shape}")
    return a.reshape(-1)[0]


def _class_id(value: Any, name: str) -> int:
    """A class id from an int/float/bool scalar; NaN/inf give ``_NO_ID``."""
    ids = _ids(np.asarray(value).reshape(1), name)
    return int(ids[0])


def _ids(a: np.ndarray, name: str) -> np.ndarray:
    """Class ids as int64; floats are rounded, NaN/inf become ``_NO_ID``."""
    if a.dtype == np.bool_ or np.issubdtype(a.dtype, np.integer):
        return a.astype(np.int64)
    if np.issubdtype(a.dtype, np.floating):
        finite = np.isfinite(a)
        return np.where(finite, np.rint(np.clip(np.where(finite, a, 0), -(2.0**62), 2.0**62)), _NO_ID).astype(np.int64)
    raise RenderError(f"field '{name}' must hold integer class ids, got dtype {a.dtype}")


def _vector(example: Mapping[str, Any], name: str, n: int) -> np.ndarray | None:
    """The first ``n`` entries of 1-d field ``name`` (parallel to boxes), or None if absent."""
    if name not in example or example[name] is None:
        return None
    a = np.asarray(example[name]).reshape(-1) if np.ndim(example[name]) <= 1 else None
    if a is None:
        raise RenderError(f"field '{name}' must be 1-d for one example, but got shape {np.shape(example[name])}")
    if a.shape[0] < n:
        raise RenderError(f"field '{name}' has {a.shape[0]} entries but there are {n} boxes")
    return a[:n]


def _read_boxes(
    example: Mapping[str, Any],
    boxes_name: str,
    labels_name: str,
    scores_name: str | None,
    num_name: str,
    o: RenderOptions,
    w0: int,
    h0: int,
) -> _Boxes | None:
    """Valid boxes of one kind in original-image pixel xyxy, padding rows and NaN/inf rows dropped."""
    if boxes_name not in example or example[boxes_name] is None:
        return None
    b = as_box_array(example[boxes_name], f"field '{boxes_name}'")
    n = b.shape[0]
    num = _scalar(example, num_name)
    if num is not None:
        if np.asarray(num).dtype.kind not in "biuf":  # float() would take "3" and choke on a date
            raise RenderError(f"field '{num_name}' must be a number of boxes, got {num!r}")
        num = float(num)
        n = int(min(max(num, 0), n)) if math.isfinite(num) else n
    labels = _vector(example, labels_name, n)
    scores = _vector(example, scores_name, n) if scores_name else None
    xyxy, keep = to_pixel_xyxy_keep(b[:n], o.box_format, o.box_coords, w0, h0)
    if labels is not None:
        labels = _ids(labels, labels_name)[keep]
    if scores is not None:
        try:
            scores = scores.astype(np.float64)[keep]
        except (TypeError, ValueError):
            raise RenderError(f"field '{scores_name}' must be numeric, got dtype {scores.dtype}") from None
    return _Boxes(xyxy, labels, scores)


def _pred_boxes(example: Mapping[str, Any], o: RenderOptions, w0: int, h0: int) -> _Boxes | None:
    """Predicted boxes above the score threshold, at most ``max_boxes``, highest score first."""
    b = _read_boxes(example, "boxes", "box_labels", "box_scores", "num_boxes", o, w0, h0)
    if b is None:
        return None
    if b.scores is not None:
        ok = np.flatnonzero(b.scores >= o.score_threshold)  # NaN scores fail this and are dropped
        order = ok[np.argsort(-b.scores[ok], kind="stable")][: o.max_boxes]
    else:
        order = np.arange(min(o.max_boxes, b.xyxy.shape[0]))
    return _Boxes(
        b.xyxy[order],
        None if b.labels is None else b.labels[order],
        None if b.scores is None else b.scores[order],
    )


def _name(class_id: int, o: RenderOptions) -> str:
    """The class name for an id, or the id itself when it is out of range of ``class_names``."""
    if class_id == _NO_ID:
        return "?"
    if o.class_names is not None and 0 <= class_id < len(o.class_names):
        return o.class_names[class_id]
    return str(class_id)


def _id_text(value: Any) -> str:
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value.item() if isinstance(value, np.generic) else value)


def _caption(example: Mapping[str, Any], o: RenderOptions) -> tuple[list[str], Color] | None:
    """Caption parts and background: ("#id", "pred: cat 0.93", "true: dog"), green/red/neutral."""
    true = _scalar(example, "labels")
    pred = _scalar(example, "pred_labels")
    score = _scalar(example, "pred_scores")
    probs = _probs(example)
    if pred is None and probs is not None and np.isfinite(probs).any():
        pred = int(np.nanargmax(np.where(np.isfinite(probs), probs, -np.inf)))
    true_id = None if true is None else _class_id(true, "labels")
    pred_id = None if pred is None else _class_id(pred, "pred_labels")
    if score is None and probs is not None and pred_id is not None and 0 <= pred_id < probs.shape[0]:
        score = probs[pred_id]
    parts = []
    ident = _scalar(example, "ids")
    if ident is not None:
        parts.append(f"#{_id_text(ident)}")
    if pred_id is not None:
        text = f"pred: {_name(pred_id, o)}"
        if score is not None:
            text += f" {_score_text(score)}"
        parts.append(text)
    if true_id is not None:
        parts.append(f"true: {_name(true_id, o)}")
    if not parts:
        return None
    if pred_id is None or true_id is None or _NO_ID in (pred_id, true_id):
        bg = colors.NEUTRAL
    else:
        bg = colors.CORRECT if pred_id == true_id else colors.WRONG
    return parts, bg


def _score_text(score: Any) -> str:
    try:
        return f"{float(score):.2f}"
    except (TypeError, ValueError):
        raise RenderError(f"scores must be numbers, got {score!r}") from None


def _fit_caption(parts: list[str], width: int, style: _Style) -> tuple[list[str], int]:
    """Caption lines and font size: parts joined by " | " while they fit, a part too wide word-wrapped.

    The font only shrinks (down to 8 px) when a single word is wider than the image.
    """
    room = width - 2 * style.pad
    size = style.font
    while True:
        lines: list[str] = []
        for part in parts:
            joined = f"{lines[-1]} | {part}" if lines else part
            if lines and label_size(joined, size)[0] <= room:
                lines[-1] = joined
            else:
                lines += _wrap(part, size, room)
        if size <= 8 or all(label_size(line, size)[0] <= room for line in lines):
            return lines, size
        size -= 1


def _wrap(text: str, size: int, room: int) -> list[str]:
    """Greedy word wrap of ``text`` into lines whose labels are at most ``room`` wide."""
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


def _probs(example: Mapping[str, Any]) -> np.ndarray | None:
    if "probs" not in example or example["probs"] is None:
        return None
    p = np.asarray(example["probs"])
    if p.ndim != 1 or p.size == 0:
        raise RenderError(f"field 'probs' must be a non-empty 1-d (K,) array for one example, but got shape {p.shape}")
    try:
        return p.astype(np.float64)
    except (TypeError, ValueError):
        raise RenderError(f"field 'probs' must be numeric, got dtype {p.dtype}") from None


def _topk_rows(example: Mapping[str, Any], o: RenderOptions) -> list[tuple[str, float, Color]] | None:
    """(class name, probability, bar colour) of the top-k classes; the true class's bar is green."""
    probs = _probs(example)
    if probs is None:
        return None
    true = _scalar(example, "labels")
    true_id = None if true is None else _class_id(true, "labels")
    order = np.argsort(-np.where(np.isnan(probs), -np.inf, probs), kind="stable")[: o.topk]
    return [(_name(int(k), o), float(probs[k]), colors.CORRECT if k == true_id else colors.BAR) for k in order]


# --- drawing ---------------------------------------------------------------


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
    return _UNKNOWN_COLOR if cid == _NO_ID else class_color(cid)


def _draw_pred(draw, boxes: _Boxes, matched, o: RenderOptions, f: int, bounds, style: _Style) -> list:
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
        draw.rectangle(rect, outline=color, width=style.line)
        parts = []
        if cid is not None:
            parts.append(_name(cid, o))
        if boxes.scores is not None:
            parts.append(_score_text(boxes.scores[i]))
        if parts:
            labels.append((" ".join(parts), rect, color, "top"))
    return labels[::-1]


def _draw_gt(canvas: np.ndarray, boxes: _Boxes, missed, o: RenderOptions, f: int, bounds, style: _Style) -> list:
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
        _dashed_rect(canvas, rect, color, style)
        prefix = "missed" if missed is not None and missed[i] else "gt"
        labels.append((f"{prefix}: {_name(cid, o)}" if cid is not None else prefix, rect, color, "bottom"))
    return labels


def _dashed_rect(canvas: np.ndarray, rect: tuple[int, int, int, int], color: Color, style: _Style) -> None:
    """An inclusive rectangle of ``color`` dashes on black, ``style.line`` pixels thick inward, drawn in place."""
    x0, y0, x1, y1 = rect
    width = min(style.line, (x1 - x0) // 2 + 1, (y1 - y0) // 2 + 1)
    length_x, length_y = x1 - x0 + 1, y1 - y0 + 1
    stripe = _dash_stripe(color, width, style.dash, 1 << max(6, max(length_x, length_y) - 1).bit_length())
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


def _draw_topk(img: Image.Image, draw: ImageDraw.ImageDraw, rows, y: int, width: int, style: _Style) -> None:
    """Bar chart rows: class name, a bar as long as the probability, the value."""
    size = style.font
    _, row_h = label_size("x", size)
    name_w = min(max(label_size(name, size)[0] for name, _, _ in rows), width // 3)
    value_w = label_size("0.00", size)[0]
    bar_x = style.pad + name_w
    bar_room = max(0, width - bar_x - value_w - 2 * style.pad)
    for name, p, bar in rows:
        paste_label(img, name, style.pad, y, size, colors.WHITE, colors.BACKGROUND, bounds=(0, y, bar_x, y + row_h))
        frac = min(max(p, 0.0), 1.0) if math.isfinite(p) else 0.0
        bar_w = round(frac * bar_room)
        if bar_w > 0:
            draw.rectangle((bar_x, y + style.pad // 2, bar_x + bar_w - 1, y + row_h - 1 - style.pad // 2), fill=bar)
        paste_label(img, _score_text(p), bar_x + bar_w + style.pad // 2, y, size, colors.WHITE, colors.BACKGROUND)
        y += row_h


# --- several images ----------------------------------------------------------


def render_grid(
    images: Sequence[Image.Image],
    *,
    cols: int | None = None,
    pad: int = 4,
    background: Color = colors.BACKGROUND,
) -> Image.Image:
    """A contact sheet: images in rows of ``cols`` (default ceil(sqrt(n))), each cell top-left aligned.

    Cells may differ in size: a column is as wide as its widest image, a row as
    tall as its tallest.

    >>> render_grid([Image.new("RGB", (10, 10))] * 3, pad=1).size
    (23, 23)
    """
    images = list(images)
    if not images:
        raise RenderError("render_grid needs at least one image, got none")
    for i, im in enumerate(images):
        if not isinstance(im, Image.Image):
            raise RenderError(f"render_grid takes PIL images, item {i} is a {type(im).__name__}")
    n = len(images)
    cols = math.ceil(math.sqrt(n)) if cols is None else _integer(cols, "cols", 1)
    cols = min(cols, n)
    pad = _integer(pad, "pad", 0)
    if len(background) != 3 or not all(isinstance(c, (int, np.integer)) and 0 <= c <= 255 for c in background):
        raise ConfigError(f"background must be an (r, g, b) tuple of ints in 0..255, got {background!r}")
    rows = math.ceil(n / cols)
    col_w = [max(im.width for im in images[c::cols]) for c in range(cols)]
    row_h = [max(im.height for im in images[r * cols : (r + 1) * cols]) for r in range(rows)]
    xs = np.concatenate([[pad], pad + np.cumsum(np.array(col_w) + pad)]).tolist()
    ys = np.concatenate([[pad], pad + np.cumsum(np.array(row_h) + pad)]).tolist()
    sheet = Image.new("RGB", (xs[-1], ys[-1]), tuple(int(c) for c in background))
    for i, im in enumerate(images):
        sheet.paste(im if im.mode == "RGB" else im.convert("RGB"), (xs[i % cols], ys[i // cols]))
    return sheet


_HEAT_STOPS = np.array([[247, 251, 255], [107, 174, 214], [8, 48, 107]], dtype=np.float64)  # white → blue


def render_confusion_matrix(matrix: np.ndarray, class_names: Sequence[str] | None = None) -> Image.Image:
    """A heat map of a (K, K) confusion matrix: rows are true classes, columns predicted.

    Cell colour is the fraction of its row (so each true class reads as a
    recall profile); the count is written in the cell when K <= 40.

    >>> render_confusion_matrix(np.array([[5, 1], [0, 3]]), ["cat", "dog"]).mode
    'RGB'
    """
    m = np.asarray(matrix)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.size == 0:
        raise RenderError(f"confusion matrix must be a non-empty square (K, K) array, got shape {m.shape}")
    if not (np.issubdtype(m.dtype, np.integer) or np.issubdtype(m.dtype, np.floating)):
        raise RenderError(f"confusion matrix must be numeric, got dtype {m.dtype}")
    m = m.astype(np.float64)
    if not np.all(np.isfinite(m)) or (m < 0).any():
        raise RenderError("confusion matrix must hold finite counts >= 0")
    k = m.shape[0]
    opts = RenderOptions(class_names=class_names)  # validates the names
    names = [_short(_name(i, opts)) for i in range(k)]
    rowsum = m.sum(axis=1, keepdims=True)
    frac = np.divide(m, rowsum, out=np.zeros_like(m), where=rowsum > 0)

    size = 14
    font = get_font(size)
    lh = line_height(size)
    pad = 6
    show_text = k <= 40
    texts = [[_count_text(v) for v in row] for row in m] if show_text else None
    if show_text:
        longest = max(text_width(t, size) for row in texts for t in row)
        cell = max(lh + 2 * pad, longest + 2 * pad, 28)
    else:
        cell = max(4, 640 // k)
    name_w = max(text_width(n, size) for n in names)
    left = pad + lh + pad + name_w + pad  # "true" title, row names
    top = pad + lh + pad + name_w + pad  # "predicted" title, column names
    width, height = left + k * cell + pad, top + k * cell + pad
    sheet = Image.new("RGB", (width, height), colors.WHITE)

    # interpolate the colour map in numpy and paste the whole grid at once
    t = frac * 2
    lo_idx = np.minimum(t.astype(int), 1)
    u = (t - lo_idx)[..., None]
    rgb = (_HEAT_STOPS[lo_idx] * (1 - u) + _HEAT_STOPS[lo_idx + 1] * u + 0.5).astype(np.uint8)
    cells = np.repeat(np.repeat(rgb, cell, axis=0), cell, axis=1)
    if cell >= 8:  # 1-px white grid between cells
        cells[::cell, :] = 255
        cells[:, ::cell] = 255
    sheet.paste(Image.fromarray(cells), (left, top))
    draw = ImageDraw.Draw(sheet)
    if show_text:
        for i in range(k):
            for j in range(k):
                fill = colors.WHITE if frac[i, j] > 0.5 else colors.BLACK
                cx, cy = left + j * cell + cell // 2, top + i * cell + cell // 2
                draw.text((cx, cy), texts[i][j], font=font, fill=fill, anchor="mm")
    for i, n in enumerate(names):
        draw.text((left - pad, top + i * cell + cell // 2), n, font=font, fill=colors.BLACK, anchor="rm")
        col = Image.new("RGB", (text_width(n, size) + 1, lh), colors.WHITE)
        ImageDraw.Draw(col).text((0, 0), n, font=font, fill=colors.BLACK)
        col = col.transpose(Image.Transpose.ROTATE_90)
        sheet.paste(col, (left + i * cell + (cell - lh) // 2, top - pad - col.height))
    draw.text((left + k * cell // 2, pad), "predicted", font=font, fill=colors.BLACK, anchor="ma")
    title = Image.new("RGB", (text_width("true", size) + 1, lh), colors.WHITE)
    ImageDraw.Draw(title).text((0, 0), "true", font=font, fill=colors.BLACK)
    title = title.transpose(Image.Transpose.ROTATE_90)
    sheet.paste(title, (pad, top + (k * cell - title.height) // 2))
    return sheet


def _short(name: str, limit: int = 24) -> str:
    return name if len(name) <= limit else name[: limit - 3] + "..."


def _count_text(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:.2f}"
