"""What changed between checkpoints: export --changes, the summary tables, grouped tags, run.changes.

Runs are written with known flips (``runs.write_outcomes``, or boxes placed by hand), exported,
and read back with TensorBoard's own ``EventAccumulator``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image
from runs import write_outcomes
from tbutil import decode, read_events

import exporter
from exporter import ShardWriter
from exporter.api import ExportOptions, export, render
from exporter.changes import AP_CHANGE, find_changes, image_ap, step_outcomes
from exporter.cli import main
from exporter.render import RenderOptions
from exporter.select import Selection
from exporter.tensorboard import EVENT_FILE_GLOB

LABELS = [0, 1, 2, 0, 1, 2, 0, 1]
#: step 10 → 20: id001 and id003 fixed, id004 broken; 20 → 30: id000 broken, id004 fixed again
PREDS = {
    10: [0, 0, 2, 1, 1, 2, 1, 1],
    20: [0, 1, 2, 0, 2, 2, 1, 1],
    30: [1, 1, 2, 0, 1, 2, 1, 1],
}
FLIPS = {
    20: {"fixed": {"id001", "id003"}, "broken": {"id004"}},
    30: {"fixed": {"id004"}, "broken": {"id000"}},
}


def _change_tags(acc) -> dict[str, dict[str, list[int]]]:
    """{kind: {id: [steps]}} of the changes/<kind>/<id> tags."""
    out: dict[str, dict[str, list[int]]] = {"fixed": {}, "broken": {}}
    for tag in acc.Tags()["images"]:
        if tag.startswith("changes/"):
            _, kind, name = tag.split("/")
            out[kind][name] = [e.step for e in acc.Images(tag)]
    return out


def _texts(acc, tag: str) -> dict[int, str]:
    return {e.step: e.tensor_proto.string_val[0].decode() for e in acc.Tensors(tag)}


def _image(acc, tag: str, step: int) -> np.ndarray:
    (event,) = [e for e in acc.Images(tag) if e.step == step]
    return np.asarray(decode(event.encoded_image_string).convert("RGB"))


def _panels(pair: np.ndarray, left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two pictures in a side-by-side sheet (``render_grid``: 4 px padding, cells top-left aligned)."""
    height, width = pair.shape[:2]
    y = height - 4 - max(left.shape[0], right.shape[0])
    a = pair[y : y + left.shape[0], 4 : 4 + left.shape[1]]
    b = pair[y : y + right.shape[0], width - 4 - right.shape[1] : width - 4]
    return a, b


@pytest.fixture
def flips(tmp_path):
    return write_outcomes(tmp_path / "shards", PREDS, LABELS, examples_per_shard=3)


# --------------------------------------------------------------------------- the rules


@pytest.mark.parametrize(
    "tp, n_gt, expected",
    [
        ([True, False, True], 2, (1 + 2 / 3) / 2),  # precision 1 at the first hit, 2/3 at the second
        ([False, True, True], 2, 2 / 3),
        ([True, True, False], 2, 1.0),
        ([], 2, 0.0),
        ([False, False], 1, 0.0),
        ([True], 3, 1 / 3),
        ([], 0, float("nan")),
    ],
)
def test_image_ap_is_all_point_interpolated(tp, n_gt, expected):
    got = image_ap(np.array(tp, bool), n_gt)
    if np.isnan(expected):
        assert np.isnan(got)
    else:
        assert got == pytest.approx(expected)


def test_find_changes_on_known_flips(flips):
    run = exporter.open_run(flips)
    options = ExportOptions()
    a, b, c = (step_outcomes(run.shards(s), options) for s in (10, 20, 30))
    for before, after, step in ((a, b, 20), (b, c, 30)):
        found = find_changes(before, after)
        got = {k: {after.id_text(x.j) for x in found.of(k)} for k in ("fixed", "broken")}
        assert got == FLIPS[step]
        assert found.compared == len(LABELS) and found.by_ids and found.note is None
    assert not find_changes(a, a).items


# --------------------------------------------------------------------------- export --changes


