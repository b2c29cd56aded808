"""The notebook API: pick examples of a run, draw them, compare them across steps or runs.

Finding and looking at a model's worst examples takes four lines; PIL images
(and ``Examples`` themselves) display inline in Jupyter::

    >>> run = exporter.open_run("demo_out/shards")                    # doctest: +SKIP
    >>> worst = run.examples(most_confident_wrong=16)                 # doctest: +SKIP
    >>> worst.grid()                                                  # doctest: +SKIP
    >>> compare(run.examples(step=run.steps[0], ids=worst.ids), worst)   # doctest: +SKIP

An ``Examples`` loads fields only when something needs them, and keeps them:
a selection reads the small fields it names (labels, predictions, scores,
ids), and only drawing reads images, from the shards that hold the examples
drawn. Examples derived with ``select`` share what was loaded. Drawing uses
the same options as ``export``: each shard's metadata fills the class names,
box format and image layout unless a keyword overrides them.
"""

from __future__ import annotations

import dataclasses
import io
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from . import changes as _changes
from . import shards
from ._checks import check_int, is_int
from .errors import ConfigError, RenderError
from .metrics.images import BOX_FIELDS, ImageStats, image_shape_of, image_stats
from .options import ExportOptions, box_match_for, read_options_for, step_class_names
from .render import GRID_CELL, ReadOptions, RenderOptions, render_example, render_grid, side_by_side, thumbnail
from .schema import CANONICAL_FIELDS
from .select import Selection
from .shards import DEFAULT_MAX_BYTES, FieldInfo
from .storage import Location


class Run(shards.Run):
    """The reader's ``Run`` with the notebook's ``examples()``: what ``exporter.open_run`` returns."""

    def examples(self, step: int | None = None, **selection: Any) -> Examples:
        """The examples of one step (default: the last), selected by ``exporter.select.Selection`` keywords.

        >>> worst = open_run("eval_shards").examples(most_confident_wrong=16)   # doctest: +SKIP
        >>> worst.grid()                                                        # doctest: +SKIP
        """
        return Examples(self, step).select(**selection)

    def changes(
        self,
        step_a: int | None = None,
        step_b: int | None = None,
        *,
        match_iou: float | None = None,
        score_threshold: float = 0.0,
        read: ReadOptions | None = None,
        **selection: Any,
    ) -> StepChanges:
        """The examples fixed (wrong → right) and broken (right → wrong) from ``step_a`` to ``step_b``.

        The rules are ``export --changes``'s (``exporter.changes``): classification by the
        predicted class, detection by missed + false boxes at ``match_iou`` (0.5) over the boxes
        scoring at least ``score_threshold``, or the image's AP; matched by ``ids`` (else by
        position, with a warning). ``selection`` keywords pick the examples compared (an example
        counts when picked at either step). Defaults: the last two steps.

        >>> ch = run.changes(run.steps[0], run.steps[-1])     # doctest: +SKIP
        >>> ch.fixed.grid(); ch.compare("broken")              # doctest: +SKIP
        """
        steps = self.steps
        if step_a is None and step_b is None:
            if len(steps) < 2:
                raise ConfigError(f"{self.path} has one step ({steps[0]}): changes need two; pass step_a and step_b")
            step_a, step_b = steps[-2], steps[-1]
        for name, step in (("step_a", step_a), ("step_b", step_b)):
            if not is_int(step) or step not in steps:
                raise ConfigError(f"{name} must be one of the run's steps {steps}, got {step!r}")
        assert step_a is not None and step_b is not None
        style = RenderOptions(match_iou=match_iou, score_threshold=score_threshold)
        options = ExportOptions(read=read if read is not None else ReadOptions(), render=style,
                                select=Selection(**selection) if selection else None)  # fmt: skip
        before, after = (
            _changes.step_outcomes(self.shards(s), options, selected=_changes.selected_rows(self.shards(s), options))
            for s in (int(step_a), int(step_b))
        )
        found = _changes.find_changes(before, after)
        if found.note:
            warnings.warn(found.note, stacklevel=2)
        return StepChanges(self, found, options)


