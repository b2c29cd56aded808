"""Scale-out over runs: one task per run, in this process, on a local Dask cluster, or on a running one.

``plan_run_tasks(root, logroot)`` finds the runs under ``root`` (``storage.find_runs``)
and makes one ``RunTask`` each: export ``root/<run>`` into ``logroot/<run>``.
``run_tasks(tasks, scheduler, task_fn=...)`` runs them and returns one ``RunResult``
per task, in task order; a run that failed has ``error`` set and the others still
finish. This module is the mechanism only and knows nothing of exporting: the
task function that exports a run is ``exporter.api.export_run_task``, and
``exporter.api.export_runs`` puts the two together (the layers only look down,
so the library calls this module, never the reverse).

A task is pure and idempotent: it gets URLs and options (never open files or
file-system objects) and writes its output whole under names of its own, so when
a worker is lost and Dask runs the task again elsewhere, the second run replaces
the first one's output and nothing is doubled. The export writes its event files
through a staging name and moves them in (``_files``), which is what makes that
true for ``exporter.api.export_run_task``.

>>> tasks = plan_run_tasks(locate("s3://evals/job7"), locate("s3://tb/job7"), {"incremental": True})  # doctest: +SKIP
>>> results = run_tasks(tasks, scheduler="tcp://10.0.0.5:8786", progress=True, task_fn=export_run_task)  # doctest: +SKIP
>>> [r.run for r in results if r.error]                                                          # doctest: +SKIP
[]
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ._checks import check_int, check_optional_int
from .errors import ClusterError, ConfigError, MissingDependencyError
from .storage import Location, find_runs, join

#: Where Dask runs the tasks: in this process, one after another (None); a LocalCluster made for the job
#: ("local"); or a running scheduler's address ("tcp://host:8786", "tls://...", "host:8786").
LOCAL = "local"
_ADDRESS = re.compile(r"^((tcp|tls|ucx)://)?([^\s/:\[\]]+|\[[0-9A-Fa-f:]+\]):\d+$")
#: How long a Client tries to reach a running scheduler.
CONNECT_TIMEOUT = "10s"
#: Times Dask reruns a task that raised (a lost worker is handled apart: the scheduler reschedules it).
RETRIES = 2


@dataclasses.dataclass(frozen=True)
class RunTask:
    """One run to export: everything a worker needs, as plain picklable values."""

    run: str
    shards_url: str
    logdir_url: str
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    storage_options: Mapping[str, Any] = dataclasses.field(default_factory=dict, repr=False)


@dataclasses.dataclass(frozen=True)
class RunResult:
    """What one run's task did: images and steps written, seconds taken, or the error that stopped it."""

    run: str
    images: int = 0
    steps: int = 0
    seconds: float = 0.0
    error: str | None = None
    warnings: tuple[str, ...] = ()  # what the run's export warned about (a worker's warnings never reach us otherwise)

    @property
    def ok(self) -> bool:
        return self.error is None


TaskFunction = Callable[[str, str, Mapping[str, Any], Mapping[str, Any]], RunResult]


def plan_run_tasks(root: Location, logroot: Location, options: Mapping[str, Any] | None = None) -> list[RunTask]:
    """One ``RunTask`` per run under ``root``, writing to the same relative folder under ``logroot``."""
    storage_options = dict(root.storage_options)
    return [
        RunTask(run, join(root, run).url, join(logroot, run).url, dict(options or {}), storage_options)
        for run in find_runs(root)
    ]


def run_tasks(tasks: Sequence[RunTask], scheduler: str | None = None, progress: bool = False, *,
              task_fn: TaskFunction | None = None, workers: int | None = None,
              retries: int = RETRIES) -> list[RunResult]:
    """Run ``task_fn`` once per task; one result per task, in task order, failures in ``error``.

    ``task_fn(shards_url, logdir_url, options, storage_options) -> RunResult``
    must be importable by name on the workers (``exporter.api.export_run_task``
    exports the run); it is required whenever there are tasks.

    ``scheduler`` None runs them here one after another; ``"local"`` starts a
    ``distributed.LocalCluster`` of ``workers`` processes (default: one per core,
    at most one per task) for this call and stops it after; anything else is a
    running scheduler's address. On Dask each task is ``Client.submit(...,
    pure=False, retries=retries)``; results are collected as they complete,
    under one tqdm bar counting runs.
    """
    tasks = list(tasks)
    workers = check_optional_int(workers, "workers", minimum=1)
    retries = check_int(retries, "retries", minimum=0)
    names = [t.run for t in tasks]
    if len(set(names)) != len(names):
        raise ConfigError(f"run names must be unique, got {sorted(n for n in set(names) if names.count(n) > 1)} twice")
    if scheduler is None:
        return _run_here(tasks, _task_function(task_fn), progress) if tasks else []
    if not isinstance(scheduler, str) or not (scheduler == LOCAL or _ADDRESS.match(scheduler)):
        raise ConfigError(f"scheduler must be None, 'local' or an address like tcp://host:8786, got {scheduler!r}")
    try:
        import distributed
    except ImportError as exc:
        raise MissingDependencyError(f"scheduler={scheduler!r} needs Dask's distributed: pip install 'summary-exporter[dask]'") from exc
    if not tasks:
        return []
    fn = _task_function(task_fn)
    with _client(distributed, scheduler, workers, len(tasks)) as client:
        return _run_on(client, distributed, tasks, fn, progress, retries)


