"""What the command line and notebooks call: ``export``, ``inspect``, ``validate``, ``render``.

>>> report = export("eval_shards", "tb/eval", ExportOptions(grid=True))   # doctest: +SKIP
>>> print(report)                                                          # doctest: +SKIP
exported 3 step(s), 96 image(s) under 35 tag(s) to tb/eval in 2.1s
run: tensorboard --logdir tb/eval

The pipeline: shards are planned from their metadata only, then read one at a
time in ascending step order; each shard's examples are rendered and encoded
(in worker processes when ``workers > 1``), and the results are consumed in
order so the parent writes events (or files) step by step. Memory is bounded
by a few shards, whatever the size of the run.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import math
import os
import secrets
import shlex
import shutil
import time
import warnings
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence, Union

import numpy as np

from . import tags as tagging
from .errors import (
    ConfigError,
    ExporterError,
    RenderError,
    RunNotFoundError,
    ShardError,
    ShardFieldError,
    ShardFormatError,
    ShardTooLargeError,
)
from .render import ReadOptions, RenderOptions, render_confusion_matrix, render_example, render_grid
from ._checks import check_choice
from .schema import (
    BOX_COORDS, BOX_FORMATS, CANONICAL_FIELDS, DEFAULT_BOX_COORDS, DEFAULT_BOX_FORMAT, ShardMeta, manifest_filename,
    step_dirname,
)
from .select import Selection
from .shards import (
    DEFAULT_MAX_BYTES,
    FieldInfo,
    Problem,
    Run,
    Shard,
    check_arrays,
    find_shard_files,
    open_run,
    validate_shard,
)
from .tensorboard import (
    EVENT_FILE_GLOB,
    EVENT_FILE_SUFFIX,
    IMAGE_FORMATS,
    PNG_ENCODERS,
    EventWriter,
    PRCurveCounts,
    encode_image,
    image_colorspace,
    png_encoder_name,
)

ShardsArg = Union[str, os.PathLike, Run]

#: Fields the metrics read; small, so the parent keeps a step's worth at most as counts.
_METRIC_FIELDS = ("labels", "pred_labels", "probs")
#: Longest side of one cell of a step's grid image, in pixels.
GRID_CELL = 320
#: Most classes a confusion matrix and PR curves are kept for: class ids come from shards, and a (K, K)
#: count matrix for an id of 10**9 (or 10**5 class names) would not fit in memory.
MAX_CONFUSION_CLASSES = 1000


# --------------------------------------------------------------------------- options and reports


@dataclasses.dataclass(frozen=True)
class ExportOptions:
    """How ``export`` and ``render`` work; every field is checked on construction (ConfigError).

    ``class_names``, ``box_format`` and ``box_coords`` override the shard
    metadata when set (None = use each shard's metadata); ``render`` holds the
    drawing style. ``max_per_step`` caps rendered examples per step (metrics
    still use every example). ``workers > 1`` renders and encodes in that many
    processes. ``png_encoder="auto"`` uses fpng when installed, else Pillow.

    >>> ExportOptions(grid=True, workers=2).workers
    2
    """

    render: RenderOptions = RenderOptions()
    class_names: Sequence[str] | None = None
    box_format: str | None = None
    box_coords: str | None = None
    tag_prefix: str = tagging.DEFAULT_PREFIX
    max_per_step: int | None = None
    grid: bool = False
    grid_max: int = 64
    image_format: str = "png"
    jpeg_quality: int = 90
    png_encoder: str = "auto"
    workers: int = 1
    metrics: bool = True
    topk: int = 5
    skip_bad: bool = False
    dumps: str = "latest"
    select: Selection | None = None  # which examples of each step to draw (metrics still use all)
    max_shard_bytes: int = DEFAULT_MAX_BYTES  # refuse shards whose arrays would need more memory

    def __post_init__(self) -> None:
        if not isinstance(self.render, RenderOptions):
            raise ConfigError(f"render must be a RenderOptions, got {type(self.render).__name__}")
        legacy = self.render.legacy_read or ReadOptions()  # read keywords still given to RenderOptions
        for name, default in (("box_format", DEFAULT_BOX_FORMAT), ("box_coords", DEFAULT_BOX_COORDS)):
            if getattr(legacy, name) not in (None, default):
                raise ConfigError(
                    f"set ExportOptions.{name}, not RenderOptions.{name}: export fills the render options' "
                    f"{name} from each shard's metadata unless ExportOptions.{name} overrides it"
                )
        if self.class_names is not None:
            if isinstance(self.class_names, str) or not all(isinstance(c, str) for c in self.class_names):
                raise ConfigError(f"class_names must be a list of strings or None, got {self.class_names!r}")
            object.__setattr__(self, "class_names", tuple(self.class_names))
        if self.box_format is not None:
            check_choice(self.box_format, BOX_FORMATS, "box_format")
        if self.box_coords is not None:
            check_choice(self.box_coords, BOX_COORDS, "box_coords")
        tagging.check_prefix(self.tag_prefix)
        if self.max_per_step is not None:
            _check_int(self.max_per_step, "max_per_step", 0)
        _check_int(self.grid_max, "grid_max", 1)
        check_choice(self.image_format, IMAGE_FORMATS, "image_format")
        _check_int(self.jpeg_quality, "jpeg_quality", 1)
        if self.jpeg_quality > 100:
            raise ConfigError(f"jpeg_quality must be in 1..100, got {self.jpeg_quality!r}")
        check_choice(self.png_encoder, PNG_ENCODERS, "png_encoder")
        _check_int(self.workers, "workers", 1)
        _check_int(self.max_shard_bytes, "max_shard_bytes", 1)
        _check_int(self.topk, "topk", 1)
        check_choice(self.dumps, ("latest", "all"), "dumps")
        if self.select is not None and not isinstance(self.select, Selection):
            raise ConfigError(f"select must be an exporter.Selection or None, got {type(self.select).__name__}")
        for name in ("grid", "metrics", "skip_bad"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ConfigError(f"{name} must be True or False, got {getattr(self, name)!r}")


def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


@dataclasses.dataclass
class ExportReport:
    """What ``export`` wrote: printed as a short summary with the command to view it."""

    logdir: Path
    steps: list[int]
    images: int
    tags: int
    bad: list[Problem]
    warnings: list[str]
    tensorboard_command: str
    event_file: Path | None = None
    seconds: float = 0.0
    mode: str = "full"  # "full", "append", "rewrite" (incremental fell back), "up to date"

    def __str__(self) -> str:
        lines = [
            f"exported {len(self.steps)} step(s), {self.images} image(s) under {self.tags} tag(s) "
            f"to {self.logdir} in {self.seconds:.1f}s"
        ]
        lines += [f"skipped bad shard: {p}" for p in self.bad]
        lines += [f"warning: {w}" for w in self.warnings]
        lines.append(f"run: {self.tensorboard_command}")
        return "\n".join(lines)


@dataclasses.dataclass
class RunSummary:
    """What a run folder holds, from shard headers and metadata only (no array is loaded)."""

    path: Path
    steps: list[int]
    shards_per_step: dict[int, int]
    examples_per_step: dict[int, int]
    fields: dict[str, FieldInfo]
    class_names: list[str] | None
    format_versions: list[str]
    box_formats: list[str]
    ignored: list[Path]
    incomplete: list[str]

    def __str__(self) -> str:
        lines = [f"run: {self.path}"]
        lines.append(f"format version: {', '.join(self.format_versions)}")
        total = sum(self.examples_per_step.values())
        lines.append(f"steps: {len(self.steps)}, shards: {sum(self.shards_per_step.values())}, examples: {total}")
        shown = self.steps if len(self.steps) <= 12 else self.steps[:6] + [None] + self.steps[-5:]
        for step in shown:
            if step is None:
                lines.append(f"  ... {len(self.steps) - 11} more steps ...")
                continue
            shards, examples = self.shards_per_step[step], self.examples_per_step[step]
            lines.append(f"  step {step:>10}: {shards:>3} shard(s), {examples:>6} examples")
        lines.append("fields:")
        width = max((len(n) for n in self.fields), default=0)
        for name, info in self.fields.items():
            note = "" if name in CANONICAL_FIELDS else "  (not a canonical field: ignored by the renderer)"
            lines.append(f"  {name:<{width}}  {info}{note}")
        if self.class_names:
            names = ", ".join(self.class_names[:20]) + (", ..." if len(self.class_names) > 20 else "")
            lines.append(f"classes ({len(self.class_names)}): {names}")
        else:
            lines.append("classes: none in metadata (ids are shown as numbers)")
        lines.append(f"boxes: {', '.join(self.box_formats)}")
        if self.ignored:
            lines.append(f"older dumps ignored: {len(self.ignored)} shard(s) (newest dump per step wins)")
        if self.incomplete:
            lines.append(f"incomplete dumps: {len(self.incomplete)}")
            lines += [f"  {m}" for m in self.incomplete]
        return "\n".join(lines)


# --------------------------------------------------------------------------- planning


@dataclasses.dataclass
class _Plan:
    """Which shards to read, by ascending step, decided from metadata only."""

    steps: dict[int, list[Shard]]
    ignored: list[Shard]
    bad: list[Problem]


def _plan(shards: ShardsArg, dumps: str, skip_bad: bool, max_bytes: int = DEFAULT_MAX_BYTES) -> _Plan:
    """Open every shard lazily; unreadable ones raise, or with ``skip_bad`` become ``bad``."""
    if isinstance(shards, Run):
        return _Plan({s: shards.shards(s) for s in shards.steps}, list(shards.ignored), list(shards.bad))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the ignored dumps are reported by the caller
        run = open_run(shards, dumps=dumps, skip_bad=skip_bad, max_bytes=max_bytes)
    return _Plan({s: run.shards(s) for s in run.steps}, list(run.ignored), list(run.bad))


def read_options_for(options: ExportOptions, meta: ShardMeta, read: ReadOptions | None = None) -> ReadOptions:
    """How to read one shard's arrays: ``read`` (default: the read keywords still given to ``RenderOptions``),
    with the ``ExportOptions`` overrides, else what the shard's metadata says."""
    if read is None:  # box format and coords given to RenderOptions never counted: ExportOptions holds them
        read = dataclasses.replace(options.render.legacy_read or ReadOptions(), box_format=None, box_coords=None)

    def first(*values: Any) -> Any:
        return next((v for v in values if v is not None), None)

    return dataclasses.replace(
        read,
        class_names=first(options.class_names, read.class_names, meta.class_names),
        box_format=first(options.box_format, read.box_format, meta.box_format),
        box_coords=first(options.box_coords, read.box_coords, meta.box_coords),
        layout=first(read.layout, meta.image_layout),
        value_range=first(read.value_range, None if meta.image_range is None else tuple(meta.image_range)),
    )


# --------------------------------------------------------------------------- work units (run in workers)


@dataclasses.dataclass(frozen=True)
class _Unit:
    """Rows of one shard to render; the first unit of a shard also validates it."""

    path: str
    rows: tuple[int, ...]
    base: int  # position in its step of the shard's row 0
    render: RenderOptions | None  # None: nothing to draw from this shard (metrics only)
    read: ReadOptions | None
    first: bool
    metrics: bool
    image_format: str
    jpeg_quality: int
    png_encoder: str
    keep_pixels: int  # examples with step position < keep_pixels come back as pixels too (for the grid)
    max_bytes: int  # the reader's refusal limit per shard


@dataclasses.dataclass
class _Rendered:
    index: int  # position in the step
    example_id: Any  # the id from ``ids`` or None
    data: bytes
    width: int
    height: int
    colorspace: int
    pixels: np.ndarray | None = None


@dataclasses.dataclass
class _UnitResult:
    problems: list[Problem]
    render_error: str | None
    examples: list[_Rendered]
    metric_arrays: dict[str, np.ndarray]


# The last shard a process loaded, whole: the chunks of one shard usually come in a row.
_CACHE: dict[str, tuple[ShardMeta, dict[str, np.ndarray]]] = {}


def _load(path: str, names: Sequence[str] | None, max_bytes: int) -> tuple[ShardMeta, dict[str, np.ndarray]]:
    if names is None and path in _CACHE:
        return _CACHE[path]
    shard = Shard(path, max_bytes=max_bytes)
    loaded = (shard.meta, shard.load(names))
    if names is None:
        _CACHE.clear()
        _CACHE[path] = loaded
    return loaded


def _work(unit: _Unit) -> _UnitResult:
    """Load, check (first unit of a shard), render and encode one unit. Runs in a worker process."""
    result = _UnitResult([], None, [], {})
    try:
        meta, arrays = _load(unit.path, None if unit.render is not None else _METRIC_FIELDS, unit.max_bytes)
        # a metrics-only unit loads only the metric fields: without any, only "holds no fields" is left to check
        if unit.first and (arrays or not Shard(unit.path).fields):
            result.problems = [Problem(unit.path, m, f) for f, m in check_arrays(meta, arrays)]
            if result.problems:
                return result
            if unit.metrics:
                result.metric_arrays = {n: arrays[n] for n in _METRIC_FIELDS if n in arrays}
    except ShardError as exc:
        result.problems = [Problem(unit.path, exc.reason, exc.field)]
        return result
    except ShardTooLargeError as exc:
        result.problems = [Problem(unit.path, str(exc).removeprefix(unit.path + ": "))]
        return result
    if unit.render is None:
        return result
    if not unit.first and any(a.ndim == 0 or a.shape[0] <= max(unit.rows) for a in arrays.values()):
        return result  # fewer rows than the metadata says: the shard's first unit reports it
    fields = [n for n in arrays if n in CANONICAL_FIELDS]
    ids = arrays.get("ids")
    for row in unit.rows:
        index = unit.base + row
        try:
            img = render_example({n: arrays[n][row] for n in fields}, unit.render, unit.read)
        except ExporterError as exc:
            result.render_error = f"row {row}: {exc}"
            result.examples = []
            return result
        except Exception as exc:  # a renderer bug: stay loud, but say where
            if hasattr(exc, "add_note"):  # Python 3.11+
                exc.add_note(f"while rendering row {row} of {unit.path}")
            raise
        data = encode_image(img, unit.image_format, unit.jpeg_quality, png_encoder=unit.png_encoder)
        result.examples.append(
            _Rendered(
                index=index,
                example_id=None if ids is None else ids[row].item(),
                data=data,
                width=img.width,
                height=img.height,
                colorspace=image_colorspace(img),
                pixels=np.asarray(img) if index < unit.keep_pixels else None,
            )
        )
    return result


class _Results:
    """Results of ``units`` in submission order; with workers, at most 2 per worker in flight.

    Worker processes use the platform's default start method (fork on Linux,
    spawn on macOS and Windows, where a script calling ``export`` with workers
    needs the usual ``if __name__ == "__main__":`` guard). They are all started
    here, before the progress bar starts its monitor thread, so a fork never
    copies a thread of ours.
    """

    def __init__(self, units: Sequence[_Unit], workers: int):
        self._todo = iter(units)
        self._pending: collections.deque = collections.deque()
        self._pool = None
        if workers > 1:
            import concurrent.futures
            import multiprocessing

            self._pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context())
            for unit in itertools.islice(self._todo, 2 * workers):
                self._pending.append(self._pool.submit(_work, unit))

    def __iter__(self) -> "_Results":
        return self

    def __next__(self) -> _UnitResult:
        if self._pool is None:
            return _work(next(self._todo))
        if not self._pending:
            raise StopIteration
        future = self._pending.popleft()
        unit = next(self._todo, None)
        if unit is not None:  # keep the workers busy while the parent writes
            self._pending.append(self._pool.submit(_work, unit))
        return future.result()

    def close(self) -> None:
        _CACHE.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


