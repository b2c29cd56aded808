"""What the command line and notebooks call: ``export``, ``inspect``, ``validate``, ``render``, ``export_runs``.

>>> report = export("eval_shards", "tb/eval", ExportOptions(grid=True))   # doctest: +SKIP
>>> print(report)                                                          # doctest: +SKIP
exported 3 step(s), 96 image(s) under 35 tag(s) to tb/eval in 2.1s
run: tensorboard --logdir tb/eval

These are small façades: the pipeline (``exporter._pipeline``) plans and draws,
``exporter.tensorboard`` writes and installs the event file,
``exporter._incremental`` decides what an ``--incremental`` export appends,
``exporter._remote`` installs an export into a logdir on an object store, and
``exporter.distributed`` runs ``export_runs``' one task per run, here or on Dask.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import itertools
import os
import shlex
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from . import _pipeline
from . import tags as tagging
from ._checks import check_type
from ._files import atomic_write, is_temp_name, prepare_output_dir, remove_stale
from ._incremental import ExportMode, ExportState
from ._lock import LOCK_FILE, OutputLock
from ._procs import heap_arrays, raise_if_signalled
from ._remote import StagedLogdir, upload_tree
from .changes import ChangeCounts, ChangeTracker, StepChanges
from .distributed import RunResult, plan_run_tasks, run_tasks
from .errors import ConfigError, ExporterError, NothingExportedError, OutputError, RunNotFoundError, StorageError
from .manifest import incomplete_dumps
from .metrics import classification, detection, segmentation
from .metrics.step import DetectionCurves
from .options import ExportOptions
from .render import render_confusion_matrix, render_grid, thumbnail
from .schema import CANONICAL_FIELDS, step_dirname
from .shards import DEFAULT_MAX_BYTES, FieldInfo, Problem, Run, ShardPath, find_shard_files, open_run, shard_path
from .storage import Location, locate
from .tensorboard import (
    EventWriter,
    encode_image,
    image_colorspace,
    png_encoder_name,
    recover_installation,
    tensorboard_command,
)
from .validation import validate_shard

__all__ = [
    "ExportMode",
    "ExportOptions",
    "ExportReport",
    "RenderedFiles",
    "RunSummary",
    "RunsReport",
    "export",
    "export_run_task",
    "export_runs",
    "inspect",
    "render",
    "shard_files",
    "validate",
]

ShardsArg = str | os.PathLike | Location | Run


# --------------------------------------------------------------------------- reports


@dataclasses.dataclass
class ExportReport:
    """What ``export`` wrote: printed as a short summary with the command to view it."""

    logdir: Path | Location  # a URL's Location when the logdir is on a store
    steps: list[int]
    images: int
    tags: int
    bad: list[Problem]
    warnings: list[str]
    tensorboard_command: str
    event_file: Path | Location | None = None
    seconds: float = 0.0
    mode: ExportMode = ExportMode.FULL
    changes: list[ChangeCounts] = dataclasses.field(default_factory=list)  # with ``options.changes``, per step

    def __str__(self) -> str:
        lines = [
            f"exported {len(self.steps)} step(s), {self.images} image(s) under {self.tags} tag(s) "
            f"to {self.logdir} in {self.seconds:.1f}s"
        ]
        lines += [f"changes at {c} (tags {tagging.CHANGES_PREFIX}/fixed/..., /broken/...)" for c in self.changes]
        lines += [f"skipped bad shard: {p}" for p in self.bad]
        lines += [f"warning: {w}" for w in self.warnings]
        lines.append(f"run: {self.tensorboard_command}")
        return "\n".join(lines)


@dataclasses.dataclass
class RunSummary:
    """What a run folder holds, from shard headers and metadata only (no array is loaded)."""

    path: ShardPath
    steps: list[int]
    shards_per_step: dict[int, int]
    examples_per_step: dict[int, int]
    fields: dict[str, FieldInfo]
    class_names: list[str] | None
    format_versions: list[str]
    box_formats: list[str]
    ignored: list[ShardPath]
    incomplete: list[str]

    def __str__(self) -> str:
        lines = [f"run: {self.path}"]
        lines.append(f"format version: {', '.join(self.format_versions)}")
        total = sum(self.examples_per_step.values())
        lines.append(f"steps: {len(self.steps)}, shards: {sum(self.shards_per_step.values())}, examples: {total}")
        shown: list[int | None] = [*self.steps] if len(self.steps) <= 12 else [*self.steps[:6], None, *self.steps[-5:]]
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


# --------------------------------------------------------------------------- export


def _checked(options: ExportOptions) -> ExportOptions:
    """The preamble of ``export`` and ``render``: options of the right type, a missing fpng reported before any work."""
    check_type(options, ExportOptions, "options", "an ExportOptions")
    png_encoder_name(options.png_encoder)
    return options


def export(
    shards: ShardsArg,
    logdir: str | os.PathLike | Location,
    options: ExportOptions = ExportOptions(),
    *,
    progress: bool = False,
    incremental: bool = False,
    wait: bool | float = False,
    storage_options: Mapping[str, Any] | None = None,
) -> ExportReport:
    """Render a run's shards into TensorBoard events in ``logdir``.

    Steps are written in ascending order, each example under a tag that is the
    same at every step (see ``exporter.tags``). Events go to a hidden staging
    file inside ``logdir`` and are moved in when complete, replacing the event
    file of an earlier export, so exporting twice never doubles the events.

    ``incremental=True`` exports only shards not exported to ``logdir`` before
    (remembered in ``logdir/.summary-exporter-state.json``), appending a new
    event file when every new shard has a step above the last one exported.
    When an older (or the same) step arrives late, or the options changed, the
    whole run is rewritten instead: TensorBoard purges the events after a step
    that is written again, so steps only ever go up within a run.

    One export (or ``render``) at a time writes a folder: a second one fails at
    once with ``LogdirBusyError`` naming the holder, or with ``wait=True`` (or
    a number of seconds) waits for it. What a killed export left behind is
    finished or removed by the next one.

    ``shards`` and ``logdir`` may be fsspec URLs (``s3://evals/run1``,
    ``gs://...``), with ``storage_options`` for their file systems. A remote
    logdir is rendered into a local staging folder, then each event file is
    uploaded whole under its final name, the replaced ones are removed, and
    the state goes last (``exporter._remote``); the next export repairs what a
    crash in between left. There is no lock on an object store: two exports
    must not write the same remote logdir at once.

    >>> report = export("eval_shards", "tb/eval", ExportOptions(workers=4))   # doctest: +SKIP
    >>> report.tensorboard_command                                             # doctest: +SKIP
    'tensorboard --logdir tb/eval'
    >>> export("s3://evals/run1", "s3://tb/run1", storage_options={"profile": "eval"})   # doctest: +SKIP
    """
    options = _checked(options)
    t0 = time.perf_counter()
    shards = _source(shards, storage_options)
    out = _output(logdir, storage_options)
    if isinstance(out, Location):
        report = _export_remote(shards, out, options, progress=progress, incremental=incremental)
        report.seconds = time.perf_counter() - t0
        return report
    logdir = out
    with _output_folder(logdir, wait):  # a LOGDIR we cannot write is refused before any work, naming LOGDIR
        report = _export_locked(shards, logdir, options, progress=progress, incremental=incremental)
    report.seconds = time.perf_counter() - t0
    return report


@contextlib.contextmanager
def _output_folder(outdir: Path, wait: bool | float) -> Iterator[None]:
    """Create or check ``outdir`` (refused before any work when we cannot write it) and hold its lock.

    A failed (or interrupted) export leaves no trace, not even the folder it
    created: the folder is removed only while holding its lock, so never under
    an export that is using it. An export waiting for that lock then finds the
    lock file gone (``OutputLock`` notices) and starts again: it creates the folder anew.
    """
    created = False
    lock: OutputLock | None = None
    try:
        for attempt in itertools.count(1):
            created = not os.path.lexists(outdir)
            lock = OutputLock(outdir, wait=wait)
            try:
                prepare_output_dir(outdir)
                lock.acquire()
                break
            except OutputError as exc:
                if exc.errno == errno.ENOENT and not os.path.lexists(outdir) and attempt < 5:
                    continue  # the export we waited for failed and removed the folder it had made: make it again
                raise
        try:
            yield
        finally:
            if lock is not None:
                lock.release()
    except BaseException:
        if lock is not None:
            lock.release()  # harmless when not held: an interruption may come between any two lines above
        if created:
            _remove_created(outdir)
        raise


def _remove_created(folder: Path) -> None:
    """Remove a folder this export created, if it holds nothing but the lock file (and our temps).

    Only while holding its lock: another export that has it (having waited for
    ours, or started just after) is using the folder, which then stays.
    """
    try:
        with OutputLock(folder, wait=False):
            names = {p.name for p in folder.iterdir()}
            if names - {LOCK_FILE} - {n for n in names if is_temp_name(n)}:
                return
            remove_stale(folder)
            (folder / LOCK_FILE).unlink(missing_ok=True)
            folder.rmdir()
    except OSError:
        pass


def _export_locked(
    shards: ShardsArg, logdir: Path, options: ExportOptions, *, progress: bool, incremental: bool
) -> ExportReport:
    """``export`` while holding ``logdir``'s lock: repair what a dead export left, then write."""
    notes = [n for n in [recover_installation(logdir)] if n]  # before remove_stale: it may need the staged file
    remove_stale(logdir)
    plan = _pipeline.plan(shards, options)
    bad = list(plan.bad)
    notes += plan.ignored_note()
    state = ExportState.load(logdir, options.output_hash())
    mode = ExportMode.FULL
    every_step = plan.steps
    if incremental:
        decision = state.decide(plan.steps)
        if decision.mode is ExportMode.APPEND and options.group_tags == "outcome":
            decision = dataclasses.replace(decision, mode=ExportMode.REWRITE, steps=plan.steps, note=(
                "group_tags='outcome' groups by the outcome at the last step: the whole run is rewritten so every "
                "step's tags follow the new last step"
            ))  # fmt: skip
        mode, plan = decision.mode, dataclasses.replace(plan, steps=decision.steps)
        if decision.note:
            notes.append(decision.note)
        if mode is ExportMode.UP_TO_DATE:
            _warn(notes)
            return ExportReport(
                logdir=logdir, steps=[], images=0, tags=0, bad=bad, warnings=notes,
                tensorboard_command=tensorboard_command(logdir), mode=mode,
            )
    images = 0
    steps: list[int] = []
    tracker = ChangeTracker(options, plan.steps, notes)
    exported = max((s for s in every_step if s < min(plan.steps, default=0)), default=None)
    if options.changes and mode is ExportMode.APPEND and exported is not None:
        tracker.start_after(every_step[exported])  # the first new step compares with the last one exported
    changes: list[ChangeCounts] = []
    with EventWriter(logdir) as writer:
        for item in _pipeline.run(plan, options, metrics=options.metrics, bad=bad, notes=notes, progress=progress):
            if isinstance(item, _pipeline.ShardDone):
                for name, r in item.examples:
                    tag, description = tracker.tag(plan.steps[item.step], name, r.example_id, r.index)
                    writer.add_image(
                        tag, r.data, height=r.height, width=r.width, colorspace=r.colorspace,
                        step=item.step, walltime=item.walltime, description=description,
                    )
                    images += 1
                continue
            images += _write_step(writer, item, options, notes)
            found = tracker.step(plan.steps[item.step], skip={p.path for p in bad})
            if found is not None:
                images += _write_changes(writer, found, item.walltime, options)
                changes += [found.counts] if found.counts else []
            steps.append(item.step)
        need = writer.samples_needed()
        notes.extend(writer.sample_warnings())
        if not writer.events and bad:
            raise NothingExportedError(
                f"nothing was exported: every shard was bad ({len(bad)}); {logdir} was left unchanged. "
                "Run validate for the details",
                bad=bad,
            )
        append = mode is ExportMode.APPEND
        raise_if_signalled()  # the last moment to stop before anything in logdir changes
        event_file = writer.install(replace=not append, also=state.after(plan.steps, replace=not append))
    _warn(notes)
    return ExportReport(
        logdir=logdir, steps=steps, images=images, tags=len(writer.tags), bad=bad, warnings=notes,
        tensorboard_command=tensorboard_command(logdir, need), event_file=event_file, mode=mode, changes=changes,
    )


def _write_changes(writer: EventWriter, found: StepChanges, walltime: float, options: ExportOptions) -> int:
    """A step's ``changes/...`` pictures, then its ``summary/...`` tables; returns how many images were written."""
    images = 0
    for kind, name, img, description in found.pictures():
        data = encode_image(img, options.image_format, options.jpeg_quality, png_encoder=options.png_encoder)
        writer.add_image(
            tagging.change_tag(kind, name), data, height=img.height, width=img.width, colorspace=image_colorspace(img),
            step=found.step, walltime=walltime, description=description,
        )
        images += 1
    for tag, markdown, description in found.tables():
        writer.add_text(tag, markdown, step=found.step, walltime=walltime, description=description)
    return images


def _source(shards: ShardsArg, storage_options: Mapping[str, Any] | None) -> Path | Location | Run:
    """The shards argument resolved once: a Run as it is, a local path as a Path, a URL as its Location."""
    return shards if isinstance(shards, Run) else shard_path(shards, storage_options)


def _output(path: str | os.PathLike | Location, storage_options: Mapping[str, Any] | None) -> Path | Location:
    """An output folder: a local path as a Path (today's code path), a URL as its Location (an unknown scheme is refused)."""
    if isinstance(path, (str, Location)):
        location = locate(path, storage_options)
        return location if not location.is_local else Path(location.path)
    return Path(path)


def _export_remote(shards: ShardsArg, target: Location, options: ExportOptions, *, progress: bool,
                   incremental: bool) -> ExportReport:
    """``export`` into a logdir on a store: the local export into a staging folder, then installed object by object."""
    with StagedLogdir(target) as staged:
        _warn(staged.notes)
        try:
            report = _export_locked(shards, staged.staging, options, progress=progress, incremental=incremental)
        except NothingExportedError as exc:
            raise NothingExportedError(str(exc).replace(str(staged.staging), str(target)), bad=exc.bad) from None
        event_file = staged.install()
    # the command names the staging folder: say the URL instead
    command = report.tensorboard_command.replace(shlex.quote(str(staged.staging)), shlex.quote(target.url), 1)
    return dataclasses.replace(report, logdir=target, event_file=event_file, tensorboard_command=command,
                               warnings=staged.notes + report.warnings)


def _write_step(writer: EventWriter, item: _pipeline.StepDone, options: ExportOptions, notes: list[str]) -> int:
    """A step's grid and metrics, after its examples; returns how many images were written."""
    images = 0

    def add_picture(tag: str, img: Any) -> None:
        data = encode_image(img, options.image_format, options.jpeg_quality, png_encoder=options.png_encoder)
        writer.add_image(
            tag, data, height=img.height, width=img.width, colorspace=image_colorspace(img),
            step=item.step, walltime=item.walltime,
        )

    if item.grid:
        add_picture(tagging.grid_tag(options.tag_prefix), _grid_image(item.grid))
        images += 1
    _write_measured(writer, item, notes)
    m = item.metrics
    if m is None:
        return images
    if m.total:
        writer.add_scalar(tagging.ACCURACY_TAG, m.correct / m.total, step=item.step, walltime=item.walltime)
    if m.topk_total:
        writer.add_scalar(
            tagging.topk_tag(options.topk), m.topk_correct / m.topk_total, step=item.step, walltime=item.walltime
        )
    classes = max(m.classes_seen, len(item.class_names or ()) if m.classes_seen else 0)
    if classes > classification.MAX_CLASSES:
        notes.append(
            f"step {item.step}: confusion matrix and PR curves not written ({classes} classes; they are written "
            f"for at most {classification.MAX_CLASSES})"
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
            add_picture(tagging.CONFUSION_MATRIX_TAG, img)
            images += 1
    if m.pr.num_classes:
        tags = tagging.pr_curve_tags(m.pr.num_classes, item.class_names)
        writer.add_pr_curves(tags, m.pr, step=item.step, walltime=item.walltime)
    return images


def _write_measured(writer: EventWriter, item: _pipeline.StepDone, notes: list[str]) -> None:
    """A step's detection and segmentation scalars and detection PR curves; a -1 (nothing measurable) is left out."""
    r = item.measured
    if r is None:
        return
    at: dict[str, Any] = dict(step=item.step, walltime=item.walltime)
    for metrics, masks in ((r.detection, False), (r.mask_detection, True)):
        if metrics is None:
            continue
        for name, value in metrics.scalars().items():
            if value != detection.NO_GT:
                writer.add_scalar(tagging.detection_tag(name, masks=masks), value, **at)
        if masks or r.class_agnostic:
            continue  # per class: boxes only, and only when the boxes have classes
        measured = {k: v for k, v in metrics.per_class_AP.items() if v != detection.NO_GT}
        if len(measured) > classification.MAX_CLASSES:
            notes.append(
                f"step {item.step}: per-class detection AP and PR curves not written ({len(measured)} classes; "
                f"they are written for at most {classification.MAX_CLASSES})"
            )
            continue
        ap_tags = tagging.class_tags(tagging.DETECTION_AP_PREFIX, measured, item.class_names)
        for k, value in measured.items():
            writer.add_scalar(ap_tags[k], value, **at)
        ids = sorted(measured)
        pr_tags = tagging.class_tags(tagging.DETECTION_PR_CURVE_PREFIX, ids, item.class_names)
        writer.add_pr_curves([pr_tags[k] for k in ids], DetectionCurves(metrics, ids), **at)
    seg = r.segmentation
    if seg is not None:
        for tag, value in ((tagging.PIXEL_ACCURACY_TAG, seg.pixel_accuracy), (tagging.MEAN_IOU_TAG, seg.mean_iou)):
            if value != segmentation.NO_PIXELS:
                writer.add_scalar(tag, value, **at)
        iou_tags = tagging.class_tags(tagging.SEGMENTATION_IOU_PREFIX, seg.per_class_iou, item.mask_class_names)
        for k, value in seg.per_class_iou.items():
            writer.add_scalar(iou_tags[k], value, **at)


def _grid_image(cells: list[np.ndarray]) -> Any:
    """A step's first examples on one sheet, each shrunk to fit a grid cell so the sheet stays viewable."""
    from PIL import Image

    return render_grid([thumbnail(Image.fromarray(pixels)) for pixels in cells])


def _warn(notes: list[str]) -> None:
    for note in notes:
        warnings.warn(note, stacklevel=3)


# --------------------------------------------------------------------------- many runs


@dataclasses.dataclass
class RunsReport:
    """What ``export_runs`` did: one ``distributed.RunResult`` per run, in run order; ``failed`` lists the others."""

    root: str
    logroot: str
    results: list[RunResult]
    seconds: float = 0.0

    @property
    def failed(self) -> list[RunResult]:
        return [r for r in self.results if not r.ok]

    def __str__(self) -> str:
        done = [r for r in self.results if r.ok]
        lines = [
            f"exported {len(done)} of {len(self.results)} run(s) from {self.root} to {self.logroot}: "
            f"{sum(r.images for r in done)} image(s), {sum(r.steps for r in done)} step(s) in {self.seconds:.1f}s"
        ]
        lines += [f"warning: {r.run}: {w}" for r in self.results for w in r.warnings]
        lines += [f"failed: {r.run}: {r.error}" for r in self.failed]
        if self.failed:
            lines.append(f"{len(self.failed)} of {len(self.results)} run(s) failed: {', '.join(r.run for r in self.failed)}")
        return "\n".join(lines)


def export_runs(
    root: str | os.PathLike | Location,
    logroot: str | os.PathLike | Location,
    options: ExportOptions = ExportOptions(),
    *,
    scheduler: str | None = None,
    progress: bool = False,
    incremental: bool = False,
    storage_options: Mapping[str, Any] | None = None,
    cluster_workers: int | None = None,
) -> RunsReport:
    """Export every run folder under ``root`` into ``logroot/<its path below root>``, as ``export`` would each.

    A run folder is one holding ``step-*`` folders (``storage.find_runs``; one
    listing on an object store). ``scheduler`` None exports them here, one
    after another; ``"local"`` starts a Dask LocalCluster of ``cluster_workers``
    processes for the call; an address (``tcp://host:8786``) uses a running
    cluster, whose workers need this package installed. On Dask each run is one
    task (``export_run_task``), exported with ``workers=1`` (Dask's worker
    processes are daemonic and cannot start a process pool; Dask supplies the
    parallelism), retried on another worker if its worker dies: the export's
    staging and whole-file installation make a rerun replace its own output, so
    nothing is doubled. A run that fails is reported in ``failed``; the others
    still finish. ``root`` and ``logroot`` may be URLs.

    >>> report = export_runs("s3://evals/job7", "s3://tb/job7", scheduler="tcp://10.0.0.5:8786")  # doctest: +SKIP
    >>> [r.run for r in report.failed]                                                           # doctest: +SKIP
    []
    """
    options = _checked(options)
    t0 = time.perf_counter()
    if scheduler is not None:
        options = dataclasses.replace(options, workers=1)
    tasks = plan_run_tasks(locate(root, storage_options), locate(logroot, storage_options),
                           {"export": options, "incremental": bool(incremental)})
    if not tasks:
        raise RunNotFoundError(f"{root}: no run folders (folders holding step-* folders) found")
    results = run_tasks(tasks, scheduler, progress, task_fn=export_run_task, workers=cluster_workers)
    return RunsReport(str(locate(root, storage_options)), str(locate(logroot, storage_options)), results,
                      time.perf_counter() - t0)


def export_run_task(shards_url: str, logdir_url: str, options: Mapping[str, Any],
                    storage_options: Mapping[str, Any]) -> RunResult:
    """One run's ``export`` as a task of ``distributed.run_tasks``, on whichever worker runs it.

    ``options`` holds ``"export"`` (an ``ExportOptions``) and ``"incremental"``.
    Pure and idempotent: it reads ``shards_url`` and writes only ``logdir_url``,
    through the export's staging and whole-file installation, so running it
    again replaces its own output. Its warnings come back in the result, and so
    does a library error about the run (bad shards, a LOGDIR that cannot be
    written): only a store's failure (``StorageError``) is raised, for Dask to retry.
    """
    import multiprocessing

    export_options = options.get("export", ExportOptions())
    if multiprocessing.current_process().daemon and export_options.workers != 1:
        export_options = dataclasses.replace(export_options, workers=1)  # a daemonic process has no children
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught, heap_arrays():  # Dask's malloc setting costs 2-3x here
        warnings.simplefilter("always")
        try:
            report = export(shards_url, logdir_url, export_options, incremental=bool(options.get("incremental", False)),
                            storage_options=storage_options)
        except StorageError:
            raise  # the store failed: worth another try (Dask retries the task, elsewhere if need be)
        except ExporterError as exc:  # the run itself is wrong: trying again would fail again
            return RunResult(shards_url, seconds=time.perf_counter() - t0, error=f"{type(exc).__name__}: {exc}")
    notes = tuple(dict.fromkeys(str(w.message) for w in caught if not issubclass(w.category, DeprecationWarning)))
    return RunResult(shards_url, images=report.images, steps=len(report.steps), seconds=report.seconds, warnings=notes)


# --------------------------------------------------------------------------- render to files


def render(
    shards: ShardsArg,
    outdir: str | os.PathLike | Location,
    options: ExportOptions = ExportOptions(),
    *,
    progress: bool = False,
    wait: bool | float = False,
    storage_options: Mapping[str, Any] | None = None,
) -> RenderedFiles:
    """Draw the same overlays as ``export`` into PNG files: ``outdir/step-<step>/<id>.png``.

    Returns the files written, a list of paths whose ``bad`` lists the shards
    ``skip_bad`` left out.

    File names come from ``exporter.tags.safe_filename`` and never leave
    ``outdir``; with ``options.grid`` each step also gets ``grid.png``.
    ``shards`` and ``outdir`` may be fsspec URLs: a remote outdir gets the
    files drawn into a local staging folder, each uploaded whole (no lock there).

    >>> paths = render("eval_shards", "overlays", ExportOptions(max_per_step=16))   # doctest: +SKIP
    """
    options = dataclasses.replace(_checked(options), image_format="png")
    shards = _source(shards, storage_options)
    out = _output(outdir, storage_options)
    if isinstance(out, Location):
        return _render_remote(shards, out, options, progress=progress)
    outdir = out
    with _output_folder(outdir, wait):
        remove_stale(outdir)
        return _render_locked(shards, outdir, options, progress=progress)


class RenderedFiles(list):
    """The files ``render`` wrote: a list of paths (Locations for a URL), whose ``bad`` lists the shards
    ``skip_bad`` left out."""

    def __init__(self, files: Iterable[Path | Location] = (), bad: Iterable[Problem] = ()):
        super().__init__(files)
        self.bad: list[Problem] = list(bad)


def _render_remote(shards: ShardsArg, target: Location, options: ExportOptions, *, progress: bool) -> RenderedFiles:
    """``render`` into a folder on a store: drawn into a local staging folder, each file then uploaded whole."""
    staging = Path(tempfile.mkdtemp(prefix="summary-exporter-stage-"))
    try:
        files = _render_locked(shards, staging, options, progress=progress)
        return RenderedFiles(upload_tree(staging, files, target), files.bad)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _render_locked(shards: ShardsArg, outdir: Path, options: ExportOptions, *, progress: bool) -> RenderedFiles:
    plan = _pipeline.plan(shards, options)
    bad = list(plan.bad)
    notes = plan.ignored_note()
    written = RenderedFiles()
    tracker = ChangeTracker(options, plan.steps, notes)
    for item in _pipeline.run(plan, options, metrics=False, bad=bad, notes=notes, progress=progress):
        folder = outdir / step_dirname(item.step)
        folder.mkdir(parents=True, exist_ok=True)
        if isinstance(item, _pipeline.ShardDone):
            for name, r in item.examples:
                written.append(_write_file(folder, tagging.file_stem(name) + tagging.EXAMPLE_SUFFIX, r.data))
            continue
        if item.grid:
            sheet = _grid_image(item.grid)
            data = encode_image(sheet, png_encoder=options.png_encoder)
            written.append(_write_file(folder, tagging.GRID_FILENAME, data))
        found = tracker.step(plan.steps[item.step], skip={p.path for p in bad})
        if found is not None:
            written += _write_change_files(folder, found, options)
    notes += [f"skipped bad shard: {p}" for p in bad]
    _warn(notes)
    written.bad = bad
    return written


def _write_change_files(folder: Path, found: StepChanges, options: ExportOptions) -> list[Path]:
    """``render``'s form of a step's changes: ``changes/<kind>/<name>.png`` and the tables as ``summary/<name>.md``."""
    written = []
    for kind, name, img, _ in found.pictures():
        place = folder / tagging.CHANGES_PREFIX / kind
        place.mkdir(parents=True, exist_ok=True)
        data = encode_image(img, png_encoder=options.png_encoder)
        written.append(_write_file(place, tagging.file_stem(name) + tagging.EXAMPLE_SUFFIX, data))
    for tag, markdown, _ in found.tables():
        group, name = tag.split("/")  # summary/changes, summary/worst: fixed tags of the tags module
        (folder / group).mkdir(exist_ok=True)
        written.append(_write_file(folder / group, name + ".md", markdown.encode() + b"\n"))
    return written


def _write_file(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    if path.parent != folder or name in ("", ".", "..") or os.sep in name or "/" in name or "\x00" in name:
        raise ConfigError(f"refusing to write {name!r}: it would leave {folder}")  # the tags module prevents this
    return atomic_write(path, data, fsync=False)  # whole or absent; durability is not worth an fsync per image


# --------------------------------------------------------------------------- inspect and validate


def inspect(
    shards: str | os.PathLike | Run, *, dumps: str = "latest", storage_options: Mapping[str, Any] | None = None
) -> RunSummary:
    """Summarise a run folder from metadata and array headers; ``print()`` it to read it at a glance.

    ``shards`` may be an fsspec URL: then one listing, and a few range requests
    per shard for its zip directory and headers, plus one small GET per dump
    manifest; no array is fetched.

    >>> print(inspect("eval_shards"))                      # doctest: +SKIP
    run: eval_shards
    steps: 2, shards: 4, examples: 512
    ...
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the summary lists ignored dumps itself
        run = shards if isinstance(shards, Run) else open_run(shards, dumps=dumps, storage_options=storage_options)
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
        incomplete=incomplete_dumps(all_shards),
    )


def shard_files(shards: str | os.PathLike, *, storage_options: Mapping[str, Any] | None = None) -> list[ShardPath]:
    """Every shard file under ``shards`` (a run folder, a step folder or one file, or a URL), older dumps included."""
    files = find_shard_files(shards, storage_options)
    if not files:
        raise RunNotFoundError(f"{shards}: no shard files (*.npz) found")
    return files


def validate(
    shards: str | os.PathLike, *, max_bytes: int = DEFAULT_MAX_BYTES, storage_options: Mapping[str, Any] | None = None
) -> list[Problem]:
    """Every problem of every shard file under ``shards`` (a folder or a URL; older dumps included). Empty = all valid.

    >>> for problem in validate("eval_shards"):           # doctest: +SKIP
    ...     print(problem)
    """
    return [p for f in shard_files(shards, storage_options=storage_options) for p in validate_shard(f, max_bytes=max_bytes)]
