"""The reader over URLs, on fsspec's in-memory file system (the remote code path, no server): Shard, Run,
open_run, inspect and validate read a copy of a run in memory:// as they read it on disk.

What goes over the wire to a real S3 server (range requests only) is in tests/system/test_storage_read.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from runs import ALL_FIELDS, write_run

from exporter import api, open_run
from exporter import shards as shards_module
from exporter.errors import RunNotFoundError, ShardFormatError, StorageError
from exporter.shards import Shard, find_shard_files
from exporter.storage import Location, join, locate, put_bytes, put_file

fsspec = pytest.importorskip("fsspec")


def upload_tree(local: Path, url: str) -> Location:
    """Every file under ``local`` put under ``url`` with the same relative path."""
    root = locate(url)
    for path in sorted(p for p in local.rglob("*") if p.is_file()):
        put_file(path, join(root, path.relative_to(local).as_posix()))
    return root


@pytest.fixture
def runs(tmp_path, bucket):
    local = write_run(tmp_path / "run", steps=(100, 200), n=7, fields=ALL_FIELDS, class_names=["cat", "dog", "bird"])
    return local, upload_tree(local, f"{bucket}/run").url


def test_a_run_in_a_store_reads_as_it_does_on_disk(runs):
    local, url = runs
    here, there = open_run(local), open_run(url)
    assert isinstance(there.path, Location) and there.path.url == url
    assert there.steps == here.steps and there.fields == here.fields and there.class_names == here.class_names
    assert all(isinstance(s.path, Location) for s in there.shards())
    for a, b in zip(here.iter_batches(), there.iter_batches(), strict=True):
        assert a.step == b.step and a.meta == b.meta and a.arrays.keys() == b.arrays.keys()
        for name in a.arrays:
            np.testing.assert_array_equal(a.arrays[name], b.arrays[name])
    assert str(there).startswith(f"Run('{url}', steps=[100, 200], shards=2, examples=14")


def test_inspect_and_validate_over_a_url(runs):
    local, url = runs
    here, there = api.inspect(local), api.inspect(url)
    assert str(there) == str(here).replace(f"run: {local}", f"run: {url}", 1)
    assert there.incomplete == [] and api.validate(url) == []
    one = api.shard_files(url)[0]
    assert isinstance(one, Location) and api.validate(one.url) == [] and len(Shard(one.url)) == 7


def test_a_dump_without_its_manifest_is_reported_over_a_url(runs):
    _, url = runs
    root = locate(url)
    manifest = next(f for f in root.fs.find(root.path) if f.endswith(".done.json"))
    root.fs.rm(manifest)
    (line,) = api.inspect(url).incomplete
    assert line.startswith("step 100, dump ") and "the writer did not close" in line


def test_temp_objects_and_staging_prefixes_are_not_shards(runs):
    _, url = runs
    root = locate(url)
    put_bytes(join(root, "step-000000000100/.x-00000.npz.tmp-12-ab"), b"half")
    put_bytes(join(root, ".summary-exporter-tmp-1-ab/step-000000000300/x-00000.npz"), b"half")
    put_bytes(join(root, "step-000000000100/notes.txt"), b"not a shard")
    assert len(find_shard_files(url)) == 2 and open_run(url).steps == [100, 200]


def test_a_damaged_object_is_a_problem_naming_its_url(runs):
    _, url = runs
    bad = join(locate(url), "step-000000000300/20261201T000000.000000Z-abcdef-00000.npz")
    put_bytes(bad, b"PK\x03\x04 not really a zip")
    (problem,) = api.validate(url)
    assert problem.path == bad.url and "not a readable .npz/zip file" in problem.message
    with pytest.raises(ShardFormatError, match=f"^{bad.url}: not a readable"):
        open_run(url)
    assert open_run(url, skip_bad=True).bad[0].path == bad.url


@pytest.mark.parametrize("where", ["nothing/here", "nothing.npz"])
def test_nothing_at_a_url_is_run_not_found(bucket, where):
    with pytest.raises(RunNotFoundError, match="no such file or folder"):
        open_run(f"{bucket}/{where}")


class _FailingFile:
    """A remote file whose reads fail as a dropped connection does."""

    def __init__(self, real):
        self.real = real

    def read(self, n=-1):
        raise ConnectionResetError(104, "Connection reset by peer")

    def __getattr__(self, name):
        return getattr(self.real, name)


def test_a_store_failing_mid_read_is_a_storage_error_never_a_bad_shard(runs, monkeypatch):
    _, url = runs
    real_open = shards_module.open_read
    monkeypatch.setattr(shards_module, "open_read", lambda loc, **kw: _FailingFile(real_open(loc, **kw)))
    for call in (lambda: open_run(url), lambda: open_run(url, skip_bad=True), lambda: api.validate(url),
                 lambda: api.inspect(url)):
        with pytest.raises(StorageError, match=rf"^reading {url}/step-000000000100/.*\.npz failed: "
                                               r"ConnectionResetError: \[Errno 104\] Connection reset by peer$"):
            call()


def test_storage_options_reach_every_shard(runs):
    _, url = runs
    run = open_run(url, storage_options={"skip_instance_cache": True})
    assert all(s.path.storage_options == {"skip_instance_cache": True} for s in run.shards())