class StepChanges:
    """What ``Run.changes`` found: ``fixed`` and ``broken`` at the later step, ``*_before`` the same at the earlier one.

    Each is an ``Examples`` (``grid()``, ``render(i)``, ``ids``...), in the later step's order;
    ``compare("fixed")`` draws both steps side by side; ``table()`` is the ``summary/changes``
    Markdown that ``export --changes`` writes (a notebook shows a ``StepChanges`` as it).
    """

    step_a: int
    step_b: int
    fixed: Examples
    broken: Examples
    fixed_before: Examples
    broken_before: Examples
    compared: int
    matched_by: str

    def __init__(self, run: shards.Run, found: _changes.Changes, options: ExportOptions):
        self.step_a, self.step_b = found.before.step, found.after.step
        self.compared, self.matched_by, self._found = found.compared, found.matched_by, found
        read = options.read
        for kind in ("fixed", "broken"):
            items = found.of(kind)
            after = np.array([found.after.positions[c.j] for c in items], np.int64)
            before = np.array([found.before.positions[c.i] for c in items], np.int64)
            setattr(self, kind, Examples(run, self.step_b, read=read)._pinned(after, f"{kind} since step {self.step_a}"))
            setattr(self, f"{kind}_before", Examples(run, self.step_a, read=read)._pinned(before, f"{kind} at step {self.step_b}"))

    def compare(self, kind: str = "fixed", *, max_examples: int = 16, **render_options: Any) -> Image.Image:
        """The ``kind`` ("fixed" or "broken") examples at both steps side by side, as ``compare`` draws them."""
        if kind not in ("fixed", "broken"):
            raise ConfigError(f"kind must be 'fixed' or 'broken', got {kind!r}")
        before, after = getattr(self, f"{kind}_before"), getattr(self, kind)
        if not len(after):
            raise RenderError(f"nothing to draw: no example was {kind} from step {self.step_a} to step {self.step_b}")
        return compare(before, after, max_examples=max_examples, **render_options)

    def table(self) -> str:
        """The ``summary/changes`` table, in Markdown."""
        return _changes.changes_table(self._found)

    def _repr_markdown_(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        return (
            f"StepChanges(step {self.step_a} → {self.step_b}: {len(self.fixed)} fixed, {len(self.broken)} broken "
            f"of {self.compared} compared, matched by {self.matched_by})"
        )


def open_run(
    path: str | os.PathLike | Location,
    *,
    dumps: str = "latest",
    max_bytes: int = DEFAULT_MAX_BYTES,
    skip_bad: bool = False,
    storage_options: Mapping[str, Any] | None = None,
) -> Run:
    """Open a run folder (or a step folder, or one shard file; a path or an fsspec URL) lazily, for the notebook.

    >>> run = open_run("eval_shards")          # doctest: +SKIP
    >>> for batch in run.iter_batches():       # doctest: +SKIP
    ...     print(batch.step, batch.arrays["images"].shape)
    >>> run.examples(misclassified=True).grid()   # doctest: +SKIP
    >>> open_run("s3://evals/run1").examples(most_confident_wrong=16).grid()   # doctest: +SKIP
    """
    return Run(path, dumps=dumps, max_bytes=max_bytes, skip_bad=skip_bad, storage_options=storage_options)


class _StepData:
    """One step's shards, loaded field by field when first needed and kept; shared by derived ``Examples``."""

    def __init__(self, run: shards.Run, step: int):
        self.run = run
        self.step = step
        self.shards = run.shards(step)  # RunNotFoundError names the steps there are
        self.starts = np.cumsum([0] + [len(s) for s in self.shards])
        self.size = int(self.starts[-1])
        self.loaded: set[str] = set()
        self._arrays: list[dict[str, np.ndarray]] = [{} for _ in self.shards]
        per_shard = [s.fields for s in self.shards]
        # a selection reads fields every shard has; drawing uses whatever the example's shard has
        self.common = set.intersection(*(set(f) for f in per_shard)) if per_shard else set()
        fields: dict[str, FieldInfo] = {}
        for shard_fields in per_shard:
            for name, info in shard_fields.items():
                shape = (None,) + info.shape[1:]
                prev = fields.setdefault(name, FieldInfo(shape, info.dtype))
                if len(prev.shape) == len(shape):  # a dim that differs between shards shows as "?"
                    fields[name] = FieldInfo(
                        tuple(a if a == b else None for a, b in zip(prev.shape, shape, strict=True)), prev.dtype
                    )
        self.fields = dict(sorted(fields.items()))
        self.metas = [s.meta for s in self.shards]

    def describe(self) -> str:
        return f"{self.run.path} at step {self.step}"

    def shard_arrays(self, k: int, names: Sequence[str]) -> dict[str, np.ndarray]:
        """Shard ``k``'s arrays, after loading those of ``names`` it has and has not loaded yet."""
        cache = self._arrays[k]
        have = self.shards[k].fields
        missing = [n for n in names if n not in cache and n in have]
        if missing:
            cache.update(self.shards[k].load(missing))
            self.loaded.update(missing)
        return cache

    def column(self, name: str) -> np.ndarray:
        """Field ``name`` of the whole step, shards concatenated in order."""
        parts = [self.shard_arrays(k, [name])[name] for k in range(len(self.shards))]
        try:
            return np.concatenate(parts) if len(parts) > 1 else parts[0]
        except ValueError:
            shapes = sorted({p.shape[1:] for p in parts})
            raise ConfigError(
                f"field '{name}' has different shapes in the shards of {self.describe()} ({shapes}); "
                "draw such examples one by one with render(i)"
            ) from None

    def locate(self, position: int) -> tuple[int, int]:
        """(shard, row) of a position in the step."""
        k = int(np.searchsorted(self.starts, position, side="right")) - 1
        return k, int(position - self.starts[k])

    def class_names(self, options: ExportOptions) -> tuple[str, ...] | None:
        """The step's class names under ``options`` (``options.step_class_names``, as ``export`` has them)."""
        return step_class_names(options, self.metas)

    def select(self, selection: Selection, options: ExportOptions) -> np.ndarray:
        if selection.everything:
            return np.arange(self.size, dtype=np.int64)
        names = sorted(selection.fields & self.common)
        for k in range(len(self.shards)):
            self.shard_arrays(k, names)  # one read per shard for all the fields
        class_names = self.class_names(options)
        stats = self.image_stats(selection, options, class_names) if selection.image_stats else None
        arrays = {name: self.column(name) for name in names if name not in BOX_FIELDS}
        return selection.select(arrays, class_names, n=self.size, source=self.describe(), stats=stats)

    def image_stats(
        self, selection: Selection, options: ExportOptions, class_names: tuple[str, ...] | None
    ) -> ImageStats:
        """Per-image box matches for the detector conditions, shard by shard, read as ``export`` reads them."""
        match = box_match_for(selection, options.render)
        parts = []
        for k, shard in enumerate(self.shards):
            arrays = self.shard_arrays(k, sorted(BOX_FIELDS))
            parts.append(
                image_stats(
                    arrays, read_options_for(options, shard.meta, class_names), image_shape_of(shard.fields),
                    need=selection.image_stats, iou=match.iou, min_score=match.min_score, max_boxes=match.max_boxes,
                )  # fmt: skip
            )
        return ImageStats.concat(parts)


class Examples:
    """Examples of one step of a run (default: the last step), optionally selected; see the module docstring.

    ``len()`` counts the selected examples; ``indices`` are their positions in
    the step (step order, or ranked for ``most_confident_wrong`` /
    ``least_confident_correct``); ``select`` adds conditions; ``arrays``,
    ``ids``, ``render``, ``grid`` read them. In Jupyter an ``Examples`` shows
    as its grid.

    >>> worst = Examples(open_run("eval_shards"), selection=Selection(misclassified=True))   # doctest: +SKIP
    >>> len(worst), worst.arrays("labels", "pred_labels")                                    # doctest: +SKIP
    """

    def __init__(
        self,
        run: shards.Run,
        step: int | None = None,
        selection: Selection | None = None,
        *,
        read: ReadOptions | None = None,
    ):
        if not isinstance(run, shards.Run):
            raise ConfigError(f"run must be a Run (from open_run), got {type(run).__name__}")
        if step is None:
            step = run.steps[-1]
        elif not is_int(step):
            raise ConfigError(f"step must be an integer (one of {run.steps}), got {step!r}")
        options = ExportOptions(read=read if read is not None else ReadOptions())
        self._init(_StepData(run, int(step)), selection if selection is not None else Selection(), options)

    def _init(self, data: _StepData, selection: Selection, options: ExportOptions) -> None:
        if not isinstance(selection, Selection):
            raise ConfigError(f"selection must be a Selection, got {type(selection).__name__}")
        # fail on a missing field or an unknown class name now, before anything is loaded
        selection.check(data.common, data.class_names(options), source=data.describe())
        self._data = data
        self.selection = selection
        self._options = options  # how the data is read: selections and drawings share its class names
        self._indices: np.ndarray | None = None
        self._pins: tuple[np.ndarray, str] | None = None  # fixed positions (Run.changes), and what they are

    def _pinned(self, positions: np.ndarray, what: str) -> Examples:
        """These examples restricted to ``positions`` of the step, in that order; ``what`` names them in the repr."""
        self._pins = (np.asarray(positions, np.int64), what)
        self._indices = None
        return self

    @property
    def run(self) -> shards.Run:
        return self._data.run

    @property
    def step(self) -> int:
        return self._data.step

    @property
    def fields(self) -> dict[str, FieldInfo]:
        """The step's fields (from the shard headers: nothing is loaded)."""
        return dict(self._data.fields)

    @property
    def loaded_fields(self) -> frozenset[str]:
        """The fields read from disk so far, for this step (shared with the ``Examples`` derived from it)."""
        return frozenset(self._data.loaded)

    @property
    def indices(self) -> np.ndarray:
        """Positions of the selected examples in the step (int64; shards concatenated in order)."""
        if self._indices is None:
            if self._pins is None:
                self._indices = self._data.select(self.selection, self._options)
            else:
                pins = self._pins[0]
                chosen = pins if self.selection.everything else pins[np.isin(pins, self._data.select(self.selection, self._options))]
                self._indices = chosen.copy()
            self._indices.setflags(write=False)
        return self._indices

    def __len__(self) -> int:
        return len(self.indices)

    def __repr__(self) -> str:
        try:
            count = f"{len(self)} of {self._data.size} examples"
        except Exception as exc:  # noqa: BLE001 - a repr must not raise; the error shows where the count goes
            count = f"? of {self._data.size} examples ({type(exc).__name__}: {exc})"
        selection = "" if self.selection.everything else f", {self.selection!r}"
        if self._pins is not None:
            selection += f", {self._pins[1]}"
        return (
            f"Examples('{self.run.path}', step={self.step}, {count}{selection}, fields: {', '.join(self._data.fields)})"
        )

    def select(self, selection: Selection | None = None, /, **conditions: Any) -> Examples:
        """These examples' selection and more conditions (``&``, see ``exporter.select``), as new ``Examples``.

        The conditions join the selection rather than slicing the current result:
        ``run.examples(limit=10).select(classes=["cat"])`` is the first 10 cats.

        >>> run.examples(misclassified=True).select(classes=["cat"], per_class=2)   # doctest: +SKIP
        """
        combined = self.selection
        if selection is not None:
            if not isinstance(selection, Selection):
                raise ConfigError(f"select() takes a Selection or keywords, got {type(selection).__name__}")
            combined = combined & selection
        if conditions:
            combined = combined & Selection(**conditions)
        if combined == self.selection:
            return self
        out = Examples.__new__(Examples)
        out._init(self._data, combined, self._options)
        if self._pins is not None:
            out._pinned(*self._pins)
        return out

    def arrays(self, *fields: str) -> dict[str, np.ndarray]:
        """The selected examples' arrays (default: every field all shards have), in the order of ``indices``.

        >>> worst.arrays("labels", "pred_scores")["pred_scores"]   # doctest: +SKIP
        """
        names = list(fields) if fields else [n for n in self._data.fields if n in self._data.common]
        unknown = [n for n in names if n not in self._data.fields]
        if unknown:
            raise ConfigError(
                f"no field {', '.join(map(repr, unknown))} in {self._data.describe()}; "
                f"it has: {', '.join(self._data.fields)}"
            )
        partial = [n for n in names if n not in self._data.common]
        if partial:
            raise ConfigError(
                f"field(s) {', '.join(map(repr, partial))} are only in some shards of {self._data.describe()}; "
                "draw such examples one by one with render(i)"
            )
        return {n: self._data.column(n)[self.indices] for n in names}

    @property
    def ids(self) -> np.ndarray:
        """The selected examples' ``ids`` (to select the same examples elsewhere: ``ids=worst.ids``)."""
        if "ids" not in self._data.common:
            raise ConfigError(
                f"{self._data.describe()} has no 'ids' field; use indices (positions in the step) instead"
            )
        return self.arrays("ids")["ids"]

    # ------------------------------------------------------------------ drawing

    def example(self, i: int) -> dict[str, np.ndarray]:
        """The canonical fields of the ``i``-th selected example (no batch axis), as ``render_example`` takes them."""
        position = int(self.indices[self._index(i)])
        k, row = self._data.locate(position)
        names = [n for n in self._data.shards[k].fields if n in CANONICAL_FIELDS]
        arrays = self._data.shard_arrays(k, names)
        return {n: arrays[n][row] for n in names}

    def _index(self, i: int) -> int:
        if not is_int(i):
            raise ConfigError(f"example index must be an integer, got {i!r}")
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"example {i} is out of range: {self!r} holds {n}")
        return int(i) % n

    def render(self, i: int, **render_options: Any) -> Image.Image:
        """The ``i``-th selected example drawn as ``export`` draws it.

        Keywords are those of ``RenderOptions`` (style) and of ``ReadOptions``
        (``class_names``, ``box_format``, ``box_coords``, ``layout``, ...), which
        override the shard metadata as in ``export``.

        >>> worst.render(0, topk=3)   # doctest: +SKIP
        """
        options = self._with(render_options)
        return self._render(self._index(i), options)

    def _with(self, keywords: Mapping[str, Any]) -> ExportOptions:
        """This view's options with drawing keywords: style ones go to ``render``, reading ones to ``read``."""
        style_fields = {f.name for f in dataclasses.fields(RenderOptions)} - {"legacy_read"} | {"background_class"}
        read_fields = {f.name for f in dataclasses.fields(ReadOptions)}
        unknown = sorted(set(keywords) - style_fields - read_fields)
        if unknown:
            known = ", ".join(sorted(style_fields | read_fields))
            raise ConfigError(f"unknown render option(s) {', '.join(unknown)}; the options are: {known}")
        read = {k: v for k, v in keywords.items() if k in read_fields}
        style = {k: v for k, v in keywords.items() if k in style_fields}
        return dataclasses.replace(
            self._options, render=RenderOptions(**style), read=dataclasses.replace(self._options.read, **read)
        )

    def _render(self, i: int, options: ExportOptions) -> Image.Image:
        if "images" not in self._data.fields:
            raise RenderError(
                f"{self._data.describe()} has no 'images' field: nothing to draw; it has: {', '.join(self._data.fields)}"
            )
        k, _ = self._data.locate(int(self.indices[i]))
        read = read_options_for(options, self._data.shards[k].meta, self._data.class_names(options))
        return render_example(self.example(i), options.render, read)

    def grid(self, cols: int | None = None, max_examples: int = 64, **render_options: Any) -> Image.Image:
        """The first ``max_examples`` selected examples on one sheet, ``cols`` per row (default: a square).

        Cells fit ``exporter.render.GRID_CELL`` pixels, as in the step grid
        ``export`` writes: each example is drawn at that size
        (``display_size=GRID_CELL`` unless given), so every cell's text has
        the same readable size whatever the image's; ``render_options`` as in
        ``render``.

        >>> run.examples(misclassified=True).grid(cols=8, topk=3)   # doctest: +SKIP
        """
        check_int(max_examples, "max_examples", minimum=1)
        options = self._with({"display_size": GRID_CELL, **render_options})
        if not len(self):
            raise RenderError(f"nothing to draw: {self!r} is empty")
        cells = [thumbnail(self._render(i, options), GRID_CELL) for i in range(min(len(self), max_examples))]
        return render_grid(cells, cols=cols)

    def _repr_png_(self) -> bytes | None:
        """Jupyter shows an ``Examples`` as its grid (or as text when there is nothing to draw)."""
        if not len(self) or "images" not in self._data.fields:
            return None
        buffer = io.BytesIO()
        self.grid().save(buffer, format="PNG")
        return buffer.getvalue()