# --------------------------------------------------------------------------- the pipeline


class _StepMetrics:
    """Accuracy, top-k, confusion matrix and PR counts of one step, summed shard by shard."""

    def __init__(self, topk: int):
        self.topk = topk
        self.total = 0
        self.correct = 0
        self.topk_total = 0
        self.topk_correct = 0
        self.confusion = np.zeros((0, 0), np.int64)
        self.classes_seen = 0  # 1 + the largest class id seen, kept even beyond MAX_CONFUSION_CLASSES
        self.pr = PRCurveCounts()

    def add(self, a: Mapping[str, np.ndarray]) -> None:
        labels = a.get("labels")
        if labels is None:
            return
        labels = labels.astype(np.int64)
        probs = a.get("probs")
        pred = a.get("pred_labels")
        if pred is None and probs is not None:
            pred = probs.argmax(axis=1)
        if pred is not None:
            pred = pred.astype(np.int64)
            self.total += len(labels)
            self.correct += int((pred == labels).sum())
            # Python ints: an id of 2**63 - 1 plus one must not wrap around
            k = max(self.confusion.shape[0], int(labels.max(initial=-1)) + 1, int(pred.max(initial=-1)) + 1)
            k = max(k, probs.shape[1] if probs is not None else 0)
            self.classes_seen = max(self.classes_seen, k)
            if k <= MAX_CONFUSION_CLASSES:
                if k > self.confusion.shape[0]:
                    grow = k - self.confusion.shape[0]
                    self.confusion = np.pad(self.confusion, ((0, grow), (0, grow)))
                ok = (labels >= 0) & (pred >= 0)
                np.add.at(self.confusion, (labels[ok], pred[ok]), 1)
        if probs is not None and probs.shape[1] > 0:
            n, kk = probs.shape
            if self.topk < kk:
                known = (labels >= 0) & (labels < kk)
                true_p = probs[np.arange(n), np.where(known, labels, 0)]
                rank = (probs > true_p[:, None]).sum(axis=1)  # classes scored above the true one
                self.topk_total += n
                self.topk_correct += int(((rank < self.topk) & known).sum())
            if kk <= MAX_CONFUSION_CLASSES:  # (K, thresholds) counts: bounded like the confusion matrix
                self.pr.add(probs, labels)


