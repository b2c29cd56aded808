"""Canonical field names, box formats and the shard metadata record (format v1.1).

This module is the single place that says what a shard may contain. The writer
checks fields against it, the reader validates against it, the renderer relies
on the names.

Format 1.1 adds instances to detections: per-box masks (``instance_masks``,
``gt_instance_masks``), keypoints (``keypoints``, ``keypoint_scores``,
``gt_keypoints``) and the metadata ``keypoint_names``, ``keypoint_edges`` and
``mask_background``. A 1.0 shard lacks them and reads with their defaults.

Keypoints are ``(x, y)`` — x first, whatever ``box_format`` says — in the
coordinates ``box_coords`` names: pixels, or ``normalized`` as x / image width
and y / image height. NaN coordinates mean "no keypoint there" (not labelled,
not visible, or padding).
"""

from __future__ import annotations

import dataclasses
import json
import math
import platform
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, get_args

from .errors import ConfigError, ShardFormatError, ShardVersionError

FORMAT_NAME = "summary-exporter/shard"
FORMAT_MAJOR = 1
FORMAT_MINOR = 1
FORMAT_VERSION = f"{FORMAT_MAJOR}.{FORMAT_MINOR}"

#: Default refusal limit for the decoded size of one shard's arrays (the reader's ``max_bytes``).
DEFAULT_MAX_BYTES = 4 << 30
#: Key of the JSON metadata entry inside every shard (a 0-d unicode array).
META_KEY = "__meta__"
SHARD_SUFFIX = ".npz"
STEP_DIR_PREFIX = "step-"

BoxFormat = Literal["yxyx", "xyxy", "xywh", "cxcywh"]
BoxCoords = Literal["normalized", "pixels"]
ImageLayout = Literal["HWC", "CHW", "HW"]

BOX_FORMATS: tuple[BoxFormat, ...] = get_args(BoxFormat)
BOX_COORDS: tuple[BoxCoords, ...] = get_args(BoxCoords)
IMAGE_LAYOUTS: tuple[ImageLayout, ...] = get_args(ImageLayout)
#: Box formats whose last two numbers are the far corner (the others give a width and height).
CORNER_FORMATS: frozenset[BoxFormat] = frozenset({"yxyx", "xyxy"})
#: What a shard's boxes are when its metadata does not say: TensorFlow's (and the ODAPI's) convention.
DEFAULT_BOX_FORMAT: BoxFormat = "yxyx"
DEFAULT_BOX_COORDS: BoxCoords = "normalized"
#: Channel counts an image may have (grey, RGB, RGBA).
IMAGE_CHANNELS = (1, 3, 4)
#: The mask id that means "no class here" when the metadata does not say: what format 1.0 renderers assumed.
DEFAULT_MASK_BACKGROUND = 0

_FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


@dataclasses.dataclass(frozen=True)
class FieldSpec:
    """What a canonical field looks like: its rank(s) after the batch axis and its kind."""

    name: str
    ranks: tuple[int, ...]  # allowed ndim including the batch axis
    kind: str  # "numeric", "int", "float", "id", "box", "point", "binary"
    doc: str


