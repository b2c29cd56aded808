"""ShardWriter: round trips, batching rules, limits, errors from the thread."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from exporter import ConfigError, ShardWriter, WriterError, open_run
from exporter.shards import find_shard_files
from exporter.validation import validate_shard

DTYPES = [np.uint8, np.uint16, np.int32, np.float16, np.float32, np.float64, np.bool_]


def _read_all(directory, step=None):
    run = open_run(directory)
    batches = list(run.iter_batches(step))
    return run, {k: np.concatenate([b.arrays[k] for b in batches]) for k in batches[0].arrays}


@settings(max_examples=40, deadline=None)
@given(
    dtype=st.sampled_from(DTYPES),
    layout=st.sampled_from([(5, 7), (5, 7, 1), (5, 7, 3), (3, 5, 7), (4, 4, 4)]),
    batches=st.lists(st.integers(1, 5), min_size=1, max_size=4),
    per_shard=st.integers(1, 6),
    data=st.data(),
)
def test_round_trip_any_dtype_and_shape(tmp_path_factory, dtype, layout, batches, per_shard, data):
    root = tmp_path_factory.mktemp("rt")
    sent = []
    with ShardWriter(root, step=7, examples_per_shard=per_shard) as w:
        for i, n in enumerate(batches):
            images = data.draw(hnp.arrays(dtype, (n, *layout)))
            ids = np.array([f"ex-{i}-{j}-é" for j in range(n)])
            w.add(images=images, ids=ids, score_extra=np.arange(n, dtype=np.float32))
            sent.append((images.copy(), ids))
    run, got = _read_all(root)
    assert run.steps == [7]
    want_images = np.concatenate([s[0] for s in sent])
    np.testing.assert_array_equal(got["images"], want_images)  # NaN == NaN here
    assert got["images"].dtype == want_images.dtype
    np.testing.assert_array_equal(got["ids"], np.concatenate([s[1] for s in sent]))
    assert got["score_extra"].shape == (sum(batches),)  # extras are carried along
    assert [len(s) for s in run.shards()][:-1] == [per_shard] * (len(run.shards()) - 1)


def test_partial_last_batch_and_image_size_change_start_new_shards(tmp_path):
    with ShardWriter(tmp_path, step=1, examples_per_shard=100) as w:
        w.add(images=np.zeros((4, 8, 8, 3), np.uint8), labels=np.arange(4))
        w.add(images=np.ones((3, 8, 8, 3), np.uint8), labels=np.arange(3))  # partial last batch
        w.add(images=np.full((2, 16, 12, 3), 9, np.uint8), labels=np.arange(2))  # new size
    shards = open_run(tmp_path).shards()
    assert [s.fields["images"].shape for s in shards] == [(7, 8, 8, 3), (2, 16, 12, 3)]


def test_bytes_and_object_strings_become_unicode(tmp_path):
    with ShardWriter(tmp_path) as w:
        w.add(ids=np.array([b"a", b"\xff"]), labels=[1, 2])
        w.add(ids=np.array(["long-id", b"b"], dtype=object), labels=[3, 4])
    _, got = _read_all(tmp_path)
    assert got["ids"].dtype.kind == "U"
    assert list(got["ids"]) == ["a", "\ufffd", "long-id", "b"]


def test_max_examples_is_exact_and_reports_full(tmp_path):
    w = ShardWriter(tmp_path, max_examples=5, examples_per_shard=2)
    assert w.add(labels=np.arange(3)) == 3
    assert not w.full
    assert w.add(labels=np.arange(3, 6)) == 2
    assert w.full
    assert w.add(labels=np.arange(3)) == 0
    w.close()
    _, got = _read_all(tmp_path)
    assert list(got["labels"]) == [0, 1, 2, 3, 4]
    assert (w.seen, w.kept, w.written) == (9, 5, 5)


def test_caller_may_reuse_its_buffer_after_add(tmp_path):
    buf = np.zeros((2, 4, 4), np.float32)
    with ShardWriter(tmp_path) as w:
        w.add(images=buf)
        buf[:] = 1.0
        w.add(images=buf)
    _, got = _read_all(tmp_path)
    assert got["images"][:2].max() == 0.0 and got["images"][2:].min() == 1.0


def test_same_step_twice_keeps_both_dumps_and_reads_newest(tmp_path):
    for value in (1, 2):
        with ShardWriter(tmp_path, step=10) as w:
            w.add(labels=np.full(3, value))
    assert len(find_shard_files(tmp_path)) == 2
    with pytest.warns(UserWarning, match="older dumps"):
        run = open_run(tmp_path)
    assert [b.arrays["labels"][0] for b in run.iter_batches()] == [2]
    assert len(run.ignored) == 1
    assert open_run(tmp_path, dumps="all").num_examples() == 6


@pytest.mark.parametrize(
    "kwargs, fields, match",
    [
        ({"step": -1}, None, "step must be an integer >= 0"),
        ({"box_format": "xyzw"}, None, "box_format must be one of"),
        ({"box_coords": "percent"}, None, "box_coords must be one of"),
        ({"meta": {"x": object()}}, None, "meta must be JSON-serialisable"),
        ({"examples_per_shard": 0}, None, "examples_per_shard must be an integer >= 1"),
        ({}, {"images": np.zeros((2, 3, 3)), "labels": np.zeros(3)}, "same batch size"),
        ({}, {"labels": 3}, "batch-major"),
        ({}, {"boxes": np.zeros((2, 4))}, r"must have 3 dims .* got shape \(2, 4\)"),
        ({}, {"boxes": np.zeros((2, 3, 5))}, r"shape \(N, M, 4\)"),
        ({}, {"bad-name": np.zeros(2)}, "field name 'bad-name' is not allowed"),
        ({}, {"__meta__": np.zeros(2)}, "is not allowed"),
        ({}, {"stuff": np.array([{}, {}], dtype=object)}, "Python objects"),
        ({}, {"cplx": np.zeros(2, np.complex64)}, "cannot store"),
        ({}, {"labels": (i for i in range(3))}, r"'labels' is a generator, which is read only once .* pass a list"),
        ({}, {"labels": map(int, "123")}, r"'labels' is a map, which is read only once"),
    ],
)
def test_bad_arguments_raise_config_error(tmp_path, kwargs, fields, match):
    with pytest.raises(ConfigError, match=match):
        w = ShardWriter(tmp_path, **kwargs)
        w.add(**fields)


def test_write_error_surfaces_on_next_add_or_close(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the run folder should be")
    w = ShardWriter(blocker, examples_per_shard=1)
    w.add(labels=[1])  # the shard goes to the thread; the failure comes back on a later call
    with pytest.raises(WriterError, match="writing shards to .* failed"):
        w.add(labels=[2])
        w.close()
    with pytest.raises(WriterError):
        w.close()  # closing again still reports, never pretends success


def test_drop_mode_counts_lost_examples(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    w = ShardWriter(blocker, examples_per_shard=2, on_error="drop")
    w.add(labels=[1, 2, 3])
    w.close()
    assert w.dropped == 3 and w.written == 0
    assert "dropped shard" in caplog.text


def test_every_shard_written_validates(tmp_path):
    rng = np.random.default_rng(0)
    with ShardWriter(tmp_path, step=3, class_names=["a", "b"], examples_per_shard=3) as w:
        for _ in range(3):
            y0x0 = rng.uniform(0, 0.5, (4, 2, 2))
            w.add(
                images=rng.integers(0, 255, (4, 16, 16, 3), dtype=np.uint8),
                labels=rng.integers(0, 2, 4),
                boxes=np.concatenate([y0x0, y0x0 + 0.3], axis=-1).reshape(4, 2, 4),
                box_labels=rng.integers(0, 2, (4, 2)),
                num_boxes=rng.integers(0, 3, 4),
            )
    files = find_shard_files(tmp_path)
    assert len(files) == 4
    assert [validate_shard(f) for f in files] == [[]] * 4
    assert all(np.load(f, allow_pickle=False)["__meta__"].dtype.kind == "U" for f in files)


def test_a_big_add_is_cut_by_bytes_and_copied_shard_by_shard(tmp_path):
    images = np.arange(40 * 10 * 10, dtype=np.uint8).reshape(40, 10, 10)  # 100 bytes an example, 108 with its label
    with ShardWriter(tmp_path, examples_per_shard=256, max_shard_bytes=1080) as w:
        w.add(images=images, labels=np.arange(40))
        images[:] = 0  # the caller reuses its buffer: what was added is already copied
    run, got = _read_all(tmp_path)
    assert [len(s) for s in run.shards()] == [10, 10, 10, 10]  # 1080 bytes each, not 256 examples in one
    assert (got["labels"] == np.arange(40)).all() and got["images"].max() > 0


_BIG_ADD = """
import os, resource, sys, numpy as np
from exporter import ShardWriter

