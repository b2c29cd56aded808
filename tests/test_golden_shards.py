"""Format longevity: committed 1.0 and 1.1 shards (written under numpy 1.26 and 2.x) load and validate forever."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from golden_shards import make_golden
from golden_shards.make_golden import CLASS_NAMES, expected_arrays, expected_arrays_v1_1

from exporter import open_run, validate_shard
from exporter.shards import find_shard_files

GOLDEN = Path(__file__).parent / "golden_shards" / "v1"
GOLDEN_1_1 = Path(__file__).parent / "golden_shards" / "v1.1"
WRITERS = {"numpy1": "1.", "numpy2": "2."}


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_golden_v1_shards_load_with_exact_arrays(writer):
    run = open_run(GOLDEN / writer)
    assert run.steps == [100, 200]
    assert run.class_names == CLASS_NAMES
    for step in run.steps:
        shards = run.shards(step)
        assert [len(s) for s in shards] == [5, 3]
        assert shards[0].meta.format_version == "1.0"
        assert shards[0].meta.versions["numpy"].startswith(WRITERS[writer])  # written by that numpy
        got = {k: np.concatenate([b.arrays[k] for b in run.iter_batches(step)]) for k in shards[0].fields}
        want = expected_arrays(step)
        assert sorted(got) == sorted(want)
        for key, value in want.items():
            np.testing.assert_array_equal(got[key], value, err_msg=key)
            assert got[key].dtype.kind == value.dtype.kind, key


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_golden_v1_shards_validate(writer):
    files = find_shard_files(GOLDEN / writer)
    assert len(files) == 4
    assert [str(p) for f in files for p in validate_shard(f)] == []


def test_plain_numpy_load_reads_every_golden_shard():
    files = find_shard_files(GOLDEN.parent)
    assert len(files) == 2 * 2 * 4  # two formats, two writers, two steps of two shards: an empty folder must not pass
    for f in files:
        with np.load(f, allow_pickle=False) as npz:
            assert "__meta__" in npz.files and npz["images"].dtype == np.uint8


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_golden_v1_1_shards_load_with_exact_arrays(writer):
    run = open_run(GOLDEN_1_1 / writer)
    assert run.steps == [100, 200]
    assert run.class_names == CLASS_NAMES
    for step in run.steps:
        shards = run.shards(step)
        assert [len(s) for s in shards] == [4, 2]  # one add() of 6, cut at examples_per_shard=4
        meta = shards[0].meta
        assert meta.format_version == "1.1"
        assert meta.versions["numpy"].startswith(WRITERS[writer])
        assert (meta.box_format, meta.box_coords) == ("xyxy", "pixels")
        assert meta.mask_class_names == make_golden.MASK_CLASS_NAMES and meta.mask_background == 255
        assert (meta.keypoint_names, meta.keypoint_edges) == (make_golden.KEYPOINT_NAMES, make_golden.KEYPOINT_EDGES)
        got = {k: np.concatenate([b.arrays[k] for b in run.iter_batches(step)]) for k in shards[0].fields}
        want = expected_arrays_v1_1(step)
        assert sorted(got) == sorted(want)
        for key, value in want.items():
            np.testing.assert_array_equal(got[key], value, err_msg=key)  # NaN keypoints included
            assert got[key].dtype.kind == value.dtype.kind, key


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_golden_v1_1_shards_validate(writer):
    files = find_shard_files(GOLDEN_1_1 / writer)
    assert len(files) == 4
    assert [str(p) for f in files for p in validate_shard(f)] == []


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_golden_v1_shards_export(writer, tmp_path):
    from tbutil import read_events

    from exporter.api import export

    report = export(GOLDEN / writer, tmp_path / "logs")
    assert report.steps == [100, 200] and not report.bad
    acc = read_events(tmp_path / "logs")
    example_tags = [t for t in acc.Tags()["images"] if t.startswith("examples/")]
    assert len(example_tags) == 8  # one per id, the same at both steps
    assert all([e.step for e in acc.Images(t)] == [100, 200] for t in example_tags)
    assert [e.step for e in acc.Scalars("metrics/accuracy")] == [100, 200]
    for event in acc.Scalars("metrics/accuracy"):
        want = expected_arrays(event.step)
        assert event.value == pytest.approx(float((want["labels"] == want["pred_labels"]).mean()))


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_golden_v1_1_shards_export(writer, tmp_path):
    from tbutil import read_events

    from exporter.api import export

    report = export(GOLDEN_1_1 / writer, tmp_path / "logs")
    assert report.steps == [100, 200] and not report.bad
    acc = read_events(tmp_path / "logs")
    example_tags = [t for t in acc.Tags()["images"] if t.startswith("examples/")]
    assert len(example_tags) == 6  # one per id, the same at both steps
    assert all([e.step for e in acc.Images(t)] == [100, 200] for t in example_tags)
