"""The benchmark's storage section alone, at tiny sizes: a moto server and a 2-worker Dask cluster of its own on
127.0.0.1, and a numeric ratio for each of its rows (behaviour only, never speed)."""

from __future__ import annotations

import contextlib
import io
import json
import math

import pytest

from exporter import bench
from exporter.cli import build_parser

STORAGE_ROWS = {"s3", "s3/memory", "dask", "dask/plain"}
OTHER_SECTIONS = [s for s in bench.SECTIONS if s != "storage"]


@pytest.fixture(scope="module")
def storage_run(tmp_path_factory):
    """``bench --quick --skip <every other section>``: its JSON and its printed table."""
    why = bench.storage_available()
    if why is not None:
        pytest.skip(why)
    tmp = tmp_path_factory.mktemp("bench-storage")
    out = tmp / "bench.json"
    skips = [a for s in OTHER_SECTIONS for a in ("--skip", s)]
    args = build_parser().parse_args(
        ["bench", "--quick", "--json", str(out), "--workdir", str(tmp / "work"), "--cache-dir", str(tmp / "cache"),
         *skips]
    )
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert bench.run(args) == 0
    return json.loads(out.read_text(encoding="utf-8")), printed.getvalue()


def test_every_storage_row_is_measured_with_a_numeric_ratio(storage_run):
    result, printed = storage_run
    rows = {r["key"]: r for r in result["rows"]}
    assert set(rows) == STORAGE_ROWS  # the other sections did not run
    for key, row in rows.items():
        assert isinstance(row["ratio"], float) and math.isfinite(row["ratio"]) and row["ratio"] > 0, row
        assert isinstance(row["met"], bool) and row["target"] and row["measured"], row
        line = next(line for line in printed.splitlines() if line.startswith(key + " "))
        assert bench._ratio_text(row["ratio"]) in line
    assert rows["dask/plain"]["info"] and not any(rows[k]["info"] for k in STORAGE_ROWS - {"dask/plain"})


def test_the_remote_and_local_exports_wrote_every_image(storage_run):
    result, _ = storage_run
    exports, runs = result["raw"]["storage_export"], result["raw"]["storage_runs"]
    assert set(exports) == {"local", "s3"} and set(runs) == {"sequential", "dask", "plain"}
    images = {s["images"] for v in exports.values() for s in v}
    assert images == {bench.QUICK.storage_images}
    assert {s["images"] for v in runs.values() for s in v} == {8 * bench.QUICK.storage_run_images}
    assert all(len(s["each"]) == 2 for s in runs["plain"])  # two processes, 4 runs each


def test_the_other_sections_are_listed_as_skipped(storage_run):
    result, _ = storage_run
    reasons = {s["key"]: s["reason"] for s in result["skipped"]}
    assert reasons["defaults"] == "--skip export" and reasons["start"] == "--skip start"
    assert "storage" in result["contention"]


def test_storage_is_a_section_of_skip():
    assert "storage" in bench.SECTIONS
    assert set(bench.ROW_KEYS) >= STORAGE_ROWS
