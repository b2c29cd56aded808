"""What changed between two checkpoints: outcomes per example, the examples fixed and broken, their pictures, tables.

An example's **outcome** at a step comes from small fields only:

* classification (the step has ``labels`` and ``pred_labels`` or ``probs``): right when the
  predicted class is the true one (the rule of ``Selection(misclassified=True)``);
* detection (``boxes`` and ``gt_boxes``): the boxes drawn (score threshold, ``max_boxes``) are
  matched greedily to the ground truth at ``match_iou`` (0.5 unless set), class-aware when both
  sides have labels — ``render.match_boxes`` on boxes converted by ``render.to_pixel_xyxy_keep``,
  as the picture colours them. ``errors`` = false + missed boxes; right when there are none.
  ``ap`` is the image's own AP at that IoU (its drawn boxes ranked by score, all-point
  interpolated), NaN when the image has no ground truth.

Between a step A and the next step B an example is **fixed** when it went wrong → right
(detection: its errors went down, or with the same errors its AP rose by more than
``AP_CHANGE`` = 0.1), and **broken** the other way. Examples are matched by ``ids`` when both
steps have them, else by position in the step (a note says so). An example is compared when the
selection (and ``max_per_step``) picks it at A or at B: what a user asked to look at, whichever
side of the change it is on.

Only ``Outcomes`` (a few numbers per example) are kept from step to step; the two pictures of a
changed example are drawn from its shard rows, read again, one shard at a time
(``render_changes``). ``ChangeTracker`` runs this along the steps of one export.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Iterator, Sequence
from typing import Any, Literal

import numpy as np
from PIL import Image

from . import tags as tagging
from .errors import ConfigError, ExporterError, ShardError, ShardTooLargeError
from .options import ExportOptions, read_options_for, step_class_names
from .render import box_count, drawn_order, match_boxes, render_example, side_by_side, to_pixel_xyxy_keep
from .render.classes import NO_CLASS, class_ids, class_name
from .schema import CANONICAL_FIELDS, DEFAULT_BOX_COORDS, DEFAULT_BOX_FORMAT
from .select import Selection
from .shards import Shard
from .validation import check_arrays

Kind = Literal["classification", "detection"]
ChangeKind = Literal["fixed", "broken"]

#: An image whose missed + false box count did not change is fixed / broken when its AP moved more than this.
AP_CHANGE = 0.1
#: The IoU at which boxes match when the options set none (``--match-iou``).
DEFAULT_MATCH_IOU = 0.5
#: Ids listed per class and kind in ``summary/changes`` before "... and N more".
MAX_IDS_LISTED = 20
#: Changed examples drawn per batch: bounds the pictures held at once.
CHUNK = 32

_CLASSIFICATION = ("labels", "pred_labels", "probs", "pred_scores")
_DETECTION = ("boxes", "box_labels", "box_scores", "num_boxes", "gt_boxes", "gt_box_labels", "gt_num_boxes")
def outcome_kind(fields: set[str] | Sequence[str]) -> Kind | None:
    """Which outcome a step with ``fields`` has: classification first, then detection, else None."""
    have = set(fields)
    if "labels" in have and have & {"pred_labels", "probs"}:
        return "classification"
    if {"boxes", "gt_boxes"} <= have:
        return "detection"
    return None


@dataclasses.dataclass(frozen=True)
class Rules:
    """What decides a detection outcome: the drawing's score threshold and box cap, and the match IoU."""

    match_iou: float = DEFAULT_MATCH_IOU
    score_threshold: float = 0.0
    max_boxes: int = 100

    @classmethod
    def of(cls, options: ExportOptions) -> Rules:
        style = options.render
        iou = DEFAULT_MATCH_IOU if style.match_iou is None else style.match_iou
        return cls(float(iou), float(style.score_threshold), int(style.max_boxes))


# --------------------------------------------------------------------------- outcomes