@dataclasses.dataclass
class _ShardDone:
    step: int
    walltime: float
    examples: list[tuple[str, _Rendered]]  # (unique name, rendered)


@dataclasses.dataclass
class _StepDone:
    step: int
    walltime: float
    metrics: _StepMetrics | None
    grid: list[np.ndarray]
    class_names: Sequence[str] | None


def _bad_shard(problems: list[Problem], options: ExportOptions, bad: list[Problem]) -> None:
    """Record a bad shard under ``skip_bad``, else raise the error naming file and problem."""
    if options.skip_bad:
        bad.extend(problems)
        return
    first = problems[0]
    more = f" (and {len(problems) - 1} more problem(s); run validate for all)" if len(problems) > 1 else ""
    cls = ShardFieldError if first.field else ShardFormatError
    raise cls(first.message + more + "; skip it with skip_bad=True (--skip-bad)", path=first.path, field=first.field)


def _pipeline(
    plan: _Plan, options: ExportOptions, *, metrics: bool, bad: list[Problem], notes: list[str], progress: bool
) -> Iterator[_ShardDone | _StepDone]:
    """Render every planned shard in order: yields each shard's images, then each step's totals."""
    from tqdm.auto import tqdm

    workers = options.workers
    cap = options.max_per_step
    keep = options.grid_max if options.grid else 0
    schedule: list[tuple[int, Shard, list[_Unit]]] = []
    no_images: set[int] = set()
    to_render = 0
    for step, shards in plan.steps.items():
        base = 0
        chosen = _selected_rows(shards, options)
        taken = 0
        for k, shard in enumerate(shards):
            n = len(shard)
            wanted = range(n) if chosen is None else chosen[k]
            if cap is not None:
                wanted = wanted[: max(0, cap - taken)]
            rows = len(wanted)
            taken += rows
            if "images" not in shard.fields:
                rows = 0
                no_images.add(step)
            units: list[_Unit] = []
            common = dict(
                path=str(shard.path), base=base, metrics=metrics, image_format=options.image_format,
                jpeg_quality=options.jpeg_quality, png_encoder=options.png_encoder, keep_pixels=keep,
                max_bytes=options.max_shard_bytes,
            )
            if rows:
                read = read_options_for(options, shard.meta)
                # Small chunks keep every worker busy on few shards; one unit per shard when in-process.
                chunk = rows if workers == 1 else max(8, min(64, math.ceil(rows / (2 * workers))))
                for i, start in enumerate(range(0, rows, chunk)):
                    part = tuple(int(r) for r in wanted[start : start + chunk])
                    units.append(_Unit(rows=part, render=options.render, read=read, first=i == 0, **common))
            elif metrics:
                units.append(_Unit(rows=(), render=None, read=None, first=True, **common))
            to_render += rows
            base += n
            if units:
                schedule.append((step, shard, units))
    if no_images:
        notes.append(f"shards of step(s) {sorted(no_images)} have no 'images' field: nothing to draw from them")

    results = _Results([u for _, _, units in schedule for u in units], workers)
    bar = None
    try:
        bar = tqdm(total=to_render, unit="img", desc="export", disable=not progress)
        by_step: dict[int, list[tuple[Shard, list[_Unit]]]] = {}
        for step, shard, units in schedule:
            by_step.setdefault(step, []).append((shard, units))
        for step in plan.steps:
            names = tagging.UniqueNames()
            acc = _StepMetrics(options.topk) if metrics else None
            grid: list[np.ndarray] = []
            legacy = options.render.legacy_read or ReadOptions()  # class names still given to RenderOptions
            class_names = options.class_names if options.class_names is not None else legacy.class_names
            walltime = 0.0
            for shard, units in by_step.get(step, []):
                outs = []  # a shard is written whole or not at all
                for unit in units:
                    outs.append(next(results))
                    bar.update(len(unit.rows))
                problems = [p for o in outs for p in o.problems]
                render_errors = [o.render_error for o in outs if o.render_error]
                if render_errors and not problems:
                    if not options.skip_bad:
                        raise RenderError(f"{shard.path}: cannot draw {render_errors[0]}; skip it with skip_bad=True")
                    problems = [Problem(str(shard.path), f"cannot draw {render_errors[0]}")]
                if problems:
                    _bad_shard(problems, options, bad)
                    continue
                walltime = max(walltime, float(shard.meta.created))
                if class_names is None and shard.meta.class_names:
                    class_names = shard.meta.class_names
                if acc is not None:
                    acc.add(outs[0].metric_arrays)
                done = []
                for o in outs:
                    for r in o.examples:
                        name = names.take(tagging.example_name(r.example_id, r.index), r.index)
                        done.append((name, r))
                        if r.pixels is not None and len(grid) < keep:
                            grid.append(r.pixels)
                        r.pixels = None
                if done:
                    yield _ShardDone(step, float(shard.meta.created), done)
            if names.duplicates:
                notes.append(
                    f"step {step}: {names.duplicates} example(s) share an id with an earlier one; "
                    "they were named '<id>-dup<index>'"
                )
            if walltime:
                yield _StepDone(step, walltime, acc, grid, class_names)
    finally:
        if bar is not None:
            bar.close()
        results.close()


