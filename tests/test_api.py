"""export / render / inspect / validate end to end: ShardWriter shards in, TensorBoard's reader out."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from runs import ALL_FIELDS, run_arrays, write_run
from tbutil import decode, pixels, read_events

from exporter import tags
from exporter._lock import LOCK_FILE
from exporter.api import ExportOptions, RunSummary, export, inspect, render, validate
from exporter.errors import ConfigError, NothingExportedError, RunNotFoundError, ShardFieldError, ShardFormatError
from exporter.render import ReadOptions, RenderOptions, render_example
from exporter.schema import FORMAT_VERSION
from exporter.shards import find_shard_files
from exporter.tensorboard import EVENT_FILE_SUFFIX
from exporter.writer import ShardWriter

CLASSES = ["cat", "dog", "bird", "fish", "cow", "owl", "bee"]
K = len(CLASSES)
STEPS = (100, 200, 300)
N = 6  # examples per step, in shards of 4 and 2
IDS = np.array(["../../etc/passwd", "/abs/path.jpg", "猫/1", "café", "img_0004", "C:\\x\\y"])


# Every field at once (classification, detection, segmentation), 24x32 images, hostile ids.
RUN = {"fields": ALL_FIELDS, "class_names": CLASSES, "image_shape": (24, 32)}


def step_data(step: int, n: int = N) -> dict[str, np.ndarray]:
    """What write_run(..., **RUN) wrote at ``step``: the arrays to check the export against."""
    return run_arrays(step, n, num_classes=K, fields=ALL_FIELDS, ids=IDS[:n], image_shape=RUN["image_shape"])


def write_step(root: Path, step: int, data: dict, **kwargs) -> None:
    """One dump of hand-written arrays, for the tests whose subject is a particular value."""
    kwargs.setdefault("class_names", CLASSES)
    kwargs.setdefault("examples_per_shard", 4)
    with ShardWriter(root, step=step, **kwargs) as w:
        w.add(**data)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("run") / "shards"
    # written out of order: export sorts by step
    return write_run(root, steps=(300, 100, 200), ids=IDS, examples_per_shard=4, **RUN)


@pytest.fixture(scope="module")
def exported(run_dir, tmp_path_factory):
    logdir = tmp_path_factory.mktemp("tb") / "eval"
    report = export(run_dir, logdir, ExportOptions(grid=True))
    return report, read_events(logdir)


def image_steps(acc) -> dict[str, list[int]]:
    return {t: [e.step for e in acc.Images(t)] for t in acc.Tags()["images"]}


# --------------------------------------------------------------------------- export


def test_export_writes_one_tag_per_example_with_steps_ascending(exported, run_dir):
    report, acc = exported
    example_tags = {tags.example_tag("examples", i) for i in IDS}
    expected = example_tags | {"examples_grid", "metrics/confusion_matrix"}
    assert set(acc.Tags()["images"]) == expected
    for tag, steps in image_steps(acc).items():
        assert steps == list(STEPS), tag
    assert all("/" not in t.split("/", 1)[1] for t in example_tags)
    assert report.steps == list(STEPS)
    assert report.images == len(expected) * len(STEPS)
    # the run has boxes and class maps too: their scalars and curves are tested in tests/test_export_metrics.py
    boxes_and_maps = [
        t for t in acc.Tags()["scalars"] + acc.Tags()["tensors"]
        if t.startswith(("metrics/detection/", "metrics/segmentation/", "pr_curve/detection/"))
    ]  # fmt: skip
    assert "metrics/detection/mAP" in boxes_and_maps and "metrics/segmentation/mean_iou" in boxes_and_maps
    assert report.tags == len(expected) + 2 + K + len(boxes_and_maps)  # + accuracy, top-5, one PR curve per class
    assert report.bad == [] and report.warnings == []
    assert report.tensorboard_command == f"tensorboard --logdir {report.logdir}"


def test_walltime_is_when_the_shards_were_written(exported, run_dir):
    _, acc = exported
    created = {}
    from exporter.shards import Shard

    for f in find_shard_files(run_dir):
        s = Shard(f)
        created.setdefault(s.step, []).append(s.meta.created)
    for e in acc.Images(tags.example_tag("examples", IDS[0])):
        assert e.wall_time == pytest.approx(created[e.step][0])


def test_decoded_images_are_the_rendered_overlays(exported):
    _, acc = exported
    data = step_data(200)
    read = ReadOptions(class_names=CLASSES)
    for row in (0, 5):  # one from each shard of the step
        (event,) = [e for e in acc.Images(tags.example_tag("examples", IDS[row])) if e.step == 200]
        img = decode(event.encoded_image_string)
        expected = render_example({k: v[row] for k, v in data.items()}, read=read)
        assert img.size == expected.size == (event.width, event.height)
        assert np.array_equal(np.asarray(img.convert("RGB")), np.asarray(expected))
        assert expected.width >= 32 and expected.height > 24  # drawn larger than the 32x24 input, with a caption
    grid = decode(acc.Images("examples_grid")[0].encoded_image_string)
    assert grid.width > 2 * expected.width and grid.height > 2 * expected.height  # 6 cells, 3 x 2


def test_accuracy_and_topk_match_an_independent_computation(exported):
    _, acc = exported
    accuracy = {e.step: e.value for e in acc.Scalars("metrics/accuracy")}
    top5 = {e.step: e.value for e in acc.Scalars("metrics/top5_accuracy")}
    for step in STEPS:
        d = step_data(step)
        assert accuracy[step] == pytest.approx(np.mean(d["pred_labels"] == d["labels"]))
        ranked = np.argsort(-d["probs"], axis=1)[:, :5]
        assert top5[step] == pytest.approx(np.mean([label in r for label, r in zip(d["labels"], ranked, strict=True)]))
    assert [e.step for e in acc.Scalars("metrics/accuracy")] == list(STEPS)


def test_pr_curve_per_class_and_a_confusion_matrix_per_step(exported):
    from tensorboard.util import tensor_util

    _, acc = exported
    classification = [t for t in acc.Tags()["tensors"] if not t.startswith("pr_curve/detection/")]
    assert sorted(classification) == sorted(f"pr_curve/{c}" for c in CLASSES)
    curves = acc.Tensors("pr_curve/dog")
    assert [c.step for c in curves] == list(STEPS)
    tp = tensor_util.make_ndarray(curves[0].tensor_proto)[0]
    assert tp[0] == np.sum(step_data(100)["labels"] == CLASSES.index("dog"))  # threshold 0: every positive
    cm = decode(acc.Images("metrics/confusion_matrix")[0].encoded_image_string)
    assert cm.width > 50 and cm.height > 50


def test_export_twice_leaves_one_copy_and_no_temp_folder(run_dir, tmp_path):
    logdir = tmp_path / "tb"
    logdir.mkdir()
    foreign = logdir / "events.out.tfevents.123.host"  # another writer's file: left alone
    foreign.write_bytes(b"")
    first = export(run_dir, logdir)
    counts = {t: len(v) for t, v in image_steps(read_events(logdir)).items()}
    second = export(run_dir, logdir)
    assert image_steps(read_events(logdir)) == {t: list(STEPS) for t in counts}
    ours = sorted(logdir.glob("*" + EVENT_FILE_SUFFIX))
    assert ours == [second.event_file] and foreign.exists()
    assert sorted(os.listdir(tmp_path)) == ["tb"]  # the temporary folder beside the logdir is gone
    assert first.images == second.images == sum(counts.values())


def test_two_workers_write_the_same_events_as_one(run_dir, tmp_path):
    one = export(run_dir, tmp_path / "one", ExportOptions(grid=True, workers=1, max_per_step=5))
    two = export(run_dir, tmp_path / "two", ExportOptions(grid=True, workers=2, max_per_step=5), progress=True)
    a, b = read_events(tmp_path / "one"), read_events(tmp_path / "two")
    assert a.Tags() == b.Tags() and (one.images, one.tags, one.steps) == (two.images, two.tags, two.steps)
    for tag in a.Tags()["images"]:
        assert [(e.step, pixels(e)) for e in a.Images(tag)] == [(e.step, pixels(e)) for e in b.Images(tag)]
    assert [e.value for e in a.Scalars("metrics/accuracy")] == [e.value for e in b.Scalars("metrics/accuracy")]


def test_more_images_per_tag_than_tensorboard_shows_warns(tmp_path, make_run):
    root = make_run(steps=range(11), ids=[7], fields=("images", "ids"))
    with pytest.warns(UserWarning, match="--samples_per_plugin images=11"):
        report = export(root, tmp_path / "tb", ExportOptions(metrics=False))
    assert any("images=11" in w for w in report.warnings)
    assert report.tensorboard_command.endswith("--samples_per_plugin images=11")
    assert image_steps(read_events(tmp_path / "tb")) == {"examples/7": list(range(11))}


def test_without_ids_examples_are_named_by_position_in_their_step(tmp_path, make_run):
    root = make_run(steps=(1, 2), n=5, fields=("images", "labels"), examples_per_shard=2)
    export(root, tmp_path / "tb", ExportOptions(metrics=False))
    expected = {f"examples/ex{i:05d}": [1, 2] for i in range(5)}
    assert image_steps(read_events(tmp_path / "tb")) == expected


def test_max_per_step_caps_images_but_not_metrics(run_dir, tmp_path):
    report = export(run_dir, tmp_path / "tb", ExportOptions(max_per_step=2, tag_prefix="eval/ex"))
    acc = read_events(tmp_path / "tb")
    assert set(acc.Tags()["images"]) == {tags.example_tag("eval/ex", i) for i in IDS[:2]} | {"metrics/confusion_matrix"}
    d = step_data(100)
    assert acc.Scalars("metrics/accuracy")[0].value == pytest.approx(np.mean(d["pred_labels"] == d["labels"]))
    assert report.images == 3 * len(STEPS)


def test_jpeg_images(run_dir, tmp_path):
    export(run_dir, tmp_path / "tb", ExportOptions(image_format="jpeg", metrics=False, max_per_step=1))
    (event,) = read_events(tmp_path / "tb").Images(tags.example_tag("examples", IDS[0]))[:1]
    img = decode(event.encoded_image_string)
    assert img.format == "JPEG" and img.size == (event.width, event.height)


def test_box_format_and_class_names_come_from_metadata_unless_overridden(tmp_path):
    root = tmp_path / "shards"
    data = {
        "images": np.full((1, 40, 40, 3), 90, np.uint8),
        "boxes": np.array([[[4, 8, 30, 36]]], np.float32),  # xyxy pixels
        "box_labels": np.array([[1]]),
        "ids": np.array(["a"]),
    }
    write_step(root, 1, data, class_names=["x", "y"], box_format="xyxy", box_coords="pixels")
    export(root, tmp_path / "tb", ExportOptions(metrics=False))
    export(root, tmp_path / "tb2", ExportOptions(metrics=False, read=ReadOptions(class_names=["p", "q"])))
    with pytest.warns(DeprecationWarning):  # class names given the old way, to RenderOptions, still count
        export(root, tmp_path / "tb3", ExportOptions(metrics=False, render=RenderOptions(class_names=["r", "s"])))
    for logdir, names in (("tb", ["x", "y"]), ("tb2", ["p", "q"]), ("tb3", ["r", "s"])):
        got = decode(read_events(tmp_path / logdir).Images("examples/a")[0].encoded_image_string)
        read = ReadOptions(class_names=names, box_format="xyxy", box_coords="pixels")
        expected = render_example({k: v[0] for k, v in data.items()}, read=read)
        assert np.array_equal(np.asarray(got.convert("RGB")), np.asarray(expected))


def test_newest_dump_of_a_step_wins(tmp_path, make_run):
    root = make_run(steps=(5,), ids=["old"], fields=("images", "ids"))
    import time

    time.sleep(1.1)  # dump ids sort by their UTC second first
    make_run(steps=(5,), ids=["new"], fields=("images", "ids"))
    with pytest.warns(UserWarning, match="older dumps"):
        report = export(root, tmp_path / "tb")
    assert set(read_events(tmp_path / "tb").Tags()["images"]) == {"examples/new"}
    assert any("older dumps" in w for w in report.warnings)


def test_duplicate_ids_get_distinct_tags(tmp_path, make_run):
    root = make_run(steps=(1,), ids=["a", "a", "A"], fields=("images", "ids"))
    with pytest.warns(UserWarning, match="1 example.* share an id"):
        export(root, tmp_path / "tb")
    expected = {"examples/a", "examples/a-dup00001", "examples/A"}  # "A" is another id, not a duplicate
    assert set(read_events(tmp_path / "tb").Tags()["images"]) == expected


def test_ids_differing_in_case_keep_their_tags_and_get_files_apart(tmp_path, make_run):
    """``A`` and ``a`` are two examples: one tag each at every step, whatever their order in the step
    (a '-dup' name depended on it), and two files that stay two where the file system folds case."""
    root = make_run(steps=(1,), ids=["A", "a", "b"], fields=("images", "ids"))
    make_run(steps=(2,), ids=["a", "b", "A"], fields=("images", "ids"))
    export(root, tmp_path / "tb")
    acc = read_events(tmp_path / "tb")
    assert set(acc.Tags()["images"]) == {"examples/A", "examples/a", "examples/b"}
    assert all([e.step for e in acc.Images(t)] == [1, 2] for t in acc.Tags()["images"])
    paths = render(root, tmp_path / "png")
    names = sorted(p.name for p in paths if p.parent.name == "step-000000000001")
    assert names == sorted(tags.safe_filename(i, ".png") for i in ["A", "a", "b"])
    assert len({n.lower() for n in names}) == 3  # distinct on macOS and Windows too
    assert "a.png" in names and "b.png" in names  # lowercase ids keep their file names


# --------------------------------------------------------------------------- bad shards


@pytest.fixture
def run_with_truncated_shard(make_run) -> tuple[Path, Path]:
    root = make_run(steps=(1, 2), ids=IDS[:5], examples_per_shard=3, **RUN)
    victim = sorted((root / "step-000000000002").glob("*.npz"))[0]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    return root, victim


def test_a_truncated_shard_stops_export_naming_the_file(run_with_truncated_shard, tmp_path):
    root, victim = run_with_truncated_shard
    with pytest.raises(ShardFormatError, match=victim.name):
        export(root, tmp_path / "tb")
    assert not (tmp_path / "tb").exists()


def test_skip_bad_skips_a_truncated_shard_and_goes_on(run_with_truncated_shard, tmp_path):
    root, victim = run_with_truncated_shard
    report = export(root, tmp_path / "tb", ExportOptions(skip_bad=True))
    assert [p.path for p in report.bad] == [str(victim)]
    steps = image_steps(read_events(tmp_path / "tb"))
    assert steps[tags.example_tag("examples", IDS[0])] == [1]  # rows 0-2 of step 2 were in the bad shard
    assert steps[tags.example_tag("examples", IDS[4])] == [1, 2]
    assert report.steps == [1, 2] and "skipped bad shard" in str(report)


def test_values_check_arrays_refuses_make_a_shard_bad(tmp_path):
    root = tmp_path / "shards"
    write_step(root, 1, {"images": np.zeros((2, 8, 8), np.uint8), "labels": np.array([0, 9]), "ids": np.array([1, 2])})
    write_step(root, 2, {"images": np.zeros((2, 8, 8), np.uint8), "labels": np.array([0, 1]), "ids": np.array([1, 2])})
    with pytest.raises(ShardFieldError, match="field 'labels'.*outside the 7 class names"):
        export(root, tmp_path / "tb")
    report = export(root, tmp_path / "tb", ExportOptions(skip_bad=True))
    assert [p.field for p in report.bad] == ["labels"] and report.steps == [2]


def test_all_bad_is_an_error_and_leaves_the_logdir_alone(tmp_path, run_dir):
    root = tmp_path / "shards"
    write_step(root, 1, {"images": np.zeros((1, 8, 8), np.uint8), "labels": np.array([9])})
    with pytest.raises(NothingExportedError, match="every shard was bad") as caught:
        export(root, tmp_path / "tb", ExportOptions(skip_bad=True))
    assert [p.path for p in caught.value.bad] == [str(f) for f in find_shard_files(root)]
    assert not (tmp_path / "tb").exists()  # a folder it made for nothing is gone again
    # over an earlier export: that export stays as it was
    first = export(run_dir, tmp_path / "tb2", ExportOptions()).event_file
    with pytest.raises(NothingExportedError):
        export(root, tmp_path / "tb2", ExportOptions(skip_bad=True))
    assert list((tmp_path / "tb2").glob("*tfevents*")) == [first]


# --------------------------------------------------------------------------- render to files


def test_render_writes_files_only_inside_outdir(run_dir, tmp_path):
    outdir = tmp_path / "a" / "out"
    paths = render(run_dir, outdir, ExportOptions(grid=True))
    assert len(paths) == len(STEPS) * (N + 1)
    everything = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != LOCK_FILE]
    assert sorted(everything) == sorted(paths)
    for p in paths:
        assert p.resolve().parent.parent == outdir.resolve() and p.suffix == ".png"
    step_dir = outdir / "step-000000000100"
    assert sorted(p.name for p in step_dir.iterdir()) == sorted(
        [tags.safe_filename(i, ".png") for i in IDS] + ["grid.png"]
    )
    img = decode((step_dir / tags.safe_filename(IDS[1], ".png")).read_bytes())
    expected = render_example({k: v[1] for k, v in step_data(100).items()}, read=ReadOptions(class_names=CLASSES))
    assert np.array_equal(np.asarray(img.convert("RGB")), np.asarray(expected))


# --------------------------------------------------------------------------- inspect / validate / options


def test_inspect_reads_at_a_glance(run_dir):
    summary = inspect(run_dir)
    assert isinstance(summary, RunSummary)
    assert summary.steps == list(STEPS) and summary.examples_per_step == dict.fromkeys(STEPS, N)
    assert summary.shards_per_step == dict.fromkeys(STEPS, 2) and summary.incomplete == []
    text = str(summary)
    needles = ("steps: 3, shards: 6, examples: 18", "u1[?,24,32,3]", "classes (7): cat, dog", FORMAT_VERSION, "yxyx normalized")
    for needle in needles:
        assert needle in text, needle


def test_inspect_names_incomplete_dumps(make_run):
    root = make_run(steps=(1,), n=1, fields=("images",))
    for manifest in root.rglob("*.done.json"):
        manifest.unlink()
    summary = inspect(root)
    assert len(summary.incomplete) == 1 and "did not close" in str(summary)


def test_validate_lists_every_problem_including_older_dumps(run_with_truncated_shard):
    root, victim = run_with_truncated_shard
    problems = validate(root)
    assert [p.path for p in problems] == [str(victim)]
    assert validate(root / "step-000000000001") == []
    with pytest.raises(RunNotFoundError):
        validate(root / "nowhere")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"workers": 0}, "workers"),
        ({"max_per_step": -1}, "max_per_step"),
        ({"grid_max": 0}, "grid_max"),
        ({"image_format": "gif"}, "image_format"),
        ({"jpeg_quality": 101}, "jpeg_quality"),
        ({"topk": 0}, "topk"),
        ({"dumps": "oldest"}, "dumps"),
        ({"read": lambda: ReadOptions(box_format="xy")}, "box_format"),
        ({"read": lambda: ReadOptions(box_coords="cm")}, "box_coords"),
        ({"read": lambda: ReadOptions(class_names="cat")}, "class_names"),
        ({"tag_prefix": "/x"}, "tag prefix"),
        ({"png_encoder": "zlib"}, "png_encoder"),
        ({"grid": "yes"}, "grid"),
        ({"workers": True}, "workers must be an integer"),
        ({"render": {"class_names": []}}, "RenderOptions"),
        ({"read": {"class_names": []}}, "ReadOptions"),
    ],
)
def test_export_options_refuse_what_cannot_work(kwargs, match):
    with pytest.raises(ConfigError, match=match):  # a callable value is built inside, where it raises
        ExportOptions(**{k: v() if callable(v) else v for k, v in kwargs.items()})


def test_export_of_a_missing_folder(tmp_path):
    with pytest.raises(RunNotFoundError):
        export(tmp_path / "missing", tmp_path / "tb")


def test_pr_curves_and_confusion_matrix_are_bounded_by_class_count(tmp_path):
    from exporter import ShardWriter
    from exporter.api import ExportOptions, export
    from exporter.metrics.classification import MAX_CLASSES as MAX_CONFUSION_CLASSES

    k = MAX_CONFUSION_CLASSES + 1
    probs = np.full((2, k), 1.0 / k, np.float32)
    with ShardWriter(tmp_path / "s", step=1) as w:
        w.add(images=np.zeros((2, 4, 4), np.uint8), labels=np.array([0, k - 1]), probs=probs)
    with pytest.warns(UserWarning, match="confusion matrix and PR curves not written"):
        report = export(tmp_path / "s", tmp_path / "l", ExportOptions())
    acc = read_events(tmp_path / "l")
    assert not [t for t in acc.Tags()["tensors"] if t.startswith("pr_curve/")]
    assert report.images == 2


def test_an_export_refused_as_busy_leaves_the_holders_folder_alone(tmp_path, make_run, monkeypatch):
    """Two exports into a new LOGDIR: both see no folder, one creates it and locks it first. The one refused
    must not remove the folder (nor its lock file) as one it created: the winner is using them."""
    import exporter.api as api
    from exporter._lock import LOCK_FILE, OutputLock
    from exporter.errors import LogdirBusyError

    run = make_run(steps=(1,))
    logdir = tmp_path / "logs"
    holder = OutputLock(logdir)
    real = api.prepare_output_dir

    def the_other_export_wins(path):
        out = real(path)
        holder.acquire()  # between our look (no folder) and our lock
        return out

    monkeypatch.setattr(api, "prepare_output_dir", the_other_export_wins)
    try:
        with pytest.raises(LogdirBusyError, match=rf"pid {os.getpid()} on"):
            export(run, logdir)
        assert (logdir / LOCK_FILE).exists() and os.fstat(holder._fd).st_ino == os.stat(logdir / LOCK_FILE).st_ino
    finally:
        holder.release()
    monkeypatch.undo()
    export(run, logdir)  # and the folder works for the next one
