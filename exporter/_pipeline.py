"""The export pipeline: plan → work units → workers → results in step order.

Shards are planned from their metadata only, then read one at a time in
ascending step order; each shard's examples are rendered and encoded (in
worker processes when ``workers > 1``), and the results are consumed in order
so the caller writes events (or files) step by step. Memory is bounded by a
few shards, whatever the size of the run.

``run`` yields a ``ShardDone`` per shard (its encoded images) and a
``StepDone`` per step (its grid cells and metrics); ``api.export`` and
``api.render`` consume them.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import itertools
import math
import os
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from . import tags as tagging
from ._procs import raise_if_signalled, shutdown_now, signals_held, worker_init
from .errors import (
    ConfigError,
    ExporterError,
    RenderError,
    ShardError,
    ShardFieldError,
    ShardFormatError,
    ShardTooLargeError,
)
from .metrics import classification
from .metrics.images import BOX_FIELDS, ImageStats, image_shape_of, image_stats
from .metrics.step import DEFAULT_IGNORE_INDEX, METRIC_FIELDS, ShardMetrics, StepMetrics, StepResults, measure_shard
from .options import ExportOptions, box_match_for, read_options_for, step_class_names
from .render import ReadOptions, RenderOptions, box_count, drawn_order, render_example, to_pixel_xyxy_keep
from .schema import CANONICAL_FIELDS, DEFAULT_BOX_COORDS, DEFAULT_BOX_FORMAT, ShardMeta
from .select import Selection
from .shards import Problem, Run, Shard, open_run
from .storage import Location
from .tensorboard import encode_image, image_colorspace
from .validation import check_arrays, check_warnings

# --------------------------------------------------------------------------- planning


@dataclasses.dataclass
class Plan:
    """Which shards to read, by ascending step, decided from metadata only."""

    steps: dict[int, list[Shard]]
    ignored: list[Shard]
    bad: list[Problem]

    def ignored_note(self) -> list[str]:
        """The warning about older dumps left out, if any."""
        if not self.ignored:
            return []
        steps = sorted({s.step for s in self.ignored})
        return [
            f"{len(self.ignored)} shard(s) from older dumps of step(s) {steps} are ignored "
            "(newest dump wins; use dumps='all' to read them)"
        ]


def plan(shards: str | Any | Run, options: ExportOptions) -> Plan:
    """Open every shard lazily; unreadable ones raise, or with ``skip_bad`` become ``bad``."""
    if not isinstance(shards, Run):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the ignored dumps are reported by the caller
            shards = open_run(shards, dumps=options.dumps, skip_bad=options.skip_bad, max_bytes=options.max_shard_bytes)
    return Plan({s: shards.shards(s) for s in shards.steps}, list(shards.ignored), list(shards.bad))


# --------------------------------------------------------------------------- work units (run in workers)


@dataclasses.dataclass(frozen=True)
class _Unit:
    """Rows of one shard to render; the first unit of a shard also validates it."""

    path: str | Location  # a URL's Location carries its storage options to the worker
    rows: tuple[int, ...]
    base: int  # position in its step of the shard's row 0
    style: RenderOptions | None  # None: nothing to draw from this shard (metrics only)
    read: ReadOptions
    first: bool
    metrics: bool
    image_format: str
    jpeg_quality: int
    png_encoder: str
    keep_pixels: int  # examples with step position < keep_pixels come back as pixels too (for the grid)
    max_bytes: int  # the reader's refusal limit per shard
    ignore_index: int | None = DEFAULT_IGNORE_INDEX  # for the segmentation metrics


@dataclasses.dataclass
class Rendered:
    """One drawn, encoded example."""

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
    examples: list[Rendered]
    metric_arrays: dict[str, np.ndarray]
    measured: ShardMetrics | None = None  # detection / segmentation evaluators of the shard (first unit only)
    hidden_boxes: int = 0  # predicted boxes of these rows that max_boxes leaves out
    warnings: list[Problem] = dataclasses.field(default_factory=list)  # validate's warnings (first unit only)


class _LastShard:
    """The last shard a process loaded whole: the units of one shard usually come in a row.

    It holds one shard at most: the last one is let go before the next is read,
    not after, which would hold two at the peak.
    """

    def __init__(self) -> None:
        self.path: str | Location | None = None
        self.loaded: tuple[ShardMeta, dict[str, np.ndarray]] | None = None

    def load(self, path: str | Location, names: Sequence[str] | None, max_bytes: int) -> tuple[ShardMeta, dict[str, np.ndarray]]:
        if names is None and path == self.path and self.loaded is not None:
            return self.loaded
        self.clear()
        shard = Shard(path, max_bytes=max_bytes)
        loaded = (shard.meta, shard.load(names))
        if names is None:
            self.path, self.loaded = path, loaded
        return loaded

    def clear(self) -> None:
        self.path, self.loaded = None, None


#: One per process (the parent's is cleared after each export, a worker's dies with it).
_LAST = _LastShard()


def _work(unit: _Unit) -> _UnitResult:
    """Load, check (first unit of a shard), render and encode one unit. Runs in a worker process."""
    result = _UnitResult([], None, [], {})
    try:
        names = None if unit.style is not None else METRIC_FIELDS
        meta, arrays = _LAST.load(unit.path, names, unit.max_bytes)
        # a metrics-only unit loads only the metric fields: without any, only "holds no fields" is left to check
        if unit.first and (arrays or not Shard(unit.path).fields):
            result.problems = [Problem(str(unit.path), m, f) for f, m in check_arrays(meta, arrays)]
            if result.problems:
                return result
            if unit.metrics:
                result.metric_arrays = {n: arrays[n] for n in classification.FIELDS if n in arrays}
                result.measured = _measure(unit, arrays)
    except (ShardError, ShardTooLargeError) as exc:
        result.problems = [Problem.from_error(unit.path, exc)]
        return result
    if unit.style is None:
        return result
    if not unit.first and any(a.ndim == 0 or a.shape[0] <= max(unit.rows) for a in arrays.values()):
        return result  # fewer rows than the metadata says: the shard's first unit reports it
    if unit.first:  # what validate warns about (NaN/inf pixels, boxes outside the image), export says too
        result.warnings = [Problem(str(unit.path), m, f, level="warning") for f, m in check_warnings(meta, arrays)]
    result.hidden_boxes = hidden_boxes(arrays, unit.rows, unit.style, unit.read)
    fields = [n for n in arrays if n in CANONICAL_FIELDS]
    ids = arrays.get("ids")
    for row in unit.rows:
        index = unit.base + row
        try:
            img = render_example({n: arrays[n][row] for n in fields}, unit.style, unit.read)
        except ExporterError as exc:
            result.render_error = f"row {row}: {exc}"
            result.examples = []
            return result
        except Exception as exc:  # a renderer bug: stay loud, but say where
            exc.add_note(f"while rendering row {row} of {unit.path}")
            raise
        data = encode_image(img, unit.image_format, unit.jpeg_quality, png_encoder=unit.png_encoder)
        result.examples.append(
            Rendered(
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


def hidden_boxes(arrays: dict[str, np.ndarray], rows: Sequence[int], style: RenderOptions, read: ReadOptions) -> int:
    """How many predicted boxes of ``rows`` the renderer leaves out for ``style.max_boxes``.

    The renderer's own rules over the arrays: the boxes of an image
    (``render.box_count``, rows whose box is not finite dropped), those it
    would draw without the cap and with it (``render.drawn_order``).
    """
    boxes = arrays.get("boxes")
    if boxes is None or boxes.ndim != 3 or boxes.shape[-1] != 4 or boxes.dtype.kind not in "biuf":
        return 0  # nothing the renderer draws (a shard's first unit reports what is wrong with it)
    if boxes.shape[1] <= style.max_boxes:
        return 0  # no image has more boxes than the cap (the usual case: this runs for every unit)
    num, scores = arrays.get("num_boxes"), arrays.get("box_scores")
    if num is not None and (num.shape != boxes.shape[:1] or num.dtype.kind not in "biuf"):
        num = None
    if scores is not None and (scores.shape != boxes.shape[:2] or scores.dtype.kind not in "biuf"):
        scores = None
    box_format, box_coords = read.box_format or DEFAULT_BOX_FORMAT, read.box_coords or DEFAULT_BOX_COORDS
    hidden = 0
    for i in rows:
        m = box_count(None if num is None else num[i], boxes.shape[1])
        if m <= style.max_boxes:
            continue
        _, keep = to_pixel_xyxy_keep(boxes[i, :m], box_format, box_coords, 1.0, 1.0)
        s = None if scores is None else np.asarray(scores[i, :m], np.float64)[keep]
        n = int(keep.sum())
        hidden += len(drawn_order(s, n, style.score_threshold, n)) - len(drawn_order(s, n, style.score_threshold, style.max_boxes))
    return hidden


def _measure(unit: _Unit, arrays: dict[str, np.ndarray]) -> ShardMetrics:
    """Match the shard's boxes and count its class maps here, where the shard is loaded: only evaluators go back."""
    shape = image_shape_of(arrays) if "images" in arrays else image_shape_of(Shard(unit.path, max_bytes=unit.max_bytes).fields)
    return measure_shard(arrays, unit.read, shape, ignore_index=unit.ignore_index)


