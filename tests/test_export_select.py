"""Selections on export and render: the same options as the notebook API, per checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
from tbutil import read_events

from exporter import Selection
from exporter.api import ExportOptions, render
from exporter.cli import main

N = 30


@pytest.fixture
def shards(make_run):
    ids = [f"x{i:02d}" for i in range(N)]
    return make_run(steps=(1, 2), class_names=["a", "b", "c"], ids=ids, image_shape=(8, 8), examples_per_shard=7)


def _expected_worst(shards, step, k):
    from exporter import open_run

    arrays = [b.arrays for b in open_run(shards).iter_batches(step)]
    labels = np.concatenate([a["labels"] for a in arrays])
    pred = np.concatenate([a["pred_labels"] for a in arrays])
    score = np.concatenate([a["pred_scores"] for a in arrays])
    ids = np.concatenate([a["ids"] for a in arrays])
    wrong = np.flatnonzero(labels != pred)
    return set(ids[wrong[np.argsort(-score[wrong], kind="stable")][:k]])


def _example_tags(logdir):
    acc = read_events(logdir)
    by_step: dict[int, set[str]] = {}
    for tag in acc.Tags()["images"]:
        if tag.startswith("examples/"):
            for e in acc.Images(tag):
                by_step.setdefault(e.step, set()).add(tag.removeprefix("examples/"))
    return by_step, acc


def test_cli_export_most_confident_wrong_per_checkpoint(shards, tmp_path):
    assert main(["export", str(shards), str(tmp_path / "logs"), "--most-confident-wrong", "5", "--no-progress"]) == 0
    by_step, acc = _example_tags(tmp_path / "logs")
    assert by_step == {step: _expected_worst(shards, step, 5) for step in (1, 2)}
    # metrics still cover every example, not only the selected ones
    from exporter import open_run

    arrays = [b.arrays for b in open_run(shards).iter_batches(1)]
    acc1 = np.mean(np.concatenate([a["labels"] for a in arrays]) == np.concatenate([a["pred_labels"] for a in arrays]))
    assert acc.Scalars("metrics/accuracy")[0].value == pytest.approx(acc1)


@pytest.mark.parametrize(
    "selection, check",
    [
        (Selection(ids=["x03", "x17"]), lambda ids, a: ids == {"x03", "x17"}),
        (Selection(classes=["b"]), lambda ids, a: ids == {f"x{i:02d}" for i in np.flatnonzero(a["labels"] == 1)}),
        (Selection(per_class=2), lambda ids, a: len(ids) == 6),
        (Selection(misclassified=True, limit=3) & Selection(classes=["a", "c"]), lambda ids, a: len(ids) <= 3),
    ],
)
def test_render_with_a_selection(shards, tmp_path, selection, check):
    from exporter import open_run

    arrays = {k: np.concatenate([b.arrays[k] for b in open_run(shards).iter_batches(2)]) for k in ("labels", "ids")}
    paths = render(shards, tmp_path / "png", ExportOptions(select=selection))
    ids = {p.stem for p in paths if p.parent.name == "step-000000000002"}
    assert check(ids, arrays), ids


def test_selection_needing_a_missing_field_is_a_clear_error(tmp_path, make_run, capsys):
    images_only = make_run("s", steps=(1,), n=2, fields=("images",), class_names=None, image_shape=(4, 4))
    code = main(["export", str(images_only), str(tmp_path / "l"), "--misclassified", "--no-progress"])
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "misclassified needs 'labels'" in err and "Traceback" not in err