def _selected_rows(shards: Sequence[Shard], options: ExportOptions) -> list[np.ndarray] | None:
    """Rows of each shard that ``options.select`` keeps (None: all), from the small fields it needs.

    The selection sees the whole step (so "the 32 most confidently wrong" ranks across shards);
    rows are returned in shard order. A shard that cannot be read selects nothing here: its
    validation reports it.
    """
    selection = options.select
    if selection is None or selection.everything:
        return None
    names = sorted(n for n in selection.fields if all(n in s.fields for s in shards))  # some are alternatives
    parts, sizes = [], []
    for shard in shards:
        try:
            loaded = shard.load(names)
            ok = all(n in loaded and len(loaded[n]) == len(shard) for n in names)
        except (ShardError, ShardTooLargeError):
            ok = False
        sizes.append(len(shard) if ok else 0)
        if ok:
            parts.append(loaded)
    class_names = options.class_names or next((s.meta.class_names for s in shards if s.meta.class_names), None)
    arrays = {n: np.concatenate([p[n] for p in parts]) for n in names} if parts else {}
    picked = np.sort(selection.select(arrays, class_names, n=sum(sizes), source=f"step {shards[0].step}")) if parts else []
    starts = np.cumsum([0] + sizes)
    return [np.asarray(picked)[(picked >= a) & (picked < b)] - a for a, b in zip(starts[:-1], starts[1:])]


