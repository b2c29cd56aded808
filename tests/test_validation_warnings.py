"""validate's warnings: valid shards whose pictures will surprise (NaN/inf pixels, boxes outside the image).

A warning is a ``Problem`` with ``level="warning"``: ``validate_shard`` lists it, the command line prints
it on stderr as "warning: ..." and still exits 0, and ``export`` draws the shard as usual.
"""

from __future__ import annotations

import numpy as np
import pytest

from exporter import ShardWriter, validate_shard
from exporter.cli import main
from exporter.shards import Shard
from exporter.validation import check_arrays, check_warnings


def write(tmp_path, **fields):
    """One shard of the given batch-major fields (2 examples), written by the real ShardWriter."""
    options = {k: fields.pop(k) for k in ("box_format", "box_coords", "image_layout") if k in fields}
    with ShardWriter(tmp_path / "run", step=1, **options) as w:
        w.add(**fields)
    (path,) = w.paths
    return path


def warnings_of(path) -> list[tuple[str | None, str]]:
    problems = validate_shard(path)
    assert all(p.level == "warning" for p in problems), problems
    return [(p.field, p.message) for p in problems]


IMAGES = np.zeros((2, 8, 10, 3), np.float32)


@pytest.mark.parametrize(
    "images, layout, expected",
    [
        (IMAGES, "HWC", []),
        (
            np.where(np.arange(10)[:, None] < 3, np.nan, IMAGES).astype(np.float32),  # 3 columns of 8 rows, twice
            "HWC",
            [("images", "has 48 NaN/inf pixels in 2 of 2 images; they are drawn magenta")],
        ),
        (
            np.concatenate([IMAGES[:1], np.full((1, 8, 10, 3), np.inf, np.float32)]),
            "HWC",
            [("images", "has 80 NaN/inf pixels in 1 of 2 images; they are drawn magenta")],
        ),
        (  # one pixel, every channel bad, counts once; (N, C, H, W)
            np.concatenate([np.full((1, 3, 1, 1), -np.inf, np.float32), np.zeros((1, 3, 1, 1), np.float32)]),
            "CHW",
            [("images", "has 1 NaN/inf pixels in 1 of 2 images; they are drawn magenta")],
        ),
        (  # alpha is not drawn: a NaN there is no NaN pixel
            np.concatenate([np.zeros((2, 2, 2, 3), np.float32), np.full((2, 2, 2, 1), np.nan, np.float32)], axis=3),
            "HWC",
            [],
        ),
        (
            np.full((2, 4, 4), np.nan, np.float16),
            "HW",
            [("images", "has 32 NaN/inf pixels in 2 of 2 images; they are drawn magenta")],
        ),
    ],
)
def test_nan_and_inf_pixels_are_counted(tmp_path, images, layout, expected):
    assert warnings_of(write(tmp_path, images=images, image_layout=layout)) == expected


