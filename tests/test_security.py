"""Shards are untrusted input: no pickle, no path escapes, bounded memory, clean refusals.

Decisions recorded here:

* a symlink named like a shard is followed and read, wherever it points (the run folder is the
  user's: they linked it), unless its target is not a regular file (a device, FIFO or folder is
  refused without being opened); symlinked *folders* are not descended into, so a link loop cannot
  make the scan run forever;
* memory is bounded by ``max_bytes`` (4 GiB by default) on what the zip honestly holds, and sizes
  the zip cannot hold (a header claiming terabytes, a deflated member claiming more than deflate
  can produce) are refused before anything is allocated;
* metadata JSON nested deeper than Python's recursion limit is refused as invalid JSON.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import corpus
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tbutil import read_events

import exporter
from exporter import ShardFormatError, ShardWriter, open_run, tags
from exporter.api import ExportOptions, export, render
from exporter.cli import main
from exporter.schema import ShardMeta
from exporter.shards import Shard, find_shard_files, validate_shard

PACKAGE = Path(exporter.__file__).parent
SOURCES = sorted(PACKAGE.rglob("*.py"))


# --------------------------------------------------------------------------- no pickle


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            yield name, node


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_the_package_never_unpickles(source: Path):
    text = source.read_text(encoding="utf-8")
    assert "allow_pickle=True" not in text
    tree = ast.parse(text)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules = [node.module or ""]
        else:
            continue
        for module in modules:
            assert module.split(".")[0] not in {
                "pickle",
                "_pickle",
                "cPickle",
                "dill",
                "cloudpickle",
                "shelve",
                "marshal",
                "joblib",
            }, f"{source}:{node.lineno} imports {module}"
    for name, call in _calls(tree):
        if name in ("load", "read_array") and _is_numpy_call(call):
            keywords = {k.arg: k.value for k in call.keywords}
            value = keywords.get("allow_pickle")
            assert isinstance(value, ast.Constant) and value.value is False, (
                f"{source}:{call.lineno}: {ast.unparse(call)} must pass allow_pickle=False"
            )
        assert name not in ("loads", "Unpickler") or "pickle" not in ast.unparse(call.func), ast.unparse(call)


def _is_numpy_call(call: ast.Call) -> bool:
    """np.load / numpy.load / np.lib.format.read_array / format.read_array (not json.load)."""
    text = ast.unparse(call.func)
    return text.startswith(("np.", "numpy.", "format.")) or text == "read_array"


def test_no_path_through_the_package_unpickles(tmp_path, monkeypatch, capsys):
    """Belt and braces: with pickle's loaders booby-trapped, every pickled corpus case still just fails."""
    import multiprocessing.reduction  # noqa: F401 - binds pickle.loads at import: do it before the trap
    import pickle

    def trap(*args, **kwargs):
        raise AssertionError("something tried to unpickle shard data")

    monkeypatch.setattr(pickle, "load", trap)
    monkeypatch.setattr(pickle, "loads", trap)
    for name in ("pickled_extra_field", "pickled_images", "pickled_meta", "object_in_struct"):
        case = next(c for c in corpus.CASES if c.name == name)
        run = tmp_path / name
        case.write(run)
        assert main(["validate", str(run)]) == 1
        assert main(["inspect", str(run)]) == 1
        assert main(["export", str(run), str(tmp_path / f"{name}-logs"), "--no-progress"]) == 1
        assert main(["export", str(run), str(tmp_path / f"{name}-logs"), "--skip-bad", "--no-progress"]) == 0
        assert main(["render", str(run), str(tmp_path / f"{name}-png"), "--skip-bad", "--no-progress"]) == 0
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "tried to unpickle" not in out + err
    assert not list(tmp_path.rglob("PWNED*"))


# --------------------------------------------------------------------------- no path escapes

HOSTILE_IDS = [
    "../../x",
    "../../../etc/passwd",
    "/abs/path",
    "..",
    ".",
    "",
    "x" * 10_000,
    "a\x00b",
    "C:\\x\\y",
    "\\\\server\\share\\f",
    "con",
    "NUL.txt",
    "grid",
    "a/b/../../../c",
    "~/.bashrc",
    "$HOME",
    "🙂/../..",
    " ",
    "-rf",
    "line\nbreak",
    "CON",
    "Con.png",
]


@pytest.fixture
def hostile_run(make_run) -> Path:
    hostile_names = ["../../evil", "/etc/x"]
    return make_run(steps=(3,), class_names=hostile_names, ids=HOSTILE_IDS, fields=("images", "labels", "ids"))


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def _snapshot(root: Path) -> set[Path]:
    return set(root.rglob("*"))