def _warn(notes: list[str]) -> None:
    for note in notes:
        warnings.warn(note, stacklevel=3)


def _ignored_note(plan: _Plan) -> list[str]:
    if not plan.ignored:
        return []
    steps = sorted({s.step for s in plan.ignored})
    return [
        f"{len(plan.ignored)} shard(s) from older dumps of step(s) {steps} are ignored "
        "(newest dump wins; use dumps='all' to read them)"
    ]


# --------------------------------------------------------------------------- export


def export(
    shards: ShardsArg,
    logdir: str | os.PathLike,
    options: ExportOptions = ExportOptions(),
    *,
    progress: bool = False,
    incremental: bool = False,
) -> ExportReport:
    """Render a run's shards into TensorBoard events in ``logdir``.

    Steps are written in ascending order, each example under a tag that is the
    same at every step (see ``exporter.tags``). Events go to a temporary folder
    next to ``logdir`` and are moved in when complete, replacing the event file
    of an earlier export, so exporting twice never doubles the events.

    ``incremental=True`` exports only shards not exported to ``logdir`` before
    (remembered in ``logdir/.summary-exporter-state.json``), appending a new
    event file when every new shard has a step above the last one exported.
    When an older (or the same) step arrives late, or the options changed, the
    whole run is rewritten instead: TensorBoard purges the events after a step
    that is written again, so steps only ever go up within a run.

    >>> report = export("eval_shards", "tb/eval", ExportOptions(workers=4))   # doctest: +SKIP
    >>> report.tensorboard_command                                             # doctest: +SKIP
    'tensorboard --logdir tb/eval'
    """
    if not isinstance(options, ExportOptions):
        raise ConfigError(f"options must be an ExportOptions, got {type(options).__name__}")
    png_encoder_name(options.png_encoder)  # a missing fpng is reported before any work
    t0 = time.perf_counter()
    logdir = Path(logdir)
    plan = _plan(shards, options.dumps, options.skip_bad, options.max_shard_bytes)
    bad = list(plan.bad)
    notes = _ignored_note(plan)
    state = _ExportState.load(logdir, options)
    mode = "full"
    if incremental:
        mode, plan, note = state.incremental_plan(plan)
        if note:
            notes.append(note)
        if mode == "up to date":
            _warn(notes)
            return ExportReport(
                logdir=logdir, steps=[], images=0, tags=0, bad=bad, warnings=notes,
                tensorboard_command="tensorboard --logdir " + shlex.quote(str(logdir)), mode=mode,
                seconds=time.perf_counter() - t0,
            )
    tmp = _temp_dir(logdir)
    images = 0
    steps: list[int] = []
    try:
        with EventWriter(tmp) as writer:
            for item in _pipeline(plan, options, metrics=options.metrics, bad=bad, notes=notes, progress=progress):
                if isinstance(item, _ShardDone):
                    for name, r in item.examples:
                        tag = tagging.name_tag(options.tag_prefix, name)
                        writer.add_image(
                            tag, r.data, height=r.height, width=r.width, colorspace=r.colorspace,
                            step=item.step, walltime=item.walltime,
                        )
                        images += 1
                    continue
                images += _write_step(writer, item, options, notes)
                steps.append(item.step)
            need = writer.samples_needed()
            notes.extend(writer.sample_warnings())
            tag_count = len(writer.tags)
        event_file = None
        if writer.events or not bad:
            event_file = _install(writer.path, logdir, replace=mode != "append")
            state.record(plan, event_file, replace=mode != "append")
        else:
            notes.append(f"nothing was exported (every shard was bad): {logdir} was left unchanged")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    command = "tensorboard --logdir " + shlex.quote(str(logdir))
    if need:
        command += " --samples_per_plugin " + ",".join(f"{k}={v}" for k, v in sorted(need.items()))
    _warn(notes)
    return ExportReport(
        logdir=logdir, steps=steps, images=images, tags=tag_count, bad=bad, warnings=notes,
        tensorboard_command=command, event_file=event_file, seconds=time.perf_counter() - t0, mode=mode,
    )


