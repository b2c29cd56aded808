"""The renderer's two option records: how to READ an example's arrays, and how to DRAW it.

``ReadOptions`` says what the arrays mean (class names, box format, image
layout and value range...): it usually comes from a shard's metadata, so each
field is None until someone sets it, and the reader falls back to the schema
default. ``RenderOptions`` is drawing style only. Both are frozen and check
every field on construction (ConfigError, in ``_checks``' words).

``RenderOptions`` still takes the read keywords it used to hold, with a
DeprecationWarning; they are kept in ``RenderOptions.legacy_read`` (so is
``background_class``, now ``ReadOptions.mask_background``):

>>> import warnings
>>> with warnings.catch_warnings(record=True) as caught:
...     warnings.simplefilter("always")
...     old = RenderOptions(topk=3, class_names=["cat", "dog"])
>>> caught[0].category.__name__, old.legacy_read.class_names
('DeprecationWarning', ('cat', 'dog'))
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from collections.abc import Sequence
from typing import Any, Literal, get_args

import numpy as np

from .._checks import (
    check_bool,
    check_choice,
    check_int,
    check_names,
    check_number,
    check_optional_int,
    check_type,
    is_int,
)
from ..errors import ConfigError
from ..schema import BOX_COORDS, BOX_FORMATS, DEFAULT_MASK_BACKGROUND, IMAGE_LAYOUTS, BoxCoords, BoxFormat, ImageLayout
from .image import Stat, ValueRange, check_stat, check_value_range
from .masks import check_alpha

#: Below this a display has no room for a panel and a line of 11 px text.
_MIN_DISPLAY_SIZE = 32

GtMaskStyle = Literal["outline", "fill", "none"]
GT_MASK_STYLES: tuple[GtMaskStyle, ...] = get_args(GtMaskStyle)


@dataclasses.dataclass(frozen=True)
class ReadOptions:
    """How to read one example's arrays; None means "not set" (the reader then uses the schema default).

    * ``class_names``: id → name; ids out of range are shown as numbers.
    * ``box_format``, ``box_coords``: how ``boxes``/``gt_boxes`` are written
      (``schema.BOX_FORMATS``/``BOX_COORDS``; unset: ``DEFAULT_BOX_FORMAT``/``DEFAULT_BOX_COORDS``).
    * ``layout``: ``HWC``, ``CHW`` or ``HW``; unset: guessed by ``schema.image_layout``.
    * ``bgr``, ``value_range``, ``mean``, ``std``: how pixels become RGB (see ``image.to_rgb_uint8``).
    * ``mask_background``: the ``masks``/``gt_masks`` id that means "no class here" and is not
      drawn; ``"none"``: every id is a class and drawn; unset: ``schema.DEFAULT_MASK_BACKGROUND`` (0).
      A shard's metadata ``mask_background`` fills it in ``export`` and in the notebook.
    * ``keypoint_edges``: ``[[a, b], ...]`` 0-based keypoint pairs joined by skeleton lines; unset:
      no skeleton, only the dots. A shard's metadata ``keypoint_edges`` fills it.

    ``class_names``, ``value_range``, ``mean`` and ``std`` are stored as tuples, ``keypoint_edges``
    as a tuple of ``(a, b)`` tuples.

    >>> ReadOptions(class_names=["cat", "dog"], box_format="xyxy", box_coords="pixels").class_names
    ('cat', 'dog')
    """

    class_names: Sequence[str] | None = None
    box_format: BoxFormat | None = None
    box_coords: BoxCoords | None = None
    layout: ImageLayout | None = None
    bgr: bool = False
    value_range: ValueRange = None
    mean: Stat = None
    std: Stat = None
    mask_background: int | Literal["none"] | None = None
    keypoint_edges: Sequence[Sequence[int]] | None = None

    def __post_init__(self) -> None:
        set_ = functools.partial(object.__setattr__, self)  # frozen: normalised values go in this way
        if self.class_names is not None:
            set_("class_names", check_names(self.class_names, "class_names"))
        if self.keypoint_edges is not None:
            set_("keypoint_edges", check_keypoint_edges(self.keypoint_edges))
        set_("mask_background", check_mask_background(self.mask_background))
        for name, choices in (("box_format", BOX_FORMATS), ("box_coords", BOX_COORDS), ("layout", IMAGE_LAYOUTS)):
            if getattr(self, name) is not None:
                check_choice(getattr(self, name), choices, name)
        check_bool(self.bgr, "bgr")
        set_("value_range", check_value_range(self.value_range))
        for name in ("mean", "std"):
            set_(name, check_stat(getattr(self, name), name))


def check_mask_background(value: Any, name: str = "mask_background") -> int | Literal["none"] | None:
    """A mask background setting: an integer id, ``"none"`` (every id is a class) or None (not set)."""
    if value is None or value == "none":
        return value
    if not is_int(value):
        raise ConfigError(
            f"{name} must be an integer mask id, 'none' (every id is a class) or None (not set), got {value!r}"
        )
    return int(value)


def check_keypoint_edges(value: Any, name: str = "keypoint_edges") -> tuple[tuple[int, int], ...]:
    """Skeleton edges as a tuple of ``(a, b)`` pairs of keypoint indices >= 0, or ConfigError.

    >>> check_keypoint_edges([[0, 1], (1, 2)])
    ((0, 1), (1, 2))
    """
    bad = ConfigError(f"{name} must be a list of [a, b] pairs of keypoint indices >= 0, got {value!r}")
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise bad
    edges = []
    for edge in value:
        if isinstance(edge, (str, bytes)) or not isinstance(edge, Sequence) or len(edge) != 2:
            raise bad
        if not all(is_int(i) and i >= 0 for i in edge):
            raise bad
        edges.append((int(edge[0]), int(edge[1])))
    return tuple(edges)


def mask_background_id(value: int | Literal["none"] | None) -> int | None:
    """The id not drawn for a ``ReadOptions.mask_background`` value: None when every id is a class."""
    if value is None:
        return DEFAULT_MASK_BACKGROUND
    return None if value == "none" else int(value)


class _ReadKeyword:
    """A deprecated ``RenderOptions`` keyword that belongs to ``ReadOptions``.

    It is an ``InitVar``, so it is no field of its own (not in repr, eq or
    ``dataclasses.fields``); read back on an instance it gives ``legacy_read``'s
    value, so old code reading ``options.class_names`` still sees the names.
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return None  # the keyword's default, as ``dataclasses`` reads it from the class
        return None if obj.legacy_read is None else getattr(obj.legacy_read, self.name)


