"""Instance masks and keypoints end to end: written by ShardWriter (canonical, ODAPI, torchvision), then drawn."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from runs import CLASS_NAMES, DETECTION, INSTANCES, KEYPOINT_EDGES, run_arrays
from tbutil import decode, read_events

from exporter import ShardWriter, tags
from exporter.api import ExportOptions, export, render
from exporter.capture.torchvision import WRITER_OPTIONS, to_fields
from exporter.render import ReadOptions, RenderOptions, class_color, render_example

FIELDS = ("images", "ids", *DETECTION, *INSTANCES)


def test_export_draws_the_instance_masks_and_keypoints_of_a_run(tmp_path, make_run):
    shards = make_run(steps=(5,), fields=FIELDS, image_shape=(24, 32), keypoint_edges=KEYPOINT_EDGES)
    export(shards, tmp_path / "tb", ExportOptions(workers=1))
    acc = read_events(tmp_path / "tb")
    data = run_arrays(5, fields=FIELDS, image_shape=(24, 32))
    read = ReadOptions(class_names=CLASS_NAMES, keypoint_edges=KEYPOINT_EDGES)
    differs = 0
    for row, ident in enumerate(data["ids"].tolist()):
        (event,) = acc.Images(tags.example_tag("examples", ident))
        got = np.asarray(decode(event.encoded_image_string).convert("RGB"))
        fields = {k: v[row] for k, v in data.items()}
        np.testing.assert_array_equal(got, np.asarray(render_example(fields, read=read)))
        without = {k: v for k, v in fields.items() if k not in INSTANCES}
        differs += not np.array_equal(got, np.asarray(render_example(without, read=read)))
    assert differs == len(data["ids"]), "some exported image does not show its instance masks and keypoints"


def _png(outdir: Path) -> np.ndarray:
    (path,) = sorted(outdir.glob("step-*/*.png"))
    with Image.open(path) as f:
        return np.asarray(f.convert("RGB"))


def _half(color) -> tuple[int, ...]:
    """``color`` blended at mask alpha 0.5 over black."""
    return tuple((c * 128 + 128) >> 8 for c in color)


H, W = 40, 60  # drawn 4 times larger (min_size 128): image pixel (y, x) is canvas pixel (4y + 2, 4x + 2)


def _at(img: np.ndarray, x: float, y: float) -> tuple[int, ...]:
    return tuple(img[int(4 * y) + 2, int(4 * x) + 2].tolist())


def test_an_odapi_dict_through_a_shard_is_drawn(tmp_path):
    box = [0.25, 0.5, 0.75, 1.0]  # ymin, xmin, ymax, xmax: rows 10..29, columns 30..59
    masks = np.zeros((1, 2, H, W), np.float32)
    masks[0, 0, 10:30, 30:60] = 0.8  # soft, image-sized
    masks[0, 1] = 0.9  # padding beyond num_detections: never drawn
    odapi = {
        "original_image": np.zeros((1, H, W, 3), np.uint8),
        "key": np.array([b"img"]),
        "detection_boxes": np.array([[box, [0, 0, 1, 1]]], np.float32),
        "detection_classes": np.array([[2.0, 1.0]], np.float32),  # 1-based: class 1 ("dog")
        "detection_scores": np.array([[0.9, 0.95]], np.float32),
        "num_detections": np.array([1.0], np.float32),
        "detection_masks": masks,
        "detection_keypoints": np.array([[[[0.3, 0.6], [0.5, 0.7], [0.7, 0.9]], [[0.5, 0.1]] * 3]], np.float32),
        "detection_keypoint_scores": np.array([[[0.9, 0.2, 0.7], [0.9] * 3]], np.float32),
    }
    with ShardWriter(tmp_path / "shards", step=1, class_names=CLASS_NAMES, keypoint_edges=[[0, 1], [1, 2]]) as w:
        w.add(**odapi)
    render(tmp_path / "shards", tmp_path / "out", ExportOptions(render=RenderOptions(score_threshold=0.5)))
    img = _png(tmp_path / "out")
    dog = class_color(1)
    assert _at(img, 50, 25) == _half(dog)  # inside the mask
    assert _at(img, 10, 25) == (0, 0, 0)  # outside it: the padding row's full-image mask is not drawn
    assert _at(img, 36, 12) == dog  # the first keypoint, (y, x) = (0.3, 0.6) in ODAPI's order
    assert _at(img, 42, 20) == _half(dog)  # the second scores 0.2 < 0.5: not drawn, nor are its edges
    assert _at(img, 6, 20) == (0, 0, 0)  # nor the padding row's keypoints


def test_a_torchvision_output_through_a_shard_is_drawn(tmp_path):
    masks = np.zeros((1, 1, H, W), np.float32)
    masks[0, 0, 10:30, 30:60] = 0.7
    keypoints = np.array([[[36, 12, 1], [42, 20, 0], [54, 28, 1]]], np.float32)  # x, y, visibility
    output = {
        "boxes": np.array([[30, 10, 60, 30]], np.float32),
        "labels": np.array([2]),  # categories index directly: "bird"
        "scores": np.array([0.8], np.float32),
        "masks": masks,
        "keypoints": keypoints,
        "keypoints_scores": np.array([[3.0, 4.0, -2.0]], np.float32),  # logits: the last is under 0
    }
    image = np.zeros((3, H, W), np.float32)
    with ShardWriter(tmp_path / "shards", step=1, class_names=CLASS_NAMES, keypoint_edges=[[0, 2]],
                     **WRITER_OPTIONS) as w:
        w.add(**to_fields([output], images=[image]))
    render(tmp_path / "shards", tmp_path / "out")
    img = _png(tmp_path / "out")
    bird = class_color(2)
    assert _at(img, 50, 25) == _half(bird) and _at(img, 10, 25) == (0, 0, 0)
    assert _at(img, 36, 12) == bird  # a keypoint
    assert _at(img, 54, 28) == _half(bird)  # a negative logit (p < 0.5) is under the threshold 0...
    assert _at(img, 45, 20) == _half(bird)  # ...so the edge to it is not drawn; the invisible one is NaN
