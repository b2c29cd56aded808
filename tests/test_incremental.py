"""Re-processing: export is idempotent, --incremental adds exactly the new steps, late steps rewrite."""

from __future__ import annotations

import contextlib
import time
import warnings

import numpy as np
import pytest
from runs import run_arrays, write_run
from tbutil import read_events

from exporter import ShardWriter
from exporter.api import ExportOptions, export
from exporter.cli import main
from exporter.render import RenderOptions
from exporter.tensorboard import EVENT_FILE_GLOB

IDS = ["a", "b", "c"]
DUMP = {"class_names": ["x", "y"], "ids": IDS, "fields": ("images", "labels", "pred_labels", "ids")}  # make_run(**DUMP)


def _events(logdir):
    acc = read_events(logdir)
    images = {t: [e.step for e in acc.Images(t)] for t in acc.Tags()["images"]}
    scalars = {t: [e.step for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}
    return images, scalars


def test_exporting_twice_leaves_one_copy_of_each_event(tmp_path, make_run):
    make_run(steps=(10, 20), **DUMP)
    first = export(tmp_path / "shards", tmp_path / "logs")
    once = _events(tmp_path / "logs")
    second = export(tmp_path / "shards", tmp_path / "logs")
    assert _events(tmp_path / "logs") == once
    assert once[0]["examples/a"] == [10, 20] and once[1]["metrics/accuracy"] == [10, 20]
    assert len(list((tmp_path / "logs").glob(EVENT_FILE_GLOB))) == 1
    assert first.images == second.images == 8  # 6 examples + one confusion matrix per step


def test_incremental_export_adds_exactly_the_new_step(tmp_path, make_run):
    shards, logs = make_run(steps=(10,), **DUMP), tmp_path / "logs"
    assert export(shards, logs, incremental=True).mode == "full"
    make_run(steps=(20,), **DUMP)
    report = export(shards, logs, incremental=True)
    assert (report.mode, report.steps, report.images) == ("append", [20], 4)  # 3 examples + confusion matrix
    images, scalars = _events(logs)
    assert {t: s for t, s in images.items() if t.startswith("examples/")} == {f"examples/{i}": [10, 20] for i in IDS}
    assert scalars["metrics/accuracy"] == [10, 20]
    assert len(list(logs.glob(EVENT_FILE_GLOB))) == 2  # the earlier file is kept, the new one follows it
    again = export(shards, logs, incremental=True)
    assert again.mode == "up to date" and again.images == 0
    assert _events(logs) == (images, scalars)


def test_a_late_older_step_rewrites_the_run_instead_of_purging(tmp_path, make_run):
    shards, logs = make_run(steps=(20,), **DUMP), tmp_path / "logs"
    export(shards, logs, incremental=True)
    make_run(steps=(10,), **DUMP)  # an older checkpoint evaluated late
    report = export(shards, logs, incremental=True)
    assert report.mode == "rewrite" and report.steps == [10, 20]
    assert any("step 10 arrived after step 20" in w for w in report.warnings)
    images, _ = _events(logs)
    assert images["examples/a"] == [10, 20]
    assert len(list(logs.glob(EVENT_FILE_GLOB))) == 1


LATE_IDS = [*IDS, "d"]  # what step 20 holds in the end: "d" arrives after the first export


def _step_20_in_the_end():
    return run_arrays(20, len(LATE_IDS), num_classes=2, fields=DUMP["fields"], ids=LATE_IDS)


@contextlib.contextmanager
def _step_20_evaluated_again(shards):
    """A second dump of step 20, with one example more, written after the export: the newest dump wins."""
    write_run(shards, steps=(20,), **DUMP)
    yield
    time.sleep(1.1)  # dump ids sort by their UTC second first: the second dump must be the newer
    write_run(shards, steps=(20,), **{**DUMP, "ids": LATE_IDS})


@contextlib.contextmanager
def _step_20_still_being_written(shards):
    """The export runs while step 20's writer has one shard on disk; its second shard lands after it."""
    arrays = _step_20_in_the_end()
    with ShardWriter(shards, step=20, class_names=DUMP["class_names"], examples_per_shard=3) as w:
        w.add(**{k: v[:3] for k, v in arrays.items()})
        deadline = time.monotonic() + 30
        while w.written < 3:  # the writer thread has the first shard on disk
            assert time.monotonic() < deadline, "the first shard of step 20 was never written"
            time.sleep(0.01)
        yield
        w.add(**{k: v[3:] for k, v in arrays.items()})


@pytest.mark.parametrize("late", [_step_20_evaluated_again, _step_20_still_being_written])
def test_a_late_shard_of_the_last_exported_step_rewrites_the_run(tmp_path, make_run, late):
    """Appending to step 20, the last step exported, would write a second copy of its events: rewrite."""
    shards, logs = make_run(steps=(10,), **DUMP), tmp_path / "logs"
    with late(shards):
        assert export(shards, logs, incremental=True).steps == [10, 20]
        assert "examples/d" not in _events(logs)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the rewrite note is checked in report.warnings, after the events
        report = export(shards, logs, incremental=True)
    # read back with TensorBoard's reader: one copy of every event, steps ascending, the late example there
    images, scalars = _events(logs)
    assert images == {
        **{f"examples/{i}": [10, 20] for i in IDS},
        "examples/d": [20],
        "metrics/confusion_matrix": [10, 20],
    }
    assert scalars == {"metrics/accuracy": [10, 20]}
    step_20 = _step_20_in_the_end()
    accuracy = read_events(logs).Scalars("metrics/accuracy")[1].value  # over every example of step 20
    assert accuracy == pytest.approx(np.mean(step_20["labels"] == step_20["pred_labels"]))
    assert len(list(logs.glob(EVENT_FILE_GLOB))) == 1
    assert (report.mode, report.steps) == ("rewrite", [10, 20])
    assert "step 20 arrived after step 20 was exported: rewriting the whole run" in " ".join(report.warnings)


def test_changed_options_rewrite_and_a_new_run_folder_leaves_shards_untouched(tmp_path, make_run):
    shards, logs = make_run(steps=(10,), **DUMP), tmp_path / "logs"
    before = {p: p.read_bytes() for p in shards.rglob("*") if p.is_file()}
    export(shards, logs / "default", incremental=True)
    report = export(shards, logs / "default", ExportOptions(class_names=["cat", "dog"]), incremental=True)
    assert report.mode == "rewrite"
    other = export(shards, logs / "renamed", ExportOptions(render=RenderOptions(min_size=32), tag_prefix="v2"))
    assert other.images == 4
    assert {p: p.read_bytes() for p in shards.rglob("*") if p.is_file()} == before
    images, _ = _events(logs / "renamed")
    assert sorted(t for t in images if t.startswith("v2/")) == [f"v2/{i}" for i in IDS]


@pytest.mark.parametrize("flag", [[], ["--incremental"]])
def test_cli_export_twice(tmp_path, make_run, flag, capsys):
    make_run(steps=(5,), **DUMP)
    args = ["export", str(tmp_path / "shards"), str(tmp_path / "logs"), "--no-progress", *flag]
    assert main(args) == 0
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "tensorboard --logdir" in out
    images, _ = _events(tmp_path / "logs")
    assert images["examples/a"] == [5]
