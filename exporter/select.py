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
   ``max_score``, ``ids`` (examples must pass all of them);
2. ranking: ``most_confident_wrong`` sorts the misclassified examples by score,
   highest first; ``least_confident_correct`` the correct ones, lowest first
   (ties and NaN scores: step order, NaN last);
3. ``per_class``: at most n examples per true class, in the current order;
4. the cuts: the first ``most_confident_wrong`` / ``least_confident_correct``
   examples, then the first ``limit``.

So positions come back in step order, except with ``most_confident_wrong`` or
``least_confident_correct``, where they come back ranked.

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
from typing import Any

import numpy as np

from ._checks import check_bool, check_number, check_optional_int
from .errors import ConfigError

ClassKey = int | str
ExampleId = int | str

# What each kind of condition reads. A "pred" reads pred_labels or, without them, the argmax of probs;
# a "score" reads pred_scores or, without them, probs at the predicted class.
_LABELS = frozenset({"labels"})
_PRED = frozenset({"pred_labels", "probs"})
_SCORE = frozenset({"pred_scores", "probs"})


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
    * ``per_class=n``: at most n examples per true class.
    * ``limit=n``: the first n.

    ``classes`` and ``ids`` take one value or a list (or array) and are stored as tuples, without repeats.

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
    per_class: int | None = None
    limit: int | None = None

    def __post_init__(self) -> None:
        set_ = functools.partial(object.__setattr__, self)  # frozen: normalised values go in this way
        if self.classes is not None:
            set_("classes", _keys(self.classes, "classes", "class ids (int) or class names (str)"))
        if self.ids is not None:
            set_("ids", _keys(self.ids, "ids", "example ids (int or str)"))
        for name in ("misclassified", "correct"):
            set_(name, check_bool(getattr(self, name), name))
        for name in ("min_score", "max_score"):
            if getattr(self, name) is not None:
                set_(name, check_number(getattr(self, name), name))
        for name in ("most_confident_wrong", "least_confident_correct", "per_class", "limit"):
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
        return self.most_confident_wrong is not None or self.least_confident_correct is not None

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
        ``probs`` as the score: ``check`` says which are required.
        """
        out: set[str] = set()
        for _, group in self._needs():
            for alternatives in group:
                out |= alternatives
        if out & _SCORE:
            out.add("pred_labels")  # without pred_scores, the score is probs at the predicted class
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
        return needs

    def check(
        self, available: Iterable[str], class_names: Sequence[str] | None = None, *, source: str = "the input"
    ) -> None:
        """Raise ConfigError when the ``available`` fields cannot serve this selection, or a class name is unknown.

        Needs no data, only field names, so a caller can check before loading
        anything; ``source`` names the fields' origin in the message.
        """
        if self.classes is not None:
            _class_ids(self.classes, class_names)
        have = set(available)
        for name, group in self._needs():
            if all(alternatives & have for alternatives in group):
                continue
            wants = {
                (_LABELS,): "'labels'",
                (_LABELS, _PRED): "'labels' and 'pred_labels' (or 'probs')",
                (_SCORE,): "'pred_scores' (or 'probs')",
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
    ) -> np.ndarray:
        """Positions (int64 indices into ``arrays``) of the selected examples; see the module docstring.

        ``arrays`` are one step's batch-major fields (at least those of ``fields``
        the step has); ``class_names`` resolve class names in ``classes``; ``n``
        is the number of examples when ``arrays`` is empty; ``source`` names the
        arrays' source in error messages. Inputs are not modified.
        """
        self.check(arrays, class_names, source=source)
        sizes = {k: len(v) for k, v in arrays.items() if k in self.fields}
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
        # check() made sure that every condition reading labels has them
        labels: Any = np.asarray(arrays["labels"]).astype(np.int64) if "labels" in self.fields & set(arrays) else None
        if self.classes is not None:
            keep &= np.isin(labels, _class_ids(self.classes, class_names))
        if self.misclassified or self.correct or self.ranked:
            wrong = labels != _predictions(arrays)
            keep &= wrong if (self.misclassified or self.most_confident_wrong is not None) else ~wrong
        scores = None
        if self.min_score is not None or self.max_score is not None or self.ranked:
            scores = _scores(arrays)
            # compared in the scores' own precision, so min_score=0.7 keeps a float32 score printed as 0.7;
            # NaN compares False: never in a range
            if self.min_score is not None:
                keep &= scores >= scores.dtype.type(self.min_score)
            if self.max_score is not None:
                keep &= scores <= scores.dtype.type(self.max_score)
        if self.ids is not None:
            keep &= _id_mask(np.asarray(arrays["ids"]), self.ids, source)

        positions = np.flatnonzero(keep).astype(np.int64)
        if scores is not None and self.ranked:
            s = scores[positions]
            if self.most_confident_wrong is not None:
                order = np.argsort(-np.where(np.isnan(s), -np.inf, s), kind="stable")
            else:
                order = np.argsort(np.where(np.isnan(s), np.inf, s), kind="stable")
            positions = positions[order]
        if self.per_class is not None:
            positions = positions[_first_per_class(labels[positions], self.per_class)]
        for cut in (self.most_confident_wrong, self.least_confident_correct, self.limit):
            if cut is not None:
                positions = positions[:cut]
        return positions


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