class _Results:
    """Results of ``units`` in submission order; with workers, at most 2 per worker in flight.

    Worker processes use the platform's default start method (fork on Linux,
    spawn on macOS and Windows, where a script calling ``export`` with workers
    needs the usual ``if __name__ == "__main__":`` guard). They are all started
    here, before the progress bar starts its monitor thread, so a fork never
    copies a thread of ours. They die with this process (``_procs.worker_init``)
    and are stopped at once when the export ends early (an error, Ctrl-C, SIGTERM).
    """

    def __init__(self, units: Sequence[_Unit], workers: int):
        self._todo = iter(units)
        self._pending: collections.deque[concurrent.futures.Future[_UnitResult]] = collections.deque()
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        if workers > 1:
            import multiprocessing

            try:
                # the first submit forks every worker: a signal waits until worker_init set the worker's handlers
                with signals_held():
                    self._pool = concurrent.futures.ProcessPoolExecutor(
                        workers, mp_context=multiprocessing.get_context(), initializer=worker_init,
                        initargs=(os.getpid(),),
                    )
                    for unit in itertools.islice(self._todo, 2 * workers):
                        self._pending.append(self._pool.submit(_work, unit))
            except BaseException:  # the signal held back is raised as the block ends: nobody else can stop these
                self.close(finished=False)
                raise

    def __iter__(self) -> _Results:
        return self

    def __next__(self) -> _UnitResult:
        raise_if_signalled()  # a Ctrl-C or SIGTERM whose exception was lost on the way still stops the export
        if self._pool is None:
            return _work(next(self._todo))
        if not self._pending:
            raise StopIteration
        future = self._pending.popleft()
        unit = next(self._todo, None)
        if unit is not None:  # keep the workers busy while the parent writes
            self._pending.append(self._pool.submit(_work, unit))
        return future.result()

    def close(self, *, finished: bool) -> None:
        """Stop the workers: let them finish when every result was taken, else at once."""
        _LAST.clear()
        if self._pool is not None:
            pool, self._pool = self._pool, None
            if finished:
                pool.shutdown(wait=True, cancel_futures=True)
            else:
                shutdown_now(pool)