def test_render_writes_only_inside_outdir(hostile_run, tmp_path):
    outdir = tmp_path / "out" / "png"
    before = _snapshot(tmp_path)
    paths = render(hostile_run, outdir)
    assert len(paths) == len(HOSTILE_IDS)  # no two ids collapsed onto one file
    assert len({p.name.lower() for p in paths}) == len(paths)  # not even on a case-insensitive disk
    for path in paths:
        assert _inside(path, outdir), path
        assert path.parent == outdir / "step-000000000003"
    new = _snapshot(tmp_path) - before
    assert new and all(_inside(p, outdir) or p == outdir.parent for p in new), sorted(new)
    for outside in ("/abs/path.png", "/etc/passwd.png", "/x.png"):
        assert not Path(outside).exists()


def test_export_writes_only_inside_logdir_with_safe_tags(hostile_run, tmp_path):
    logdir = tmp_path / "logs" / "eval"
    before = _snapshot(tmp_path)
    export(hostile_run, logdir, ExportOptions(grid=True))
    new = _snapshot(tmp_path) - before
    assert all(_inside(p, logdir) or p == logdir.parent for p in new), sorted(new)
    acc = read_events(logdir)
    example_tags = [t for t in acc.Tags()["images"] if t.startswith("examples/")]
    assert len(example_tags) == len(HOSTILE_IDS)
    for tag in example_tags:
        name = tag.removeprefix("examples/")
        assert name not in ("", ".", "..") and not set(name) & {"/", "\\", "\x00", "\n"}, tag
        assert len(name) <= tags.MAX_ID_LENGTH


@settings(max_examples=300, deadline=None)
@given(example_id=st.text() | st.integers(), other=st.text())
def test_any_id_gives_a_file_name_that_stays_in_its_folder(tmp_path_factory, example_id, other):
    folder = tmp_path_factory.getbasetemp() / "ids"
    name = tags.safe_filename(example_id, ".png")
    assert name not in (".png", "..png") and not set(name) & {"/", "\\", "\x00", os.sep}
    assert (folder / name).resolve().parent == folder.resolve()
    assert 0 < len(name.encode("utf-8")) <= 255  # a file name every file system takes
    if other != tags.id_text(example_id):
        assert tags.safe_filename(other, ".png") != name  # distinct ids stay distinct (8 hex of hash)


# --------------------------------------------------------------------------- bounded memory

_MEASURE = textwrap.dedent(
    """
    import sys, time, tracemalloc
    import exporter.api, exporter.cli  # the heavy imports happen before measuring
    from exporter import ExporterError
    from exporter.shards import Shard

    tracemalloc.start()  # numpy reports its buffers to tracemalloc: an allocation counts even if never touched
    t0 = time.perf_counter()
    try:
        if sys.argv[1] == "load":
            Shard(sys.argv[2], max_bytes=int(sys.argv[3])).load()
            outcome = "loaded"
        else:
            outcome = "exit_%d" % exporter.cli.main(sys.argv[2:])
    except ExporterError as exc:
        outcome = type(exc).__name__
    print(outcome, tracemalloc.get_traced_memory()[1], time.perf_counter() - t0)
    """
)


def _measure(*args: str) -> tuple[str, int, float]:
    """Outcome, peak bytes allocated and seconds of one read, in a fresh interpreter.

    tracemalloc rather than ru_maxrss: a child's ru_maxrss can inherit the RSS of the (large)
    pytest process it was forked from, and RSS never sees memory that was allocated but not touched.
    """
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURE, *args], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    outcome, peak, seconds = proc.stdout.split()[-3:]
    return outcome, int(peak), float(seconds)