def rss():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

batch = np.ones((1024, 512, 512, 4), np.uint8)  # 1 GiB, every page touched
before = rss()
with ShardWriter(sys.argv[1], step=1) as w:
    w.add(images=batch)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(peak - before, w.written, len(w.paths))
"""


def test_one_huge_add_needs_memory_for_the_queue_not_for_a_copy_of_the_batch(tmp_path):
    import os
    import shutil
    import subprocess
    import sys
    import tempfile

    out = Path(tempfile.mkdtemp(dir="/dev/shm" if os.path.isdir("/dev/shm") else tmp_path))  # RAM: the test is not a disk benchmark
    try:
        done = subprocess.run([sys.executable, "-c", _BIG_ADD, str(out)], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        extra, written, shards = (int(v) for v in done.stdout.split())
    finally:
        shutil.rmtree(out, ignore_errors=True)
    assert (written, shards) == (1024, 16)  # 64 MiB shards (max_shard_bytes), not 256 examples of 1 MiB
    # the writer's own memory: a shard being copied, one being written, two in the queue (4 x 64 MiB);
    # a copy of the whole batch would be 1 GiB
    assert extra < 400 * 2**20, f"{extra / 2**20:.0f} MiB above the batch"


@pytest.mark.parametrize("how", ["removed", "replaced"])
@pytest.mark.parametrize("on_error", ["raise", "drop"])
def test_a_step_folder_that_disappears_is_an_error_not_made_again(tmp_path, how, on_error, caplog):
    import shutil

    w = ShardWriter(tmp_path / "run", step=5, examples_per_shard=2, on_error=on_error)
    w.add(labels=[1, 2])
    _wait_written(w, 2)
    shutil.rmtree(tmp_path / "run")  # a cleanup job, a user tidying up
    if how == "replaced":
        w.step_dir.mkdir(parents=True)  # another writer's folder of the same name
    if on_error == "raise":
        with pytest.raises(WriterError, match=rf"the step folder .*step-000000000005 was {how}"):
            w.add(labels=[3, 4])
            _wait_done(w)
            w.add(labels=[5, 6])
            w.close()
    else:
        w.add(labels=[3, 4, 5, 6])
        w.close()
        assert (w.written, w.dropped) == (2, 4)
        assert f"was {how}" in caplog.text
    assert list(w.step_dir.glob("*")) == [] if how == "replaced" else not w.step_dir.exists()


def _wait_written(w, n, seconds=10.0):
    import time

    deadline = time.monotonic() + seconds
    while w.written < n and time.monotonic() < deadline:
        time.sleep(0.01)
    assert w.written == n


def _wait_done(w, seconds=10.0):
    import time

    deadline = time.monotonic() + seconds
    while w._error is None and w.dropped == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