# --------------------------------------------------------------------------- scheduling


@dataclasses.dataclass
class _ShardWork:
    step: int
    shard: Shard
    units: list[_Unit]


@dataclasses.dataclass
class _Schedule:
    work: list[_ShardWork]
    images: int  # examples to draw, for the progress bar
    class_names: dict[int, tuple[str, ...] | None]  # per step
    workers: int  # processes drawing them (1: this one)


#: ``workers="auto"`` starts one more process per this many images to draw: starting a worker costs
#: about 10 ms here (fork, 2 workers: 13 ms to start and stop), drawing and encoding an image 1-3 ms.
IMAGES_PER_WORKER = 32


def worker_count(workers: int | str, images: int) -> int:
    """How many processes draw ``images`` images: ``workers``, or for ``"auto"`` one per core, fewer when small.

    >>> worker_count(4, 10), worker_count("auto", 10)
    (4, 1)
    """
    if workers != "auto":
        return int(workers)
    if not _fork_is_safe():
        return 1
    try:
        cores = len(os.sched_getaffinity(0))  # the cores this process may use (a container's share)
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, math.ceil(images / IMAGES_PER_WORKER)))


#: Libraries that run native threads of their own: a process that loaded one is not forked by ``"auto"``.
_THREADED_LIBRARIES = ("tensorflow", "torch", "jax")