CANONICAL_FIELDS: dict[str, FieldSpec] = {
    f.name: f
    for f in (
        FieldSpec("images", (3, 4), "numeric", "(N,H,W,C), (N,H,W) or (N,C,H,W) images, any numeric dtype"),
        FieldSpec("labels", (1,), "int", "(N,) ground-truth class id"),
        FieldSpec("pred_labels", (1,), "int", "(N,) predicted class id"),
        FieldSpec("pred_scores", (1,), "float", "(N,) score of the predicted class"),
        FieldSpec("probs", (2,), "float", "(N,K) class probabilities"),
        FieldSpec("boxes", (3,), "box", "(N,M,4) predicted boxes"),
        FieldSpec("box_labels", (2,), "int", "(N,M) predicted box class ids"),
        FieldSpec("box_scores", (2,), "float", "(N,M) predicted box scores"),
        FieldSpec("num_boxes", (1,), "int", "(N,) valid predicted boxes; rows beyond are padding"),
        FieldSpec("gt_boxes", (3,), "box", "(N,G,4) ground-truth boxes"),
        FieldSpec("gt_box_labels", (2,), "int", "(N,G) ground-truth box class ids"),
        FieldSpec("gt_num_boxes", (1,), "int", "(N,) valid ground-truth boxes"),
        FieldSpec("masks", (3,), "int", "(N,H,W) predicted class map"),
        FieldSpec("gt_masks", (3,), "int", "(N,H,W) ground-truth class map"),
        FieldSpec("ids", (1,), "id", "(N,) int or str example identifiers"),
        # format 1.1: instances of the boxes above, row for row
        FieldSpec("instance_masks", (4,), "binary", "(N,M,H,W) bool masks of the predicted boxes"),
        FieldSpec("gt_instance_masks", (4,), "binary", "(N,G,H,W) bool masks of the ground-truth boxes"),
        FieldSpec("keypoints", (4,), "point", "(N,M,P,2) x, y keypoints of the predicted boxes (NaN: none)"),
        FieldSpec("keypoint_scores", (3,), "float", "(N,M,P) keypoint scores"),
        FieldSpec("gt_keypoints", (4,), "point", "(N,G,P,2) x, y keypoints of the ground-truth boxes (NaN: none)"),
    )
}

#: Box fields, their count field, and the fields that hold one row per box (padded alike).
BOX_GROUPS: dict[str, tuple[str, tuple[str, ...]]] = {
    "boxes": ("num_boxes", ("box_labels", "box_scores", "instance_masks", "keypoints", "keypoint_scores")),
    "gt_boxes": ("gt_num_boxes", ("gt_box_labels", "gt_instance_masks", "gt_keypoints")),
}


def image_layout(shape: tuple[int, ...], layout: str | None = None) -> ImageLayout | None:
    """The layout of ONE image of ``shape`` (no batch axis), or None when it cannot be read.

    With ``layout`` given, that layout if ``shape`` fits it. Without, the guess
    rule: 2-d is ``HW``; 3-d whose last dim is 1, 3 or 4 is ``HWC``; else 3-d
    whose first dim is 1, 3 or 4 is ``CHW``. So a (3, 5, 3) image reads as HWC.
    The renderer draws by this rule and the validator checks by it.

    >>> image_layout((3, 32, 48)), image_layout((32, 48, 3)), image_layout((5, 5, 5))
    ('CHW', 'HWC', None)
    """
    if layout == "HW" or (layout is None and len(shape) == 2):
        return "HW" if len(shape) == 2 else None
    if len(shape) != 3:
        return None
    if layout == "HWC" or layout is None and shape[2] in IMAGE_CHANNELS:
        return "HWC" if shape[2] in IMAGE_CHANNELS else None
    if layout == "CHW" or layout is None:
        return "CHW" if shape[0] in IMAGE_CHANNELS else None
    return None


def is_field_name(name: object) -> bool:
    """Field names are identifiers (letters, digits, underscore), which also keeps them safe as zip keys."""
    return isinstance(name, str) and _FIELD_NAME.match(name) is not None


def check_field_name(name: str) -> str:
    """``name`` if it is a field name (``is_field_name``), else ConfigError."""
    if not is_field_name(name):
        raise ConfigError(
            f"field name {name!r} is not allowed: use a letter followed by letters, digits or '_' (max 64)"
        )
    return name


def library_versions() -> dict[str, str]:
    """Versions of what wrote a shard; TensorFlow only if it is already imported (never imported here)."""
    import sys

    import numpy

    from ._version import __version__

    versions = {"summary_exporter": __version__, "numpy": numpy.__version__, "python": platform.python_version()}
    for mod in ("tensorflow", "keras", "torch", "jax"):
        m = sys.modules.get(mod)
        if m is not None and isinstance(getattr(m, "__version__", None), str):
            versions[mod] = m.__version__
    return versions