def _write_step(writer: EventWriter, item: _StepDone, options: ExportOptions, notes: list[str]) -> int:
    """A step's grid and metrics, after its examples; returns how many images were written."""
    images = 0
    enc = dict(fmt=options.image_format, quality=options.jpeg_quality, png_encoder=options.png_encoder)
    at = dict(step=item.step, walltime=item.walltime)
    if item.grid:
        sheet = _grid_image(item.grid)
        writer.add_image(
            tagging.grid_tag(options.tag_prefix), encode_image(sheet, **enc), height=sheet.height,
            width=sheet.width, colorspace=image_colorspace(sheet), **at,
        )
        images += 1
    m = item.metrics
    if m is None:
        return images
    if m.total:
        writer.add_scalar(tagging.ACCURACY_TAG, m.correct / m.total, **at)
    if m.topk_total:
        writer.add_scalar(tagging.topk_tag(options.topk), m.topk_correct / m.topk_total, **at)
    classes = max(m.classes_seen, len(item.class_names or ()) if m.classes_seen else 0)
    if classes > MAX_CONFUSION_CLASSES:
        notes.append(
            f"step {item.step}: confusion matrix and PR curves not written ({classes} classes; they are written "
            f"for at most {MAX_CONFUSION_CLASSES})"
        )
    elif m.confusion.size:
        matrix = m.confusion
        if item.class_names and len(item.class_names) > len(matrix):  # classes never seen still get a row
            matrix = np.pad(matrix, ((0, len(item.class_names) - len(matrix)),) * 2)
        try:
            img = render_confusion_matrix(matrix, item.class_names)
        except ExporterError as exc:
            notes.append(f"step {item.step}: confusion matrix not drawn ({exc})")
        else:
            writer.add_image(
                tagging.CONFUSION_MATRIX_TAG, encode_image(img, **enc), height=img.height,
                width=img.width, colorspace=image_colorspace(img), **at,
            )
            images += 1
    if m.pr.num_classes:
        writer.add_pr_curves(tagging.pr_curve_tags(m.pr.num_classes, item.class_names), m.pr, **at)
    return images