@dataclasses.dataclass
class Outcomes:
    """One step's outcomes: a few numbers per readable example, in step order (shards concatenated).

    ``positions`` are positions in the step (rows of unreadable shards are absent); ``keys`` are
    the ``ids`` when every shard has them (``by_ids``), else the positions. ``selected`` marks the
    examples the selection picks. ``labels`` is the true class when the step has ``labels``
    (whatever ``kind``); ``right`` is None without a ``kind``. Classification fills ``preds`` and
    ``scores``; detection ``missed``, ``false``, ``n_gt``, ``n_pred`` and ``ap``.
    """

    step: int
    kind: Kind | None
    positions: np.ndarray
    keys: np.ndarray
    by_ids: bool
    selected: np.ndarray
    class_names: tuple[str, ...] | None
    labels: np.ndarray | None = None
    right: np.ndarray | None = None
    preds: np.ndarray | None = None
    scores: np.ndarray | None = None
    missed: np.ndarray | None = None
    false: np.ndarray | None = None
    n_gt: np.ndarray | None = None
    n_pred: np.ndarray | None = None
    ap: np.ndarray | None = None
    match_iou: float | None = None  # detection: the IoU the boxes were matched at
    duplicates: int = 0  # ids repeated in the step (matching keeps the first)

    def __len__(self) -> int:
        return len(self.positions)

    @property
    def errors(self) -> np.ndarray | None:
        """Detection: false + missed boxes per image."""
        return None if self.missed is None or self.false is None else self.missed + self.false

    @property
    def known(self) -> np.ndarray:
        """Examples whose outcome can be read (a class id >= 0 predicted for a labelled example; any detection)."""
        if self.kind == "classification" and self.labels is not None and self.preds is not None:
            return (self.labels >= 0) & (self.preds >= 0)
        return np.full(len(self), self.kind is not None)

    def name(self, i: int) -> str:
        """The sanitised name of example ``i`` (as its per-example tag has it, duplicates aside)."""
        return tagging.example_name(self.keys[i].item() if self.by_ids else None, int(self.positions[i]))

    def id_text(self, i: int) -> str:
        """Example ``i``'s id as a person reads it (``ex00042`` without ids)."""
        return tagging.id_text(self.keys[i].item()) if self.by_ids else tagging.default_id(int(self.positions[i]))

    def take(self, keep: np.ndarray) -> Outcomes:
        """The examples where ``keep`` (a bool mask) holds."""
        arrays = {
            f.name: getattr(self, f.name)[keep]
            for f in dataclasses.fields(self)
            if isinstance(getattr(self, f.name), np.ndarray)
        }
        return dataclasses.replace(self, **arrays)


def step_outcomes(
    shards: Sequence[Shard],
    options: ExportOptions,
    *,
    selected: Sequence[np.ndarray] | None = None,
    skip: set[str] | frozenset[str] = frozenset(),
) -> Outcomes:
    """The outcomes of one step's ``shards`` under ``options`` (the drawing rules, the class names).

    ``selected`` gives, per shard, the rows the selection picks (None: all); shards whose paths
    are in ``skip``, or whose small fields fail validation, are left out (the export reports them).
    """
    step = shards[0].step
    names = step_class_names(options, (s.meta for s in shards))
    common = set.intersection(*(set(s.fields) for s in shards))
    kind = outcome_kind(common)
    by_ids = "ids" in common
    wanted = [n for n in (*_CLASSIFICATION, *(_DETECTION if kind == "detection" else ()), "ids") if n in common]
    rules = Rules.of(options)
    parts: list[dict[str, np.ndarray]] = []
    base = 0
    for k, shard in enumerate(shards):
        start, base = base, base + len(shard)
        if str(shard.path) in skip:
            continue
        try:
            arrays = shard.load(wanted)
        except (ShardError, ShardTooLargeError):
            continue
        if check_arrays(shard.meta, arrays):
            continue  # a shard the export refuses (or skips) is not compared either
        n = len(shard)
        part: dict[str, np.ndarray] = {"positions": np.arange(start, start + n, dtype=np.int64)}
        chosen = np.ones(n, bool)
        if selected is not None:
            chosen[:] = False
            chosen[np.asarray(selected[k], np.int64)] = True
        part["selected"] = chosen
        part["keys"] = arrays["ids"] if by_ids else part["positions"]
        if "labels" in arrays:
            part["labels"] = class_ids(arrays["labels"], "labels")
        if kind == "classification":
            part["preds"], part["scores"] = _predicted(arrays)
        elif kind == "detection":
            read = read_options_for(options, shard.meta, names)
            part.update(_detections(arrays, n, read.box_format or DEFAULT_BOX_FORMAT, read.box_coords or DEFAULT_BOX_COORDS, rules))
        parts.append(part)
    columns: dict[str, Any] = {}
    for name in ("positions", "selected", "keys", "labels", "preds", "scores", "missed", "false", "n_gt", "n_pred", "ap"):
        if parts and all(name in p for p in parts):
            columns[name] = np.concatenate([p[name] for p in parts])
    empty = np.zeros(0, np.int64)
    out = Outcomes(
        step=step,
        kind=kind,
        positions=columns.pop("positions", empty),
        keys=columns.pop("keys", empty),
        by_ids=by_ids,
        selected=columns.pop("selected", np.zeros(0, bool)),
        class_names=names,
        **columns,
    )
    if kind == "classification" and out.labels is not None and out.preds is not None:
        out.right = out.labels == out.preds
    elif kind == "detection" and out.errors is not None:
        out.right = out.errors == 0
        out.match_iou = rules.match_iou
    if by_ids:
        out.duplicates = len(out.keys) - len(np.unique(out.keys))
    return out