def _fork_is_safe() -> bool:
    """Whether starting workers by fork is safe here: forking a process that runs other threads can deadlock
    the child (a lock held by a thread that does not exist there), so ``"auto"`` stays in-process then."""
    import multiprocessing
    import sys
    import threading

    if multiprocessing.get_start_method(allow_none=True) not in (None, "fork"):
        return True
    if multiprocessing.get_context().get_start_method() != "fork":
        return True
    return threading.active_count() == 1 and not any(m in sys.modules for m in _THREADED_LIBRARIES)


def _schedule(plan: Plan, options: ExportOptions, metrics: bool, notes: list[str]) -> _Schedule:
    """The units of every shard: the selected rows cut in chunks (one unit per shard in-process)."""
    rows: list[tuple[int, Shard, Sequence[int] | np.ndarray, int]] = []  # step, shard, rows to draw, base
    no_images: set[int] = set()
    names_by_step = {}
    for step, shards in plan.steps.items():
        names = names_by_step[step] = step_class_names(options, (s.meta for s in shards))
        chosen = selected_rows(shards, options, names)
        base = taken = 0
        for k, shard in enumerate(shards):
            wanted: Sequence[int] | np.ndarray = range(len(shard)) if chosen is None else chosen[k]
            if options.max_per_step is not None:
                wanted = wanted[: max(0, options.max_per_step - taken)]
            taken += len(wanted)
            if "images" not in shard.fields:
                wanted = ()
                no_images.add(step)
            rows.append((step, shard, wanted, base))
            base += len(shard)
    if no_images:
        notes.append(f"shards of step(s) {sorted(no_images)} have no 'images' field: nothing to draw from them")
    images = sum(len(wanted) for _, _, wanted, _ in rows)
    workers = worker_count(options.workers, images)
    work = []
    for step, shard, wanted, base in rows:
        units = _units(shard, wanted, base, options, metrics, names_by_step[step], workers)
        if units:
            work.append(_ShardWork(step, shard, units))
    return _Schedule(work, images, names_by_step, workers)


def _units(
    shard: Shard,
    wanted: Sequence[int] | np.ndarray,
    base: int,
    options: ExportOptions,
    metrics: bool,
    names: tuple[str, ...] | None,
    workers: int,
) -> list[_Unit]:
    common: dict[str, Any] = dict(
        path=shard.path if isinstance(shard.path, Location) else str(shard.path), base=base, metrics=metrics, image_format=options.image_format,
        jpeg_quality=options.jpeg_quality, png_encoder=options.png_encoder,
        keep_pixels=options.grid_max if options.grid else 0, max_bytes=options.max_shard_bytes,
        read=read_options_for(options, shard.meta, names), ignore_index=options.ignore_index,
    )
    if len(wanted) == 0:
        return [_Unit(rows=(), style=None, first=True, **common)] if metrics else []
    # small chunks keep every worker busy on few shards; one unit per shard when in-process
    chunk = len(wanted) if workers == 1 else max(8, min(64, math.ceil(len(wanted) / (2 * workers))))
    return [
        _Unit(rows=tuple(int(r) for r in wanted[start : start + chunk]), style=options.render, first=i == 0, **common)
        for i, start in enumerate(range(0, len(wanted), chunk))
    ]