def _grid_image(cells: Sequence[np.ndarray]):
    """A step's first examples on one sheet, each shrunk to fit ``GRID_CELL`` so the sheet stays viewable."""
    from PIL import Image

    images = []
    for pixels in cells:
        img = Image.fromarray(pixels)
        img.thumbnail((GRID_CELL, GRID_CELL))  # only ever shrinks
        images.append(img)
    return render_grid(images)


def _temp_dir(logdir: Path) -> Path:
    """A fresh hidden folder beside ``logdir`` (same file system, so the final move is a rename)."""
    absolute = Path(os.path.abspath(logdir))
    parent = absolute.parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = parent / f".{absolute.name or 'logdir'}.summary-exporter-tmp-{os.getpid()}-{secrets.token_hex(4)}"
    tmp.mkdir()
    return tmp


def _install(event_file: Path, logdir: Path, *, replace: bool = True) -> Path:
    """Move the finished event file into ``logdir``; unless appending, drop the files of earlier exports."""
    logdir.mkdir(parents=True, exist_ok=True)
    final = logdir / _next_event_file_name(logdir)
    os.replace(event_file, final)
    if replace:
        for old in logdir.glob(EVENT_FILE_GLOB):
            if old.name != final.name:
                old.unlink()
    return final


def _next_event_file_name(logdir: Path) -> str:
    """A name that sorts after every event file already in ``logdir``.

    TensorBoard reads a run's event files in name order and never goes back to
    an earlier name, so an appended file must sort last, and a rewritten run
    must not reuse a name a live TensorBoard has already read (tensorboardX's
    own names only have one-second resolution).
    """
    import socket

    stamp, seq = int(time.time()), 0
    for old in logdir.glob(EVENT_FILE_GLOB):
        parts = old.name.split(".")
        if len(parts) > 4 and parts[3].isdigit():
            old_seq = int(parts[-2]) if parts[-2].isdigit() else 0
            if int(parts[3]) > stamp or (int(parts[3]) == stamp and old_seq >= seq):
                stamp, seq = max(stamp, int(parts[3])), old_seq + 1
    host = tagging.sanitize(socket.gethostname() or "host").replace(".", "_")
    return f"events.out.tfevents.{stamp:010d}.{host}.{seq:04d}{EVENT_FILE_SUFFIX}"


STATE_FILE = ".summary-exporter-state.json"


def _shard_key(shard: Shard) -> str:
    return f"{shard.meta.dump_id}/{shard.meta.shard_index}"