def selected_rows(shards: Sequence[Shard], options: ExportOptions) -> list[np.ndarray] | None:
    """The rows the export draws of each shard: the selection's, cut at ``max_per_step`` (None: all)."""
    from ._pipeline import selected_rows as by_selection

    names = step_class_names(options, (s.meta for s in shards))
    chosen = by_selection(shards, options, names)
    if chosen is None and options.max_per_step is None:
        return None
    rows: list[np.ndarray] = []
    taken = 0
    for k, shard in enumerate(shards):
        wanted = np.arange(len(shard)) if chosen is None else chosen[k]
        if options.max_per_step is not None:
            wanted = wanted[: max(0, options.max_per_step - taken)]
        taken += len(wanted)
        rows.append(np.asarray(wanted, np.int64))
    return rows


def _predicted(arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Predicted class ids (``pred_labels``, else the argmax of ``probs``) and their scores (NaN where unknown)."""
    probs = arrays.get("probs")
    if "pred_labels" in arrays:
        preds = class_ids(arrays["pred_labels"], "pred_labels")
    else:
        assert probs is not None  # outcome_kind asked for one of the two
        preds = np.asarray(probs).argmax(axis=1).astype(np.int64)
    if "pred_scores" in arrays:
        scores = np.asarray(arrays["pred_scores"], np.float64)
    elif probs is not None and probs.ndim == 2:
        ok = (preds >= 0) & (preds < probs.shape[1])
        scores = np.where(ok, probs[np.arange(len(preds)), np.where(ok, preds, 0)], np.nan).astype(np.float64)
    else:
        scores = np.full(len(preds), np.nan)
    return preds, scores


def _detections(arrays: dict[str, np.ndarray], n: int, box_format: str, box_coords: str, rules: Rules) -> dict[str, np.ndarray]:
    """Per image: missed and false boxes, gt and drawn box counts, AP (NaN without ground truth)."""
    out = {k: np.zeros(n, np.int64) for k in ("missed", "false", "n_gt", "n_pred")}
    out["ap"] = np.full(n, np.nan)
    for i in range(n):
        pred_xyxy, pred_labels, pred_scores = _boxes(arrays, i, "boxes", "box_labels", "box_scores", "num_boxes", box_format, box_coords)
        gt_xyxy, gt_labels, _ = _boxes(arrays, i, "gt_boxes", "gt_box_labels", None, "gt_num_boxes", box_format, box_coords)
        order = drawn_order(pred_scores, len(pred_xyxy), rules.score_threshold, rules.max_boxes)
        pred_xyxy = pred_xyxy[order]
        pred_labels = None if pred_labels is None else pred_labels[order]
        pred_scores = None if pred_scores is None else pred_scores[order]
        labelled = pred_labels is not None and gt_labels is not None
        match = match_boxes(
            pred_xyxy, gt_xyxy, rules.match_iou, scores=pred_scores,
            pred_labels=pred_labels if labelled else None, gt_labels=gt_labels if labelled else None,
        )
        out["missed"][i], out["false"][i] = int(match.missed.sum()), int(match.fp.sum())
        out["n_gt"][i], out["n_pred"][i] = len(gt_xyxy), len(pred_xyxy)
        out["ap"][i] = image_ap(match.tp, len(gt_xyxy))
    return out


def _boxes(
    arrays: dict[str, np.ndarray], i: int, boxes: str, labels: str, scores: str | None, count: str, box_format: str, box_coords: str
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Image ``i``'s valid boxes of one kind as pixel xyxy, with their labels and scores (padding and NaN rows dropped).

    No image size is needed: IoU does not change when an axis is scaled, so normalized boxes are
    matched as fractions of a 1 x 1 image.
    """
    b = np.asarray(arrays[boxes][i], np.float64).reshape(-1, 4)
    m = box_count(arrays[count][i] if count in arrays else None, len(b))
    xyxy, keep = to_pixel_xyxy_keep(b[:m], box_format, box_coords, 1.0, 1.0)
    lab = class_ids(arrays[labels][i][:m], labels)[keep] if labels in arrays else None
    sco = np.asarray(arrays[scores][i][:m], np.float64)[keep] if scores is not None and scores in arrays else None
    return xyxy, lab, sco


def image_ap(tp: np.ndarray, n_gt: int) -> float:
    """AP of one image: ``tp`` flags its predictions in score order; all-point interpolated; NaN when ``n_gt`` is 0.

    >>> image_ap(np.array([True, False, True]), 2), image_ap(np.array([], bool), 3)
    (0.8333333333333333, 0.0)
    """
    if n_gt == 0:
        return float("nan")
    tp = np.asarray(tp, bool)
    if not tp.any():
        return 0.0
    hits = np.cumsum(tp)
    precision = hits / np.arange(1, len(tp) + 1)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]  # the best precision at this recall or beyond
    return float(envelope[tp].sum() / n_gt)


