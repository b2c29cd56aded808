"""exporter.distributed in this process: planning one task per run, running them, collecting failures.

tests/system/test_distributed_cluster.py runs the same tasks on a LocalCluster and on real
``dask scheduler`` / ``dask worker`` processes, one of them SIGKILLed mid-job."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from tasks import output_text, write_output

from exporter import distributed as dist_module
from exporter.distributed import RunResult, RunTask, plan_run_tasks, run_tasks
from exporter.errors import ConfigError
from exporter.storage import join, locate, put_bytes


def _tasks(tmp_path, runs, **options):
    return [
        RunTask(run, str(tmp_path / "shards" / run), str(tmp_path / "logs" / run), options)
        for run in runs
    ]


def test_in_process_runs_every_task_in_order(tmp_path):
    tasks = _tasks(tmp_path, ["b", "a", "c"])
    results = run_tasks(tasks, None, task_fn=write_output)
    assert [r.run for r in results] == ["b", "a", "c"] and all(r.ok for r in results)
    assert all(isinstance(r, RunResult) and r.images == 1 and r.seconds >= 0 for r in results)
    for t in tasks:
        assert (tmp_path / "logs" / t.run / "output.txt").read_text() == output_text(t.shards_url)


def test_a_failed_run_is_reported_and_the_others_finish(tmp_path):
    tasks = _tasks(tmp_path, ["a", "bad", "c"], fail=["bad"])
    results = run_tasks(tasks, None, task_fn=write_output)
    assert [r.run for r in results if r.ok] == ["a", "c"]
    (bad,) = [r for r in results if not r.ok]
    assert bad.run == "bad" and bad.error == "ValueError: bad cannot be exported (as the test asked)"
    assert not (tmp_path / "logs" / "bad").exists() and (tmp_path / "logs" / "c" / "output.txt").exists()


def test_rerunning_replaces_the_output_and_doubles_nothing(tmp_path):
    tasks = _tasks(tmp_path, ["a"])
    run_tasks(tasks, None, task_fn=write_output)
    run_tasks(tasks, None, task_fn=write_output)
    assert sorted(p.name for p in (tmp_path / "logs" / "a").iterdir()) == ["output.txt"]


def test_plan_makes_one_task_per_run_with_matching_output_folders(tmp_path):
    root = locate(str(tmp_path / "shards"))
    for name in ["x/step-000000000001/a.npz", "y/z/step-000000000002/a.npz", "notes/readme.txt"]:
        put_bytes(join(root, name), b"x")
    tasks = plan_run_tasks(root, locate(str(tmp_path / "tb")), {"workers": 1})
    assert [(t.run, t.shards_url, t.logdir_url, dict(t.options)) for t in tasks] == [
        ("x", str(tmp_path / "shards/x"), str(tmp_path / "tb/x"), {"workers": 1}),
        ("y/z", str(tmp_path / "shards/y/z"), str(tmp_path / "tb/y/z"), {"workers": 1}),
    ]


def test_progress_bar_counts_runs(tmp_path, capsys):
    run_tasks(_tasks(tmp_path, ["a", "b"]), None, True, task_fn=write_output)
    err = capsys.readouterr().err
    assert "runs" in err and "2/2" in err


@pytest.mark.parametrize(
    ("scheduler", "error"),
    [
        ("lcoal", "scheduler must be None, 'local' or an address like tcp://host:8786, got 'lcoal'"),
        ("http://host:8786/x", "scheduler must be None, 'local' or an address"),
        (8786, "scheduler must be None, 'local' or an address"),
    ],
)
def test_a_bad_scheduler_is_a_config_error(tmp_path, scheduler, error):
    with pytest.raises(ConfigError, match=error.replace("(", r"\(").replace(")", r"\)")):
        run_tasks(_tasks(tmp_path, ["a"]), scheduler, task_fn=write_output)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [(dict(workers=0), "workers must be None or an integer >= 1, got 0"), (dict(retries=-1), "retries must be an integer >= 0")],
)
def test_workers_and_retries_are_checked(tmp_path, kwargs, error):
    with pytest.raises(ConfigError, match=error):
        run_tasks(_tasks(tmp_path, ["a"]), "local", task_fn=write_output, **kwargs)


def test_run_names_must_be_unique(tmp_path):
    with pytest.raises(ConfigError, match=r"run names must be unique, got \['a'\] twice"):
        run_tasks(_tasks(tmp_path, ["a", "a"]), None, task_fn=write_output)


def test_a_task_function_must_return_a_run_result(tmp_path):
    (result,) = run_tasks(_tasks(tmp_path, ["a"]), None, task_fn=lambda *args: "done")
    assert result.error == "TypeError: the task function must return a RunResult, got str"


def test_without_distributed_a_scheduler_names_the_extra():
    code = textwrap.dedent(
        """
        import sys
        sys.modules["distributed"] = None
        from exporter.distributed import RunTask, run_tasks
        for scheduler in ("local", "tcp://127.0.0.1:8786"):
            try:
                run_tasks([RunTask("a", "s", "l")], scheduler)
            except ImportError as exc:
                print(type(exc).__name__, exc)
        print(run_tasks([], None))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == [
        "MissingDependencyError scheduler='local' needs Dask's distributed: pip install 'summary-exporter[dask]'",
        "MissingDependencyError scheduler='tcp://127.0.0.1:8786' needs Dask's distributed: pip install 'summary-exporter[dask]'",
        "[]",
    ]


def test_export_run_task_lives_with_the_library():
    """The mechanism knows nothing of exporting: the task function is the library's (tests/test_export_runs.py)."""
    from exporter.api import export_run_task

    assert not hasattr(dist_module, "export_run_task") and callable(export_run_task)
