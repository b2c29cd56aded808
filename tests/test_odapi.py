"""Object Detection API dictionaries, as they come, through the writer, renderer, exporter and hook."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from tbutil import read_events

from exporter import ShardWriter, open_run
from exporter.api import export
from exporter.odapi import class_names_from_label_map, to_canonical
from exporter.render import ReadOptions, RenderOptions, render_example
from exporter.render.colors import class_color

LABEL_MAP = {1: {"id": 1, "name": "person"}, 2: {"id": 2, "name": "bicycle"}, 3: {"id": 3, "name": "car"}}
H, W = 40, 60  # upscaled x4 to 160 x 240 by the default min_size of 128


def _odapi_batch():
    return {
        "original_image": np.zeros((2, H, W, 3), np.uint8),
        "key": np.array([b"img/0001.jpg", b"img/0002.jpg"]),
        "detection_boxes": np.array([[[0.25, 0.5, 0.75, 1.0], [0, 0, 0, 0]]] * 2, np.float32),  # ymin, xmin, ymax, xmax
        "detection_classes": np.array([[3.0, 0.0]] * 2, np.float32),  # 1-based: car
        "detection_scores": np.array([[0.9, 0.0]] * 2, np.float32),
        "num_detections": np.array([1.0, 1.0], np.float32),
        "groundtruth_boxes": np.array([[[0.1, 0.1, 0.3, 0.3]]] * 2, np.float32),
        "groundtruth_classes": np.array([[1.0]] * 2, np.float32),
        "num_groundtruth_boxes": np.array([1, 1]),
    }


def _assert_car_box_on_the_right_pixels(image: Image.Image) -> None:
    """The car box spans x 30..60, y 10..30 of the 60x40 input: x 120..240, y 40..120 after the x4 upscale."""
    a = np.asarray(image.convert("RGB")).astype(int)
    car = np.array(class_color(2))
    left_edge = a[70:110, 119:124]  # below the label, on the box's left edge
    assert (np.abs(left_edge - car).sum(axis=-1) == 0).any(axis=1).all()
    assert (a[70:110, 100:114] == 0).all()  # left of the box: untouched black
    assert (a[70:110, 140:200] == 0).all()  # inside the box: not filled


def test_label_map_and_mapping():
    assert class_names_from_label_map(LABEL_MAP) == ["person", "bicycle", "car"]
    out = to_canonical(_odapi_batch())
    assert out["box_labels"].tolist() == [[2, -1], [2, -1]]
    assert out["gt_box_labels"].tolist() == [[0], [0]]
    assert out["num_boxes"].dtype == np.int32 and sorted(out) == sorted(
        ["images", "ids", "boxes", "box_labels", "box_scores", "num_boxes", "gt_boxes", "gt_box_labels", "gt_num_boxes"]
    )
    canonical = {"images": np.zeros((1, 2, 2)), "labels": np.array([1])}
    assert to_canonical(canonical) == canonical


def test_renderer_takes_one_odapi_example():
    batch = _odapi_batch()
    example = {k: v[0] for k, v in batch.items()}
    read = ReadOptions(class_names=class_names_from_label_map(LABEL_MAP))
    image = render_example(example, RenderOptions(draw_caption=False), read)
    assert image.size == (W * 4, H * 4)
    _assert_car_box_on_the_right_pixels(image)


def test_odapi_dict_through_the_writer_and_the_exporter(tmp_path):
    with ShardWriter(tmp_path / "shards", step=7, class_names=class_names_from_label_map(LABEL_MAP)) as w:
        w.add(**_odapi_batch())
    arrays = next(open_run(tmp_path / "shards").iter_batches()).arrays
    assert arrays["box_labels"].tolist() == [[2, -1], [2, -1]] and arrays["ids"].tolist() == ["img/0001.jpg", "img/0002.jpg"]
    export(tmp_path / "shards", tmp_path / "logs")
    acc = read_events(tmp_path / "logs")
    tags = [t for t in acc.Tags()["images"] if t.startswith("examples/")]
    assert len(tags) == 2 and all("0001" in t or "0002" in t for t in tags)
    (event,) = acc.Images(tags[0])
    image = Image.open(io.BytesIO(event.encoded_image_string))
    _assert_car_box_on_the_right_pixels(image.crop((0, 0, W * 4, H * 4)))  # above the id caption strip


def test_odapi_tensor_names_through_the_hook(tmp_path):
    tf = pytest.importorskip("tensorflow")
    from exporter.capture.estimator import EvalDumpHook

    batch = _odapi_batch()
    with tf.Graph().as_default():
        tensors = {k: tf.constant(v, name=k) for k, v in batch.items()}
        hook = EvalDumpHook(tmp_path, {k: f"{k}:0" for k in batch}, step=3)
        with tf.compat.v1.train.MonitoredSession(hooks=[hook]) as sess:
            sess.run(tensors["detection_boxes"])
    arrays = next(open_run(tmp_path).iter_batches()).arrays
    np.testing.assert_array_equal(arrays["boxes"], batch["detection_boxes"])
    assert arrays["box_labels"].tolist() == [[2, -1], [2, -1]]
    assert arrays["num_boxes"].tolist() == [1, 1]
