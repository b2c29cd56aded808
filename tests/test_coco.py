"""import-coco: a small COCO dataset written here (PNG images, ground truth, results) → shards equal to the source."""

from __future__ import annotations

import copy
import json
import sys

import numpy as np
import pycocotools.mask as mask_api
import pytest
from PIL import Image

from exporter import DatasetError, MissingDependencyError, open_run
from exporter.cli import main
from exporter.coco import import_coco
from exporter.shards import find_shard_files
from exporter.validation import validate_shard

CATEGORIES = [  # ids with gaps, not in order: indices follow the ids (1 → 0, 3 → 1, 7 → 2)
    {"id": 7, "name": "dog"},
    {"id": 1, "name": "person", "keypoints": ["head", "hip", "foot"], "skeleton": [[1, 2], [2, 3]]},
    {"id": 3, "name": "car"},
]
SIZES = {10: (20, 30), 20: (20, 30), 30: (16, 24)}  # image id → (height, width)


def _rect(image_id: int, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    m = np.zeros(SIZES[image_id], bool)
    m[y0:y1, x0:x1] = True
    return m


def _polygon(x0: int, y0: int, x1: int, y1: int) -> list[list[float]]:
    """A rectangle polygon; pycocotools fills pixels [y0, y1) x [x0, x1) of it (the _rect above)."""
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


def _rle(mask: np.ndarray, *, compressed: bool = True) -> dict:
    if compressed:
        rle = mask_api.encode(np.asfortranarray(mask.astype(np.uint8)))
        return {"size": rle["size"], "counts": rle["counts"].decode("ascii")}
    flat = mask.ravel(order="F").astype(int)  # column-major runs, starting with zeros
    changes = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
    counts = np.diff(np.concatenate([[0], changes])).tolist()
    return {"size": list(mask.shape), "counts": counts}


@pytest.fixture
def coco(tmp_path):
    """The dataset, and what the shards must hold for each image (by file name)."""
    rng = np.random.default_rng(0)
    images_dir = tmp_path / "images"
    (images_dir / "sub").mkdir(parents=True)
    pixels = {
        "a.png": rng.integers(0, 256, (20, 30, 3), dtype=np.uint8),
        "sub/b.png": rng.integers(0, 256, (20, 30, 3), dtype=np.uint8),
        "c.png": rng.integers(0, 256, (16, 24), dtype=np.uint8),  # greyscale: read as RGB
    }
    for name, a in pixels.items():
        Image.fromarray(a).save(images_dir / name)
    files = {10: "a.png", 20: "sub/b.png", 30: "c.png"}
    gt_kp = [4, 5, 2, 6, 9, 1, 0, 0, 0]  # the foot is not labelled (v = 0)
    gt = {
        "images": [{"id": i, "file_name": files[i], "height": h, "width": w} for i, (h, w) in SIZES.items()],
        "categories": copy.deepcopy(CATEGORIES),
        "annotations": [
            {"id": 1, "image_id": 10, "category_id": 1, "bbox": [2, 3, 7, 5], "iscrowd": 0,
             "segmentation": _polygon(2, 3, 9, 8), "keypoints": gt_kp, "num_keypoints": 2},
            {"id": 2, "image_id": 10, "category_id": 3, "bbox": [15.5, 5.25, 6, 6], "iscrowd": 0,
             "segmentation": _rle(_rect(10, 15, 5, 21, 11))},
            {"id": 3, "image_id": 20, "category_id": 7, "bbox": [0, 0, 30, 4], "iscrowd": 1,
             "segmentation": _rle(_rect(20, 0, 0, 30, 4), compressed=False)},
        ],
    }
    dt_kp = [4.5, 5, 0.9, 6, 9.5, 0.8, 7, 18, 0.1]
    results = [
        {"image_id": 10, "category_id": 3, "bbox": [15, 5, 6, 6], "score": 0.75},
        {"image_id": 10, "category_id": 1, "bbox": [2, 3, 7, 5], "score": 0.95,
         "segmentation": _rle(_rect(10, 2, 3, 9, 8)), "keypoints": dt_kp},
        {"image_id": 20, "category_id": 7, "bbox": [1, 1, 20, 3], "score": 0.5, "segmentation": _polygon(1, 1, 21, 4)},
        {"image_id": 30, "category_id": 3, "bbox": [3, 3, 4, 4], "score": 0.25},
    ]
    empty_kp = np.full((3, 2), np.nan)
    want = {
        "a.png": dict(
            image=pixels["a.png"], image_id=10,
            gt_boxes=[[2, 3, 7, 5], [15.5, 5.25, 6, 6]], gt_labels=[0, 1], crowd=[False, False],
            gt_masks=[_rect(10, 2, 3, 9, 8), _rect(10, 15, 5, 21, 11)],
            gt_keypoints=[[[4, 5], [6, 9], [np.nan, np.nan]], empty_kp], visibility=[[2, 1, 0], [0, 0, 0]],
            boxes=[[15, 5, 6, 6], [2, 3, 7, 5]], labels=[1, 0], scores=[0.75, 0.95],
            masks=[np.zeros((20, 30), bool), _rect(10, 2, 3, 9, 8)],
            keypoints=[empty_kp, [[4.5, 5], [6, 9.5], [7, 18]]], keypoint_scores=[[np.nan] * 3, [0.9, 0.8, 0.1]],
        ),
        "sub/b.png": dict(
            image=pixels["sub/b.png"], image_id=20,
            gt_boxes=[[0, 0, 30, 4]], gt_labels=[2], crowd=[True], gt_masks=[_rect(20, 0, 0, 30, 4)],
            gt_keypoints=[empty_kp], visibility=[[0, 0, 0]],
            boxes=[[1, 1, 20, 3]], labels=[2], scores=[0.5], masks=[_rect(20, 1, 1, 21, 4)],
            keypoints=[empty_kp], keypoint_scores=[[np.nan] * 3],
        ),
        "c.png": dict(
            image=np.repeat(pixels["c.png"][..., None], 3, axis=2), image_id=30,
            gt_boxes=np.zeros((0, 4)), gt_labels=[], crowd=[], gt_masks=np.zeros((0, 16, 24), bool),
            gt_keypoints=np.zeros((0, 3, 2)), visibility=np.zeros((0, 3)),
            boxes=[[3, 3, 4, 4]], labels=[1], scores=[0.25], masks=[np.zeros((16, 24), bool)],
            keypoints=[empty_kp], keypoint_scores=[[np.nan] * 3],
        ),
    }
    paths = {"gt": tmp_path / "gt.json", "results": tmp_path / "results.json", "images": images_dir,
             "out": tmp_path / "shards"}
    _dump(paths, gt, results)
    return paths, gt, results, want


def _dump(paths, gt, results) -> None:
    paths["gt"].write_text(json.dumps(gt))
    paths["results"].write_text(json.dumps(results))


def _args(paths, *extra: str) -> list[str]:
    return ["import-coco", str(paths["gt"]), str(paths["results"]), str(paths["images"]), str(paths["out"]), *extra]


def _examples(out) -> dict[str, dict[str, np.ndarray]]:
    """Every example of the run by id, its padding cut off by num_boxes / gt_num_boxes."""
    examples = {}
    for batch in open_run(out).iter_batches():
        a = batch.arrays
        for j, name in enumerate(a["ids"].tolist()):
            k, g = int(a["num_boxes"][j]), int(a["gt_num_boxes"][j])
            per_box = {"boxes", "box_labels", "box_scores", "instance_masks", "keypoints", "keypoint_scores"}
            examples[name] = {
                f: v[j, : (k if f in per_box else g)] if f in per_box or f.startswith("gt_") and v.ndim > 1 else v[j]
                for f, v in a.items()
            }
    return examples


def test_import_reads_back_equal_to_the_source(coco):
    paths, _, _, want = coco
    report = import_coco(paths["gt"], paths["results"], paths["images"], paths["out"], step=7)
    assert (report.images, report.gt_boxes, report.detections, report.skipped) == (3, 3, 4, [])
    assert str(report).startswith("imported 3 images (3 ground-truth boxes, 4 detections) as 2 shard(s) in ")
    assert [validate_shard(f) for f in find_shard_files(paths["out"])] == [[], []]  # two image sizes: two shards
    run = open_run(paths["out"])
    assert run.steps == [7] and run.class_names == ["person", "car", "dog"]
    meta = run.shards()[0].meta
    assert (meta.box_format, meta.box_coords, meta.format_version) == ("xywh", "pixels", "1.1")
    assert meta.user["coco"] == {"category_ids": [1, 3, 7], "gt_file": "gt.json", "results_file": "results.json"}
    assert (meta.keypoint_names, meta.keypoint_edges) == (["head", "hip", "foot"], [[0, 1], [1, 2]])
    got = _examples(paths["out"])
    assert sorted(got) == sorted(want)
    for name, w in want.items():
        g = got[name]
        np.testing.assert_array_equal(g["images"], w["image"], err_msg=name)
        assert int(g["coco_image_id"]) == w["image_id"]
        for field, key in (
            ("gt_boxes", "gt_boxes"), ("gt_box_labels", "gt_labels"), ("gt_iscrowd", "crowd"),
            ("gt_instance_masks", "gt_masks"), ("gt_keypoints", "gt_keypoints"),
            ("gt_keypoint_visibility", "visibility"), ("boxes", "boxes"), ("box_labels", "labels"),
            ("box_scores", "scores"), ("instance_masks", "masks"), ("keypoints", "keypoints"),
            ("keypoint_scores", "keypoint_scores"),
        ):
            expected = np.asarray(w[key])
            np.testing.assert_array_equal(g[field], expected.reshape(g[field].shape), err_msg=f"{name} {field}")


def test_the_command_line_imports_and_validate_passes(coco, capsys):
    paths, *_ = coco
    assert main(_args(paths, "--step", "90000")) == 0
    out, err = capsys.readouterr()
    assert out.startswith("imported 3 images") and "step-000000090000" in out and err == ""
    assert main(["validate", str(paths["out"])]) == 0


def _missing_image(gt, results, paths):
    (paths["images"] / "sub" / "b.png").unlink()
    return "sub/b.png: image 20: no such image file in"


def _bad_bbox(gt, results, paths):
    gt["annotations"][1]["bbox"] = [15, 5, -6, 6]
    return "gt.json: annotation 2 (image 10): bbox [15, 5, -6, 6] has a negative width or height"


def _short_bbox(gt, results, paths):
    results[3]["bbox"] = [3, 3, 4]
    return "results.json: result 3 (image 30): bbox must be [x, y, width, height] of 4 finite numbers, got [3, 3, 4]"


def _unknown_category(gt, results, paths):
    results[0]["category_id"] = 99
    return "results.json: result 0 (image 10): category_id 99 is not a category of gt.json"


def _unknown_gt_category(gt, results, paths):
    gt["annotations"][2]["category_id"] = 2
    return "gt.json: annotation 3 (image 20): category_id 2 is not a category of gt.json"


def _unknown_image(gt, results, paths):
    results[2]["image_id"] = 999
    return "results.json: result 2: image_id 999 is not an image of gt.json"


def _bad_rle_size(gt, results, paths):
    gt["annotations"][1]["segmentation"]["size"] = [30, 20]
    return "annotation 2 (image 10): segmentation RLE size [30, 20] is not the image's [height, width] [20, 30]"


def _bad_keypoints(gt, results, paths):
    results[1]["keypoints"] = [1, 2, 3, 4, 5, 6]
    return "results.json: result 1 (image 10): keypoints hold 2 keypoints, expected 3"


def _wrong_image_size(gt, results, paths):
    gt["images"][2]["width"] = 25
    gt["images"][2]["height"] = 16
    return "c.png: image 30: is 24x16 pixels, but the ground truth says 25x16"


def _corrupt_image(gt, results, paths):
    (paths["images"] / "c.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return "c.png: image 30: cannot be decoded as an image"


def _bad_rle_counts(gt, results, paths):
    results[1]["segmentation"]["counts"] = "1"  # one run of 1 pixel: pycocotools would leave 599 uninitialised
    return "results.json: result 1 (image 10): segmentation RLE runs cover 1 pixels, not height x width = 600"


def _bad_uncompressed_rle(gt, results, paths):
    gt["annotations"][2]["segmentation"]["counts"] = [0, 5000]  # more pixels than the image: would write past it
    return "gt.json: annotation 3 (image 20): segmentation RLE runs cover 5000 pixels, not height x width = 600"


def _bad_rle_string(gt, results, paths):
    results[1]["segmentation"]["counts"] = "!!!!"  # would make pycocotools read past the string
    return "results.json: result 1 (image 10): segmentation RLE 'counts' is not a COCO RLE string"


def _far_polygon(gt, results, paths):
    gt["annotations"][0]["segmentation"] = [[0, 0, 1e12, 0, 1e12, 5]]  # would make pycocotools allocate terabytes
    return "gt.json: annotation 1 (image 10): segmentation polygon points lie far outside the 30x20 image"


def _escaping_file_name(gt, results, paths):
    gt["images"][0]["file_name"] = "../gt.json"
    return "gt.json: image 10: file_name '../gt.json' points outside the images folder"


BAD = [_missing_image, _bad_bbox, _short_bbox, _unknown_category, _unknown_gt_category, _unknown_image, _bad_rle_size,
       _bad_keypoints, _wrong_image_size, _corrupt_image, _bad_rle_counts, _bad_uncompressed_rle, _bad_rle_string, _far_polygon,
       _escaping_file_name]


@pytest.mark.parametrize("breaks", BAD, ids=lambda f: f.__name__.strip("_"))
def test_a_bad_entry_is_one_error_line_and_exit_1_and_writes_nothing(coco, capsys, breaks):
    paths, gt, results, _ = coco
    expected = breaks(gt, results, paths)
    _dump(paths, gt, results)
    assert main(_args(paths)) == 1
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    (line,) = err.splitlines()
    assert line.startswith("error: ") and expected in line, line
    assert not paths["out"].exists() or not any(p.is_file() for p in paths["out"].rglob("*"))


@pytest.mark.parametrize("breaks", BAD, ids=lambda f: f.__name__.strip("_"))
def test_skip_bad_lists_what_it_left_out_and_imports_the_rest(coco, capsys, breaks):
    paths, gt, results, want = coco
    expected = breaks(gt, results, paths)
    _dump(paths, gt, results)
    assert main(_args(paths, "--skip-bad")) == 0
    out, err = capsys.readouterr()
    (line,) = err.splitlines()
    assert line.startswith("skipped: ") and expected in line, line
    assert "skipped 1 bad entries" in out
    got = _examples(paths["out"])
    result_only = breaks in (_short_bbox, _unknown_category, _unknown_image, _bad_keypoints, _bad_rle_string, _bad_rle_counts)
    assert len(got) == (3 if result_only else 2)  # a bad result goes alone; a bad image or ground truth takes the image
    assert [validate_shard(f) for f in find_shard_files(paths["out"])] == [[]] * len(find_shard_files(paths["out"]))


def test_skip_bad_with_nothing_left_is_an_error(coco, capsys):
    paths, gt, results, _ = coco
    for image in gt["images"]:
        image["file_name"] = "missing-" + image["file_name"]
    _dump(paths, gt, results)
    assert main(_args(paths, "--skip-bad")) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("error: nothing imported") and "no such image file" in line


def test_masks_need_pycocotools_and_say_which_extra(coco, monkeypatch):
    paths, gt, results, _ = coco
    monkeypatch.setitem(sys.modules, "pycocotools", None)  # import pycocotools now raises ImportError
    monkeypatch.setitem(sys.modules, "pycocotools.mask", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'summary-exporter\[coco\]'"):
        import_coco(paths["gt"], paths["results"], paths["images"], paths["out"])
    for entry in gt["annotations"] + results:  # boxes and keypoints alone need no pycocotools
        entry.pop("segmentation", None)
    _dump(paths, gt, results)
    report = import_coco(paths["gt"], paths["results"], paths["images"], paths["out"])
    assert report.images == 3 and "instance_masks" not in open_run(paths["out"]).fields


def test_small_shards_and_results_without_keypoints_or_masks(coco):
    paths, gt, results, want = coco
    for entry in results:
        entry.pop("segmentation", None)
        entry.pop("keypoints", None)
    _dump(paths, gt, results)
    report = import_coco(paths["gt"], paths["results"], paths["images"], paths["out"], max_shard_bytes=1, compress=False)
    assert len(report.shards) == 3  # one image per shard
    fields = open_run(paths["out"]).fields
    assert {"gt_instance_masks", "gt_keypoints"} <= set(fields)
    assert not {"instance_masks", "keypoints", "keypoint_scores"} & set(fields)


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda gt, res: gt.update(categories=[]), "'categories' must be a non-empty list"),
        (lambda gt, res: gt["categories"].append({"id": 3, "name": "again"}), "category 3: id 3 is used twice"),
        (lambda gt, res: gt["categories"][1].update(skeleton=[[0, 1]]), "'skeleton' must be [a, b] pairs of 1-based"),
        (lambda gt, res: gt.update(images={}), "'images' must be a list"),
        (lambda gt, res: gt["images"].append(dict(gt["images"][0])), "image 10: id is used twice"),
        (lambda gt, res: res.append("nope"), "result 4: must be an object, got str"),
        (lambda gt, res: res[0].update(score=float("nan")), "score must be a finite number, got nan"),
        (lambda gt, res: gt["annotations"][0].update(iscrowd=2), "iscrowd must be 0 or 1, got 2"),
        (lambda gt, res: gt["annotations"][0].update(segmentation=[[1, 2, 3]]), "polygons must be lists of at least 3"),
    ],
)
def test_malformed_files_name_what_is_wrong(coco, change, match):
    paths, gt, results, _ = coco
    change(gt, results)
    _dump(paths, gt, results)
    with pytest.raises(DatasetError, match=match.replace("[", r"\[").replace("]", r"\]")):
        import_coco(paths["gt"], paths["results"], paths["images"], paths["out"])


def test_unreadable_files_and_bad_options(coco, capsys):
    paths, *_ = coco
    paths["results"].write_text("{not json")
    assert main(_args(paths)) == 1
    assert "results.json: not valid JSON" in capsys.readouterr().err
    paths["results"].write_text('{"info": 1}')
    assert main(_args(paths)) == 1
    assert "expected a COCO results list" in capsys.readouterr().err
    paths["results"].unlink()
    assert main(_args(paths)) == 1
    assert "results.json: no such file" in capsys.readouterr().err
    assert main(_args(paths, "--step", "-3")) == 1
    assert "step must be an integer >= 0" in capsys.readouterr().err


def test_help_has_an_example(capsys):
    with pytest.raises(SystemExit):
        main(["import-coco", "--help"])
    out = capsys.readouterr().out
    assert "example:" in out and "summary-exporter import-coco instances_val2017.json detections.json" in out