def test_export_changes_tags_exactly_the_flips_at_the_later_step_with_both_pictures(flips, tmp_path):
    logs = tmp_path / "logs"
    report = export(flips, logs, ExportOptions(changes=True))
    acc = read_events(logs)
    tags = _change_tags(acc)
    expected = {"fixed": {}, "broken": {}}
    for step, kinds in FLIPS.items():
        for kind, ids in kinds.items():
            for i in ids:
                expected[kind].setdefault(i, []).append(step)
    assert tags == expected
    assert [(c.step, c.previous, c.fixed, c.broken) for c in report.changes] == [(20, 10, 2, 1), (30, 20, 1, 1)]
    for kind, by_id in expected.items():
        for example_id, steps in by_id.items():
            for step in steps:
                earlier, later = _image(acc, f"examples/{example_id}", step - 10), _image(acc, f"examples/{example_id}", step)
                assert not np.array_equal(earlier, later)  # the captions differ: right one side, wrong the other
                pair = _image(acc, f"changes/{kind}/{example_id}", step)
                left, right = _panels(pair, earlier, later)
                np.testing.assert_array_equal(left, earlier)
                np.testing.assert_array_equal(right, later)
                assert 4 + earlier.shape[1] <= pair.shape[1] // 2 + 4 <= pair.shape[1] - later.shape[1]
    described = acc.SummaryMetadata("changes/fixed/id001").summary_description
    assert "Left: the earlier checkpoint" in described and "default options" in described


def test_summary_tables_read_back_as_text_plugin_tensors(flips, tmp_path):
    export(flips, tmp_path / "logs", ExportOptions(changes=True, summary_worst=3))
    acc = read_events(tmp_path / "logs")
    assert {"summary/changes", "summary/worst"} <= set(acc.Tags()["tensors"])
    for tag in ("summary/changes", "summary/worst"):
        assert acc.SummaryMetadata(tag).plugin_data.plugin_name == "text"
        assert acc.SummaryMetadata(tag).summary_description
    changes = _texts(acc, "summary/changes")
    assert sorted(changes) == [20, 30]  # nothing to compare at the first step
    table = changes[20]
    assert "**step 10 → step 20**: 2 fixed, 1 broken of 8 examples compared (matched by ids)" in table
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]] for line in table.splitlines()[4:]}
    assert rows["cat"] == ["1", "0", "id003", ""]
    assert rows["dog"] == ["1", "1", "id001", "id004"]
    assert rows["**total**"][:2] == ["**2**", "**1**"]
    worst = _texts(acc, "summary/worst")
    assert sorted(worst) == [10, 20, 30]
    # step 20: id004 (score 0.75) and id006 (0.875) are wrong; the most confident first
    lines = [line for line in worst[20].splitlines() if line.startswith(("| 1 ", "| 2 "))]
    assert [line.split("|")[2].strip() for line in lines] == ["id006", "id004"]
    assert "| 1 | id006 | cat | dog | 0.875 |" in worst[20]


def test_nothing_changed_writes_no_change_tags_and_says_so(tmp_path):
    shards = write_outcomes(tmp_path / "shards", {1: PREDS[10], 2: PREDS[10]}, LABELS)
    report = export(shards, tmp_path / "logs", ExportOptions(changes=True))
    acc = read_events(tmp_path / "logs")
    assert not [t for t in acc.Tags()["images"] if t.startswith("changes/")]
    assert "No example changed." in _texts(acc, "summary/changes")[2]
    assert [(c.fixed, c.broken) for c in report.changes] == [(0, 0)]


def test_without_changes_nothing_new_is_written(flips, tmp_path):
    export(flips, tmp_path / "logs")
    acc = read_events(tmp_path / "logs")
    assert not [t for t in acc.Tags()["images"] if t.startswith("changes/")]
    assert not [t for t in acc.Tags()["tensors"] if t.startswith("summary/")]