# --------------------------------------------------------------------------- changes


@dataclasses.dataclass(frozen=True)
class Change:
    """One example whose outcome changed from step ``Changes.before`` to ``Changes.after``.

    ``i`` and ``j`` index the earlier and the later ``Outcomes``.
    """

    kind: ChangeKind
    i: int
    j: int


@dataclasses.dataclass
class Changes:
    """The examples fixed and broken between two steps' ``Outcomes``; ``compared`` counts the pairs looked at."""

    before: Outcomes
    after: Outcomes
    items: list[Change]
    compared: int
    by_ids: bool
    note: str | None = None
    comparable: bool = True  # False: the steps have no outcome, or not the same kind of outcome (``note`` says)

    def of(self, kind: ChangeKind) -> list[Change]:
        return [c for c in self.items if c.kind == kind]

    @property
    def fixed(self) -> list[Change]:
        return self.of("fixed")

    @property
    def broken(self) -> list[Change]:
        return self.of("broken")

    @property
    def matched_by(self) -> str:
        return "ids" if self.by_ids else "position in the step"


def find_changes(before: Outcomes, after: Outcomes) -> Changes:
    """The examples fixed and broken from ``before`` to ``after`` (see the module docstring), in ``after``'s order."""
    by_ids = before.by_ids and after.by_ids
    if before.kind is None or before.kind != after.kind or before.right is None or after.right is None:
        why = (
            "changes need an outcome: 'labels' and 'pred_labels' (or 'probs'), or 'boxes' and 'gt_boxes'"
            if after.kind is None or before.kind is None
            else f"steps {before.step} and {after.step} have different outcomes ({before.kind}, {after.kind})"
        )
        return Changes(before, after, [], 0, by_ids, note=why, comparable=False)
    keys_a = before.keys if by_ids else before.positions
    keys_b = after.keys if by_ids else after.positions
    where: dict[Any, int] = {}
    for i, key in enumerate(keys_a.tolist()):
        where.setdefault(key, i)
    known_a, known_b = before.known, after.known
    items: list[Change] = []
    compared = 0
    for j, key in enumerate(keys_b.tolist()):
        found = where.get(key)
        if found is None or not (before.selected[found] or after.selected[j]) or not (known_a[found] and known_b[j]):
            continue
        compared += 1
        kind = _changed(before, after, found, j)
        if kind is not None:
            items.append(Change(kind, found, j))
    note = None
    if not by_ids:  # the same words at every step: one warning per export
        note = (
            "changes: examples are matched across steps by position in the step (no 'ids' field), which is right "
            "only when the eval input order is the same at every checkpoint; dump ids to be sure"
        )
    elif before.duplicates or after.duplicates:
        note = "changes: some ids repeat within a step; each is matched to the first example with it"
    return Changes(before, after, items, compared, by_ids, note=note)


def _changed(a: Outcomes, b: Outcomes, i: int, j: int) -> ChangeKind | None:
    assert a.right is not None and b.right is not None
    if a.kind == "detection":
        ea, eb = a.errors, b.errors
        assert ea is not None and eb is not None and a.ap is not None and b.ap is not None
        if eb[j] != ea[i]:
            return "fixed" if eb[j] < ea[i] else "broken"
        moved = b.ap[j] - a.ap[i]  # NaN (no ground truth) compares False both ways
        if moved > AP_CHANGE:
            return "fixed"
        if moved < -AP_CHANGE:
            return "broken"
        return None
    if a.right[i] == b.right[j]:
        return None
    return "fixed" if b.right[j] else "broken"


