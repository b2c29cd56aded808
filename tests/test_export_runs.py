"""export-runs in this process (no Dask): every run folder under ROOT exported to LOGROOT/<its relative path>
with the same result as a plain export of that run, event for event; a failing run is reported by name and the
others finish. The same on a LocalCluster and on real dask scheduler / worker processes (one SIGKILLed) is in
tests/system/test_export_runs_cluster.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from runs import write_run
from test_export_urls import assert_same_events, download, events_of
from test_shards_urls import upload_tree

from exporter import api
from exporter.api import ExportMode, ExportOptions
from exporter.cli import main
from exporter.distributed import RunResult, run_tasks
from exporter.errors import ConfigError, RunNotFoundError

OPTIONS = ExportOptions(workers=1)
RUNS = ["eval_a", "eval_b/coco", "eval_b/voc"]


def make_root(root: Path, runs=RUNS) -> Path:
    for i, run in enumerate(runs):
        write_run(root / run, steps=(100 + i, 200 + i), n=4, class_names=["cat", "dog", "bird"])
    return root


def break_run(root: Path, run: str = "broken") -> None:
    folder = root / run / "step-000000000001"
    folder.mkdir(parents=True)
    (folder / "20261201T000000.000000Z-abcdef-00000.npz").write_bytes(b"not a zip")


def test_each_run_gets_what_a_plain_export_of_it_gets(tmp_path):
    root = make_root(tmp_path / "root")
    report = api.export_runs(root, tmp_path / "logs", OPTIONS)
    assert [r.run for r in report.results] == RUNS and report.failed == []
    for run, result in zip(RUNS, report.results, strict=True):
        plain = api.export(root / run, tmp_path / "plain" / run, OPTIONS)
        assert (result.images, result.steps) == (plain.images, len(plain.steps))
        assert_same_events(tmp_path / "logs" / run, tmp_path / "plain" / run, run)
    assert str(report).startswith(f"exported 3 of 3 run(s) from {root} to {tmp_path / 'logs'}: ")


def test_a_failing_run_is_named_and_the_others_finish(tmp_path, capsys):
    root = make_root(tmp_path / "root")
    break_run(root)
    report = api.export_runs(root, tmp_path / "logs", OPTIONS)
    assert [r.run for r in report.failed] == ["broken"]
    assert report.failed[0].error.startswith("ShardFormatError: ") and "not a readable .npz/zip file" in report.failed[0].error
    assert all((tmp_path / "logs" / run).is_dir() for run in RUNS) and not (tmp_path / "logs" / "broken").exists()
    assert main(["export-runs", str(root), str(tmp_path / "cli"), "--no-progress", "--workers", "1"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("exported 3 of 4 run(s)") and err[1].startswith("failed: broken: ShardFormatError: ")
    assert err[-1] == "1 of 4 run(s) failed: broken"


def test_options_and_incremental_reach_every_run(tmp_path):
    root = make_root(tmp_path / "root")
    options = ExportOptions(workers=1, max_per_step=2, tag_prefix="ex", metrics=False)
    first = api.export_runs(root, tmp_path / "logs", options, incremental=True)
    assert all(r.images == 4 for r in first.results)  # 2 per step, 2 steps, no confusion matrix
    assert all(t.startswith("ex/") for t in events_of(tmp_path / "logs" / RUNS[0]))
    again = api.export_runs(root, tmp_path / "logs", options, incremental=True)
    assert all(r.ok and r.steps == 0 for r in again.results)  # up to date: nothing written
    assert api.export(root / RUNS[0], tmp_path / "logs" / RUNS[0], options, incremental=True).mode is ExportMode.UP_TO_DATE


def test_a_root_that_is_a_run_exports_into_logroot_itself(tmp_path):
    run = make_root(tmp_path / "root", ["only"]) / "only"
    report = api.export_runs(run, tmp_path / "logs", OPTIONS)
    assert [r.run for r in report.results] == ["."]
    assert [p.name for p in (tmp_path / "logs").iterdir() if "tfevents" in p.name]


def test_no_runs_under_root_is_run_not_found(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunNotFoundError, match="no run folders"):
        api.export_runs(tmp_path / "empty", tmp_path / "logs")
    assert main(["export-runs", str(tmp_path / "nothing"), str(tmp_path / "logs")]) == 1


def test_between_stores(tmp_path, bucket):
    root = make_root(tmp_path / "root")
    url = upload_tree(root, f"{bucket}/root").url
    report = api.export_runs(url, f"{bucket}/tb", OPTIONS)
    assert report.failed == []
    for run in RUNS:
        api.export(root / run, tmp_path / "plain" / run, OPTIONS)
        got = download(f"{bucket}/tb/{run}", tmp_path / "copy" / run)
        assert_same_events(got, tmp_path / "plain" / run, run)


def test_run_tasks_needs_a_task_function():
    from exporter.distributed import RunTask

    with pytest.raises(ConfigError, match="needs task_fn=: exporter.api.export_run_task exports a run"):
        run_tasks([RunTask("a", "s", "l")])
    assert run_tasks([]) == []


def test_the_task_returns_a_bad_run_as_a_result_and_its_warnings(tmp_path):
    root = make_root(tmp_path / "root", ["a"])
    write_run(root / "a", steps=(100,), n=4)  # a second dump of step 100: the older one is ignored, with a warning
    result = api.export_run_task(str(root / "a"), str(tmp_path / "logs" / "a"), {"export": OPTIONS}, {})
    assert isinstance(result, RunResult) and result.ok and any("older dumps" in w for w in result.warnings)
    break_run(root, "b")
    bad = api.export_run_task(str(root / "b"), str(tmp_path / "logs" / "b"), {"export": OPTIONS}, {})
    assert not bad.ok and bad.error.startswith("ShardFormatError: ")
