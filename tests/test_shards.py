"""Reading and validating shards: lazy views, refusals, one-line problems."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

from exporter import (
    RunNotFoundError,
    ShardFormatError,
    ShardTooLargeError,
    ShardVersionError,
    ShardWriter,
    open_run,
    validate_shard,
)
from exporter.schema import FORMAT_VERSION, META_KEY, ShardMeta
from exporter.shards import Shard, find_shard_files


def _one_shard(tmp_path, **fields):
    fields = fields or {"images": np.zeros((2, 4, 4, 3), np.uint8), "labels": np.array([0, 1])}
    with ShardWriter(tmp_path, step=3, class_names=["a", "b"]) as w:
        w.add(**fields)
    (path,) = find_shard_files(tmp_path)
    return path


def _rewrite(path, arrays: dict, meta: dict | str | None):
    payload = dict(arrays)
    if meta is not None:
        payload[META_KEY] = np.array(meta if isinstance(meta, str) else json.dumps(meta))
    np.savez(path, **payload)


def _meta_dict(path):
    return json.loads(str(np.load(path)[META_KEY]))


def test_plain_numpy_load_reads_a_shard_without_pickle(tmp_path):
    path = _one_shard(tmp_path)
    with np.load(path, allow_pickle=False) as npz:
        meta = json.loads(str(npz[META_KEY]))
        assert sorted(npz.files) == sorted(["images", "labels", META_KEY])
        assert npz["images"].shape == (2, 4, 4, 3)
    assert meta["format"] == "summary-exporter/shard" and meta["format_version"] == FORMAT_VERSION
    for key in ("step", "created", "sources", "class_names", "box_format", "box_coords", "image_layout", "image_range", "versions"):
        assert key in meta, key


def test_shard_view_is_lazy_and_readable(tmp_path):
    path = _one_shard(tmp_path)
    shard = Shard(path)
    assert shard.fields["images"].shape == (2, 4, 4, 3)
    assert str(shard.fields["images"]) == "u1[2,4,4,3]"
    assert "step=3" in repr(shard) and "images=u1[2,4,4,3]" in repr(shard)
    assert set(shard.load(["labels"])) == {"labels"}


def test_temp_files_and_hidden_files_are_ignored(tmp_path):
    path = _one_shard(tmp_path)
    (path.parent / f".{path.name}.tmp-123-abcd").write_bytes(b"half a zip")
    (path.parent / ".hidden.npz").write_bytes(b"junk")
    assert find_shard_files(tmp_path) == [path]
    assert open_run(tmp_path).num_examples() == 2


def test_step_folder_and_single_file_open_too(tmp_path):
    path = _one_shard(tmp_path)
    assert open_run(path.parent).steps == [3]
    assert open_run(path).steps == [3]


@pytest.mark.parametrize(
    "mutate, error, match",
    [
        (lambda p, a, m: p.write_bytes(p.read_bytes()[:100]), ShardFormatError, "not a readable .npz/zip"),
        (lambda p, a, m: p.write_bytes(b"PK\x03\x04" + b"\0" * 50), ShardFormatError, "not a readable"),
        (lambda p, a, m: _rewrite(p, a, None), ShardFormatError, "no '__meta__' metadata entry"),
        (lambda p, a, m: _rewrite(p, a, "{not json"), ShardFormatError, "not valid JSON"),
        (lambda p, a, m: _rewrite(p, a, "[1, 2]"), ShardFormatError, "must be a JSON object"),
        (lambda p, a, m: _rewrite(p, a, {**m, "format": "other"}), ShardFormatError, "not a summary-exporter shard"),
        (lambda p, a, m: _rewrite(p, a, {**m, "format_version": "2.0"}), ShardVersionError, "version 2.0 is not supported"),
        (lambda p, a, m: _rewrite(p, a, {**m, "format_version": "one"}), ShardFormatError, "must look like '1.0'"),
        (lambda p, a, m: _rewrite(p, a, {**m, "step": -4}), ShardFormatError, "'step' must be a non-negative"),
        (lambda p, a, m: _rewrite(p, a, {**m, "box_format": "zz"}), ShardFormatError, "'box_format' must be one of"),
        (lambda p, a, m: _rewrite(p, a, {**m, "dump_id": "../../x"}), ShardFormatError, "'dump_id'"),
        (
            lambda p, a, m: _rewrite(p, {**a, "evil": np.array([{"x": 1}], dtype=object)}, m),
            ShardFormatError,
            "pickled Python objects",
        ),
    ],
)
def test_broken_shards_are_refused_with_the_file_named(tmp_path, mutate, error, match):
    path = _one_shard(tmp_path)
    arrays = {k: v for k, v in np.load(path).items() if k != META_KEY}
    mutate(path, arrays, _meta_dict(path))
    with pytest.raises(error, match=match) as info:
        Shard(path)
    assert str(path) in str(info.value)
    (problem,) = validate_shard(path)
    assert str(path) in str(problem) and "\n" not in str(problem)


def test_pickled_array_is_never_unpickled(tmp_path):
    path = _one_shard(tmp_path)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    arrays = dict(np.load(path).items())
    arrays["evil"] = np.array([Evil()], dtype=object)
    np.savez(path, **arrays)
    with pytest.raises(ShardFormatError, match="never load pickles"):
        open_run(tmp_path)
    assert validate_shard(path)
    assert not marker.exists()


def test_newer_minor_version_warns_and_keeps_unknown_keys(tmp_path):
    path = _one_shard(tmp_path)
    arrays = {k: v for k, v in np.load(path).items() if k != META_KEY}
    _rewrite(path, arrays, {**_meta_dict(path), "format_version": "1.7", "future_key": [1, 2]})
    with pytest.warns(UserWarning, match="newer than this reader"):
        shard = Shard(path)
    assert shard.meta.extra == {"future_key": [1, 2]}
    assert json.loads(shard.meta.to_json())["future_key"] == [1, 2]


def test_enormous_declared_size_is_refused_before_allocating(tmp_path):
    path = _one_shard(tmp_path)
    with pytest.raises(ShardTooLargeError, match="above the reader's limit"):
        Shard(path, max_bytes=10).load()
    # a header that lies: it declares ~12 TB but the member holds a few bytes
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False, "shape": (2, 10**6, 10**6, 3)})
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("huge.npy", header.getvalue() + b"\0" * 16)
    with pytest.raises(ShardFormatError, match=r"'huge' declares shape \(2, 1000000, 1000000, 3\)"):
        Shard(path).load()
    (problem,) = validate_shard(path)
    assert "declares shape" in str(problem)


@pytest.mark.parametrize(
    "fields, meta_changes, expected",
    [
        ({"labels": np.array([0, 5])}, {}, "field 'labels': has class id 5, outside the 2 class names"),
        ({"labels": np.array([-1, 0])}, {}, "field 'labels': has negative class id -1"),
        ({"images": np.zeros((2, 2, 2, 5), np.float32)}, {}, "field 'images': has shape (2, 2, 2, 5), expected 1, 3 or 4 channels"),
        ({"images": np.zeros((2, 2), np.uint8)}, {}, "field 'images': has shape (2, 2), expected"),
        ({"labels": np.array([0.5, 1.0])}, {}, "field 'labels': has dtype float64, expected integer class ids"),
        (
            {"boxes": np.array([[[0.5, 0.5, 0.1, 0.9]], [[0, 0, 1, 1]]]), "num_boxes": np.array([1, 1])},
            {},
            "field 'boxes': has 1 inverted boxes",
        ),
        (
            {"boxes": np.array([[[0, 0, 30, 40]], [[0, 0, 1, 1]]], np.float32)},
            {},
            "but box_coords is 'normalized'",
        ),
        (
            {"boxes": np.zeros((2, 3, 4)), "num_boxes": np.array([1, 9])},
            {},
            "field 'num_boxes': has values in [1, 9], expected 0..3",
        ),
        ({"num_boxes": np.array([1, 1])}, {}, "field 'num_boxes': is present but 'boxes' is not"),
        ({"labels": np.array([0, 1])}, {"num_examples": 3}, "expected a leading N=3"),
    ],
)
def test_validate_names_field_and_problem(tmp_path, fields, meta_changes, expected):
    path = _one_shard(tmp_path, images=np.zeros((2, 4, 4, 3), np.uint8), labels=np.array([0, 1]))
    arrays = {k: v for k, v in np.load(path).items() if k != META_KEY}
    arrays.update(fields)
    _rewrite(path, arrays, {**_meta_dict(path), **meta_changes})
    problems = [str(p) for p in validate_shard(path)]
    assert any(expected in p for p in problems), problems
    assert all(p.startswith(str(path) + ": ") for p in problems)


def test_padding_boxes_beyond_num_boxes_are_not_checked(tmp_path):
    boxes = np.array([[[0.1, 0.1, 0.5, 0.5], [-7, -7, -9, -9]]])  # second row is padding
    path = _one_shard(tmp_path, boxes=boxes, num_boxes=np.array([1]))
    assert validate_shard(path) == []


def test_meta_round_trip():
    meta = ShardMeta(step=1, dump_id="d", shard_index=0, num_examples=2, class_names=["x"])
    back = ShardMeta.from_json(meta.to_json())
    assert back == meta


def test_missing_run_folder_is_a_clear_error(tmp_path):
    with pytest.raises(RunNotFoundError, match="no such file or folder"):
        open_run(tmp_path / "nope")
    with pytest.raises(RunNotFoundError, match="no shard files"):
        open_run(tmp_path)
    with pytest.raises(FileNotFoundError):  # the built-in still catches it
        open_run(tmp_path / "nope")


def test_zip_with_foreign_member_is_not_a_shard(tmp_path):
    path = tmp_path / "x.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("readme.txt", "hello")
    with pytest.raises(ShardFormatError, match="unexpected member 'readme.txt'"):
        Shard(path)
