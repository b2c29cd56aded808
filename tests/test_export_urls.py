"""export and render to and from URLs, on fsspec's in-memory file system (the remote code path, no server).

A remote LOGDIR is rendered into a local staging folder and installed object by object (exporter._remote):
the event file uploaded whole, the replaced ones removed, the state last, naming the event files. These
tests compare the events with a local export's, and crash the installation between its steps to show the
next export repairs it. The same on a real S3 server, and a real TensorBoard reading it, is in
tests/system/test_storage_export.py."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from runs import write_run
from tbutil import pixels, read_events
from test_shards_urls import upload_tree

from exporter import _remote, api
from exporter.api import ExportMode, ExportOptions
from exporter.cli import main
from exporter.errors import NothingExportedError, StorageError
from exporter.storage import Location, join, locate, walk

fsspec = pytest.importorskip("fsspec")
OPTIONS = ExportOptions(workers=1)
STATE = ".summary-exporter-state.json"


@pytest.fixture
def shards(tmp_path, bucket):
    """The same run on disk and in the store."""
    local = write_run(tmp_path / "shards", steps=(100, 200), n=5, class_names=["cat", "dog", "bird"])
    return local, upload_tree(local, f"{bucket}/shards").url


def download(url: str, dest: Path) -> Path:
    """A copy of everything under ``url`` in ``dest`` (for TensorBoard's local reader)."""
    location = locate(url)
    dest.mkdir(parents=True, exist_ok=True)
    for rel in walk(location):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(location.fs.cat_file(join(location, rel).path))
    return dest


def events_of(logdir: Path) -> dict[str, list]:
    """Every image (its decoded pixels, ``tbutil.pixels``), scalar and tensor as (step, value), per tag, read
    back with TensorBoard's reader."""
    acc = read_events(logdir)
    tags = acc.Tags()
    out = {t: [(e.step, pixels(e)) for e in acc.Images(t)] for t in tags["images"]}
    out.update({t: [(e.step, e.value) for e in acc.Scalars(t)] for t in tags["scalars"]})
    out.update({t: [(e.step, e.tensor_proto.SerializeToString()) for e in acc.Tensors(t)] for t in tags["tensors"]})
    return out


def assert_same_events(got: Path, want: Path, what: str = "") -> None:
    """``got``'s events equal ``want``'s; when not, the message names the tags and steps that differ
    (comparing the dicts themselves would print megabytes of PNG bytes and hide the test's name)."""
    a, b = events_of(got), events_of(want)
    if a == b:
        return
    lines = [f"{what + ': ' if what else ''}events of {got} differ from {want}"]
    for tag in sorted(a.keys() | b.keys()):
        steps_a, steps_b = [s for s, _ in a.get(tag, [])], [s for s, _ in b.get(tag, [])]
        if steps_a != steps_b:
            lines.append(f"  {tag}: steps {steps_a} != {steps_b}")
        elif a[tag] != b[tag]:
            changed = [s for (s, x), (_, y) in zip(a[tag], b[tag], strict=True) if x != y]
            lines.append(f"  {tag}: values differ at steps {changed}")
    raise AssertionError("\n".join(lines[:40] + ([f"  ... {len(lines) - 40} more tags"] if len(lines) > 40 else [])))


def names(url: str) -> list[str]:
    return walk(locate(url))


def event_names(url: str) -> list[str]:
    return [n for n in names(url) if "tfevents" in n]


def test_export_from_and_to_a_store_writes_the_events_a_local_export_writes(shards, bucket, tmp_path):
    local, url = shards
    here = api.export(local, tmp_path / "local", OPTIONS)
    report = api.export(url, f"{bucket}/tb/eval", OPTIONS)
    assert isinstance(report.logdir, Location) and report.logdir.url == locate(f"{bucket}/tb/eval").url
    assert report.tensorboard_command == f"tensorboard --logdir {report.logdir.url}"
    assert isinstance(report.event_file, Location) and report.event_file.name == event_names(f"{bucket}/tb/eval")[0]
    assert names(f"{bucket}/tb/eval") == [STATE, report.event_file.name]  # no temp, no staging, no lock object
    state = json.loads(locate(f"{bucket}/tb/eval/{STATE}").fs.cat_file(locate(f"{bucket}/tb/eval/{STATE}").path))
    assert state["events"] == [report.event_file.name]
    assert_same_events(download(f"{bucket}/tb/eval", tmp_path / "copy"), tmp_path / "local")
    assert (report.steps, report.images, report.tags) == (here.steps, here.images, here.tags)


@pytest.mark.parametrize("remote", ["shards", "logdir"])
def test_one_side_remote_the_other_local(shards, bucket, tmp_path, remote):
    local, url = shards
    api.export(local, tmp_path / "local", OPTIONS)
    if remote == "shards":
        api.export(url, tmp_path / "out", OPTIONS)
        got = tmp_path / "out"
    else:
        api.export(local, f"{bucket}/tb/eval", OPTIONS)
        got = download(f"{bucket}/tb/eval", tmp_path / "copy")
    assert_same_events(got, tmp_path / "local")


def test_exporting_again_leaves_one_copy_of_every_event(shards, bucket, tmp_path):
    _, url = shards
    target = f"{bucket}/tb/eval"
    first = api.export(url, target, OPTIONS)
    second = api.export(url, target, OPTIONS)
    assert first.event_file is not None and second.event_file is not None
    assert event_names(target) == [second.event_file.name] != [first.event_file.name]
    once = events_of(download(target, tmp_path / "copy"))
    assert all(len(v) == 2 for v in once.values())  # two steps, each event once


def test_incremental_over_urls_appends_then_is_up_to_date_then_rewrites(shards, bucket, tmp_path):
    local, url = shards
    target = f"{bucket}/tb/eval"
    assert api.export(url, target, OPTIONS, incremental=True).mode is ExportMode.FULL
    upload_tree(write_run(tmp_path / "more", steps=(300,), n=5), url)
    appended = api.export(url, target, OPTIONS, incremental=True)
    assert appended.mode is ExportMode.APPEND and appended.steps == [300] and len(event_names(target)) == 2
    assert api.export(url, target, OPTIONS, incremental=True).mode is ExportMode.UP_TO_DATE
    assert len(event_names(target)) == 2
    upload_tree(write_run(tmp_path / "late", steps=(150,), n=5), url)
    with pytest.warns(UserWarning, match="step 150 arrived after step 300"):
        rewritten = api.export(url, target, OPTIONS, incremental=True)
    assert rewritten.mode is ExportMode.REWRITE and len(event_names(target)) == 1
    got = events_of(download(target, tmp_path / "copy"))
    assert sorted({s for v in got.values() for s, _ in v}) == [100, 150, 200, 300]
    assert all(len(v) == len({s for s, _ in v}) for v in got.values())  # no step twice on any tag


def test_a_crash_after_the_upload_before_the_removals_is_repaired_by_the_next_export(
        shards, bucket, tmp_path, monkeypatch):
    _, url = shards
    target = f"{bucket}/tb/eval"
    first = api.export(url, target, OPTIONS)

    def dies(location, **kwargs):
        raise StorageError(f"removing {location} failed: the test pulled the plug", str(location))

    monkeypatch.setattr(_remote, "remove", dies)
    with pytest.raises(StorageError, match="pulled the plug"):
        api.export(url, target, OPTIONS)
    monkeypatch.undo()
    assert len(event_names(target)) == 2  # what a reader sees until the next export: both, the state naming the old
    with pytest.warns(UserWarning, match=r"removed 1 event file\(s\) an interrupted export had uploaded but not recorded"):
        repaired = api.export(url, target, OPTIONS, incremental=True)
    assert repaired.mode is ExportMode.UP_TO_DATE  # the state (and the old event file) still describe every shard
    assert first.event_file is not None and event_names(target) == [first.event_file.name]
    assert all(len(v) == 2 for v in events_of(download(target, tmp_path / "copy")).values())


def test_a_crash_after_the_removals_before_the_state_is_repaired_by_the_next_export(
        shards, bucket, tmp_path, monkeypatch):
    _, url = shards
    target = f"{bucket}/tb/eval"
    api.export(url, target, OPTIONS)
    real = _remote.put_bytes

    def state_fails(location, data, **kwargs):
        if location.name == STATE:
            raise StorageError(f"upload to {location} failed: the test pulled the plug", str(location))
        return real(location, data, **kwargs)

    monkeypatch.setattr(_remote, "put_bytes", state_fails)
    with pytest.raises(StorageError, match="pulled the plug"):
        api.export(url, target, OPTIONS)
    monkeypatch.undo()
    assert len(event_names(target)) == 1  # the new file, the state still naming the old one
    with pytest.warns(UserWarning, match="names event file.* that are gone"):
        repaired = api.export(url, target, OPTIONS, incremental=True)
    assert repaired.mode is ExportMode.FULL and len(event_names(target)) == 1
    assert all(len(v) == 2 for v in events_of(download(target, tmp_path / "copy")).values())


def test_a_failed_export_to_a_store_leaves_it_unchanged(tmp_path, bucket):
    local = tmp_path / "bad"
    (local / "step-000000000001").mkdir(parents=True)
    (local / "step-000000000001" / "x-00000.npz").write_bytes(b"not a zip")
    url = upload_tree(local, f"{bucket}/bad").url
    with pytest.raises(NothingExportedError, match=rf"{locate(bucket).url}/tb/eval was left unchanged"):
        api.export(url, f"{bucket}/tb/eval", ExportOptions(workers=1, skip_bad=True))
    assert not fsspec.filesystem("memory").exists(locate(f"{bucket}/tb").path)


def test_render_to_a_store_uploads_the_files_a_local_render_writes(shards, bucket, tmp_path):
    local, url = shards
    here = api.render(local, tmp_path / "png", ExportOptions(workers=1, grid=True))
    there = api.render(url, f"{bucket}/png", ExportOptions(workers=1, grid=True))
    assert all(isinstance(p, Location) for p in there)
    rel = sorted(p.relative_to(tmp_path / "png").as_posix() for p in here)
    assert names(f"{bucket}/png") == rel
    png = locate(f"{bucket}/png")
    for name in rel:
        assert png.fs.cat_file(join(png, name).path) == (tmp_path / "png" / name).read_bytes()


def test_the_cli_takes_urls_and_storage_options(shards, bucket, tmp_path, capsys):
    _, url = shards
    option = ["--storage-option", "skip_instance_cache=true"]
    assert main(["inspect", url, *option]) == 0
    assert f"run: {url}" in capsys.readouterr().out
    assert main(["validate", url, *option]) == 0
    assert "2 shard(s) checked: 2 valid" in capsys.readouterr().err
    assert main(["export", url, f"{bucket}/tb/eval", "--no-progress", "--workers", "1", *option]) == 0
    out = capsys.readouterr().out
    assert f"tensorboard --logdir {locate(bucket).url}/tb/eval" in out
    assert main(["render", url, f"{bucket}/png", "--no-progress", "--workers", "1", *option]) == 0
    assert f"under {bucket}/png" in capsys.readouterr().out
    assert main(["inspect", url, "--storage-option", "secret=abc"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: --storage-option secret=...: credentials are not taken") and "abc" not in err


def test_an_unknown_scheme_is_one_line_and_makes_no_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for argv in (["inspect", "s4://b/run"], ["export", str(tmp_path), "s4://b/tb", "--no-progress"]):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err.startswith("error: unknown URL scheme 's4' in s4://b/") and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_a_url_whose_backend_is_missing_names_the_extra_in_one_line(tmp_path):
    code = textwrap.dedent(
        """
        import sys
        sys.modules["s3fs"] = None   # import s3fs now raises ImportError: an install without the s3 extra
        from exporter.cli import main
        sys.exit(main(sys.argv[1:]))
        """
    )
    for url, argv in [("s3://evals/run1", ["inspect", "s3://evals/run1"]),
                      ("s3://tb/run1", ["export", str(tmp_path), "s3://tb/run1", "--no-progress"])]:
        out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120)
        assert out.returncode == 1
        assert out.stderr.splitlines() == [f"error: {url}: Install s3fs to access S3: pip install 'summary-exporter[s3]'"]


def test_a_local_logdir_keeps_its_lock_and_staging_code_path(shards, tmp_path, monkeypatch):
    local, _ = shards
    monkeypatch.setattr(_remote.StagedLogdir, "__enter__", lambda self: pytest.fail("a local export was staged"))
    report = api.export(local, tmp_path / "tb", OPTIONS)
    assert isinstance(report.logdir, Path) and isinstance(report.event_file, Path)