@pytest.mark.parametrize(
    "selection, expected",
    [
        # only the examples the selection picks are compared
        (Selection(ids=["id001", "id004"]), {20: {"fixed": {"id001"}, "broken": {"id004"}}, 30: {"fixed": {"id004"}}}),
        (Selection(classes=["cat"]), {20: {"fixed": {"id003"}}, 30: {"broken": {"id000"}}}),
        # picked at either step: wrong before (fixed) or wrong after (broken)
        (Selection(misclassified=True), FLIPS),
        (Selection(correct=True, classes=["dog"]), {20: {"fixed": {"id001"}, "broken": {"id004"}}, 30: {"fixed": {"id004"}}}),
    ],
)
def test_changes_compose_with_selections(flips, tmp_path, selection, expected):
    export(flips, tmp_path / "logs", ExportOptions(changes=True, select=selection))
    got: dict[int, dict[str, set[str]]] = {}
    for kind, by_id in _change_tags(read_events(tmp_path / "logs")).items():
        for example_id, steps in by_id.items():
            for step in steps:
                got.setdefault(step, {}).setdefault(kind, set()).add(example_id)
    assert got == expected


def test_incremental_append_compares_the_new_step_with_the_last_exported(tmp_path):
    shards, logs = tmp_path / "shards", tmp_path / "logs"
    write_outcomes(shards, {10: PREDS[10], 20: PREDS[20]}, LABELS)
    options = ExportOptions(changes=True)
    assert export(shards, logs, options, incremental=True).mode == "full"
    write_outcomes(shards, {30: PREDS[30]}, LABELS)
    report = export(shards, logs, options, incremental=True)
    assert report.mode == "append" and report.steps == [30]
    assert [(c.step, c.previous, c.fixed, c.broken) for c in report.changes] == [(30, 20, 1, 1)]
    assert len(list(logs.glob(EVENT_FILE_GLOB))) == 2
    acc = read_events(logs)
    assert _change_tags(acc) == {"fixed": {"id001": [20], "id003": [20], "id004": [30]}, "broken": {"id004": [20], "id000": [30]}}
    assert sorted(_texts(acc, "summary/changes")) == [20, 30]
    pair = _image(acc, "changes/broken/id000", 30)
    left, right = _panels(pair, _image(acc, "examples/id000", 20), _image(acc, "examples/id000", 30))
    np.testing.assert_array_equal(left, _image(acc, "examples/id000", 20))
    np.testing.assert_array_equal(right, _image(acc, "examples/id000", 30))


def test_without_ids_examples_are_matched_by_position_with_a_warning(tmp_path):
    shards = write_outcomes(tmp_path / "shards", PREDS, LABELS, ids=())
    with pytest.warns(UserWarning, match="by position in the step") as caught:
        report = export(shards, tmp_path / "logs", ExportOptions(changes=True))
    assert len([w for w in caught if "by position" in str(w.message)]) == 1  # once per export, not per step
    acc = read_events(tmp_path / "logs")
    assert _change_tags(acc) == {
        "fixed": {"ex00001": [20], "ex00003": [20], "ex00004": [30]}, "broken": {"ex00004": [20], "ex00000": [30]}
    }
    assert report.changes[0].matched_by == "position in the step"
    assert "matched by position in the step" in _texts(acc, "summary/changes")[20]


def test_many_steps_warn_about_text_samples_too(tmp_path):
    shards = write_outcomes(tmp_path / "shards", {s: PREDS[10 if s % 2 else 20][:3] for s in range(1, 13)}, LABELS[:3])
    with pytest.warns(UserWarning) as caught:
        report = export(shards, tmp_path / "logs", ExportOptions(changes=True, metrics=False))
    messages = [str(w.message) for w in caught]
    assert any("--samples_per_plugin text=12" in m for m in messages), messages
    assert "text=12" in report.tensorboard_command and "images=12" in report.tensorboard_command


# --------------------------------------------------------------------------- detection


