"""Export options, and the one rule that resolves them against a shard's metadata.

``ExportOptions`` says how ``export`` and ``render`` work; ``read`` (a
``ReadOptions``) overrides what the shards' metadata says about their data
(class names, box format and coordinates, image layout and range, the mask
background), ``render``
(a ``RenderOptions``) is the drawing style. ``read_options_for`` is the only
place where user overrides and metadata meet: the pipeline, the selections and
the notebook all call it, so the names a picture shows are the names a
selection matches.

>>> ExportOptions(read=ReadOptions(class_names=["cat", "dog"]), workers=2).read.class_names
('cat', 'dog')
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable
from typing import Literal

from . import tags as tagging
from ._checks import check_bool, check_choice, check_int, check_optional_int, check_type
from .metrics.step import DEFAULT_IGNORE_INDEX
from .render import ReadOptions, RenderOptions
from .schema import ShardMeta, class_names
from .select import DEFAULT_MATCH_IOU, Selection
from .shards import DEFAULT_MAX_BYTES, DUMPS
from .tensorboard import IMAGE_FORMATS, PNG_ENCODERS

ImageFormat = Literal["png", "jpeg"]
PngEncoder = Literal["auto", "numpy", "pillow", "fpng"]
GroupTags = Literal["class", "outcome"]
GROUP_TAGS: tuple[GroupTags, ...] = ("class", "outcome")


@dataclasses.dataclass(frozen=True)
class ExportOptions:
    """How ``export`` and ``render`` work; every field is checked on construction (ConfigError).

    * ``read``: overrides of the shard metadata (None fields: use each shard's metadata).
    * ``render``: the drawing style.
    * ``tag_prefix``: prefix of the per-example image tags.
    * ``max_per_step``: cap on drawn examples per step (metrics still use every example).
    * ``grid``, ``grid_max``: a contact sheet of each step's first ``grid_max`` drawn examples.
    * ``image_format``, ``jpeg_quality``, ``png_encoder`` (``"auto"`` = ``"numpy"``: ``exporter.png``, faster
      with the ``fast`` extra (isal); ``"pillow"``; ``"fpng"`` with the ``fpng`` extra).
    * ``workers``: render and encode in this many processes; ``"auto"`` (default): one per core,
      fewer for small exports (``_pipeline.worker_count``).
    * ``metrics``, ``topk``: accuracy / top-k scalars, PR curves, confusion matrix; COCO box (and
      instance mask) AP/AR where there are predicted and true boxes; pixel accuracy and IoU where
      there are predicted and true class maps.
    * ``ignore_index``: ground-truth mask id counted nowhere by the segmentation metrics
      (default 255, VOC's "void"; None: every id is a class). The mask background is a class.
    * ``skip_bad``: list bad shards and go on, instead of stopping at the first.
    * ``dumps``: ``"latest"`` dump of each step, or ``"all"``.
    * ``select``: which examples of each step to draw (metrics still use all).
    * ``max_shard_bytes``: refuse shards whose arrays would need more memory.
    * ``changes``: at each step after the first, the examples fixed and broken since the step
      before (``changes/fixed/<id>``, ``changes/broken/<id>``), and the tables ``summary/changes``
      and ``summary/worst`` (the ``summary_worst`` worst examples of each step); see ``exporter.changes``.
    * ``group_tags``: per-example tags grouped by true ``"class"`` (``examples/<class>/<id>``) or by
      ``"outcome"`` at the last step exported (``examples/right/<id>``, ``examples/wrong/<id>``).

    >>> ExportOptions(grid=True, workers=2).workers
    2
    """

    read: ReadOptions = ReadOptions()
    render: RenderOptions = RenderOptions()
    tag_prefix: str = tagging.DEFAULT_PREFIX
    max_per_step: int | None = None
    grid: bool = False
    grid_max: int = 64
    image_format: ImageFormat = "png"
    jpeg_quality: int = 90
    png_encoder: PngEncoder = "auto"
    workers: int | Literal["auto"] = "auto"
    metrics: bool = True
    topk: int = 5
    ignore_index: int | None = DEFAULT_IGNORE_INDEX
    skip_bad: bool = False
    dumps: Literal["latest", "all"] = "latest"
    select: Selection | None = None
    max_shard_bytes: int = DEFAULT_MAX_BYTES
    changes: bool = False
    summary_worst: int = 10
    group_tags: GroupTags | None = None

    def __post_init__(self) -> None:
        check_type(self.read, ReadOptions, "read", "an exporter.ReadOptions")
        check_type(self.render, RenderOptions, "render", "an exporter.RenderOptions")
        legacy = self.render.legacy_read
        if legacy is not None:  # RenderOptions(class_names=...) from before ReadOptions: explicit read wins
            object.__setattr__(self, "read", _merge(legacy, self.read))
        tagging.check_prefix(self.tag_prefix)
        check_optional_int(self.max_per_step, "max_per_step", minimum=0)
        check_int(self.grid_max, "grid_max", minimum=1)
        check_choice(self.image_format, IMAGE_FORMATS, "image_format")
        check_int(self.jpeg_quality, "jpeg_quality", minimum=1, maximum=100)
        check_choice(self.png_encoder, PNG_ENCODERS, "png_encoder")
        if self.workers != "auto":
            check_int(self.workers, "workers", minimum=1)
        check_int(self.max_shard_bytes, "max_shard_bytes", minimum=1)
        check_int(self.topk, "topk", minimum=1)
        check_optional_int(self.ignore_index, "ignore_index")
        check_choice(self.dumps, DUMPS, "dumps")
        if self.select is not None:
            check_type(self.select, Selection, "select", "an exporter.Selection or None")
        for name in ("grid", "metrics", "skip_bad", "changes"):
            check_bool(getattr(self, name), name)
        check_int(self.summary_worst, "summary_worst", minimum=0)
        if self.group_tags is not None:
            check_choice(self.group_tags, GROUP_TAGS, "group_tags")

    def output_hash(self) -> str:
        """A digest of the options that change what is drawn or tagged (workers and the PNG encoder do not)."""
        same_output = dataclasses.replace(self, workers="auto", png_encoder="auto")
        return hashlib.sha256(repr(same_output).encode()).hexdigest()[:16]


    def drawn_with(self) -> str:
        """What drew the images, for a tag's description: the drawing and reading options that differ from the defaults.

        >>> ExportOptions(render=RenderOptions(score_threshold=0.3)).drawn_with()
        'Drawn by summary-exporter with score_threshold=0.3.'
        """
        set_ = [
            f"{f.name}={getattr(record, f.name)!r}"
            for record, default in ((self.render, RenderOptions()), (self.read, ReadOptions()))
            for f in dataclasses.fields(record)
            if f.name not in ("legacy_read", "class_names") and getattr(record, f.name) != getattr(default, f.name)
        ]
        if self.read.class_names is not None:
            set_.append(f"class_names from the options ({len(self.read.class_names)})")
        if self.select is not None and not self.select.everything:
            set_.append(f"examples picked by {self.select!r}")
        return "Drawn by summary-exporter with " + (", ".join(set_) if set_ else "the default options") + "."


def _merge(under: ReadOptions, over: ReadOptions) -> ReadOptions:
    """``over``'s fields where they are set (differ from the default), else ``under``'s."""
    default = ReadOptions()
    changes = {
        f.name: getattr(over, f.name)
        for f in dataclasses.fields(ReadOptions)
        if getattr(over, f.name) != getattr(default, f.name)
    }
    return dataclasses.replace(under, **changes)


def step_class_names(options: ExportOptions, metas: Iterable[ShardMeta]) -> tuple[str, ...] | None:
    """The class names of one step: the user's, else the last of its shards with names (``schema.class_names``)."""
    return class_names(metas, options.read.class_names)


def read_options_for(options: ExportOptions, meta: ShardMeta, names: tuple[str, ...] | None) -> ReadOptions:
    """How to read one shard: the user's overrides, else what its metadata says; ``names`` from ``step_class_names``."""
    r = options.read
    return dataclasses.replace(
        r,
        class_names=names,
        box_format=r.box_format or meta.box_format,
        box_coords=r.box_coords or meta.box_coords,
        layout=r.layout or meta.image_layout,
        value_range=r.value_range if r.value_range is not None else _range(meta.image_range),
        mask_background=r.mask_background if r.mask_background is not None else _background(meta.mask_background),
        keypoint_edges=r.keypoint_edges if r.keypoint_edges is not None else meta.keypoint_edges,
    )


def _background(value: int | None) -> int | Literal["none"]:
    """The metadata's ``mask_background`` as a ``ReadOptions`` value: null (every id is a class) is ``"none"``."""
    return "none" if value is None else value


def _range(value: list[float] | None) -> tuple[float, float] | None:
    return None if value is None else (float(value[0]), float(value[1]))


@dataclasses.dataclass(frozen=True)
class BoxMatching:
    """How the detector selections match boxes: IoU, and which predictions count (those a picture shows)."""

    iou: float
    min_score: float
    max_boxes: int


def box_match_for(selection: Selection, style: RenderOptions) -> BoxMatching:
    """The selection's ``match_iou`` / ``min_box_score``, else the drawing's ``match_iou`` / ``score_threshold``.

    >>> box_match_for(Selection(any_missed=True), RenderOptions(score_threshold=0.3))
    BoxMatching(iou=0.5, min_score=0.3, max_boxes=100)
    """
    iou = selection.match_iou if selection.match_iou is not None else style.match_iou
    score = selection.min_box_score if selection.min_box_score is not None else style.score_threshold
    return BoxMatching(iou=DEFAULT_MATCH_IOU if iou is None else iou, min_score=score, max_boxes=style.max_boxes)
