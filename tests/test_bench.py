"""The benchmark runs end to end at tiny sizes and reports a ratio for every row (behaviour only, never speed)."""

from __future__ import annotations

import contextlib
import io
import json
import math

import pytest

from exporter import bench
from exporter.cli import build_parser

#: Every row of the issue; a run either measures a row or lists it as skipped with a reason.
ALL_ROWS = {
    "defaults", "fast", "floor", "scaling", "hook", "hook/10", "hook/heavy", "in-graph", "memory", "linear", "start",
    "tb/1k", "tb/10k", "tb/1k/python", "tb/10k/python", "s3", "s3/memory", "dask", "dask/plain",
}
#: The rows of the storage section, which starts servers: tests/test_bench_storage.py runs it.
STORAGE_ROWS = {"s3", "s3/memory", "dask", "dask/plain"}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One ``bench --quick --json`` run (a few seconds): its JSON, its printed table, its folders."""
    tmp = tmp_path_factory.mktemp("bench")
    out = tmp / "out" / "bench.json"
    args = build_parser().parse_args(  # the flags live in the CLI, so --help never imports the benchmark
        ["bench", "--quick", "--json", str(out), "--workdir", str(tmp / "work"), "--cache-dir", str(tmp / "cache"),
         "--skip", "storage"]  # a moto server and a Dask cluster: tests/test_bench_storage.py
    )
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert bench.run(args) == 0
    return json.loads(out.read_text(encoding="utf-8")), printed.getvalue(), tmp


def test_every_measured_row_has_a_numeric_ratio(quick_run):
    result, _, _ = quick_run
    assert result["format"] == "summary-exporter/bench" and result["quick"] is True
    rows = result["rows"]
    assert rows, "the quick run measured nothing"
    for row in rows:
        ratio = row["ratio"]
        assert isinstance(ratio, (int, float)) and not isinstance(ratio, bool), row
        assert math.isfinite(ratio) and ratio > 0, row
        assert isinstance(row["met"], bool), row
        assert row["target"] and row["measured"], row


def test_every_row_of_the_issue_is_measured_or_skipped_with_a_reason(quick_run):
    result, _, _ = quick_run
    skipped = {s["key"]: s["reason"] for s in result["skipped"]}
    assert all(skipped.values())
    assert {r["key"] for r in result["rows"]} | set(skipped) >= ALL_ROWS
    assert set(skipped) >= {"hook", "hook/10", "hook/heavy", "in-graph"}  # --quick never starts an Estimator ...
    assert {k for k in skipped if k.startswith("tb/")}  # ... nor a TensorBoard server (tests/system does)
    assert {k: skipped[k] for k in STORAGE_ROWS} == dict.fromkeys(STORAGE_ROWS, "--skip storage")


def test_the_catalogue_of_rows_is_the_one_the_issue_asks_for():
    assert set(bench.ROW_KEYS) == ALL_ROWS


def test_printed_table_shows_machine_versions_and_each_row(quick_run):
    result, printed, _ = quick_run
    assert "machine:" in printed and "versions:" in printed and "numpy" in printed
    assert result["machine"]["cores"] >= 1 and "numpy" in result["versions"]
    lines = printed.splitlines()
    for row in result["rows"]:
        line = next(line for line in lines if line.startswith(row["key"] + " "))
        assert bench._ratio_text(row["ratio"]) in line
        assert ("NOT MET" in line) != row["met"]


def test_quick_run_leaves_the_cache_folder_alone(quick_run):
    _, _, tmp = quick_run
    # the >= 2 GB run is generated only by full runs; a smoke test must not fill the user's cache
    assert not (tmp / "cache").exists() or not any((tmp / "cache").iterdir())