def _task_function(task_fn: TaskFunction | None) -> TaskFunction:
    if task_fn is None:
        raise ConfigError("run_tasks needs task_fn=: exporter.api.export_run_task exports a run "
                          "(exporter.api.export_runs passes it)")
    if not callable(task_fn):
        raise ConfigError(f"task_fn must be a function (shards_url, logdir_url, options, storage_options) -> RunResult, "
                          f"got {task_fn!r}")
    return task_fn


def _run_here(tasks: list[RunTask], task_fn: TaskFunction, progress: bool) -> list[RunResult]:
    results = []
    with _bar(len(tasks), progress) as bar:
        for task in tasks:
            try:
                result = _named(task_fn(task.shards_url, task.logdir_url, task.options, task.storage_options), task)
            except Exception as exc:  # noqa: BLE001 - a failed run is reported; the others still run
                result = RunResult(task.run, error=_describe(exc))
            results.append(result)
            _advance(bar, result)
    return results


class _client:
    """A ``distributed.Client`` on a cluster made for the job (closed after) or on the given scheduler."""

    def __init__(self, distributed: Any, scheduler: str, workers: int | None, ntasks: int):
        self.distributed, self.scheduler, self.workers, self.ntasks = distributed, scheduler, workers, ntasks
        self.cluster: Any = None

    def __enter__(self) -> Any:
        import os

        d = self.distributed
        if self.scheduler == LOCAL:
            n = self.workers or max(1, min(os.cpu_count() or 1, self.ntasks))
            try:
                # processes, one thread each: an export is CPU-bound Python; no dashboard port to collide on
                self.cluster = d.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                              dashboard_address=None, host="127.0.0.1")
            except Exception as exc:
                raise ClusterError(f"could not start a local Dask cluster of {n} workers: {exc}") from exc
            self.client = d.Client(self.cluster)
            return self.client
        try:
            self.client = d.Client(self.scheduler, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            raise ClusterError(f"cannot reach the Dask scheduler at {self.scheduler}: {exc}") from exc
        return self.client

    def __exit__(self, *exc: object) -> None:
        try:
            self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()


def _run_on(client: Any, distributed: Any, tasks: list[RunTask], task_fn: TaskFunction, progress: bool,
            retries: int) -> list[RunResult]:
    futures = {
        client.submit(task_fn, t.shards_url, t.logdir_url, dict(t.options), dict(t.storage_options),
                      pure=False, retries=retries): t
        for t in tasks
    }
    by_run: dict[str, RunResult] = {}
    with _bar(len(tasks), progress) as bar:
        for future in distributed.as_completed(futures):
            task = futures[future]
            try:
                result = _named(future.result(), task)
            except Exception as exc:  # noqa: BLE001 - raised after its retries, or its workers kept dying (KilledWorker)
                result = RunResult(task.run, error=_describe(exc))
            by_run[task.run] = result
            _advance(bar, result)
            future.release()
    return [by_run[t.run] for t in tasks]


def _named(result: Any, task: RunTask) -> RunResult:
    """The task function's result under the task's run name (the function only knows URLs)."""
    if not isinstance(result, RunResult):
        raise TypeError(f"the task function must return a RunResult, got {type(result).__name__}")
    return dataclasses.replace(result, run=task.run)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _bar(total: int, progress: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="run", desc="runs", disable=not progress, leave=True)


def _advance(bar: Any, result: RunResult) -> None:
    if result.error is not None:
        bar.set_postfix_str(f"failed: {result.run}", refresh=False)
    bar.update(1)

