"""The command line, through main(argv) and through the installed console script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from tbutil import read_events

from exporter.api import ExportOptions, render
from exporter.cli import main
from exporter.render import ReadOptions
from exporter.schema import FORMAT_VERSION


@pytest.fixture
def shards(make_run):
    return make_run(steps=(100, 200), class_names=["cat", "dog"], ids=list("abcd"), image_shape=(20, 30),
                    fields=("images", "labels", "probs", "pred_labels", "ids"))


def _no_traceback(text: str) -> None:
    assert "Traceback" not in text and 'File "' not in text


def test_help_has_examples_for_every_command(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "summary-exporter export eval_shards logs/eval" in out
    for command in ("export", "render", "inspect", "validate", "demo"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "example" in capsys.readouterr().out, command


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "usage: summary-exporter" in capsys.readouterr().out


def test_inspect_is_readable(shards, capsys):
    assert main(["inspect", str(shards)]) == 0
    out = capsys.readouterr().out
    for text in (f"format version: {FORMAT_VERSION}", "steps: 2", "step        100", "images", "u1[?,20,30,3]", "classes (2): cat, dog"):
        assert text in out, text


def test_validate_good_and_bad(shards, capsys):
    assert main(["validate", str(shards)]) == 0
    assert "2 shard(s) checked: 2 valid, 0 with problems" in capsys.readouterr().err
    broken = next(shards.rglob("*.npz"))
    broken.write_bytes(broken.read_bytes()[:200])
    assert main(["validate", str(shards)]) == 1
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(str(broken)) and "not a readable .npz/zip" in lines[0]
    assert "2 shard(s) checked: 1 valid, 1 with problems" in captured.err


def test_export_prints_the_tensorboard_command(shards, tmp_path, capsys):
    names = tmp_path / "classes.txt"
    names.write_text("# my classes\nkitten\npuppy\n")
    logdir = tmp_path / "logs" / "eval"
    code = main(["export", str(shards), str(logdir), "--class-names", str(names), "--no-progress", "--grid", "--topk", "2"])
    assert code == 0
    out = capsys.readouterr().out
    assert "wrote " in out and f"tensorboard --logdir {logdir}" in out
    acc = read_events(logdir)
    assert {"examples/a", "examples/d", "examples_grid", "metrics/confusion_matrix"} <= set(acc.Tags()["images"])
    assert [e.step for e in acc.Images("examples/b")] == [100, 200]


def test_render_writes_pngs(shards, tmp_path, capsys):
    out = tmp_path / "png"
    assert main(["render", str(shards), str(out), "--no-progress", "--max-per-step", "2"]) == 0
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert files == ["step-000000000100/a.png", "step-000000000100/b.png", "step-000000000200/a.png", "step-000000000200/b.png"]
    assert Image.open(out / files[0]).width == 30 * 7  # 20x30 upscaled x7: the short side reaches 128


@pytest.mark.parametrize(
    "argv, message",
    [
        (["inspect", "/no/such/folder"], "error: /no/such/folder: no such file or folder"),
        (["export", "/no/such/folder", "logs", "--no-progress"], "error: /no/such/folder: no such file or folder"),
        (["export", "{shards}", "{tmp}/logs", "--class-names", "/no/such.txt"], "error: cannot read class names from /no/such.txt"),
        (["export", "{shards}", "{tmp}/logs", "--class-names", "{tmp}/bad.json"], "not a valid JSON list of class names"),
        (["export", "{shards}", "{tmp}/logs", "--tag-prefix", "a b", "--no-progress"], "error: tag prefix must be"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(shards, tmp_path, capsys, argv, message):
    (tmp_path / "bad.json").write_text("[1, 2")
    argv = [a.format(shards=shards, tmp=tmp_path) for a in argv]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert message.format(tmp=tmp_path) in err
    assert len([line for line in err.splitlines() if line.startswith("error:")]) == 1
    _no_traceback(err)


@pytest.mark.parametrize("argv", [["export", "s", "l", "--score-threshold", "2"], ["export", "s", "l", "--workers", "0"], ["bogus"]])
def test_bad_option_values_are_refused_by_the_parser(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err
    _no_traceback(err)


def test_console_script_in_a_subprocess(shards, tmp_path):
    script = shutil.which("summary-exporter", path=os.path.dirname(sys.executable))
    out = subprocess.run([script, "inspect", str(shards)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "steps: 2" in out.stdout
    bad = subprocess.run([script, "export", str(tmp_path / "nope"), str(tmp_path / "l")], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and bad.stderr.strip().startswith("error: ")
    _no_traceback(bad.stderr)
    mod = subprocess.run([sys.executable, "-m", "exporter", "validate", str(shards)], capture_output=True, text=True, timeout=120)
    assert mod.returncode == 0, mod.stderr


def _pngs(folder):
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*.png")}


@pytest.mark.parametrize(
    "name, text",
    [("classes.json", json.dumps(["kitten", "puppy"])), ("classes.txt", "# my classes\nkitten\n\npuppy\n")],
)
def test_class_names_file_overrides_the_shards_names(shards, tmp_path, name, text):
    names = tmp_path / name
    names.write_text(text)
    assert main(["render", str(shards), str(tmp_path / "png"), "--class-names", str(names), "--no-progress"]) == 0
    render(shards, tmp_path / "api", ExportOptions(read=ReadOptions(class_names=["kitten", "puppy"])))
    render(shards, tmp_path / "shard_names", ExportOptions())
    drawn = _pngs(tmp_path / "png")
    assert len(drawn) == 8 and drawn == _pngs(tmp_path / "api")  # the file's names, drawn as the API draws them
    assert drawn != _pngs(tmp_path / "shard_names")  # ... and not the shards' cat and dog


def _nan_run(tmp_path):
    from exporter import ShardWriter

    images = np.random.default_rng(0).random((3, 8, 8, 3)).astype(np.float32)
    images[0, :2, :2] = np.nan  # 4 pixels
    images[1, 0, 0, 0] = np.inf  # 1 pixel
    with ShardWriter(tmp_path / "run", step=1) as w:
        w.add(images=images, labels=np.arange(3))
    return tmp_path / "run"


def test_nan_pixels_are_a_warning_of_validate_and_export_naming_the_shard(tmp_path, capsys):
    """What validate warns about, export says too: the shard exports, but not as one might expect."""
    run = _nan_run(tmp_path)
    (shard,) = run.rglob("*.npz")
    note = f"warning: {shard}: field 'images': has 5 NaN/inf pixels in 2 of 3 images"
    assert main(["validate", str(run)]) == 0  # a warning, not a problem: the shard exports
    out, err = capsys.readouterr()
    assert out == "" and any(line.startswith(note) for line in err.splitlines()), err
    assert main(["export", str(run), str(tmp_path / "logs"), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if line.startswith("warning:")][0].startswith(note), err


def test_boxes_beyond_max_boxes_are_counted_per_step(tmp_path, capsys):
    from exporter import ShardWriter

    boxes = np.tile(np.array([0.1, 0.1, 0.5, 0.5], np.float32), (3, 6, 1))
    scores = np.array([[0.9] * 6, [0.9, 0.9, 0.9, 0.1, 0.1, 0.1], [0.9] * 6], np.float32)
    boxes[2, 5] = np.nan  # dropped by the renderer anyway
    with ShardWriter(tmp_path / "run", step=7) as w:
        w.add(images=np.zeros((3, 8, 8, 3), np.uint8), boxes=boxes, box_scores=scores, num_boxes=np.array([6, 6, 4]))
    # shown per image: 6, 3 (3 below the threshold), 4 (num_boxes) -> beyond 2: 4 + 1 + 2
    assert main(["export", str(tmp_path / "run"), str(tmp_path / "logs"), "--no-progress", "--max-boxes", "2",
                 "--score-threshold", "0.5"]) == 0
    err = capsys.readouterr().err
    assert "warning: step 7: 7 boxes beyond --max-boxes (2 per image) were not drawn" in err, err
    assert main(["export", str(tmp_path / "run"), str(tmp_path / "logs"), "--no-progress", "--max-boxes", "6"]) == 0
    assert "beyond --max-boxes" not in capsys.readouterr().err


def test_notices_of_imported_libraries_to_developers_are_not_printed(shards, tmp_path, capsys, monkeypatch):
    """google.api_core warns (FutureWarning) about Python's end of life when tensorboardX imports
    google-cloud-storage; an export's user gets the library's own warnings only."""
    import warnings

    from exporter import api

    real = api.export

    def export(*args, **kwargs):
        warnings.warn("You are using a Python version which Google will stop supporting", FutureWarning, stacklevel=2)
        warnings.warn("a module moved", PendingDeprecationWarning, stacklevel=2)
        warnings.warn("step 100: something the user should know", UserWarning, stacklevel=2)
        return real(*args, **kwargs)

    monkeypatch.setattr(api, "export", export)
    assert main(["export", str(shards), str(tmp_path / "logs"), "--no-progress", "--workers", "1"]) == 0
    assert capsys.readouterr().err.splitlines() == ["warning: step 100: something the user should know"]