@pytest.mark.parametrize(
    "fields, expected",
    [
        ({"boxes": [[[0.1, 0.1, 0.5, 0.5]], [[0.2, 0.2, 0.9, 0.9]]]}, []),
        (  # yxyx, normalized (the defaults): the second box lies right of the image, the third below it
            {"boxes": [[[0.1, 0.1, 0.5, 0.5], [0.2, 1.0, 0.4, 1.03]], [[1.01, 0.1, 1.04, 0.2], [0, 0, 1, 1]]]},
            [("boxes", "has 2 boxes entirely outside the image (not drawn)")],
        ),
        (  # only the first num_boxes count: padding is no box
            {"boxes": [[[0.1, 0.1, 0.5, 0.5], [0, 0, 0, 0]]] * 2, "num_boxes": [1, 1]},
            [],
        ),
        (  # zero rows without num_boxes are boxes: say what they probably are
            {"boxes": [[[0.1, 0.1, 0.5, 0.5], [0, 0, 0, 0]]] * 2},
            [
                (
                    "boxes",
                    "has 2 boxes entirely outside the image (not drawn); 2 of them are all zeros: padding? write 'num_boxes'",
                )
            ],
        ),
        (  # pixels: against the image's own size (10 wide, 8 tall); touching the edge from outside is outside
            {
                "boxes": [[[10, 0, 14, 4], [2, 2, 12, 9]], [[0, -5, 5, 0], [9, 7, 10, 8]]],
                "box_format": "xyxy",
                "box_coords": "pixels",
            },
            [("boxes", "has 2 boxes entirely outside the image (not drawn)")],
        ),
        (  # xywh and cxcywh are read as such: (8, 2, 3, 3) reaches x 11 from 8, inside; centre (12, 2) is outside
            {"boxes": [[[8, 2, 3, 3]], [[-4, 1, 3, 3]]], "box_format": "xywh", "box_coords": "pixels"},
            [("boxes", "has 1 boxes entirely outside the image (not drawn)")],
        ),
        (
            {"boxes": [[[12, 2, 3, 3]], [[5, 4, 2, 2]]], "box_format": "cxcywh", "box_coords": "pixels"},
            [("boxes", "has 1 boxes entirely outside the image (not drawn)")],
        ),
        (  # gt boxes too, with their own count
            {"gt_boxes": [[[1.02, 0, 1.04, 0.5], [0, 0, 0, 0]]] * 2, "gt_num_boxes": [1, 2]},
            [("gt_boxes", "has 3 boxes entirely outside the image (not drawn)")],  # 1 + 2: the zero row counts here
        ),
    ],
)
def test_boxes_entirely_outside_the_image_are_counted(tmp_path, fields, expected):
    fields = {
        k: np.array(v, np.float32) if k in ("boxes", "gt_boxes") else (np.array(v) if isinstance(v, list) else v)
        for k, v in fields.items()
    }
    assert warnings_of(write(tmp_path, images=np.zeros((2, 8, 10, 3), np.uint8), **fields)) == expected


def test_warnings_do_not_make_a_shard_bad_for_export(tmp_path):
    path = write(tmp_path, images=np.full((2, 4, 4, 3), np.nan, np.float32), boxes=np.full((2, 1, 4), 1.02, np.float32))
    shard = Shard(path)
    arrays, meta = shard.load(), shard.meta
    assert check_arrays(meta, arrays) == []  # what export checks: nothing
    assert len(check_warnings(meta, arrays)) == 2


def test_errors_come_alone_without_warnings(tmp_path):
    path = write(tmp_path, images=np.full((2, 4, 4, 3), np.nan, np.float32), labels=np.array([0, -1]))
    (problem,) = validate_shard(path)
    assert problem.level == "error" and "negative class id" in problem.message


def test_the_command_line_prints_warnings_on_stderr_and_exits_0(tmp_path, capsys):
    path = write(tmp_path, images=np.full((2, 4, 4, 3), np.nan, np.float32))
    assert main(["validate", str(tmp_path / "run")]) == 0
    out, err = capsys.readouterr()
    assert out == ""
    assert f"warning: {path}: field 'images': has 32 NaN/inf pixels in 2 of 2 images" in err
    assert "1 shard(s) checked: 1 valid, 0 with problems" in err


def test_the_command_line_still_fails_on_errors_next_to_warnings(tmp_path, capsys):
    write(tmp_path, images=np.full((2, 4, 4, 3), np.nan, np.float32))
    with ShardWriter(tmp_path / "run", step=2) as w:
        w.add(images=np.zeros((2, 4, 4, 3), np.uint8), labels=np.array([0, -1]))
    assert main(["validate", str(tmp_path / "run")]) == 1
    out, err = capsys.readouterr()
    assert "negative class id -1" in out and "warning:" not in out
    assert "warning: " in err and "2 shard(s) checked: 1 valid, 1 with problems" in err
