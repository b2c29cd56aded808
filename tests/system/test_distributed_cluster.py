"""run_tasks on Dask: a LocalCluster made for the job, and real ``dask scheduler`` / ``dask worker``
processes, one SIGKILLed mid-job: every run's output is there exactly once, the lost run reran elsewhere."""

from __future__ import annotations

import collections
import signal
import threading
import time
from pathlib import Path

import pytest
from tasks import output_text, write_output

from exporter import distributed as dist
from exporter._files import is_temp_name
from exporter.distributed import RunTask, run_tasks
from exporter.errors import ClusterError

from .servers import free_port

pytest.importorskip("distributed", reason="the dask extra is not installed")


def _tasks(tmp_path: Path, n: int, **options) -> list[RunTask]:
    attempts = tmp_path / "attempts"
    attempts.mkdir(exist_ok=True)
    options = {"attempts": str(attempts), **options}
    return [RunTask(f"run{i}", str(tmp_path / "shards" / f"run{i}"), str(tmp_path / "logs" / f"run{i}"), options)
            for i in range(n)]


def _attempts(tmp_path: Path) -> list[tuple[str, int, str]]:
    """(run, pid, 'started' | 'finished') for every attempt record."""
    out = []
    for p in (tmp_path / "attempts").iterdir():
        run, pid, _, what = p.name.split(".")
        out.append((run, int(pid), what))
    return out


def _assert_each_output_once(tmp_path: Path, tasks: list[RunTask]) -> None:
    logs = tmp_path / "logs"
    assert sorted(p.name for p in logs.iterdir()) == sorted(t.run for t in tasks)
    for t in tasks:
        files = [p.name for p in (logs / t.run).iterdir()]
        # a write the SIGKILL cut short leaves at most a hidden temp file, which readers skip
        assert [f for f in files if not is_temp_name(f)] == ["output.txt"], files
        assert (logs / t.run / "output.txt").read_text() == output_text(t.shards_url)


def test_local_cluster_runs_each_run_once_and_collects_failures(tmp_path):
    tasks = _tasks(tmp_path, 4, fail=["run2"])
    results = run_tasks(tasks, "local", workers=2, task_fn=write_output)
    assert [r.run for r in results] == [t.run for t in tasks]
    assert [r.run for r in results if not r.ok] == ["run2"]
    assert results[2].error == "ValueError: run2 cannot be exported (as the test asked)"
    started = collections.Counter(run for run, _, what in _attempts(tmp_path) if what == "started")
    assert started["run2"] == 1 + dist.RETRIES  # submit(..., retries=2): three tries in all
    assert all(started[f"run{i}"] == 1 for i in (0, 1, 3))
    assert len({pid for _, pid, _ in _attempts(tmp_path)}) == 2  # two worker processes shared the runs
    _assert_each_output_once(tmp_path, [t for t in tasks if t.run != "run2"])


def test_a_running_scheduler_by_address(tmp_path, dask_cluster):
    tasks = _tasks(tmp_path, 4)
    results = run_tasks(tasks, dask_cluster.address, task_fn=write_output)
    assert all(r.ok for r in results), results
    pids = {pid for _, pid, _ in _attempts(tmp_path)}
    assert pids <= {w.pid for w in dask_cluster.workers}
    _assert_each_output_once(tmp_path, tasks)


def test_a_worker_killed_mid_job_loses_no_run_and_doubles_none(tmp_path, dask_cluster):
    tasks = _tasks(tmp_path, 6, sleep=1.0)
    victim = dask_cluster.workers[0]
    killed = threading.Event()

    def kill_when_both_workers_are_busy():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            busy = {pid for _, pid, what in _attempts(tmp_path) if what == "started"}
            if {w.pid for w in dask_cluster.workers} <= busy:
                victim.send_signal(signal.SIGKILL)
                killed.set()
                return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_when_both_workers_are_busy, daemon=True)
    killer.start()
    results = run_tasks(tasks, dask_cluster.address, task_fn=write_output)
    killer.join(5)
    assert killed.is_set() and victim.wait(10) == -signal.SIGKILL
    assert all(r.ok for r in results), results
    _assert_each_output_once(tmp_path, tasks)

    attempts = _attempts(tmp_path)
    survivor = dask_cluster.workers[1].pid
    lost = {run for run, pid, what in attempts if pid == victim.pid and what == "started"} - {
        run for run, pid, what in attempts if pid == victim.pid and what == "finished"
    }
    assert lost, "the victim was running a task when it was killed"
    for run in lost:
        assert (run, survivor, "finished") in attempts, f"{run} was not rerun on the other worker"


def test_an_unreachable_scheduler_is_a_cluster_error(tmp_path, monkeypatch):
    monkeypatch.setattr(dist, "CONNECT_TIMEOUT", "1s")
    address = f"tcp://127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    with pytest.raises(ClusterError, match=f"cannot reach the Dask scheduler at {address}"):
        run_tasks(_tasks(tmp_path, 1), address, task_fn=write_output)
    assert time.monotonic() - t0 < 10