def _real_bomb(path: Path, nbytes: int) -> None:
    """A valid shard plus a deflated member of ``nbytes`` honest zeros (about nbytes / 230 on disk)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name, data in corpus.template_members():
            zf.writestr(name, data)
        with zf.open("blob.npy", "w", force_zip64=True) as f:
            f.write(corpus.npy_header((2, nbytes // 2), payload=b""))
            chunk = bytes(1 << 20)
            for _ in range(nbytes >> 20):
                f.write(chunk)


MiB = 1 << 20


@pytest.mark.parametrize(
    "name",
    [
        "declares_terabytes",
        "declares_int64_overflow",
        "declares_beyond_int64",
        "zip_bomb_forged_size",
        "zip_bomb_under_limit",
    ],
)
def test_forged_sizes_are_refused_quickly_without_allocating(name, tmp_path):
    case = next(c for c in corpus.CASES if c.name == name)
    path = case.write(tmp_path / "run")
    outcome, peak, seconds = _measure("load", str(path), str(8 << 30))  # even with an 8 GiB limit
    assert outcome in ("ShardFormatError", "ShardTooLargeError")
    assert peak < 4 * MiB and seconds < 5


def test_an_honest_bomb_is_bounded_by_max_bytes(tmp_path):
    path = tmp_path / "bomb.npz"
    _real_bomb(path, 256 * MiB)
    assert path.stat().st_size < 4 * MiB
    outcome, peak, _ = _measure("load", str(path), str(64 * MiB))
    assert (outcome, peak < 4 * MiB) == ("ShardTooLargeError", True)
    # the control: allowed, it is loaded, and the measurement sees the 256 MiB
    outcome, peak, _ = _measure("load", str(path), str(1 << 30))
    assert outcome == "loaded" and peak >= 256 * MiB


def test_zeros_compress_well_but_are_not_mistaken_for_a_bomb(tmp_path):
    with ShardWriter(tmp_path, step=1, compress=True) as w:
        w.add(images=np.zeros((4, 512, 512, 3), np.uint8))  # ~1000:1 (zlib's best is ~1029:1, deflate's 1032:1)
    (path,) = find_shard_files(tmp_path)
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("images.npy")
        assert info.file_size / info.compress_size > 900
    assert validate_shard(path) == []


def test_metadata_cannot_make_export_allocate_a_huge_confusion_matrix(tmp_path):
    """90000 class names (or a class id of 10**12 without names) once meant a (K, K) int64 matrix (65 GB)."""
    run = tmp_path / "run"
    with ShardWriter(run, step=1, class_names=[f"c{i}" for i in range(90_000)]) as w:  # under the 4 MB metadata limit
        w.add(images=np.zeros((2, 4, 4, 3), np.uint8), labels=np.array([0, 1]), pred_labels=np.array([1, 89_999]))
    with ShardWriter(run, step=2) as w:
        w.add(images=np.zeros((2, 4, 4, 3), np.uint8), labels=np.array([0, 10**12]), pred_labels=np.array([0, 1]))
    outcome, peak, seconds = _measure("cli", "export", str(run), str(tmp_path / "logs"), "--no-progress")
    assert outcome == "exit_0"
    assert peak < 100 * MiB and seconds < 30


# --------------------------------------------------------------------------- symlinks


def test_a_symlinked_shard_outside_the_run_is_read(tmp_path, make_run):
    target_dir = make_run("elsewhere", steps=(9,), n=1, fields=("images",), class_names=None)
    (target,) = find_shard_files(target_dir)
    run = tmp_path / "run"
    corpus.write_good(run)
    (run / "step-000000000009").mkdir()
    (run / "step-000000000009" / "linked.npz").symlink_to(target)
    assert open_run(run).steps == [1, 9]
    assert validate_shard(run / "step-000000000009" / "linked.npz") == []


def test_symlinked_folders_are_not_descended_into_so_loops_cannot_hang(tmp_path, make_run):
    run = tmp_path / "run"
    corpus.write_good(run)
    outside = make_run("outside", steps=(5,), n=1, fields=("images",), class_names=None)
    (run / "linked_folder").symlink_to(outside, target_is_directory=True)
    (run / "step-000000000001" / "loop").symlink_to(run, target_is_directory=True)
    files = find_shard_files(run)
    assert [f.parent.name for f in files] == ["step-000000000001"]


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_a_symlink_to_a_device_is_refused_without_reading_it(tmp_path):
    link = tmp_path / "zero.npz"
    link.symlink_to("/dev/zero")
    with pytest.raises(ShardFormatError, match="is a device, not a shard file"):
        Shard(link)


# --------------------------------------------------------------------------- hostile JSON


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000 + "]" * 100_000,
        '{"a": ' * 100_000 + "1" + "}" * 100_000,
        '{"user": ' + '{"x": [' * 50_000 + "]}" * 50_000 + "}",
        '{"step": ' + "1" * 5000 + "}",
    ],
    ids=["lists", "objects", "inside_user", "int_5000_digits"],
)
def test_hostile_json_is_refused_cleanly(text, tmp_path, capsys):
    with pytest.raises(ShardFormatError, match="is not valid JSON"):
        ShardMeta.from_json(text, path="x.npz")
    run = tmp_path / "run"
    corpus.variant(meta_entry=text)(tmp_path / "one.npz")
    (run / "step-000000000002").mkdir(parents=True)
    (tmp_path / "one.npz").rename(run / "step-000000000002" / "one.npz")
    assert main(["inspect", str(run)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "is not valid JSON" in err and "Traceback" not in err


# --------------------------------------------------------------------------- file names


def test_a_file_name_that_is_not_utf8_is_reported_not_crashed_on(tmp_path):
    run = tmp_path / "run"
    corpus.write_good(run)
    (run / "step-000000000001" / os.fsdecode(b"bad\xff.npz")).write_bytes(b"junk")
    env = dict(os.environ, PYTHONIOENCODING="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "exporter", "validate", str(run)], capture_output=True, env=env, timeout=60, check=False
    )
    assert proc.returncode == 1 and b"Traceback" not in proc.stderr
    assert proc.stdout.count(b"\n") == 1