def _detection_run(root):
    """Four images, two gt boxes each; from step 10 to 20: i0 broken, i1 fixed, i2 fixed by AP alone, i3 the same."""
    gt = np.array([[[10, 10, 30, 30], [40, 40, 60, 60]]] * 4, np.float32)
    hit_a, hit_b, stray, pad = [10, 10, 30, 30], [40, 40, 60, 60], [70, 70, 75, 75], [0, 0, 1, 1]
    rows = {
        10: [([hit_a, hit_b, pad], 2), ([hit_a, stray, pad], 2), ([stray, hit_a, hit_b], 3), ([hit_a, hit_b, pad], 2)],
        20: [([hit_a, stray, pad], 2), ([hit_a, hit_b, pad], 2), ([hit_a, hit_b, stray], 3), ([hit_a, hit_b, pad], 2)],
    }
    images = np.random.default_rng(0).integers(0, 256, (4, 80, 80, 3), dtype=np.uint8)
    for step, per_image in rows.items():
        with ShardWriter(root, step=step, class_names=["thing", "other"], box_format="xyxy", box_coords="pixels") as w:
            w.add(
                images=images, ids=np.array(["i0", "i1", "i2", "i3"]),
                boxes=np.array([b for b, _ in per_image], np.float32), num_boxes=np.array([n for _, n in per_image]),
                box_scores=np.tile(np.array([0.9, 0.8, 0.7], np.float32), (4, 1)), box_labels=np.zeros((4, 3), np.int64),
                gt_boxes=gt, gt_box_labels=np.zeros((4, 2), np.int64), gt_num_boxes=np.full(4, 2),
            )  # fmt: skip
    return root


def test_detection_flips_from_known_box_changes(tmp_path):
    shards = _detection_run(tmp_path / "shards")
    report = export(shards, tmp_path / "logs", ExportOptions(changes=True, render=RenderOptions(match_iou=0.5)))
    acc = read_events(tmp_path / "logs")
    assert _change_tags(acc) == {"fixed": {"i1": [20], "i2": [20]}, "broken": {"i0": [20]}}
    assert [(c.fixed, c.broken) for c in report.changes] == [(2, 1)]
    table = _texts(acc, "summary/changes")[20]
    assert "| thing | 2 | 1 | i1, i2 | i0 |" in table  # counted under the classes of the gt boxes
    assert "IoU 0.5" in table and f"more than {AP_CHANGE}" in table
    worst = _texts(acc, "summary/worst")[20]
    assert "| 1 | i0 | 2 boxes | 2 boxes: 1 false, 1 missed | 0.500 |" in worst
    assert "| 2 | i2 | 2 boxes | 3 boxes: 1 false, 0 missed | 1.000 |" in worst
    pair = _image(acc, "changes/fixed/i1", 20)
    left, right = _panels(pair, _image(acc, "examples/i1", 10), _image(acc, "examples/i1", 20))
    np.testing.assert_array_equal(left, _image(acc, "examples/i1", 10))
    np.testing.assert_array_equal(right, _image(acc, "examples/i1", 20))


def test_detection_match_iou_and_score_threshold_decide_like_the_picture(tmp_path):
    shards = _detection_run(tmp_path / "shards")
    # above every score: no box is drawn, so every image misses both gt boxes at both steps
    export(shards, tmp_path / "logs", ExportOptions(changes=True, render=RenderOptions(score_threshold=0.95)))
    assert _change_tags(read_events(tmp_path / "logs")) == {"fixed": {}, "broken": {}}


# --------------------------------------------------------------------------- grouped tags


def test_group_tags_by_class(flips, tmp_path):
    export(flips, tmp_path / "logs", ExportOptions(group_tags="class"))
    acc = read_events(tmp_path / "logs")
    names = ["cat", "dog", "bird"]
    expected = {f"examples/{names[label]}/id{i:03d}" for i, label in enumerate(LABELS)}
    assert {t for t in acc.Tags()["images"] if t.startswith("examples/")} == expected
    assert "Grouped under `dog`" in acc.SummaryMetadata("examples/dog/id001").summary_description


def test_group_tags_by_outcome_use_the_last_step_so_tags_stay_put(flips, tmp_path):
    export(flips, tmp_path / "logs", ExportOptions(group_tags="outcome"))
    acc = read_events(tmp_path / "logs")
    last = np.array(PREDS[30]) == np.array(LABELS)
    expected = {f"examples/{'right' if ok else 'wrong'}/id{i:03d}" for i, ok in enumerate(last)}
    tags = {t for t in acc.Tags()["images"] if t.startswith("examples/")}
    assert tags == expected
    for tag in tags:  # one tag per example, with every step: the slider follows it
        assert [e.step for e in acc.Images(tag)] == [10, 20, 30]


