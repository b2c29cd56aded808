"""The benchmark's TensorBoard section starts a real server over an exported logdir and times it (tiny size)."""

from __future__ import annotations

import dataclasses
import math

import pytest

from exporter import bench

pytestmark = pytest.mark.tensorboard_server
pytest.importorskip("tensorboard")


def test_tensorboard_section_lists_every_tag_and_serves_an_image(tmp_path):
    sizes = dataclasses.replace(bench.QUICK, tensorboard_tags=(30,))
    results = bench.Results({}, {}, "", sizes, True)
    bench.bench_tensorboard(sizes, tmp_path, results)
    assert not [s for s in results.skipped if s.key == "tb/30/python"], results.skipped
    rows = {r.key: r for r in results.rows}
    loaders = ["tb/30/python"] + (["tb/30"] if bench._rust_loader_available() else [])
    for key in loaders:
        row = rows[key]
        assert row.info and math.isfinite(row.ratio) and row.ratio >= 1.0, row
        raw = results.raw["tensorboard"][key]
        assert raw["tags_seen"] == 30 and raw["image_bytes"] > 100 and raw["images_request_s"] > 0
    assert not list(tmp_path.glob("tb-*")), "the section removes its logdirs"
