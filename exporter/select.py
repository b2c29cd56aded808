"""Selections: which examples of one step to look at (numpy only, no I/O).

A ``Selection`` is a frozen record of conditions. ``select(arrays)`` turns it
into positions in the step (int indices into the step's arrays, shards
concatenated in order), reading only the small fields named by ``fields``
(never images), so a caller loads just those::

    >>> import numpy as np
    >>> arrays = {"labels": np.array([0, 1, 1, 2]), "pred_labels": np.array([0, 2, 1, 0]),
    ...           "pred_scores": np.array([0.9, 0.8, 0.6, 0.7])}
    >>> Selection(misclassified=True).select(arrays)
    array([1, 3])
    >>> Selection(most_confident_wrong=1).select(arrays)
    array([1])
    >>> sorted(Selection(most_confident_wrong=1).fields)
    ['labels', 'pred_labels', 'pred_scores', 'probs']

The conditions always apply in this order, whichever way they were written:

1. filters: ``classes``, ``misclassified``, ``correct``, ``min_score`` /
   ``max_score``, ``ids``, and for detectors ``box_classes``,
   ``any_false_positive``, ``any_missed`` (examples must pass all of them);
2. ranking: ``most_confident_wrong`` sorts the misclassified examples by score,
   highest first; ``least_confident_correct`` the correct ones, lowest first;
   ``worst`` the images by per-image AP (or mean best IoU), lowest first
   (ties and NaN: step order, NaN last);
3. ``per_class``: at most n examples per true class, in the current order;
4. the cuts: the first ``most_confident_wrong`` / ``least_confident_correct`` /
   ``worst`` examples, then the first ``limit``.

So positions come back in step order, except with ``most_confident_wrong``,
``least_confident_correct`` or ``worst``, where they come back ranked.

The detector conditions read no labels: they read per-image match results
(``exporter.metrics.images.ImageStats``), which ``export`` and
``Run.examples`` compute from the box fields (in any box format) and pass as
``select(..., stats=...)``::

    >>> from exporter.metrics.images import ImageStats
    >>> stats = ImageStats(3, fp=np.array([0, 2, 1]), missed=np.array([1, 0, 0]), tp=np.array([1, 1, 0]))
    >>> Selection(any_false_positive=True).select({}, n=3, stats=stats)
    array([1, 2])

``a & b`` selects what both select: it is the Selection holding both sets of
conditions, exactly as if they were written in one ``Selection(...)``. Filters
intersect, and counts take the smaller value, so ``&`` is commutative and
``(classes=["cat"]) & (limit=5)`` means "the first 5 cats" (the cut comes after
the filters, see above).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ._checks import check_bool, check_choice, check_number, check_optional_int
from .errors import ConfigError

if TYPE_CHECKING:
    from .metrics.images import ImageStats

ClassKey = int | str
ExampleId = int | str

# What each kind of condition reads. A "pred" reads pred_labels or, without them, the argmax of probs;
# a "score" reads pred_scores or, without them, probs at the predicted class.
_LABELS = frozenset({"labels"})
_PRED = frozenset({"pred_labels", "probs"})
_SCORE = frozenset({"pred_scores", "probs"})
# The detector conditions: what they need, and every box field they read where a shard has it.
_BOX_LABELS = frozenset({"box_labels", "gt_box_labels"})
_BOXES, _GT_BOXES = frozenset({"boxes"}), frozenset({"gt_boxes"})
_BOX_FIELDS = frozenset({"boxes", "box_labels", "box_scores", "num_boxes", "gt_boxes", "gt_box_labels", "gt_num_boxes"})
WORST_BY = ("ap", "iou")
#: The IoU at which predictions match ground truth for ``any_false_positive`` / ``any_missed`` when nothing says.
DEFAULT_MATCH_IOU = 0.5


@dataclasses.dataclass(frozen=True, kw_only=True)
class Selection:
    """Which examples of one step to keep; ``Selection()`` keeps them all. See the module docstring.

    * ``classes``: true class ids or names (names need ``class_names``); matches ``labels``.
    * ``misclassified`` / ``correct``: ``labels`` != / == the prediction (``pred_labels``,
      else the argmax of ``probs``). False means "no condition", not the opposite.
    * ``min_score`` / ``max_score``: inclusive range of the predicted class's score
      (``pred_scores``, else ``probs`` at the prediction).
    * ``most_confident_wrong=k``: the k misclassified examples with the highest score, ranked.
    * ``least_confident_correct=k``: the k correct examples with the lowest score, ranked.
    * ``ids``: example ids (``ids`` field); every one must be in the step.
    * ``box_classes``: images with a ground-truth or a predicted box of these classes (ids or names).
    * ``any_false_positive``: images with a predicted box that matches no ground truth.
    * ``any_missed``: images with a ground-truth box no prediction matches.
    * ``worst=k``: the k images with the lowest per-image AP (``worst_by="ap"``, the default:
      COCO AP of the image alone) or the lowest mean best IoU of their ground-truth boxes
      (``worst_by="iou"``), ranked.
    * ``match_iou``: the IoU a match needs (None: the export's ``match_iou``, else 0.5).
    * ``min_box_score``: predicted boxes scoring below it do not count for ``box_classes``,
      ``any_false_positive``, ``any_missed`` and the IoU of ``worst_by="iou"`` (None: the
      export's ``score_threshold``, else 0); AP always counts every prediction.
    * ``per_class=n``: at most n examples per true class.
    * ``limit=n``: the first n.

    ``classes``, ``box_classes`` and ``ids`` take one value or a list (or array) and are stored as
    tuples, without repeats.

    >>> Selection(classes="cat", limit=5) & Selection(misclassified=True)
    Selection(classes=('cat',), misclassified=True, limit=5)
    """

    classes: Sequence[ClassKey] | ClassKey | None = None
    misclassified: bool = False
    correct: bool = False
    min_score: float | None = None
    max_score: float | None = None
    most_confident_wrong: int | None = None
    least_confident_correct: int | None = None
    ids: Sequence[ExampleId] | np.ndarray | ExampleId | None = None
    box_classes: Sequence[ClassKey] | ClassKey | None = None
    any_false_positive: bool = False
    any_missed: bool = False
    worst: int | None = None
    worst_by: Literal["ap", "iou"] | None = None
    match_iou: float | None = None
    min_box_score: float | None = None
    per_class: int | None = None
    limit: int | None = None

    def __post_init__(self) -> None:
        set_ = functools.partial(object.__setattr__, self)  # frozen: normalised values go in this way
        for name in ("classes", "box_classes"):
            if getattr(self, name) is not None:
                set_(name, _keys(getattr(self, name), name, "class ids (int) or class names (str)"))
        if self.ids is not None:
            set_("ids", _keys(self.ids, "ids", "example ids (int or str)"))
        for name in ("misclassified", "correct", "any_false_positive", "any_missed"):
            set_(name, check_bool(getattr(self, name), name))
        for name in ("min_score", "max_score", "min_box_score"):
            if getattr(self, name) is not None:
                set_(name, check_number(getattr(self, name), name))
        if self.match_iou is not None:
            set_("match_iou", check_number(self.match_iou, "match_iou", above=0.0, maximum=1.0))
        if self.worst_by is not None:
            check_choice(self.worst_by, WORST_BY, "worst_by")
        for name in ("most_confident_wrong", "least_confident_correct", "worst", "per_class", "limit"):
            set_(name, check_optional_int(getattr(self, name), name, minimum=0))
        self._check_consistent()

    def _check_consistent(self) -> None:
        """Conditions that exclude each other would select nothing: almost always a mistake, so say so."""
        wrong = self.misclassified or self.most_confident_wrong is not None
        right = self.correct or self.least_confident_correct is not None
        if wrong and right:
            said = [
                n
                for n in ("misclassified", "most_confident_wrong", "correct", "least_confident_correct")
                if _is_set(getattr(self, n))
            ]
            raise ConfigError(
                f"{' and '.join(said)} exclude each other (an example is either misclassified or correct): "
                "nothing would be selected"
            )
        if self.min_score is not None and self.max_score is not None and self.min_score > self.max_score:
            raise ConfigError(
                f"min_score {self.min_score} is above max_score {self.max_score}: nothing would be selected"
            )
        rankings = [n for n in ("most_confident_wrong", "least_confident_correct", "worst") if getattr(self, n) is not None]
        if len(rankings) > 1:
            raise ConfigError(f"{' and '.join(rankings)} both rank the examples, in different orders: choose one")
        if self.worst_by is not None and self.worst is None:
            raise ConfigError(f"worst_by={self.worst_by!r} says how worst=k ranks, but worst is not set")

    # ------------------------------------------------------------------ composing

    def __and__(self, other: Selection) -> Selection:
        if not isinstance(other, Selection):
            return NotImplemented
        return Selection(
            classes=_intersect_classes(self.classes, other.classes),
            misclassified=self.misclassified or other.misclassified,
            correct=self.correct or other.correct,
            min_score=_pick(max, self.min_score, other.min_score),
            max_score=_pick(min, self.max_score, other.max_score),
            most_confident_wrong=_pick(min, self.most_confident_wrong, other.most_confident_wrong),
            least_confident_correct=_pick(min, self.least_confident_correct, other.least_confident_correct),
            ids=_intersect(self.ids, other.ids),
            box_classes=_intersect_classes(self.box_classes, other.box_classes),
            any_false_positive=self.any_false_positive or other.any_false_positive,
            any_missed=self.any_missed or other.any_missed,
            worst=_pick(min, self.worst, other.worst),
            worst_by=_same(self.worst_by, other.worst_by, "worst_by"),
            match_iou=_same(self.match_iou, other.match_iou, "match_iou"),
            min_box_score=_pick(max, self.min_box_score, other.min_box_score),
            per_class=_pick(min, self.per_class, other.per_class),
            limit=_pick(min, self.limit, other.limit),
        )

    def where(self, **conditions: Any) -> Selection:
        """This selection and more conditions: ``s.where(limit=5)`` is ``s & Selection(limit=5)``."""
        return self & Selection(**conditions)

    @property
    def everything(self) -> bool:
        """True when nothing is filtered, ranked or cut (``Selection()``)."""
        return self == _EVERYTHING

    @property
    def ranked(self) -> bool:
        """True when ``select`` returns ranked positions instead of step order."""
        return any(getattr(self, n) is not None for n in ("most_confident_wrong", "least_confident_correct", "worst"))

    @property
    def image_stats(self) -> frozenset[str]:
        """Which per-image detection results ``select`` reads (``exporter.metrics.images.STATS``); empty: none.

        >>> sorted(Selection(any_missed=True, worst=3).image_stats)
        ['ap', 'counts']
        """
        need = set()
        if self.any_false_positive or self.any_missed:
            need.add("counts")
        if self.worst is not None:
            need.add("best_iou" if self.worst_by == "iou" else "ap")
        if self.box_classes is not None:
            need.add("classes")
        return frozenset(need)

    def __repr__(self) -> str:
        parts = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value == f.default:
                continue
            if f.name == "ids" and len(value) > 4:
                shown = ", ".join(repr(v) for v in value[:3])
                parts.append(f"ids=({shown}, ... {len(value)} ids)")
            else:
                parts.append(f"{f.name}={value!r}")
        return f"Selection({', '.join(parts)})"

    # ------------------------------------------------------------------ what it reads

    @property
    def fields(self) -> set[str]:
        """The fields ``select`` may read; load those the run has (it needs only some of them).

        ``pred_labels`` or ``probs`` serve as the prediction, ``pred_scores`` or
        ``probs`` as the score: ``check`` says which are required. With detector
        conditions they include the box fields the per-image ``stats`` are made from.
        """
        out: set[str] = set()
        for _, group in self._needs():
            for alternatives in group:
                out |= alternatives
        if out & _SCORE:
            out.add("pred_labels")  # without pred_scores, the score is probs at the predicted class
        if self.image_stats:
            out |= _BOX_FIELDS  # counts, scores, labels: read where a shard has them
        return out

    def _needs(self) -> list[tuple[str, list[frozenset[str]]]]:
        """(condition, [alternatives that must each be met]) for every condition in use."""
        needs = []
        if self.classes is not None:
            needs.append(("classes", [_LABELS]))
        if self.per_class is not None:
            needs.append(("per_class", [_LABELS]))
        for name in ("misclassified", "correct", "most_confident_wrong", "least_confident_correct"):
            if _is_set(getattr(self, name)):
                needs.append((name, [_LABELS, _PRED]))
        for name in ("min_score", "max_score", "most_confident_wrong", "least_confident_correct"):
            if getattr(self, name) is not None:
                needs.append((name, [_SCORE]))
        if self.ids is not None:
            needs.append(("ids", [frozenset({"ids"})]))
        if self.box_classes is not None:
            needs.append(("box_classes", [_BOX_LABELS]))
        for name in ("any_false_positive", "any_missed", "worst"):
            if _is_set(getattr(self, name)):
                needs.append((name, [_BOXES, _GT_BOXES]))
        return needs

    def check(
        self, available: Iterable[str], class_names: Sequence[str] | None = None, *, source: str = "the input"
    ) -> None:
        """Raise ConfigError when the ``available`` fields cannot serve this selection, or a class name is unknown.

        Needs no data, only field names, so a caller can check before loading
        anything; ``source`` names the fields' origin in the message.
        """
        for keys in (self.classes, self.box_classes):
            if keys is not None:
                _class_ids(keys, class_names)
        have = set(available)
        for name, group in self._needs():
            if all(alternatives & have for alternatives in group):
                continue
            wants = {
                (_LABELS,): "'labels'",
                (_LABELS, _PRED): "'labels' and 'pred_labels' (or 'probs')",
                (_SCORE,): "'pred_scores' (or 'probs')",
                (_BOX_LABELS,): "'box_labels' or 'gt_box_labels'",
            }.get(tuple(group), " and ".join(f"'{min(a)}'" for a in group))
            listed = ", ".join(sorted(have)) or "no fields"
            raise ConfigError(f"{name} needs {wants}; {source} has: {listed}")

    # ------------------------------------------------------------------ selecting

    def select(
        self,
        arrays: Mapping[str, np.ndarray],
        class_names: Sequence[str] | None = None,
        *,
        n: int | None = None,
        source: str = "the input",
        stats: ImageStats | None = None,
    ) -> np.ndarray:
        """Positions (int64 indices into ``arrays``) of the selected examples; see the module docstring.

        ``arrays`` are one step's batch-major fields (at least those of ``fields``
        the step has); ``class_names`` resolve class names in ``classes`` and
        ``box_classes``; ``n`` is the number of examples when ``arrays`` is empty;
        ``source`` names the arrays' source in error messages; ``stats`` are the
        per-image detection results the detector conditions read (``image_stats``
        says which; ``exporter.metrics.images.image_stats`` computes them). Inputs
        are not modified.
        """
        # the stats were made from the box fields: the box conditions need nothing else from arrays
        self.check(set(arrays) | (_BOX_FIELDS if stats is not None else set()), class_names, source=source)
        if self.image_stats and stats is None:
            raise ConfigError(
                "box conditions (box_classes, any_false_positive, any_missed, worst) read per-image match results: "
                "pass stats= (exporter.metrics.images.image_stats); export and Run.examples compute them"
            )
        sizes = {k: len(v) for k, v in arrays.items() if k in self.fields - _BOX_FIELDS}
        if stats is not None and self.image_stats:
            sizes["stats"] = len(stats)
        if len(set(sizes.values())) > 1:
            raise ConfigError(f"the fields of {source} have different lengths: {sizes}")
        if sizes:
            count = next(iter(sizes.values()))
            if n is not None and n != count:
                raise ConfigError(f"n={n} but the fields of {source} hold {count} examples")
        elif n is not None:
            count = n
        else:
            if not arrays:
                raise ConfigError("select() needs the number of examples: pass n= when arrays is empty")
            count = max(len(v) for v in arrays.values())

        keep = np.ones(count, dtype=bool)
        by_score = self.most_confident_wrong is not None or self.least_confident_correct is not None
        # check() made sure that every condition reading labels has them
        labels: Any = np.asarray(arrays["labels"]).astype(np.int64) if "labels" in self.fields & set(arrays) else None
        if self.classes is not None:
            keep &= np.isin(labels, _class_ids(self.classes, class_names))
        if self.misclassified or self.correct or by_score:
            wrong = labels != _predictions(arrays)
            keep &= wrong if (self.misclassified or self.most_confident_wrong is not None) else ~wrong
        scores = None
        if self.min_score is not None or self.max_score is not None or by_score:
            scores = _scores(arrays)
            # compared in the scores' own precision, so min_score=0.7 keeps a float32 score printed as 0.7;
            # NaN compares False: never in a range
            if self.min_score is not None:
                keep &= scores >= scores.dtype.type(self.min_score)
            if self.max_score is not None:
                keep &= scores <= scores.dtype.type(self.max_score)
        if self.ids is not None:
            keep &= _id_mask(np.asarray(arrays["ids"]), self.ids, source)
        ranking = None
        if stats is not None and self.image_stats:
            keep &= self._box_filters(stats, class_names, count)
            if self.worst is not None:
                ranking = _part(stats, "best_iou" if self.worst_by == "iou" else "ap", count)

        positions = np.flatnonzero(keep).astype(np.int64)
        if scores is not None and by_score:
            s = scores[positions]
            if self.most_confident_wrong is not None:
                order = np.argsort(-np.where(np.isnan(s), -np.inf, s), kind="stable")
            else:
                order = np.argsort(np.where(np.isnan(s), np.inf, s), kind="stable")
            positions = positions[order]
        if ranking is not None:  # lowest first, NaN (nothing to measure) last
            r = ranking[positions]
            positions = positions[np.argsort(np.where(np.isnan(r), np.inf, r), kind="stable")]
        if self.per_class is not None:
            positions = positions[_first_per_class(labels[positions], self.per_class)]
        for cut in (self.most_confident_wrong, self.least_confident_correct, self.worst, self.limit):
            if cut is not None:
                positions = positions[:cut]
        return positions

    def _box_filters(self, stats: ImageStats, class_names: Sequence[str] | None, count: int) -> np.ndarray:
        """Mask of the images that pass ``box_classes``, ``any_false_positive`` and ``any_missed``."""
        keep = np.ones(count, dtype=bool)
        if self.box_classes is not None:
            image, cls = _part(stats, "class_image", None), _part(stats, "class_id", None)
            has = np.zeros(count, dtype=bool)
            has[image[np.isin(cls, _class_ids(self.box_classes, class_names))]] = True
            keep &= has
        if self.any_false_positive:
            keep &= _part(stats, "fp", count) > 0
        if self.any_missed:
            keep &= _part(stats, "missed", count) > 0
        return keep


_EVERYTHING = Selection()


# --------------------------------------------------------------------------- helpers


def _keys(value: Any, name: str, what: str) -> tuple:
    """One value or a list/array of ints and strings, as a tuple of plain Python values."""
    if isinstance(value, (str, int, np.integer, np.str_)) and not isinstance(value, (bool, np.bool_)):
        value = [value]
    if isinstance(value, np.ndarray):
        if value.ndim != 1 or value.dtype.kind not in "iuU":
            raise ConfigError(f"{name} must be a 1-D array of {what}, got dtype {value.dtype}, shape {value.shape}")
        return tuple(dict.fromkeys(value.tolist()))
    if not isinstance(value, Iterable) or isinstance(value, Mapping):
        raise ConfigError(f"{name} must be a list of {what}, got {value!r}")
    out = []
    for v in value:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (str, int, np.integer, np.str_)):
            raise ConfigError(f"{name} must be a list of {what}, got item {v!r}")
        out.append(v.item() if isinstance(v, np.generic) else v)
    return tuple(dict.fromkeys(out))  # repeats dropped, order kept


def _is_set(value: Any) -> bool:
    """A condition is in use when not None/False (``0 == False``, so no ``in (False, None)``)."""
    return value is not None and value is not False


def _pick(choose, a, b):
    """``choose(a, b)``, or the one that is set."""
    if a is None:
        return b
    if b is None:
        return a
    return choose(a, b)


def _same(a: Any, b: Any, name: str) -> Any:
    """The one that is set; both set, they must agree (two IoUs cannot both apply)."""
    if a is not None and b is not None and a != b:
        raise ConfigError(f"cannot combine {name}={a!r} with {name}={b!r}: a selection has one")
    return a if a is not None else b


def _part(stats: ImageStats, name: str, count: int | None) -> np.ndarray:
    """One part of ``stats``, which must have been computed (and, with ``count``, hold one value per example)."""
    value = getattr(stats, name)
    if value is None:
        raise ConfigError(f"stats were computed without '{name}'; compute them with need=selection.image_stats")
    if count is not None and len(value) != count:
        raise ConfigError(f"stats hold {len(value)} images but the selection sees {count} examples")
    return np.asarray(value)


def _intersect(a: Any, b: Any) -> tuple | None:
    if a is None or b is None:
        return a if b is None else b
    other = set(b)
    return tuple(v for v in a if v in other)


def _intersect_classes(a: Any, b: Any) -> tuple | None:
    if a is not None and b is not None:
        kinds = {type(v) for v in a + b}
        if len(kinds) > 1:  # "cat" & 3 can only be compared with the class names, which a Selection does not hold
            raise ConfigError(
                f"cannot combine classes={list(a)} with classes={list(b)}: give both as names or both as ids"
            )
    return _intersect(a, b)


def _class_ids(classes: Any, class_names: Sequence[str] | None) -> np.ndarray:
    """Class ids of ``classes``; names are looked up in ``class_names``."""
    ids = []
    for c in classes:
        if isinstance(c, int):
            ids.append(c)
            continue
        if not class_names:
            raise ConfigError(
                f"classes given by name ({c!r}) need class names, but the shard metadata has none; "
                "give class ids (ints) instead"
            )
        if c not in class_names:
            raise ConfigError(f"unknown class name {c!r}; the classes are: {', '.join(class_names)}")
        ids.append(list(class_names).index(c))
    return np.array(ids, dtype=np.int64)


def _predictions(arrays: Mapping[str, np.ndarray]) -> np.ndarray:
    """Predicted class ids: ``pred_labels``, else the argmax of ``probs``."""
    if "pred_labels" in arrays:
        return np.asarray(arrays["pred_labels"]).astype(np.int64)
    return np.asarray(arrays["probs"]).argmax(axis=1).astype(np.int64)


def _scores(arrays: Mapping[str, np.ndarray]) -> np.ndarray:
    """The predicted class's score: ``pred_scores``, else ``probs`` at the prediction (NaN where unknown)."""
    if "pred_scores" in arrays:
        return _floats(arrays["pred_scores"])
    probs = _floats(arrays["probs"])
    if probs.ndim != 2:
        raise ConfigError(f"'probs' must have shape (N, K), got {probs.shape}")
    pred = _predictions(arrays)
    known = (pred >= 0) & (pred < probs.shape[1])
    picked = probs[np.arange(len(probs)), np.where(known, pred, 0)]
    return np.where(known, picked, np.nan)


def _floats(a: np.ndarray) -> np.ndarray:
    """Floats in their own precision (float16 and ints become float64)."""
    a = np.asarray(a)
    return a if a.dtype in (np.float32, np.float64) else a.astype(np.float64)


def _id_mask(ids: np.ndarray, wanted: Any, source: str) -> np.ndarray:
    """Which rows have one of the ``wanted`` ids; every wanted id must be there (a typo would select nothing)."""
    present = set(ids.tolist())
    missing = [v for v in wanted if v not in present]
    if missing:
        shown = ", ".join(repr(v) for v in missing[:3]) + (
            f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""
        )
        like = ", ".join(repr(v) for v in ids[:3].tolist())
        raise ConfigError(f"ids not in {source}: {shown}; its ids look like: {like}")
    return np.isin(ids, np.array(wanted, dtype=ids.dtype) if len(wanted) else ids[:0])


def _first_per_class(labels: np.ndarray, n: int) -> np.ndarray:
    """Mask of the items that are among the first ``n`` of their class, in the given order."""
    if not len(labels):
        return np.zeros(0, dtype=bool)
    _, group = np.unique(labels, return_inverse=True)
    order = np.argsort(group, kind="stable")
    counts = np.bincount(group)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    rank = np.empty(len(group), dtype=np.int64)
    rank[order] = np.arange(len(group)) - starts
    return rank < n
