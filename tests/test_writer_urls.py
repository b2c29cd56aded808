"""ShardWriter to a URL, on fsspec's in-memory file system (the remote code path, no server).

What a real S3 server sees (final keys only, no temp object, a store that goes down) is in
tests/system/test_storage_capture.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from exporter import ConfigError, ShardWriter, WriterError, open_run
from exporter import shards as shards_module
from exporter.errors import RunNotFoundError, StorageError
from exporter.storage import Location, RetryPolicy, locate, walk

fsspec = pytest.importorskip("fsspec")


def _batch(n: int, start: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(start)
    return {
        "images": rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8),
        "labels": np.arange(start, start + n) % 3,
        "ids": np.arange(start, start + n),
    }


def _download(url: str, dest: Path) -> Path:
    location = locate(url)
    for rel in walk(location):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(location.fs.cat_file(f"{location.path}/{rel}"))
    return dest


def test_a_url_writer_uploads_every_shard_whole_and_the_manifest_last(bucket, tmp_path, monkeypatch):
    order: list[str] = []
    real_put_file, real_put_bytes = shards_module.put_file, __import__("exporter.manifest").manifest.put_bytes

    def put_file(src, location, **kwargs):
        order.append(location.name)
        return real_put_file(src, location, **kwargs)

    def put_bytes(location, data, **kwargs):
        order.append(location.name)
        return real_put_bytes(location, data, **kwargs)

    monkeypatch.setattr(shards_module, "put_file", put_file)
    monkeypatch.setattr("exporter.manifest.put_bytes", put_bytes)
    with ShardWriter(f"{bucket}/run1", step=7, class_names=["a", "b", "c"], examples_per_shard=4) as w:
        for start in (0, 5):
            w.add(**_batch(5, start))
    assert isinstance(w.directory, Location) and w.written == 10 and len(w.paths) == 3
    names = walk(locate(f"{bucket}/run1"))
    shard_names = [f"step-000000000007/{w.dump_id}-{i:05d}.npz" for i in range(3)]
    manifest = f"step-000000000007/{w.dump_id}.done.json"
    assert names == sorted([*shard_names, manifest])  # final names only: nothing temporary was ever made here
    assert order == [n.split("/")[1] for n in [*shard_names, manifest]]  # the manifest last
    copy = _download(f"{bucket}/run1", tmp_path / "copy")
    assert json.loads((copy / manifest).read_text())["shards"] == [n.split("/")[1] for n in shard_names]
    run = open_run(copy)
    got = np.concatenate([b.arrays["ids"] for b in run.iter_batches()])
    np.testing.assert_array_equal(got, np.arange(10))


def test_a_local_path_keeps_the_local_code_path(tmp_path):
    with ShardWriter(tmp_path / "run", step=1) as w:
        w.add(**_batch(3))
    assert isinstance(w.directory, Path) and isinstance(w.step_dir, Path)
    assert all(isinstance(p, Path) and p.is_file() for p in w.paths)
    with ShardWriter(f"file://{tmp_path}/run2", step=1) as w:
        w.add(**_batch(3))
    assert isinstance(w.step_dir, Path) and (tmp_path / "run2" / "step-000000000001").is_dir()


@pytest.mark.parametrize("url, error", [
    ("foo://bucket/run", "unknown URL scheme 'foo'"),
    ("memory://", "names no bucket or folder"),
])
def test_a_url_that_cannot_work_is_refused_at_construction(tmp_path, monkeypatch, url, error):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=error):
        ShardWriter(url, step=1)
    assert list(tmp_path.iterdir()) == []  # never a local folder named foo:


def test_the_hooks_refuse_a_bad_url_when_built_not_at_the_first_dump(tmp_path, monkeypatch):
    pytest.importorskip("tensorflow")
    from exporter.capture.estimator import EvalDumpHook

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="unknown URL scheme 's4'"):
        EvalDumpHook("s4://bucket/run", {"images": "images:0"})
    assert list(tmp_path.iterdir()) == []


def _failing_uploads(monkeypatch, calls: list[str]) -> None:
    def put_file(src, location, **kwargs):
        calls.append(location.name)
        raise StorageError(f"upload to {location} failed after 3 tries in 0.1 s: EndpointConnectionError: gone",
                           str(location), 3)

    monkeypatch.setattr(shards_module, "put_file", put_file)


def test_a_store_that_stays_down_is_a_writer_error_naming_the_url(bucket, monkeypatch):
    calls: list[str] = []
    _failing_uploads(monkeypatch, calls)
    w = ShardWriter(f"{bucket}/run", step=3, examples_per_shard=2)
    with pytest.raises(WriterError) as info:
        for start in range(0, 20, 2):
            w.add(**_batch(2, start))
        w.close()
    message = str(info.value)
    step_url = locate(f"{bucket}/run/step-000000000003").url  # memory:///bucket-...: memory paths start with /
    assert message.startswith(f"writing shards to {step_url} failed: StorageError: upload to {step_url}/"), message
    assert "EndpointConnectionError" in message
    assert isinstance(info.value.__cause__, StorageError)
    with pytest.raises(WriterError):
        w.close()
    assert len(calls) <= 1 + w.config.queue_size + 1  # after the first failure the rest are not even tried


def test_a_store_that_stays_down_with_drop_counts_every_lost_example(bucket, monkeypatch, caplog):
    calls: list[str] = []
    _failing_uploads(monkeypatch, calls)
    with ShardWriter(f"{bucket}/run", step=3, examples_per_shard=2, on_error="drop") as w:
        for start in range(0, 10, 2):
            w.add(**_batch(2, start))
    assert (w.dropped, w.written, w.kept) == (10, 0, 10)
    assert len(calls) == 5 and "dropped shard" in caplog.text
    with pytest.raises(RunNotFoundError):  # nothing was uploaded: no manifest claims a dump
        walk(locate(f"{bucket}/run"))


def test_a_transient_failure_is_retried_within_the_policy(bucket, monkeypatch):
    real = shards_module.put_file
    failures = iter([ConnectionResetError("reset by peer")])

    def flaky_fs_put(self, lpath, rpath, **kwargs):  # the memory file system, failing once
        exc = next(failures, None)
        if exc is not None:
            raise exc
        return original(self, lpath, rpath, **kwargs)

    memory_cls = type(fsspec.filesystem("memory"))
    original = memory_cls.put_file
    monkeypatch.setattr(memory_cls, "put_file", flaky_fs_put)
    policy = RetryPolicy(tries=3, deadline=5, first_delay=0.01)
    with ShardWriter(f"{bucket}/run", step=3, retry=policy) as w:
        w.add(**_batch(4))
    assert w.written == 4 and shards_module.put_file is real
    assert walk(locate(f"{bucket}/run")) == [f"step-000000000003/{w.dump_id}-00000.npz",
                                              f"step-000000000003/{w.dump_id}.done.json"]


def test_upload_shard_leaves_no_local_temp_file(bucket, tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    with ShardWriter(f"{bucket}/run", step=1) as w:
        w.add(**_batch(4))
    calls: list[str] = []
    _failing_uploads(monkeypatch, calls)
    with ShardWriter(f"{bucket}/run", step=2, on_error="drop") as w:
        w.add(**_batch(4))
    assert calls and list(tmp_path.iterdir()) == []
