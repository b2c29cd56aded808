"""Re-processing: export is idempotent, --incremental adds exactly the new steps, late steps rewrite."""

from __future__ import annotations

import pytest
from tbutil import read_events

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