def selected_rows(
    shards: Sequence[Shard], options: ExportOptions, class_names: Sequence[str] | None
) -> list[np.ndarray] | None:
    """Rows of each shard that ``options.select`` keeps (None: all), from the small fields it needs.

    The selection sees the whole step (so "the 32 most confidently wrong" ranks across shards);
    rows are returned in shard order. A shard that cannot be read selects nothing here: its
    validation reports it.
    """
    selection = options.select
    if selection is None or selection.everything:
        return None
    source = f"step {shards[0].step}"
    common = set.intersection(*(set(s.fields) for s in shards))
    selection.check(common, class_names, source=source)  # names the fields the step has
    need = selection.image_stats
    # box fields become per-image results shard by shard: the step's boxes are never held at once
    box_names = sorted(selection.fields & set(BOX_FIELDS) & common) if need else []
    names = sorted(selection.fields & common - set(box_names))  # some fields are alternatives
    parts, sizes, stats = [], [], []
    for shard in shards:
        try:
            loaded = shard.load(names + box_names)
            ok = all(n in loaded and len(loaded[n]) == len(shard) for n in names + box_names)
            if ok and need:
                stats.append(_shard_stats(shard, loaded, options, selection, class_names))
        except (ShardError, ShardTooLargeError, RenderError):
            ok = False
        sizes.append(len(shard) if ok else 0)
        if ok:
            parts.append({n: loaded[n] for n in names})
    if not parts:
        return [np.zeros(0, np.int64) for _ in shards]
    arrays = {n: np.concatenate([p[n] for p in parts]) for n in names}
    step_stats = ImageStats.concat(stats) if need else None
    picked = np.sort(selection.select(arrays, class_names, n=sum(sizes), source=source, stats=step_stats))
    starts = np.cumsum([0] + sizes)
    return [picked[(picked >= a) & (picked < b)] - a for a, b in zip(starts[:-1], starts[1:], strict=True)]


def _shard_stats(
    shard: Shard, loaded: dict[str, np.ndarray], options: ExportOptions, selection: Selection, names: Sequence[str] | None
) -> ImageStats:
    """Per-image match results of one shard for the detector selections, read as the shard is drawn."""
    match = box_match_for(selection, options.render)
    try:
        return image_stats(
            loaded, read_options_for(options, shard.meta, tuple(names) if names is not None else None),
            image_shape_of(shard.fields), need=selection.image_stats,
            iou=match.iou, min_score=match.min_score, max_boxes=match.max_boxes,
        )  # fmt: skip
    except ConfigError as exc:
        raise ConfigError(f"{shard.path}: cannot select by boxes: {exc}") from None


# --------------------------------------------------------------------------- running


@dataclasses.dataclass
class ShardDone:
    """One shard's drawn examples, each with its unique name in the step."""

    step: int
    walltime: float
    examples: list[tuple[str, Rendered]]


@dataclasses.dataclass
class StepDone:
    """The end of one step: its grid cells, metrics and class names."""

    step: int
    walltime: float
    metrics: classification.ClassificationMetrics | None
    grid: list[np.ndarray]
    class_names: Sequence[str] | None
    measured: StepResults | None = None  # detection and segmentation metrics (exporter.metrics.step)
    mask_class_names: Sequence[str] | None = None  # what the class map ids name


def bad_shard(problems: list[Problem], options: ExportOptions, bad: list[Problem]) -> None:
    """Record a bad shard under ``skip_bad``, else raise the error naming file and problem."""
    if options.skip_bad:
        bad.extend(problems)
        return
    first = problems[0]
    more = f" (and {len(problems) - 1} more problem(s); run validate for all)" if len(problems) > 1 else ""
    cls = ShardFieldError if first.field else ShardFormatError
    raise cls(first.message + more + "; skip it with skip_bad=True (--skip-bad)", path=first.path, field=first.field)