@dataclasses.dataclass
class ShardMeta:
    """The JSON metadata entry of a shard.

    Unknown keys found in a newer minor version are kept in ``extra`` so they
    survive a read-modify-write.
    """

    step: int
    dump_id: str
    shard_index: int
    num_examples: int
    created: float = dataclasses.field(default_factory=time.time)
    sources: dict[str, str | None] = dataclasses.field(default_factory=dict)
    class_names: list[str] | None = None
    mask_class_names: list[str] | None = None  # masks have their own class space (often 0 = background)
    #: The ``masks``/``gt_masks`` id meaning "no class" (not drawn, allowed outside the names); None: every id is a class.
    mask_background: int | None = DEFAULT_MASK_BACKGROUND
    keypoint_names: list[str] | None = None  # one per keypoint (P)
    keypoint_edges: list[list[int]] | None = None  # [[a, b], ...]: keypoints a and b are joined (0-based)
    box_format: BoxFormat = DEFAULT_BOX_FORMAT
    box_coords: BoxCoords = DEFAULT_BOX_COORDS
    image_layout: ImageLayout | None = None
    image_range: list[float] | None = None
    versions: dict[str, str] = dataclasses.field(default_factory=library_versions)
    user: dict[str, Any] = dataclasses.field(default_factory=dict)
    format: str = FORMAT_NAME
    format_version: str = FORMAT_VERSION
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_json(self) -> str:
        d = dataclasses.asdict(self)
        extra = d.pop("extra")
        d.update(extra)
        d["created_iso"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.created))
        return json.dumps(d, sort_keys=True, allow_nan=False)

    @classmethod
    def from_json(cls, text: str, *, path: str | None = None) -> ShardMeta:
        try:
            d = json.loads(text)
        except (ValueError, RecursionError) as exc:  # ValueError: also an int of more than 4300 digits
            raise ShardFormatError(f"metadata entry '{META_KEY}' is not valid JSON ({exc})", path=path) from None
        if not isinstance(d, dict):
            raise ShardFormatError(f"metadata entry '{META_KEY}' must be a JSON object, got {type(d).__name__}", path=path)
        if d.get("format") != FORMAT_NAME:
            raise ShardFormatError(
                f"not a summary-exporter shard: metadata 'format' is {d.get('format')!r}, expected {FORMAT_NAME!r}",
                path=path,
            )
        major, minor = parse_version(d.get("format_version"), path=path)
        if major != FORMAT_MAJOR:
            raise ShardVersionError(
                f"shard format version {d.get('format_version')} is not supported by this reader "
                f"(it reads {FORMAT_MAJOR}.x); upgrade summary-exporter",
                path=path,
            )
        if minor > FORMAT_MINOR:
            import warnings

            warnings.warn(
                f"{path}: shard format {major}.{minor} is newer than this reader ({FORMAT_VERSION}); "
                "reading the fields it knows",
                stacklevel=3,
            )
        d.pop("created_iso", None)
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        kwargs = {k: d.pop(k) for k in list(d) if k in known}
        required = ("step", "dump_id", "shard_index", "num_examples")
        missing = [k for k in required if k not in kwargs]
        if missing:
            raise ShardFormatError(f"metadata is missing {', '.join(missing)}", path=path)
        meta = cls(**kwargs, extra=d)
        meta._check(path)
        return meta

    def _check(self, path: str | None) -> None:
        def bad(what: str) -> ShardFormatError:
            return ShardFormatError(f"metadata {what}", path=path)

        for key in ("step", "shard_index", "num_examples"):
            v = getattr(self, key)
            # below 2**63: TensorBoard steps are int64 and len() of a shard must fit an index
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2**63:
                raise bad(f"'{key}' must be a non-negative integer below 2**63, got {v!r}")
        if not isinstance(self.dump_id, str) or not re.match(r"^[A-Za-z0-9_.-]{1,64}$", self.dump_id):
            raise bad(f"'dump_id' must be a short name of letters, digits, '_', '.', '-', got {self.dump_id!r}")
        if not _finite_number(self.created):
            raise bad(f"'created' must be a finite number (unix time), got {self.created!r}")
        if self.box_format not in BOX_FORMATS:
            raise bad(f"'box_format' must be one of {', '.join(BOX_FORMATS)}, got {self.box_format!r}")
        if self.box_coords not in BOX_COORDS:
            raise bad(f"'box_coords' must be one of {', '.join(BOX_COORDS)}, got {self.box_coords!r}")
        if self.image_layout is not None and self.image_layout not in IMAGE_LAYOUTS:
            raise bad(f"'image_layout' must be one of {', '.join(IMAGE_LAYOUTS)} or null, got {self.image_layout!r}")
        for key in ("class_names", "mask_class_names", "keypoint_names"):
            names = getattr(self, key)
            if names is not None and (not isinstance(names, list) or not all(isinstance(c, str) for c in names)):
                raise bad(f"'{key}' must be a list of strings or null")
        bg = self.mask_background
        if bg is not None and (isinstance(bg, bool) or not isinstance(bg, int) or not -(2**63) <= bg < 2**63):
            raise bad(f"'mask_background' must be an integer mask id or null, got {bg!r}")
        edges = self.keypoint_edges
        if edges is not None:
            if not isinstance(edges, list) or not all(_is_edge(e) for e in edges):
                raise bad(f"'keypoint_edges' must be a list of [a, b] pairs of keypoint indices >= 0 or null, got {edges!r}")
            names = self.keypoint_names
            if names is not None and any(max(e) >= len(names) for e in edges):
                worst = max(max(e) for e in edges)
                raise bad(f"'keypoint_edges' joins keypoint {worst}, but 'keypoint_names' names {len(names)} keypoints")
        if self.image_range is not None and (
            not isinstance(self.image_range, list)
            or len(self.image_range) != 2
            or not all(_finite_number(v) for v in self.image_range)
            or not float(self.image_range[0]) < float(self.image_range[1])  # as the renderer compares them
        ):
            raise bad(f"'image_range' must be [low, high] (finite, low < high) or null, got {self.image_range!r}")
        for key in ("sources", "versions", "user"):
            if not isinstance(getattr(self, key), dict):
                raise bad(f"'{key}' must be an object")