# --------------------------------------------------------------------------- pictures


@dataclasses.dataclass
class ChangePicture:
    """A changed example drawn at both steps, and the classes it counts under in ``summary/changes``."""

    change: Change
    image: Image.Image
    classes: list[int]


def render_changes(
    changes: Changes,
    before: Sequence[Shard],
    after: Sequence[Shard],
    options: ExportOptions,
    notes: list[str],
) -> Iterator[ChangePicture]:
    """Each changed example drawn at both steps from its shard rows (read again), side by side.

    ``before`` and ``after`` are the two steps' shards. At most ``CHUNK`` pairs of pictures are
    held at once, and one shard's arrays. A row that cannot be drawn is noted and left out.
    """
    titles = (f"step {changes.before.step}", f"step {changes.after.step}")
    for start in range(0, len(changes.items), CHUNK):
        chunk = changes.items[start : start + CHUNK]
        left = _draw_rows(before, [int(changes.before.positions[c.i]) for c in chunk], options, notes)
        right = _draw_rows(after, [int(changes.after.positions[c.j]) for c in chunk], options, notes, classes=True)
        for k, change in enumerate(chunk):
            if k in left and k in right:
                image, classes = right[k]
                yield ChangePicture(change, side_by_side([(left[k][0], image)], titles), classes)


def _draw_rows(
    shards: Sequence[Shard], positions: list[int], options: ExportOptions, notes: list[str], *, classes: bool = False
) -> dict[int, tuple[Image.Image, list[int]]]:
    """``{k: (picture, true classes)}`` for the example at ``positions[k]`` of a step, one shard loaded at a time."""
    starts = np.cumsum([0] + [len(s) for s in shards])
    names = step_class_names(options, (s.meta for s in shards))
    by_shard: dict[int, list[int]] = {}
    for k, position in enumerate(positions):
        by_shard.setdefault(int(np.searchsorted(starts, position, side="right")) - 1, []).append(k)
    out: dict[int, tuple[Image.Image, list[int]]] = {}
    for s, ks in by_shard.items():
        shard = shards[s]
        try:
            arrays = shard.load([n for n in shard.fields if n in CANONICAL_FIELDS])
        except (ShardError, ShardTooLargeError) as exc:
            notes.append(f"{shard.path}: changed examples not drawn ({exc})")
            continue
        if "images" not in arrays:
            continue
        read = read_options_for(options, shard.meta, names)
        for k in ks:
            row = positions[k] - int(starts[s])
            try:
                image = render_example({n: a[row] for n, a in arrays.items()}, options.render, read)
            except ExporterError as exc:
                notes.append(f"{shard.path}: row {row} not drawn for changes/ ({exc})")
                continue
            out[k] = (image, _true_classes(arrays, row) if classes else [])
        del arrays
    return out


def _true_classes(arrays: dict[str, np.ndarray], row: int) -> list[int]:
    """The classes an example counts under: its label, else the distinct classes of its ground-truth boxes."""
    if "labels" in arrays:
        return [int(class_ids(arrays["labels"][row], "labels"))]
    if "gt_box_labels" in arrays:
        labels = np.asarray(arrays["gt_box_labels"][row]).reshape(-1)
        if "gt_num_boxes" in arrays:
            labels = labels[: max(0, int(arrays["gt_num_boxes"][row]))]
        return sorted({int(c) for c in class_ids(labels, "gt_box_labels") if c >= 0})
    return []


# --------------------------------------------------------------------------- tables


def _md(text: str) -> str:
    r"""Text as literal Markdown inside a table cell: what could end the cell, emphasise, link or open a tag is escaped.

    (``-``, ``#``, ``+``, ``.`` only mean something at the start of a line, which a cell never is.)

    >>> print(_md("a|b_c*<d>"))
    a\|b\_c\*&lt;d&gt;
    """
    out = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    for ch in "\\`*_[]|":
        out = out.replace(ch, "\\" + ch)
    return out.replace("\n", " ").replace("\r", " ")


def _ids(changes: Changes, items: list[Change]) -> str:
    shown = ", ".join(_md(changes.after.id_text(c.j)) for c in items[:MAX_IDS_LISTED])
    more = len(items) - MAX_IDS_LISTED
    return shown + (f" … and {more} more" if more > 0 else "")


