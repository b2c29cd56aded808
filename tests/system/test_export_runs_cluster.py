"""export-runs on Dask: a LocalCluster made for the job (--scheduler local), and real ``dask scheduler`` /
``dask worker`` processes reading and writing s3:// (moto), one worker SIGKILLed in the middle of an export:
every run's logdir ends with the events of a plain export of that run, exactly once."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import pytest
from runs import write_run
from test_export_runs import RUNS, make_root
from test_export_urls import assert_same_events
from test_shards_urls import upload_tree

from exporter import api
from exporter._files import is_temp_name
from exporter._lock import LOCK_FILE
from exporter.api import ExportOptions
from exporter.cli import main

from .test_storage_capture import _bucket, _download

pytest.importorskip("distributed", reason="the dask extra is not installed")

OPTIONS = ExportOptions(workers=1)


def _plain(root: Path, runs, out: Path) -> Path:
    for run in runs:
        api.export(root / run, out / run, OPTIONS)
    return out


def test_scheduler_local_gives_what_plain_exports_give(tmp_path, capsys):
    root = make_root(tmp_path / "root")
    plain = _plain(root, RUNS, tmp_path / "plain")
    assert main(["export-runs", str(root), str(tmp_path / "logs"), "--scheduler", "local", "--dask-workers", "2",
                 "--no-progress"]) == 0
    assert capsys.readouterr().out.startswith("exported 3 of 3 run(s)")
    for run in RUNS:
        assert_same_events(tmp_path / "logs" / run, plain / run, run)


def test_a_running_cluster_between_buckets(tmp_path, s3_server, dask_cluster):
    root = make_root(tmp_path / "root")
    plain = _plain(root, RUNS, tmp_path / "plain")
    url = upload_tree(root, f"{s3_server}/evals").url
    report = api.export_runs(url, f"{s3_server}/tb", ExportOptions(workers="auto"), scheduler=dask_cluster.address)
    assert report.failed == [] and [r.run for r in report.results] == RUNS
    bucket = _bucket(s3_server)
    for run in RUNS:
        got = _download(bucket, f"tb/{run}/", tmp_path / "copy" / run)
        assert_same_events(got, plain / run, run)
        assert len([p for p in got.iterdir() if "tfevents" in p.name]) == 1


def _holder(logdir: Path) -> int | None:
    try:
        return json.loads((logdir / LOCK_FILE).read_text()).get("pid")
    except (OSError, ValueError, AttributeError):
        return None


def test_a_worker_killed_mid_export_loses_no_run_and_doubles_no_event(tmp_path, dask_cluster):
    runs = [f"run{i}" for i in range(6)]
    root = tmp_path / "root"
    for run in runs:  # enough to draw that an export takes a while: 2 steps of 48 images 96 x 96
        write_run(root / run, steps=(100, 200), n=48, image_shape=(96, 96), class_names=["cat", "dog", "bird"])
    logs = tmp_path / "logs"
    victim = dask_cluster.workers[0]
    killed: list[str] = []

    def kill_while_it_writes_events():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            for run in runs:
                folder = logs / run
                staged = list(folder.glob(f".summary-exporter-tmp-{victim.pid}-*")) if folder.is_dir() else []
                if _holder(folder) == victim.pid and any(p.stat().st_size > 50_000 for p in staged):
                    victim.send_signal(signal.SIGKILL)  # mid-export: holding the lock, events half written
                    killed.append(run)
                    return
            time.sleep(0.005)

    killer = threading.Thread(target=kill_while_it_writes_events, daemon=True)
    killer.start()
    report = api.export_runs(root, logs, OPTIONS, scheduler=dask_cluster.address)
    killer.join(5)
    assert killed and victim.wait(10) == -signal.SIGKILL, "the worker was not killed in the middle of an export"
    assert report.failed == [], report.failed
    plain = _plain(root, runs, tmp_path / "plain")
    for run in runs:
        names = sorted(p.name for p in (logs / run).iterdir())
        events = [n for n in names if "tfevents" in n]
        assert len(events) == 1 and not [n for n in names if is_temp_name(n)], names  # the rerun cleaned up
        assert_same_events(logs / run, plain / run, f"{run} (the worker was killed while it exported {killed[0]}; {names})")
    print(f"killed worker {victim.pid} while it exported {killed[0]}; rerun on the other worker, every run once")