def _is_edge(value: Any) -> bool:
    """A keypoint edge: ``[a, b]``, two JSON integers >= 0 (not booleans)."""
    return (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < 2**31 for i in value)
    )


def _finite_number(value: Any) -> bool:
    """A JSON number that is a usable float: JSON allows NaN, Infinity and ints too big for a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def parse_version(value: Any, *, path: str | None = None) -> tuple[int, int]:
    if not isinstance(value, str) or not re.match(r"^\d+\.\d+$", value):
        raise ShardFormatError(f"metadata 'format_version' must look like '1.0', got {value!r}", path=path)
    major, minor = value.split(".")
    return int(major), int(minor)


def class_names(metas: Iterable[ShardMeta], override: Sequence[str] | None = None) -> tuple[str, ...] | None:
    """THE class-name rule: the user's ``override`` when given, else the names of the last shard that has any.

    Rendering, selections, metrics, ``Run.class_names`` and the notebook all ask
    this function, so the names a picture shows are the names a selection
    matches. "Last" is the newest shard in step and shard order.

    >>> class_names([], override=["cat", "dog"])
    ('cat', 'dog')
    """
    if override is not None:
        return tuple(override)
    names = None
    for meta in metas:
        if meta.class_names:
            names = tuple(meta.class_names)
    return names


def step_dirname(step: int) -> str:
    return f"{STEP_DIR_PREFIX}{step:012d}"


def shard_filename(dump_id: str, shard_index: int) -> str:
    return f"{dump_id}-{shard_index:05d}{SHARD_SUFFIX}"


def manifest_filename(dump_id: str) -> str:
    """The JSON a writer leaves next to its shards when it closed cleanly."""
    return f"{dump_id}.done.json"


def meta_from_mapping(meta: Mapping[str, Any] | None) -> dict[str, Any]:
    """User metadata must be JSON-serialisable; say so at ``ShardWriter`` construction, not in the thread."""
    if meta is None:
        return {}
    try:
        json.dumps(dict(meta), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"meta must be JSON-serialisable: {exc}") from None
    return dict(meta)
