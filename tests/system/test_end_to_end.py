"""A real Estimator eval → shards → export → TensorBoard's own reader; and the demo command."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("tensorflow_estimator")
pytest.importorskip("tensorboard")

from tbutil import read_events

from exporter import open_run
from exporter.api import ExportOptions, export
from exporter.demo import run_capture


@pytest.fixture(scope="module")
def estimator_shards(tmp_path_factory):
    work = tmp_path_factory.mktemp("e2e")
    return run_capture(work, train_steps=(40, 80), train_examples=256, eval_examples=24, batch_size=8, progress=lambda m: None)


def test_export_of_a_real_estimator_eval_reads_back_with_tensorboard(estimator_shards, tmp_path):
    run = open_run(estimator_shards)
    assert run.steps == [40, 80]
    report = export(estimator_shards, tmp_path / "logs", ExportOptions(grid=True))
    acc = read_events(tmp_path / "logs")
    tags = acc.Tags()
    ids = [str(i) for b in run.iter_batches(40) for i in b.arrays["ids"]]
    assert len(ids) == 24
    for example_id in ids:
        events = acc.Images(f"examples/{example_id}")
        assert [e.step for e in events] == [40, 80]  # one image per checkpoint, ascending
        for e in events:
            image = Image.open(io.BytesIO(e.encoded_image_string))
            image.load()
            assert (image.width, image.height) == (e.width, e.height)
            assert image.width == 128 and image.height > 128  # 64x64 upscaled x2, plus the caption strip
    assert "examples_grid" in tags["images"] and "metrics/confusion_matrix" in tags["images"]
    # accuracy computed here, independently, from the dumped arrays
    for event in acc.Scalars("metrics/accuracy"):
        arrays = [b.arrays for b in run.iter_batches(event.step)]
        labels = np.concatenate([a["labels"] for a in arrays])
        preds = np.concatenate([a["probs"] for a in arrays]).argmax(1)
        assert event.value == pytest.approx(float((labels == preds).mean()), abs=1e-6)
    assert [e.step for e in acc.Scalars("metrics/accuracy")] == [40, 80]
    assert report.steps == [40, 80]
    assert {"pr_curve/circle", "pr_curve/square", "pr_curve/triangle"} <= set(tags["tensors"])


def test_demo_command_end_to_end(tmp_path):
    script = shutil.which("summary-exporter", path=os.path.dirname(sys.executable))
    proc = subprocess.run([script, "demo", str(tmp_path / "demo"), "--fast"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"tensorboard --logdir {tmp_path / 'demo' / 'logs' / 'shapes'}" in proc.stdout
    sheet = Image.open(tmp_path / "demo" / "contact_sheet.png")
    assert sheet.width > 500 and sheet.height > 200
    assert open_run(tmp_path / "demo" / "shards").steps == [60, 120]
    # the demo exports with --changes: the second checkpoint fixes some examples and breaks others
    assert "what changed from step 60 to step 120:" in proc.stdout and "filter 'changes/'" in proc.stdout
    acc = read_events(tmp_path / "demo" / "logs" / "shapes")
    changed = [t for t in acc.Tags()["images"] if t.startswith("changes/")]
    fixed = [t for t in changed if t.startswith("changes/fixed/")]
    broken = [t for t in changed if t.startswith("changes/broken/")]
    assert fixed and broken, changed
    assert all([e.step for e in acc.Images(t)] == [120] for t in changed)
    (table,) = acc.Tensors("summary/changes")
    text = table.tensor_proto.string_val[0].decode()
    assert f"{len(fixed)} fixed, {len(broken)} broken" in text and f"{len(fixed)} examples fixed, {len(broken)} broken" in proc.stdout
    assert [e.step for e in acc.Tensors("summary/worst")] == [60, 120]
    # the detector and segmenter halves: their numbers are written, and the printout says where
    acc = read_events(tmp_path / "demo" / "logs" / "shapes")
    scalars = set(acc.Tags()["scalars"])
    for tag in ("metrics/detection/mAP", "metrics/detection/AP50", "metrics/detection/AR100",
                "metrics/segmentation/mean_iou", "metrics/segmentation/IoU/background"):
        assert tag in scalars and [e.step for e in acc.Scalars(tag)] == [60, 120], tag
    assert {f"pr_curve/detection/{c}" for c in ("circle", "square", "triangle")} <= set(acc.Tags()["tensors"])
    for where in ("metrics/detection/mAP", "metrics/segmentation/mean_iou", "pr_curve/detection/<class>"):
        assert where in proc.stdout, where
