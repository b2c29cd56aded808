"""Selections on export and render: the same options as the notebook API, per checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
from tbutil import read_events

from exporter import Selection, ShardWriter
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


# --------------------------------------------------------------------------- detectors: no labels at all

DET_CLASSES = ["cat", "dog", "bird"]
# id: (gt boxes, gt classes, predicted boxes, predicted classes, scores), pixel xyxy in a 40 x 40 image
DETECTIONS = {
    "a": ([[0, 0, 10, 10]], [0], [[0, 0, 10, 10]], [0], [0.9]),  # found
    "b": ([[0, 0, 10, 10]], [0], [], [], []),  # missed
    "c": ([], [], [[5, 5, 15, 15]], [1], [0.8]),  # a false alarm
    "d": ([[0, 0, 20, 20]], [1], [[0, 0, 20, 14.4]], [1], [0.7]),  # IoU 0.72: found at 0.5, not at 0.75
    "e": ([[0, 0, 10, 10], [20, 20, 30, 30]], [0, 2],  # the bird is boxed as a cat; the cat found at score 0.2
          [[20, 20, 30, 30], [0, 0, 10, 10]], [0, 0], [0.6, 0.2]),
    "f": ([], [], [], [], []),  # nothing
}
# per-image COCO AP: a 1, b 0, c 0 (detections, no ground truth), d 0.5 (5 of 10 IoU thresholds),
# e (cat 0.5 + bird 0) / 2, f nothing to measure; mean best IoU: a 1, b 0, d 0.72, e (1 + 0) / 2, c and f none


@pytest.fixture
def detector_run(tmp_path):
    root = tmp_path / "det"
    ids = list(DETECTIONS)
    with ShardWriter(root, step=1, class_names=DET_CLASSES, box_format="xyxy", box_coords="pixels",
                     examples_per_shard=4) as w:
        for i in ids:
            gt, gt_labels, pred, labels, scores = (np.array(v, dtype=float) for v in DETECTIONS[i])
            w.add(images=np.zeros((1, 40, 40, 3), np.uint8), ids=np.array([i]),
                  gt_boxes=[gt.reshape(-1, 4)], gt_box_labels=[gt_labels.astype(int)],
                  boxes=[pred.reshape(-1, 4)], box_labels=[labels.astype(int)], box_scores=[scores])
    return root


@pytest.mark.parametrize(
    "flags, expected",
    [
        (["--any-missed"], {"b", "e"}),
        (["--any-fp"], {"c", "e"}),
        (["--any-missed", "--match-iou", "0.75"], {"b", "d", "e"}),
        (["--any-fp", "--match-iou", "0.75"], {"c", "d", "e"}),
        (["--any-fp", "--score-threshold", "0.3"], {"c", "e"}),
        (["--any-missed", "--any-fp"], {"e"}),
        (["--worst", "2"], {"b", "c"}),
        (["--worst", "3"], {"b", "c", "e"}),
        (["--worst", "2", "--worst-by", "iou"], {"b", "e"}),
        (["--box-classes", "bird"], {"e"}),
        (["--box-classes", "dog"], {"c", "d"}),
        (["--box-classes", "1,bird"], {"c", "d", "e"}),
        (["--box-classes", "cat", "--any-missed"], {"b", "e"}),
        (["--box-classes", "cat", "--score-threshold", "0.95"], {"a", "b", "e"}),  # ground truth counts at any score
    ],
)
def test_cli_detector_selections(detector_run, tmp_path, flags, expected):
    assert main(["export", str(detector_run), str(tmp_path / "logs"), *flags, "--no-progress"]) == 0
    by_step, acc = _example_tags(tmp_path / "logs")
    assert by_step == {1: expected}
    assert acc.Scalars("metrics/detection/AP50")  # metrics still use every image


def test_detector_selections_in_the_api_and_the_notebook(detector_run, tmp_path):
    from exporter import open_run

    paths = render(detector_run, tmp_path / "png", ExportOptions(select=Selection(any_missed=True)))
    assert {p.stem for p in paths} == {"b", "e"}
    run = open_run(detector_run)
    assert run.examples(any_missed=True).ids.tolist() == ["b", "e"]
    assert run.examples(worst=3).ids.tolist() == ["b", "c", "e"]  # ranked: lowest AP first, ties in step order
    assert run.examples(worst=4, worst_by="iou").ids.tolist() == ["b", "e", "d", "a"]  # no ground truth: last
    assert run.examples(any_false_positive=True, match_iou=0.75).ids.tolist() == ["c", "d", "e"]
    assert run.examples(any_missed=True, min_box_score=0.3).select(box_classes=["cat"]).ids.tolist() == ["b", "e"]
    assert run.examples(any_missed=True).grid().size[0] > 0
    dogs = run.examples(box_classes="dog")
    assert len(dogs) == 2 and {"box_labels", "gt_box_labels"} <= dogs.loaded_fields and "images" not in dogs.loaded_fields


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--misclassified"], "misclassified needs 'labels' and 'pred_labels' (or 'probs'); step 1 has: box_labels, "
         "box_scores, boxes, gt_box_labels, gt_boxes, gt_num_boxes, ids, images, num_boxes"),
        (["--classes", "cat"], "classes needs 'labels'; step 1 has: box_labels,"),
        (["--box-classes", "horse"], "unknown class name 'horse'; the classes are: cat, dog, bird"),
    ],
)
def test_selection_errors_name_the_fields_the_step_has(detector_run, tmp_path, capsys, flags, message):
    assert main(["export", str(detector_run), str(tmp_path / "l"), *flags, "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "no fields" not in err, err


def test_detector_selection_on_a_classifier_run_names_its_fields(shards, tmp_path, capsys):
    assert main(["export", str(shards), str(tmp_path / "l"), "--any-missed", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "any_missed needs 'boxes' and 'gt_boxes'; step 1 has: ids, images, labels, pred_labels, pred_scores, probs" in err