def changes_table(changes: Changes, classes: dict[int, list[int]] | None = None) -> str:
    """``summary/changes``: a headline, then per class the fixed and broken counts and ids, and the total.

    ``classes`` maps a change's ``j`` to the classes it counts under (detection: its gt boxes'
    classes); by default the example's label. An example without one counts under "?".
    """
    a, b = changes.before, changes.after
    if not changes.comparable:
        return f"**step {a.step} → step {b.step}**: nothing compared: {_md(changes.note or '')}."
    fixed, broken = changes.fixed, changes.broken
    head = (
        f"**step {a.step} → step {b.step}**: {len(fixed)} fixed, {len(broken)} broken of {changes.compared} "
        f"examples compared (matched by {changes.matched_by})"
    )
    if b.kind == "detection":
        head += (
            f". Fixed: fewer missed + false boxes at IoU {b.match_iou:g}, or as many with the image's AP up by "
            f"more than {AP_CHANGE}; broken: the other way"
        )
    lines = [head + ".", ""]
    if not changes.items:
        return "\n".join(lines + ["No example changed."])
    per_class: dict[int, dict[str, list[Change]]] = {}
    for c in changes.items:
        of = classes.get(c.j) if classes is not None else None
        if of is None:
            of = [int(b.labels[c.j])] if b.labels is not None else []
        for cls in of or [NO_CLASS]:
            per_class.setdefault(cls, {"fixed": [], "broken": []})[c.kind].append(c)
    rows: list[tuple[object, ...]] = [
        (_md(class_name(cls, b.class_names)), len(got["fixed"]), len(got["broken"]), _ids(changes, got["fixed"]),
         _ids(changes, got["broken"]))
        for cls, got in sorted(per_class.items(), key=lambda item: (item[0] == NO_CLASS, item[0]))
    ]
    rows.append(("**total**", f"**{len(fixed)}**", f"**{len(broken)}**", "", ""))
    return "\n".join(lines + _table(("class", "fixed", "broken", "fixed ids", "broken ids"), rows, numeric=(1, 2)))


def worst_table(outcomes: Outcomes, k: int) -> str:
    """``summary/worst``: the ``k`` most confidently wrong selected examples, or the worst images for detection."""
    o = outcomes
    pick = np.flatnonzero(o.selected & o.known)
    if o.kind == "classification" and o.labels is not None and o.preds is not None and o.scores is not None:
        arrays = {"labels": o.labels[pick], "pred_labels": o.preds[pick], "pred_scores": o.scores[pick]}
        order = pick[Selection(most_confident_wrong=k).select(arrays, n=len(pick))] if k else pick[:0]
        head = f"**step {o.step}**: the {len(order)} most confidently wrong of {len(pick)} examples"
        if not len(order):
            return head + ": none is wrong."
        rows = [
            (rank, _md(o.id_text(i)), _md(class_name(int(o.labels[i]), o.class_names)),
             _md(class_name(int(o.preds[i]), o.class_names)), _score(o.scores[i]))
            for rank, i in enumerate(order, 1)
        ]
        return "\n".join([head + ".", "", *_table(("#", "id", "truth", "prediction", "score"), rows, numeric=(0, 4))])
    if o.kind == "detection" and o.errors is not None and o.ap is not None and o.n_gt is not None:
        errors, ap = o.errors[pick], o.ap[pick]
        worst = np.lexsort((np.where(np.isnan(ap), np.inf, ap), -errors))  # most errors first, then lowest AP
        order = pick[worst[errors[worst] > 0][:k]] if k else pick[:0]
        head = (
            f"**step {o.step}**: the {len(order)} worst of {len(pick)} images (most missed + false boxes at IoU "
            f"{o.match_iou:g}, then lowest AP)"
        )
        if not len(order):
            return head + ": every image is right."
        assert o.n_pred is not None and o.missed is not None and o.false is not None
        rows = [
            (rank, _md(o.id_text(i)), f"{o.n_gt[i]} boxes", f"{o.n_pred[i]} boxes: {o.false[i]} false, {o.missed[i]} missed",
             _score(o.ap[i]))
            for rank, i in enumerate(order, 1)
        ]
        return "\n".join([head + ".", "", *_table(("#", "id", "truth", "prediction", "AP"), rows, numeric=(0, 4))])
    return f"**step {o.step}**: no outcome to rank (it needs 'labels' and 'pred_labels' or 'probs', or 'boxes' and 'gt_boxes')."