def test_group_tags_by_outcome_rewrite_instead_of_appending(tmp_path):
    shards, logs = tmp_path / "shards", tmp_path / "logs"
    write_outcomes(shards, {10: PREDS[10], 20: PREDS[20]}, LABELS)
    export(shards, logs, ExportOptions(group_tags="outcome"), incremental=True)
    write_outcomes(shards, {30: PREDS[30]}, LABELS)
    with pytest.warns(UserWarning, match="outcome at the last step"):
        report = export(shards, logs, ExportOptions(group_tags="outcome"), incremental=True)
    assert report.mode == "rewrite" and report.steps == [10, 20, 30]
    tags = {t for t in read_events(logs).Tags()["images"] if t.startswith("examples/")}
    assert "examples/wrong/id000" in tags and "examples/right/id000" not in tags  # id000 went wrong at step 30


@pytest.mark.parametrize(
    "group, fields, message",
    [
        ("class", ("images", "pred_labels"), "groups by the 'labels' field"),
        ("outcome", ("images", "labels"), "group_tags='outcome' needs"),
    ],
)
def test_group_tags_name_the_missing_fields(tmp_path, group, fields, message):
    with ShardWriter(tmp_path / "shards", step=1) as w:
        w.add(**{f: {"images": np.zeros((2, 8, 8, 3), np.uint8), "labels": np.array([0, 1]),
                     "pred_labels": np.array([0, 0])}[f] for f in fields})  # fmt: skip
    with pytest.raises(exporter.ConfigError, match=message):
        export(tmp_path / "shards", tmp_path / "logs", ExportOptions(group_tags=group))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(changes="yes"), "changes"),
        (dict(summary_worst=-1), "summary_worst"),
        (dict(group_tags="color"), "group_tags"),
    ],
)
def test_bad_options_are_refused(kwargs, message):
    with pytest.raises(exporter.ConfigError, match=message):
        ExportOptions(**kwargs)


def test_every_example_tag_says_what_drew_it(flips, tmp_path):
    export(flips, tmp_path / "logs", ExportOptions(render=RenderOptions(score_threshold=0.3, topk=2)))
    described = read_events(tmp_path / "logs").SummaryMetadata("examples/id002").summary_description
    assert "score_threshold=0.3" in described and "topk=2" in described and "caption" in described


# --------------------------------------------------------------------------- command line and notebook