@dataclasses.dataclass
class _ExportState:
    """What an earlier export wrote into a logdir: which shards, up to which step, with which options."""

    logdir: Path
    options_hash: str
    exported: dict[str, int]  # shard key -> step
    previous_hash: str | None

    @classmethod
    def load(cls, logdir: Path, options: ExportOptions) -> "_ExportState":
        import hashlib
        import json

        # Options that change what is drawn or tagged; workers and the PNG encoder do not.
        same_output = dataclasses.replace(options, workers=1, png_encoder="auto")
        options_hash = hashlib.sha256(repr(same_output).encode()).hexdigest()[:16]
        exported: dict[str, int] = {}
        previous = None
        try:
            data = json.loads((logdir / STATE_FILE).read_text())
            if data.get("version") == 1 and any(logdir.glob(EVENT_FILE_GLOB)):
                previous = str(data["options"])
                exported = {str(k): int(v) for k, v in data["shards"].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass  # no usable state: the export is a full one
        return cls(logdir, options_hash, exported, previous)

    def incremental_plan(self, plan: _Plan) -> tuple[str, _Plan, str | None]:
        """("append" | "rewrite" | "up to date", the plan to run, a note for the user)."""
        if self.previous_hash is None:
            return "full", plan, None
        if self.previous_hash != self.options_hash:
            return "rewrite", plan, "export options changed since the last export: rewriting the whole run"
        new = {step: [s for s in shards if _shard_key(s) not in self.exported] for step, shards in plan.steps.items()}
        new = {step: shards for step, shards in new.items() if shards}
        if not new and set(self.exported) == {_shard_key(s) for ss in plan.steps.values() for s in ss}:
            return "up to date", plan, None
        last = max(self.exported.values(), default=-1)
        if new and min(new) > last:
            return "append", dataclasses.replace(plan, steps=new), None
        late = min(new) if new else None
        why = f"step {late} arrived after step {last} was exported" if late is not None else "shards were removed"
        return "rewrite", plan, f"{why}: rewriting the whole run so TensorBoard never purges later steps"

    def record(self, plan: _Plan, event_file: Path, *, replace: bool) -> None:
        import json

        exported = {} if replace else dict(self.exported)
        exported.update({_shard_key(s): step for step, shards in plan.steps.items() for s in shards})
        state = {"version": 1, "options": self.options_hash, "shards": exported}
        tmp = self.logdir / f".{STATE_FILE}.tmp-{os.getpid()}"
        tmp.write_text(json.dumps(state, sort_keys=True))
        os.replace(tmp, self.logdir / STATE_FILE)


# --------------------------------------------------------------------------- render to files


def render(
    shards: ShardsArg, outdir: str | os.PathLike, options: ExportOptions = ExportOptions(), *, progress: bool = False
) -> list[Path]:
    """Draw the same overlays as ``export`` into PNG files: ``outdir/step-<step>/<id>.png``.

    File names come from ``exporter.tags.safe_filename`` and never leave
    ``outdir``; with ``options.grid`` each step also gets ``grid.png``.

    >>> paths = render("eval_shards", "overlays", ExportOptions(max_per_step=16))   # doctest: +SKIP
    """
    if not isinstance(options, ExportOptions):
        raise ConfigError(f"options must be an ExportOptions, got {type(options).__name__}")
    options = dataclasses.replace(options, image_format="png")
    png_encoder_name(options.png_encoder)
    outdir = Path(outdir)
    plan = _plan(shards, options.dumps, options.skip_bad, options.max_shard_bytes)
    bad = list(plan.bad)
    notes = _ignored_note(plan)
    written: list[Path] = []
    for item in _pipeline(plan, options, metrics=False, bad=bad, notes=notes, progress=progress):
        folder = outdir / step_dirname(item.step)
        folder.mkdir(parents=True, exist_ok=True)
        if isinstance(item, _ShardDone):
            for name, r in item.examples:
                written.append(_write_file(folder, name + tagging.EXAMPLE_SUFFIX, r.data))
        elif item.grid:
            sheet = _grid_image(item.grid)
            data = encode_image(sheet, png_encoder=options.png_encoder)
            written.append(_write_file(folder, tagging.GRID_FILENAME, data))
    notes += [f"skipped bad shard: {p}" for p in bad]
    _warn(notes)
    return written


def _write_file(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    if path.parent != folder or name in ("", ".", "..") or os.sep in name or "/" in name or "\x00" in name:
        raise ConfigError(f"refusing to write {name!r}: it would leave {folder}")  # the tags module prevents this
    path.write_bytes(data)
    return path


# --------------------------------------------------------------------------- inspect and validate


def inspect(shards: str | os.PathLike, *, dumps: str = "latest") -> RunSummary:
    """Summarise a run folder from metadata and array headers; ``print()`` it to read it at a glance.

    >>> print(inspect("eval_shards"))                      # doctest: +SKIP
    run: eval_shards
    steps: 2, shards: 4, examples: 512
    ...
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the summary lists ignored dumps itself
        run = shards if isinstance(shards, Run) else open_run(shards, dumps=dumps)
    all_shards = run.shards() + list(run.ignored)
    return RunSummary(
        path=run.path,
        steps=run.steps,
        shards_per_step={s: len(run.shards(s)) for s in run.steps},
        examples_per_step={s: run.num_examples(s) for s in run.steps},
        fields=run.fields,
        class_names=run.class_names,
        format_versions=sorted({s.meta.format_version for s in all_shards}),
        box_formats=sorted({f"{s.meta.box_format} {s.meta.box_coords}" for s in all_shards}),
        ignored=[s.path for s in run.ignored],
        incomplete=_incomplete_dumps(all_shards),
    )


def _incomplete_dumps(shards: Iterable[Shard]) -> list[str]:
    """Dumps whose writer never wrote its closing manifest, or whose shards do not match it."""
    import json

    groups: dict[tuple[Path, str], list[Shard]] = {}
    for s in shards:
        groups.setdefault((s.path.parent, s.meta.dump_id), []).append(s)
    out = []
    for (folder, dump_id), group in sorted(groups.items(), key=lambda kv: (kv[1][0].step, kv[0][1])):
        step = group[0].step
        manifest = folder / manifest_filename(dump_id)
        if not manifest.is_file():
            out.append(
                f"step {step}, dump {dump_id}: no {manifest.name} (the writer did not close; shards may be missing)"
            )
            continue
        try:
            listed = set(json.loads(manifest.read_text()).get("shards", []))
        except (OSError, ValueError, AttributeError):
            out.append(f"step {step}, dump {dump_id}: unreadable {manifest.name}")
            continue
        missing = sorted(listed - {s.path.name for s in group})
        if missing:
            out.append(f"step {step}, dump {dump_id}: {len(missing)} shard(s) listed in {manifest.name} are missing")
    return out


def shard_files(shards: str | os.PathLike) -> list[Path]:
    """Every shard file under ``shards`` (a run folder, a step folder or one file), older dumps included."""
    files = find_shard_files(shards)
    if not files:
        raise RunNotFoundError(f"{shards}: no shard files (*.npz) found")
    return files


def validate(shards: str | os.PathLike, *, max_bytes: int = DEFAULT_MAX_BYTES) -> list[Problem]:
    """Every problem of every shard file under ``shards`` (older dumps included). Empty = all valid.

    >>> for problem in validate("eval_shards"):           # doctest: +SKIP
    ...     print(problem)
    """
    return [p for f in shard_files(shards) for p in validate_shard(f, max_bytes=max_bytes)]