def compare(a: Examples, b: Examples, *, max_examples: int = 16, **render_options: Any) -> Image.Image:
    """The same examples in ``a`` and ``b`` side by side: one row per example, ``a`` left, ``b`` right.

    ``a`` and ``b`` are usually two steps of one run, or one step of two runs.
    Examples are matched by ``ids`` when both have them, else by position in
    the step. Rows follow ``a``'s order, or ``b``'s when only ``b`` is ranked
    (``most_confident_wrong``...), so the worst come first. Examples without a
    match are left out, with a warning unless their side is a whole step
    (``run.examples()``). A header names each side by step (and run, when the
    runs differ). Each example is drawn to fit ``GRID_CELL`` as in
    ``Examples.grid``; ``render_options`` as in ``Examples.render``.

    >>> worst = run.examples(most_confident_wrong=16)                       # doctest: +SKIP
    >>> compare(run.examples(step=run.steps[0], ids=worst.ids), worst)       # doctest: +SKIP
    """
    for name, ex in (("a", a), ("b", b)):
        if not isinstance(ex, Examples):
            raise ConfigError(f"compare() takes two Examples, but {name} is a {type(ex).__name__}")
    check_int(max_examples, "max_examples", minimum=1)
    cell = {"display_size": GRID_CELL, **render_options}
    options_a, options_b = a._with(cell), b._with(cell)
    by_ids = "ids" in a._data.common and "ids" in b._data.common
    keys_a, keys_b = (a.ids.tolist(), b.ids.tolist()) if by_ids else (a.indices.tolist(), b.indices.tolist())
    how = "ids" if by_ids else "position in the step"
    if b.selection.ranked and not a.selection.ranked:  # keep the ranking: worst first
        pairs = [(i, j) for j, i in _match(keys_b, keys_a)]
    else:
        pairs = _match(keys_a, keys_b)
    if not pairs:
        raise ConfigError(f"no example of a matches one of b by {how}: a is {a!r}, b is {b!r}")
    # examples picked on purpose but not shown deserve a word; the rest of a whole step does not
    for name, ex, shown in (("a", a, {i for i, _ in pairs}), ("b", b, {j for _, j in pairs})):
        if not ex.selection.everything and len(shown) < len(ex):
            warnings.warn(
                f"compare: {len(ex) - len(shown)} of {name}'s {len(ex)} examples have no match in "
                f"{'b' if name == 'a' else 'a'} (by {how}); they are left out",
                stacklevel=2,
            )
    rows = [(a._render(i, options_a), b._render(j, options_b)) for i, j in pairs[:max_examples]]
    return side_by_side(rows, _side_names(a, b), cell=GRID_CELL)