def _table(columns: Sequence[str], rows: Iterable[Sequence[object]], *, numeric: Collection[int] = ()) -> list[str]:
    """A Markdown table's lines: the header, the alignment row (the ``numeric`` columns right-aligned), the rows.

    Cells are written as they are: escape text with ``_md`` first.

    >>> print("\\n".join(_table(("id", "n"), [("a", 1), ("b", 22)], numeric=(1,))))
    | id | n |
    |---|---:|
    | a | 1 |
    | b | 22 |
    """
    align = ("---:" if k in numeric else "---" for k in range(len(columns)))
    return [f"| {' | '.join(columns)} |", f"|{'|'.join(align)}|", *(f"| {' | '.join(map(str, row))} |" for row in rows)]


def _score(value: float) -> str:
    return "–" if not np.isfinite(value) else f"{value:.3f}"


# --------------------------------------------------------------------------- along an export


@dataclasses.dataclass(frozen=True)
class ChangeCounts:
    """What ``--changes`` found at one step: for ``ExportReport.changes``."""

    step: int
    previous: int
    fixed: int
    broken: int
    matched_by: str

    def __str__(self) -> str:
        return f"step {self.step} (since step {self.previous}): {self.fixed} fixed, {self.broken} broken"


class StepChanges:
    """What to write at one step: ``pictures()`` (drawn as they are taken), then ``tables()``.

    ``summary/changes`` of a detection run counts each image under the classes of its ground-truth
    boxes, read while its pictures are drawn: call ``tables()`` after ``pictures()``.
    """

    def __init__(
        self, tracker: ChangeTracker, outcomes: Outcomes, changes: Changes | None, before: list[Shard], after: list[Shard]
    ):
        self.step = outcomes.step
        self.outcomes = outcomes
        self.changes = changes
        self.counts = (
            None
            if changes is None
            else ChangeCounts(self.step, changes.before.step, len(changes.fixed), len(changes.broken), changes.matched_by)
        )
        self._tracker = tracker
        self._shards = (before, after)
        self._classes: dict[int, list[int]] | None = None

    def pictures(self) -> Iterator[tuple[ChangeKind, str, Image.Image, str]]:
        """``(kind, name, side-by-side picture, description)`` of each changed example, drawn one chunk at a time.

        ``name`` is the example's name at the later step, unique within the step: its tag is
        ``tags.change_tag(kind, name)``, its file ``changes/<kind>/<tags.file_stem(name)>.png``.
        """
        if self.changes is None or not self.changes.items:
            return
        t = self._tracker
        names = tagging.UniqueNames()
        after = self.changes.after
        classes: dict[int, list[int]] = {}
        for picture in render_changes(self.changes, *self._shards, t.options, t.notes):
            c = picture.change
            if after.kind == "detection":
                classes[c.j] = picture.classes
            name = names.take(after.name(c.j), int(after.positions[c.j]))
            yield c.kind, name, picture.image, tagging.change_description(c.kind, t.drawn_with)
        self._classes = classes or None

    def tables(self) -> list[tuple[str, str, str]]:
        """``(tag, markdown, description)``: ``summary/changes`` (not at the first step) and ``summary/worst``."""
        out = []
        if self.changes is not None:
            table = changes_table(self.changes, self._classes)
            out.append((tagging.SUMMARY_CHANGES_TAG, table, tagging.SUMMARY_CHANGES_DESCRIPTION))
        k = self._tracker.options.summary_worst
        if k:
            out.append((tagging.SUMMARY_WORST_TAG, worst_table(self.outcomes, k), tagging.SUMMARY_WORST_DESCRIPTION))
        return out


