"""The reader over s3:// (moto): inspect and validate read what they need with range requests, lazily.

moto's access log is the evidence: one listing, then only range GETs (206) of each shard for its zip
directory and .npy headers, and one small GET per dump manifest; no array is fetched by inspect."""

from __future__ import annotations

import re

import numpy as np
import pytest
from runs import write_run
from test_shards_urls import upload_tree

from exporter import api, open_run
from exporter.shards import LOAD_BLOCK_SIZE
from exporter.storage import DEFAULT_BLOCK_SIZE


@pytest.fixture
def remote_run(s3_server, tmp_path):
    # 2 steps x 2 shards of 24 images 256 x 256: 4.5 MiB a shard, 18 MiB in all
    local = write_run(tmp_path / "run", steps=(100, 200), n=48, image_shape=(256, 256), examples_per_shard=24)
    return local, upload_tree(local, f"{s3_server}/evals/run")


def _count_bytes(monkeypatch) -> list[int]:
    """Bytes of every range s3fs fetches from now on."""
    import s3fs

    fetched: list[int] = []
    real = s3fs.core.S3File._fetch_range

    def fetch_range(self, start, end):
        data = real(self, start, end)
        fetched.append(len(data))
        return data

    monkeypatch.setattr(s3fs.core.S3File, "_fetch_range", fetch_range)
    return fetched


def test_inspect_over_s3_reads_headers_only_with_range_requests(remote_run, moto, monkeypatch):
    local, root = remote_run
    files = sorted(p for p in local.rglob("*.npz"))
    total = sum(p.stat().st_size for p in files)
    fetched = _count_bytes(monkeypatch)
    mark = moto.mark()
    summary = api.inspect(root.url)
    assert str(summary) == str(api.inspect(local)).replace(f"run: {local}", f"run: {root.url}", 1)
    requests = [line.split('"')[1] for line in moto.since(mark)]
    listings = [r for r in requests if "list-type=2" in r]
    assert len(listings) == 1, requests  # one recursive listing of the run
    shard_gets = list(moto.since(mark, r"^GET .*\.npz "))
    manifest_gets = list(moto.since(mark, r"^GET .*\.done\.json "))
    assert shard_gets and all('" 206 ' in line for line in shard_gets), shard_gets  # only range GETs
    assert len(manifest_gets) == 2  # one small GET per dump, to see it closed
    # each shard: its last 128 KiB (end record, central directory, the small members' headers) in one request,
    # then the first block (the images member's header): two requests
    keys = {re.split(r"\s", line.split('"')[1])[1] for line in shard_gets}
    per_shard = {k: sum(f" {k} " in line for line in shard_gets) for k in keys}
    assert len(per_shard) == 4 and max(per_shard.values()) <= 2, per_shard
    shard_bytes = sum(fetched) - sum(len(p.read_bytes()) for p in local.rglob("*.done.json"))
    assert shard_bytes <= len(shard_gets) * DEFAULT_BLOCK_SIZE and shard_bytes < total / 10, (shard_bytes, total)
    print(f"inspect of {len(files)} shards ({total / 2**20:.1f} MiB): 1 listing, {len(shard_gets)} range GETs "
          f"fetching {shard_bytes / 2**10:.0f} KiB, {len(manifest_gets)} manifest GETs")


def test_validate_and_load_over_s3_match_the_local_run(remote_run, moto):
    local, root = remote_run
    assert api.validate(root.url) == []
    mark = moto.mark()
    here, there = open_run(local), open_run(root.url)
    for a, b in zip(here.iter_batches(), there.iter_batches(), strict=True):
        for name in a.arrays:
            np.testing.assert_array_equal(a.arrays[name], b.arrays[name])
    gets = moto.since(mark, r"^GET .*\.npz ")
    assert all('" 206 ' in line for line in gets)
    # opening a shard is 2 requests, loading it 1 for the tail and 1 per LOAD_BLOCK_SIZE of members, never one
    # per member: iter_batches opens each shard once and loads it once
    shard_size = max(p.stat().st_size for p in local.rglob("*.npz"))
    assert len(gets) <= 4 * (2 + 1 + shard_size // LOAD_BLOCK_SIZE + 1), len(gets)