# --------------------------------------------------------------------------- helpers


def _match(keys: Sequence[Any], other: Sequence[Any]) -> list[tuple[int, int]]:
    """(i, j) with ``keys[i] == other[j]``, in the order of ``keys``; the first of repeated keys in ``other``."""
    where: dict[Any, int] = {}
    for j, key in enumerate(other):
        where.setdefault(key, j)
    return [(i, where[key]) for i, key in enumerate(keys) if key in where]


def _side_names(a: Examples, b: Examples) -> tuple[str, str]:
    """Header texts: "step 150" / "step 300", with the run folder when the two sides come from different runs."""
    same_run = a.run is b.run or _same_place(a.run.path, b.run.path)
    if same_run and a.step == b.step:
        return f"a: step {a.step}", f"b: step {b.step}"
    if same_run:
        return f"step {a.step}", f"step {b.step}"
    return f"{_short(a.run.path)} · step {a.step}", f"{_short(b.run.path)} · step {b.step}"


def _same_place(a: Path | Location, b: Path | Location) -> bool:
    if isinstance(a, Path) and isinstance(b, Path):
        return a.resolve() == b.resolve()
    return a == b


def _short(path: Any, limit: int = 32) -> str:
    text = str(path)
    return text if len(text) <= limit else "…" + text[-(limit - 1) :]