def test_cli_changes_prints_where_to_look(flips, tmp_path, capsys):
    code = main(["export", str(flips), str(tmp_path / "logs"), "--changes", "--group-tags", "class", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0
    assert "changes at step 20 (since step 10): 2 fixed, 1 broken" in out and "summary/changes" in out
    acc = read_events(tmp_path / "logs")
    assert "examples/dog/id001" in acc.Tags()["images"] and "changes/fixed/id001" in acc.Tags()["images"]


def test_cli_help_explains_matching_and_tag_stability(capsys):
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "matched by position in the step" in text and "LAST step" in text


def test_run_changes_gives_the_same_examples_as_export(flips):
    run = exporter.open_run(flips)
    found = run.changes(10, 20)
    assert (len(found.fixed), len(found.broken), found.compared) == (2, 1, 8)
    assert found.fixed.ids.tolist() == ["id001", "id003"] and found.broken.ids.tolist() == ["id004"]
    assert found.fixed_before.step == 10 and found.fixed_before.ids.tolist() == ["id001", "id003"]
    assert "fixed since step 10" in repr(found.fixed)
    assert run.changes().step_a == 20  # the last two steps by default
    assert run.changes(10, 20, classes=["cat"]).fixed.ids.tolist() == ["id003"]
    assert found.fixed.select(classes=["dog"]).ids.tolist() == ["id001"]
    assert "| dog | 1 | 1 | id001 | id004 |" in found.table()
    assert found._repr_markdown_() == found.table()


def test_run_changes_draws_with_grid_and_compare(flips):
    found = exporter.open_run(flips).changes(10, 20)
    sheet = found.compare("fixed")
    assert isinstance(sheet, Image.Image) and sheet.height > 2 * 128
    first = exporter.compare(found.fixed_before, found.fixed)
    assert np.array_equal(np.asarray(sheet), np.asarray(first))
    assert found.broken.grid().width >= 128
    with pytest.raises(exporter.ConfigError, match="'fixed' or 'broken'"):
        found.compare("both")


def test_run_changes_without_ids_warns(tmp_path):
    shards = write_outcomes(tmp_path / "shards", {1: PREDS[10], 2: PREDS[20]}, LABELS, ids=())
    with pytest.warns(UserWarning, match="by position"):
        found = exporter.open_run(shards).changes(1, 2)
    assert found.fixed.indices.tolist() == [1, 3] and found.matched_by == "position in the step"


@pytest.mark.parametrize("steps, message", [((10, 99), "step_b must be one of"), (("10", 20), "step_a must be one of")])
def test_run_changes_refuses_unknown_steps(flips, steps, message):
    with pytest.raises(exporter.ConfigError, match=message):
        exporter.open_run(flips).changes(*steps)


def test_compare_still_draws_as_before(flips):
    """compare() now draws through render.side_by_side: headers, then one shrunk pair per row."""
    run = exporter.open_run(flips)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sheet = exporter.compare(run.examples(step=10), run.examples(step=30), max_examples=3)
    assert sheet.width > 2 * 128 and sheet.height > 3 * 128


def test_docstring_examples_run():
    import doctest

    from exporter import changes

    assert doctest.testmod(changes).failed == 0


# --------------------------------------------------------------------------- render --changes


def test_render_writes_the_changes_export_writes_as_files(flips, tmp_path, capsys):
    logdir, out = tmp_path / "logs", tmp_path / "png"
    export(flips, logdir, ExportOptions(changes=True))
    acc = read_events(logdir)
    assert main(["render", str(flips), str(out), "--changes", "--no-progress"]) == 0
    # 8 examples x 3 steps and 3 + 2 changed ones; summary/changes at 2 steps, summary/worst at 3
    assert "wrote 29 PNG files and 5 Markdown tables under" in capsys.readouterr().out
    assert not (out / "step-000000000010" / "changes").exists()  # the first step has no step before it
    for step, kinds in FLIPS.items():
        folder = out / f"step-{step:012d}"
        for kind, ids in kinds.items():
            files = {p.stem: p for p in (folder / "changes" / kind).glob("*.png")}
            assert set(files) == ids
            for i, path in files.items():  # the same picture as the event, pixel for pixel
                picture = np.asarray(decode(path.read_bytes()).convert("RGB"))
                assert np.array_equal(picture, _image(acc, f"changes/{kind}/{i}", step))
        assert (folder / "summary" / "changes.md").read_text() == _texts(acc, "summary/changes")[step] + "\n"
    for step in PREDS:
        worst = out / f"step-{step:012d}" / "summary" / "worst.md"
        assert worst.read_text() == _texts(acc, "summary/worst")[step] + "\n"


def test_render_changes_into_a_store_uploads_the_folders(flips, bucket):
    import fsspec

    files = render(flips, f"{bucket}/png", ExportOptions(changes=True, summary_worst=0))
    memory = fsspec.filesystem("memory")
    keys = {k.split("/png/", 1)[1] for k in memory.find(bucket.removeprefix("memory:/"))}
    assert {k for k in keys if "/changes/" in k or "/summary/" in k} == {
        f"step-{step:012d}/changes/{kind}/{i}.png" for step, kinds in FLIPS.items() for kind, ids in kinds.items()
        for i in ids
    } | {f"step-{step:012d}/summary/changes.md" for step in FLIPS}
    assert len(files) == len(keys)


def test_render_without_changes_writes_no_change_files(flips, tmp_path):
    files = render(flips, tmp_path / "png", ExportOptions(summary_worst=5))
    assert len(files) == 24 and all(p.suffix == ".png" and p.parent.parent == tmp_path / "png" for p in files)