_UNSET: Any = type("_Unset", (), {"__repr__": lambda self: "<unset>"})()


class _BackgroundKeyword:
    """``RenderOptions(background_class=...)``, deprecated: what a mask id means is read, not style.

    It lands in ``legacy_read.mask_background`` (None, "draw class 0 too", as
    ``"none"``). Read back it gives that setting, or 0, its old default, when
    unset; so ``background_class=0`` sets nothing (the data's
    ``mask_background`` decides, 0 for every shard that does not say).
    """

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return _UNSET  # the keyword's default, as ``dataclasses`` reads it from the class
        return _legacy_background(obj.legacy_read)


def _legacy_background(legacy_read: ReadOptions | None) -> int | None:
    """What ``background_class`` reads as: ``legacy_read``'s mask background, else 0 (its old default)."""
    value = None if legacy_read is None else legacy_read.mask_background
    return DEFAULT_MASK_BACKGROUND if value is None else mask_background_id(value)


@dataclasses.dataclass(frozen=True)
class RenderOptions:
    """How ``draw_example`` draws (style only); every field is checked on construction (ConfigError).

    * ``score_threshold``, ``max_boxes``: predicted boxes kept (highest scores first).
    * ``side_by_side``: ground truth left, prediction right, instead of one overlay.
    * ``match_iou``: colour predictions TP/FP and gt boxes missed, instead of by class.
    * ``mask_alpha``, ``mask_outline``: masks (which id is not drawn is ``ReadOptions.mask_background``).
    * ``topk``: rows of the probability bar chart (0: none).
    * ``min_size``: small images are upscaled by an integer factor up to this shortest side.
    * ``display_size``: the longest side the picture will be shown at (a grid cell: ``GRID_CELL``). A
      bigger picture is shrunk to fit a ``display_size`` square before anything is drawn on it, and text
      and lines are sized for that display, the same for every picture (>= 11 px fonts). None (default):
      the picture keeps its own size, with text that reads at that size and in a TensorBoard card
      (``compose.TENSORBOARD_CARD``). See ``compose``.
    * ``draw_gt``, ``draw_caption``: switch the gt overlay and the caption strip off.
    * ``gt_mask``: how the single panel shows a gt mask next to a predicted one: ``"outline"`` (its class
      boundaries dashed, class colour on black, over the prediction's fill), ``"fill"`` (blended like the
      prediction, under it) or ``"none"``. A gt mask without a predicted one is filled, unless ``"none"``.
      ``side_by_side`` always fills it in its own panel. Gt instance masks follow it too, except that
      ``"outline"`` (dashed, over the predicted instances) holds even without predicted ones: a gt
      instance is drawn like a gt box, outline only.

    The read keywords (``class_names``, ``box_format``, ``box_coords``,
    ``layout``, ``bgr``, ``value_range``, ``mean``, ``std``) are deprecated here:
    pass them as ``ReadOptions`` (or ``ExportOptions(read=...)``). They are still
    accepted, with a DeprecationWarning, and kept in ``legacy_read``, which
    ``render_example`` reads with when it is given no ``ReadOptions``. They are
    no fields (not in repr, eq or ``dataclasses.fields``); read back
    (``options.class_names``) they give ``legacy_read``'s value, None when unset.
    ``dataclasses.replace`` carries ``legacy_read`` over without warning again.
    ``background_class`` (the mask id not drawn; None: draw every id) is
    deprecated the same way: it is ``ReadOptions.mask_background`` now, which
    a shard's metadata fills; ``background_class=0``, its old default, sets nothing.

    >>> RenderOptions(topk=3, match_iou=0.5).topk
    3
    """

    score_threshold: float = 0.0
    max_boxes: int = 100
    side_by_side: bool = False
    match_iou: float | None = None
    mask_alpha: float = 0.5
    mask_outline: bool = False
    topk: int = 0
    min_size: int = 128
    draw_gt: bool = True
    draw_caption: bool = True
    gt_mask: GtMaskStyle = "outline"
    display_size: int | None = None
    _: dataclasses.KW_ONLY
    class_names: dataclasses.InitVar[Sequence[str] | None] = _ReadKeyword()
    box_format: dataclasses.InitVar[BoxFormat | None] = _ReadKeyword()
    box_coords: dataclasses.InitVar[BoxCoords | None] = _ReadKeyword()
    layout: dataclasses.InitVar[ImageLayout | None] = _ReadKeyword()
    bgr: dataclasses.InitVar[bool | None] = _ReadKeyword()
    value_range: dataclasses.InitVar[ValueRange] = _ReadKeyword()
    mean: dataclasses.InitVar[Stat] = _ReadKeyword()
    std: dataclasses.InitVar[Stat] = _ReadKeyword()
    background_class: dataclasses.InitVar[int | None] = _BackgroundKeyword()
    legacy_read: ReadOptions | None = None

    def __post_init__(
        self,
        class_names: Sequence[str] | None,
        box_format: str | None,
        box_coords: str | None,
        layout: str | None,
        bgr: bool | None,
        value_range: ValueRange,
        mean: Stat,
        std: Stat,
        background_class: int | None,
    ) -> None:
        check_number(self.score_threshold, "score_threshold")
        check_int(self.max_boxes, "max_boxes", minimum=0)
        check_bool(self.side_by_side, "side_by_side")
        if self.match_iou is not None:
            check_number(self.match_iou, "match_iou", above=0.0, maximum=1.0)
        check_alpha(self.mask_alpha, "mask_alpha")
        check_bool(self.mask_outline, "mask_outline")
        check_int(self.topk, "topk", minimum=0)
        check_int(self.min_size, "min_size", minimum=0)
        check_bool(self.draw_gt, "draw_gt")
        check_bool(self.draw_caption, "draw_caption")
        check_choice(self.gt_mask, GT_MASK_STYLES, "gt_mask")
        check_optional_int(self.display_size, "display_size", minimum=_MIN_DISPLAY_SIZE)
        if self.legacy_read is not None:
            check_type(self.legacy_read, ReadOptions, "legacy_read")
        keywords = {
            "class_names": class_names, "box_format": box_format, "box_coords": box_coords, "layout": layout,
            "bgr": bgr, "value_range": value_range, "mean": mean, "std": std,
        }  # fmt: skip
        given: dict[str, Any] = {name: value for name, value in keywords.items() if value is not None}
        if background_class is not _UNSET:
            check_optional_int(background_class, "background_class")
            # the value it reads as is no change: dataclasses.replace hands it back, and 0 was the default
            if background_class is None or background_class != _legacy_background(self.legacy_read):
                given["mask_background"] = "none" if background_class is None else int(background_class)
        if not given:
            return
        read = dataclasses.replace(self.legacy_read or ReadOptions(), **given)  # checks the values
        if read == self.legacy_read:
            return  # ``dataclasses.replace`` handing the keywords back: they read as legacy_read's values
        if self.legacy_read is not None:  # name only what is new, not what replace() carried over
            given = {k: v for k, v in given.items() if getattr(read, k) != getattr(self.legacy_read, k)}
        object.__setattr__(self, "legacy_read", read)
        names = ", ".join("background_class" if k == "mask_background" else k for k in given)
        instead = ", ".join(given)
        warnings.warn(
            f"RenderOptions({names}) is deprecated: RenderOptions is drawing style only. Pass "
            f"ReadOptions({instead}) instead: render_example(arrays, style, ReadOptions(...)), or "
            "ExportOptions(read=ReadOptions(...))",
            DeprecationWarning,
            stacklevel=3,
        )