class ChangeTracker:
    """Outcomes along the steps of one export: the previous step's, what each step changed, and tag groups.

    ``tag()`` names the per-example tags (grouped when ``options.group_tags``); ``step()`` is called
    when a step's examples are written and returns what changed since the step before (``None``
    without ``options.changes``). Only the previous step's ``Outcomes`` are kept.

    >>> tracker = ChangeTracker(options, steps, notes)               # doctest: +SKIP
    >>> tracker.step(steps[200], skip=set()).tables[0][0]            # doctest: +SKIP
    'summary/changes'
    """

    def __init__(self, options: ExportOptions, steps: dict[int, list[Shard]], notes: list[str]):
        self.options = options
        self.notes = notes
        self.rules = Rules.of(options)
        self.previous: tuple[Outcomes, list[Shard]] | None = None
        self._current: Outcomes | None = None
        self._groups: dict[Any, str] = {}
        self._by_ids = False
        self._noted: set[str] = set()
        self.drawn_with = options.drawn_with()
        if options.group_tags is not None and steps:
            self._groups, self._by_ids = self._group_map(steps[max(steps)])

    def start_after(self, shards: Sequence[Shard]) -> None:
        """Compare the first step written with the step of ``shards`` (the last one an earlier export wrote)."""
        self.previous = (self._outcomes(shards), list(shards))

    # ---------------------------------------------------------------- outcomes

    def _outcomes(self, shards: Sequence[Shard]) -> Outcomes:
        step = shards[0].step
        if self._current is None or self._current.step != step:
            self._current = step_outcomes(shards, self.options, selected=selected_rows(shards, self.options))
        return self._current

    def _note(self, text: str) -> None:
        if text not in self._noted:
            self._noted.add(text)
            self.notes.append(text)

    # ---------------------------------------------------------------- tags

    def _group_map(self, shards: Sequence[Shard]) -> tuple[dict[Any, str], bool]:
        """Key → group of every example at ``shards``' step (the last one exported: tags stay put within an export)."""
        o = self._outcomes(shards)
        by = self.options.group_tags
        if by == "class" and o.labels is None:
            raise ConfigError(
                f"group_tags='class' groups by the 'labels' field, which step {o.step} does not have; "
                "group by outcome (--group-tags outcome) or leave the tags ungrouped"
            )
        if by == "outcome" and o.right is None:
            raise ConfigError(
                f"group_tags='outcome' needs 'labels' and 'pred_labels' (or 'probs'), or 'boxes' and 'gt_boxes'; "
                f"step {o.step} has: {', '.join(sorted(set.intersection(*(set(s.fields) for s in shards))))}"
            )
        return dict(zip((o.keys if o.by_ids else o.positions).tolist(), self._group_names(o), strict=True)), o.by_ids

    def _group_names(self, o: Outcomes) -> list[str]:
        if self.options.group_tags == "class":
            assert o.labels is not None
            top = int(o.labels.max()) + 1 if len(o.labels) else 0
            names = tagging.class_components(max(top, len(o.class_names or ())), o.class_names)
            return [names[c] if c >= 0 else tagging.UNKNOWN_GROUP for c in o.labels.tolist()]
        assert o.right is not None
        right, wrong = tagging.OUTCOME_GROUPS
        return [
            (right if r else wrong) if k else tagging.UNKNOWN_GROUP
            for r, k in zip(o.right.tolist(), o.known.tolist(), strict=True)
        ]

    def tag(self, shards: Sequence[Shard], name: str, example_id: Any, index: int) -> tuple[str, str]:
        """``(tag, description)`` of a drawn example of ``shards``' step, named ``name`` in it."""
        prefix = self.options.tag_prefix
        if self.options.group_tags is None:
            return tagging.name_tag(prefix, name), tagging.example_description(self.drawn_with)
        key = example_id if self._by_ids and example_id is not None else index
        group = self._groups.get(key)
        if group is None:  # not in the last step: its group at its own step
            o = self._outcomes(shards)
            if (o.by_ids and example_id is not None) == self._by_ids:
                self._groups.update(zip((o.keys if o.by_ids else o.positions).tolist(), self._group_names(o), strict=True))
            group = self._groups.get(key, tagging.UNKNOWN_GROUP)
        return tagging.grouped_tag(prefix, group, name), tagging.example_description(self.drawn_with, group)

    # ---------------------------------------------------------------- changes

    def step(self, shards: Sequence[Shard], skip: set[str]) -> StepChanges | None:
        """What changed at ``shards``' step since the previous one (None without ``changes``); it becomes the previous step.

        ``skip`` holds the paths of shards the export skipped: their examples are not compared.
        """
        if not self.options.changes:
            return None
        outcomes = self._outcomes(shards)
        if skip:
            outcomes = outcomes.take(~_in_shards(outcomes.positions, shards, skip))
        kept = [s for s in shards if str(s.path) not in skip]
        previous, self.previous = self.previous, (outcomes, kept)
        if previous is None:
            return StepChanges(self, outcomes, None, [], kept)
        changes = find_changes(previous[0], outcomes)
        if changes.note:
            self._note(changes.note)
        return StepChanges(self, outcomes, changes, previous[1], kept)


def _in_shards(positions: np.ndarray, shards: Sequence[Shard], paths: set[str]) -> np.ndarray:
    """Which ``positions`` of a step fall in the shards whose paths are in ``paths``."""
    starts = np.cumsum([0] + [len(s) for s in shards])
    out = np.zeros(len(positions), bool)
    for k, shard in enumerate(shards):
        if str(shard.path) in paths:
            out |= (positions >= starts[k]) & (positions < starts[k + 1])
    return out
