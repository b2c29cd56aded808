"""The bad-shard corpus (tests/corpus.py) through the command line: validate, export, export --skip-bad.

Each case is one file next to one good shard. A bad file must give exactly one ``validate`` line
per problem, an ``export`` that stops with one ``error:`` line and writes no event file, and an
``export --skip-bad`` that exports the good shard and names the bad one. A file that is not bad
must validate clean and export. Never a traceback.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import corpus
import numpy as np
import pytest
from corpus import CASES, Case
from reporting import write_line
from tbutil import read_events

from exporter.cli import main
from exporter.tensorboard import EVENT_FILE_GLOB

BAD = [c for c in CASES if c.bad]
NOT_BAD = [c for c in CASES if not c.bad]


def _no_traceback(*texts: str) -> None:
    for text in texts:
        assert "Traceback" not in text and 'File "' not in text, text


def _no_marker(root: Path) -> None:
    """No pickle or header payload ran: it would have created a PWNED-* file."""
    assert not list(root.rglob("PWNED*"))


def _images_by_step(logdir: Path) -> dict[int, set[str]]:
    acc = read_events(logdir)
    steps: dict[int, set[str]] = {}
    for tag in acc.Tags()["images"]:
        for event in acc.Images(tag):
            steps.setdefault(event.step, set()).add(tag)
    return steps


@pytest.fixture(scope="module", autouse=True)
def _report_corpus_size(request):
    """Print the case count after the module, past pytest's output capture (also with -q)."""
    yield
    write_line(request.config, f"\n{corpus.summary()}")


def test_the_corpus_is_big_enough_and_names_are_unique():
    assert len(BAD) >= 40 and len(NOT_BAD) >= 3
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_validate_prints_one_line_per_problem(case: Case, tmp_path, capsys):
    run = tmp_path / "run"
    path = case.write(run)
    rc = main(["validate", str(run)])
    out, err = capsys.readouterr()
    _no_traceback(out, err)
    _no_marker(tmp_path)
    lines = out.splitlines()
    if not case.bad:
        assert (rc, lines) == (0, [])
        assert "2 shard(s) checked: 2 valid, 0 with problems" in err
        return
    assert rc == 1
    assert len(lines) == len(case.problems), lines
    for line, expected in zip(lines, case.problems, strict=True):
        assert line.startswith(f"{path}: "), line
        assert expected in line, line
    assert "2 shard(s) checked: 1 valid, 1 with problems" in err


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_export_stops_on_a_bad_shard_and_writes_nothing(case: Case, tmp_path, capsys):
    run = tmp_path / "run"
    path = case.write(run)
    logdir = tmp_path / "logs" / "eval"
    rc = main(["export", str(run), str(logdir), "--no-progress"])
    out, err = capsys.readouterr()
    _no_traceback(out, err)
    _no_marker(tmp_path)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    if case.exportable:
        assert (rc, errors) == (0, [])
        steps = _images_by_step(logdir)
        assert set(corpus.GOOD_TAGS) <= steps[corpus.GOOD_STEP]
        assert set(case.tags) <= steps.get(corpus.CASE_STEP, set())
        return
    assert rc != 0
    assert len(errors) == 1, err
    assert str(path) in errors[0]
    assert not logdir.exists() or not list(logdir.glob(EVENT_FILE_GLOB))
    parent = tmp_path / "logs"
    assert not parent.exists() or [p.name for p in parent.iterdir()] == []  # no temp folder left beside logdir


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_skip_bad_exports_the_good_shard_and_names_the_bad_one(case: Case, tmp_path, capsys):
    run = tmp_path / "run"
    path = case.write(run)
    logdir = tmp_path / "logs"
    rc = main(["export", str(run), str(logdir), "--skip-bad", "--no-progress"])
    out, err = capsys.readouterr()
    _no_traceback(out, err)
    _no_marker(tmp_path)
    assert rc == 0, err
    skipped = [line for line in err.splitlines() if line.startswith("skipped:")]
    steps = _images_by_step(logdir)
    assert set(corpus.GOOD_TAGS) <= steps[corpus.GOOD_STEP]
    if case.exportable:
        assert skipped == []
        assert set(case.tags) <= steps.get(corpus.CASE_STEP, set())
    else:
        assert skipped and all(line.startswith(f"skipped: {path}: ") for line in skipped), skipped
        assert not set(corpus.CASE_TAGS) & steps.get(corpus.CASE_STEP, set())


@pytest.mark.parametrize("name", ["truncated_half", "pickled_extra_field", "num_examples_mismatch", "version_2"])
def test_failed_export_leaves_an_earlier_export_unchanged(name, tmp_path, capsys):
    case = next(c for c in CASES if c.name == name)
    run = tmp_path / "run"
    corpus.write_good(run)
    logdir = tmp_path / "logs"
    assert main(["export", str(run), str(logdir), "--no-progress"]) == 0
    before = {p.name: p.read_bytes() for p in logdir.iterdir()}
    case.write(run)
    assert main(["export", str(run), str(logdir), "--no-progress"]) == 1
    assert {p.name: p.read_bytes() for p in logdir.iterdir()} == before
    _no_traceback(*capsys.readouterr())


@pytest.mark.parametrize("name", ["pickled_extra_field", "pickled_meta", "npy_header_is_code"])
def test_the_payloads_are_live(name, tmp_path):
    """The pickles and the code header really would run if loaded unsafely: the refusals above mean something."""
    case = next(c for c in CASES if c.name == name)
    path = case.write(tmp_path / "run")
    marker = corpus.marker_path(path)
    if name == "npy_header_is_code":
        import struct
        import zipfile

        with zipfile.ZipFile(path) as zf:
            member = zf.read("images.npy")
        (length,) = struct.unpack("<H", member[8:10])
        eval(member[10 : 10 + length].decode("latin1"))  # what a reader using eval() instead of literal_eval does
    else:
        with np.load(path, allow_pickle=True) as npz:
            npz["evil" if name == "pickled_extra_field" else "__meta__"]
    assert marker.exists()


@pytest.mark.parametrize(
    "name",
    [
        "truncated_half",
        "pickled_extra_field",
        "meta_deeply_nested",
        "fifo",
        "declares_terabytes",
        "zip_bomb_forged_size",
    ],
)
def test_validate_in_a_subprocess_has_no_traceback(name, tmp_path):
    case = next(c for c in CASES if c.name == name)
    run = tmp_path / "run"
    path = case.write(run)
    proc = subprocess.run(
        [sys.executable, "-m", "exporter", "validate", str(run)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    _no_traceback(proc.stdout, proc.stderr)
    _no_marker(tmp_path)
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert len(lines) == len(case.problems) and all(line.startswith(f"{path}: ") for line in lines)
    assert case.problems[0] in lines[0]