def run(
    plan: Plan, options: ExportOptions, *, metrics: bool, bad: list[Problem], notes: list[str], progress: bool
) -> Iterator[ShardDone | StepDone]:
    """Render every planned shard in order: yields each shard's images, then each step's totals."""
    from tqdm.auto import tqdm

    schedule = _schedule(plan, options, metrics, notes)
    by_step: dict[int, list[_ShardWork]] = {}
    for w in schedule.work:
        by_step.setdefault(w.step, []).append(w)
    results: _Results | None = None
    bar = None
    finished = False
    try:
        results = _Results([u for w in schedule.work for u in w.units], schedule.workers)
        bar = tqdm(total=schedule.images, unit="img", desc="export", disable=not progress)
        for step in plan.steps:
            yield from _step(step, by_step.get(step, []), results, bar, options, metrics, bad, notes, schedule)
        finished = True
    finally:
        if bar is not None:
            bar.close()
        if results is not None:
            results.close(finished=finished)


def _step(
    step: int,
    work: list[_ShardWork],
    results: _Results,
    bar: Any,
    options: ExportOptions,
    metrics: bool,
    bad: list[Problem],
    notes: list[str],
    schedule: _Schedule,
) -> Iterator[ShardDone | StepDone]:
    """One step's shards, in order: their images as they come, then the step's totals."""
    names = tagging.UniqueNames()
    acc = classification.ClassificationMetrics(options.topk) if metrics else None
    measured = StepMetrics(step) if metrics else None
    keep = options.grid_max if options.grid else 0
    grid: list[np.ndarray] = []
    walltime = 0.0
    hidden = 0
    for w in work:
        outs = []  # a shard is written whole or not at all
        for unit in w.units:
            outs.append(next(results))
            bar.update(len(unit.rows))
        problems = _problems(w.shard, outs, options)
        if problems:
            bad_shard(problems, options, bad)
            continue
        walltime = max(walltime, float(w.shard.meta.created))
        hidden += sum(o.hidden_boxes for o in outs)
        notes.extend(str(p) for p in outs[0].warnings)
        if acc is not None:
            acc.add(outs[0].metric_arrays)
        if measured is not None and outs[0].measured is not None:
            measured.add(outs[0].measured, source=str(w.shard.path))
        done = []
        for o in outs:
            for r in o.examples:
                done.append((names.take(tagging.example_name(r.example_id, r.index), r.index), r))
                if r.pixels is not None and len(grid) < keep:
                    grid.append(r.pixels)
                r.pixels = None
        if done:
            yield ShardDone(step, float(w.shard.meta.created), done)
    if hidden:
        notes.append(
            f"step {step}: {hidden} boxes beyond --max-boxes ({options.render.max_boxes} per image) were not drawn; "
            "raise max_boxes (--max-boxes) to draw them"
        )
    if names.duplicates:
        notes.append(
            f"step {step}: {names.duplicates} example(s) share an id with an earlier one; "
            "they were named '<id>-dup<index>'"
        )
    if measured is not None:
        notes.extend(measured.notes)
    if walltime:
        yield StepDone(
            step, walltime, acc, grid, schedule.class_names.get(step),
            measured=None if measured is None else measured.result(),
            mask_class_names=_mask_names([w.shard for w in work]) or schedule.class_names.get(step),
        )  # fmt: skip


def _mask_names(shards: Sequence[Shard]) -> tuple[str, ...] | None:
    """The names of the class map ids: the last shard's that has them (the class-name rule, for masks)."""
    names = None
    for shard in shards:
        if shard.meta.mask_class_names:
            names = tuple(shard.meta.mask_class_names)
    return names


def _problems(shard: Shard, outs: list[_UnitResult], options: ExportOptions) -> list[Problem]:
    """What is wrong with a shard, from its units' results: validation first, then drawing errors."""
    problems = [p for o in outs for p in o.problems]
    render_errors = [o.render_error for o in outs if o.render_error]
    if render_errors and not problems:
        if not options.skip_bad:
            raise RenderError(f"{shard.path}: cannot draw {render_errors[0]}; skip it with skip_bad=True")
        problems = [Problem(str(shard.path), f"cannot draw {render_errors[0]}")]
    return problems
