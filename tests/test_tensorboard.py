"""Encoding images, writing events (read back with TensorBoard's own reader), and naming tags."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image
from tbutil import decode, read_events

from exporter import tags
from exporter.errors import ConfigError
from exporter.tensorboard import (
    EVENT_FILE_SUFFIX,
    EventWriter,
    PRCurveCounts,
    encode_image,
    fpng_available,
    png_encoder_name,
)

PNG_ENCODERS = ["numpy", "pillow"] + (["fpng"] if fpng_available() else [])


# --------------------------------------------------------------------------- encode_image


@pytest.mark.parametrize("encoder", PNG_ENCODERS)
@pytest.mark.parametrize(
    "shape, mode",
    [((5, 7, 3), "RGB"), ((5, 7, 4), "RGBA"), ((5, 7), "L"), ((5, 7, 1), "L"), ((1, 1, 3), "RGB")],
)
def test_png_is_lossless_for_every_supported_array(encoder, shape, mode):
    arr = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    img = decode(encode_image(arr, "png", png_encoder=encoder))
    assert img.format == "PNG" and img.size == (shape[1], shape[0])
    expected = arr if arr.ndim == 2 or arr.shape[2] != 1 else arr[:, :, 0]
    if encoder == "fpng" and mode == "L":  # fpng writes 24-bit pixels: grey comes back as RGB
        assert np.array_equal(np.asarray(img.convert("L")), expected)
    else:
        assert np.array_equal(np.asarray(img.convert(mode)), expected)


@pytest.mark.parametrize("encoder", PNG_ENCODERS)
def test_png_of_a_pil_image(encoder):
    pil = Image.new("RGB", (30, 20), (10, 200, 30))
    img = decode(encode_image(pil, png_encoder=encoder))
    assert img.size == (30, 20) and img.convert("RGB").getpixel((3, 3)) == (10, 200, 30)


def test_jpeg_keeps_size_and_roughly_the_colours():
    pil = Image.new("RGBA", (40, 24), (200, 30, 30, 255))
    img = decode(encode_image(pil, "jpeg", quality=95))
    assert img.format == "JPEG" and img.size == (40, 24)
    assert np.abs(np.asarray(img, np.int16) - np.array([200, 30, 30])).max() < 12


@pytest.mark.parametrize(
    "image, kwargs, match",
    [
        (np.zeros((4, 4, 3), np.float32), {}, "uint8"),
        (np.zeros((4, 4, 2), np.uint8), {}, r"\(H, W, 1\|3\|4\)"),
        (np.zeros((2, 4, 4, 3), np.uint8), {}, "uint8 .*array"),
        (np.zeros((4, 4, 3), np.uint8), {"fmt": "gif"}, "png, jpeg"),
        (np.zeros((4, 4, 3), np.uint8), {"png_encoder": "zlib"}, "auto, numpy, pillow, fpng"),
    ],
)
def test_encode_image_refuses_what_it_cannot_encode(image, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        encode_image(image, **kwargs)


def test_auto_encoder_is_the_numpy_writer_whatever_is_installed():
    assert png_encoder_name("auto") == "numpy"  # fpng, when installed, only on request
    assert png_encoder_name("pillow") == "pillow"


def test_fpng_asked_for_but_missing_names_its_extra(monkeypatch):
    from exporter import tensorboard
    from exporter.errors import MissingDependencyError

    monkeypatch.setattr(tensorboard, "_fpng", lambda: None)
    with pytest.raises(MissingDependencyError, match=r"summary-exporter\[fpng\]"):
        encode_image(np.zeros((2, 2, 3), np.uint8), png_encoder="fpng")


@settings(max_examples=25, deadline=None)
@given(arr=hnp.arrays(np.uint8, st.tuples(st.integers(1, 9), st.integers(1, 9), st.just(3))))
def test_png_round_trip_accepts_every_rgb_array(arr):
    for encoder in PNG_ENCODERS:
        assert np.array_equal(np.asarray(decode(encode_image(arr, png_encoder=encoder)).convert("RGB")), arr)


# --------------------------------------------------------------------------- EventWriter


def test_event_writer_round_trip_through_tensorboard(tmp_path):
    img = np.random.default_rng(1).integers(0, 256, (12, 20, 3), dtype=np.uint8)
    data = encode_image(img)
    with EventWriter(tmp_path) as w:
        for step in (5, 10, 10, 20):
            w.add_image("examples/a", data, height=12, width=20, step=step, walltime=1000.0 + step)
        w.add_scalar("metrics/accuracy", 0.25, step=20, walltime=1020.0)
        assert not list(tmp_path.glob("*tfevents*"))  # staged under a name TensorBoard never reads
        path = w.install()
    assert path == w.path and path.name.endswith(EVENT_FILE_SUFFIX) and path.parent == tmp_path
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # staging file and journal are gone
    acc = read_events(tmp_path)
    events = acc.Images("examples/a")
    assert [e.step for e in events] == [5, 10, 10, 20]
    assert [e.wall_time for e in events] == [1005.0, 1010.0, 1010.0, 1020.0]
    assert (events[0].width, events[0].height) == (20, 12)
    assert np.array_equal(np.asarray(decode(events[0].encoded_image_string)), img)
    (scalar,) = acc.Scalars("metrics/accuracy")
    assert (scalar.step, scalar.value) == (20, 0.25)


def test_event_writer_refuses_an_older_step(tmp_path):
    with EventWriter(tmp_path) as w:
        w.add_scalar("x", 1.0, step=200)
        with pytest.raises(ConfigError, match="step 100 written after step 200"):
            w.add_scalar("x", 1.0, step=100)


def test_an_event_writer_closed_without_install_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError, match="boom"), EventWriter(tmp_path) as w:
        w.add_scalar("x", 1.0, step=1)
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_install_replaces_earlier_files_unless_appending(tmp_path):
    names = []
    for step, replace in ((1, True), (2, False), (3, True)):
        with EventWriter(tmp_path) as w:
            w.add_scalar("x", float(step), step=step)
            names.append(w.install(replace=replace).name)
    assert names == sorted(names) and len(set(names)) == 3  # each new file sorts after the earlier ones
    assert [p.name for p in tmp_path.glob("*tfevents*")] == [names[2]]
    assert [e.step for e in read_events(tmp_path).Scalars("x")] == [3]


def test_event_writer_refuses_writes_after_close(tmp_path):
    w = EventWriter(tmp_path)
    w.close()
    with pytest.raises(ConfigError, match="closed"):
        w.add_scalar("x", 1.0, step=1)


@pytest.mark.parametrize("steps, expected", [(10, []), (11, ["images=11"])])
def test_sample_warning_names_the_flag_and_the_count(tmp_path, steps, expected):
    data = encode_image(np.zeros((2, 2, 3), np.uint8))
    with EventWriter(tmp_path) as w:
        for step in range(steps):
            w.add_image("examples/a", data, height=2, width=2, step=step)
            w.add_image("examples/b", data, height=2, width=2, step=step)
    warnings = w.sample_warnings()
    assert len(warnings) == len(expected)
    for message, flag in zip(warnings, expected, strict=True):
        assert f"--samples_per_plugin {flag}" in message and "2 images tag(s)" in message
    assert w.samples_needed() == ({"images": 11} if expected else {})


@pytest.mark.parametrize("batches", [1, 3])
@pytest.mark.parametrize("num_classes", [2, 5])
def test_pr_counts_equal_tensorboardx_on_all_examples(batches, num_classes):
    from tensorboardX.summary import compute_curve

    rng = np.random.default_rng(num_classes)
    probs = rng.dirichlet(np.ones(num_classes), 60)
    probs[0, 0] = 1.0  # the top bucket
    labels = rng.integers(0, num_classes, 60)
    counts = PRCurveCounts()
    for part in np.array_split(np.arange(60), batches):
        counts.add(probs[part], labels[part])
    for k in range(num_classes):
        expected = compute_curve((labels == k).astype(float), probs[:, k], num_thresholds=127)
        np.testing.assert_allclose(counts.curve(k), expected, rtol=1e-12)


def test_pr_curves_read_back_as_tensors(tmp_path):
    rng = np.random.default_rng(2)
    probs, labels = rng.dirichlet(np.ones(3), 40), rng.integers(0, 3, 40)
    counts = PRCurveCounts()
    counts.add(probs, labels)
    with EventWriter(tmp_path) as w:
        w.add_pr_curves(tags.pr_curve_tags(3, ["cat", "dog", "bird"]), counts, step=7)
        w.add_pr_curve("pr_direct", labels == 0, probs[:, 0], step=7)
        w.install()
    acc = read_events(tmp_path)
    assert sorted(acc.Tags()["tensors"]) == ["pr_curve/bird", "pr_curve/cat", "pr_curve/dog", "pr_direct"]
    from tensorboard.util import tensor_util

    cat = tensor_util.make_ndarray(acc.Tensors("pr_curve/cat")[0].tensor_proto)
    direct = tensor_util.make_ndarray(acc.Tensors("pr_direct")[0].tensor_proto)
    assert cat.shape == (6, 127)
    np.testing.assert_allclose(cat, direct, rtol=1e-6)


# --------------------------------------------------------------------------- tags

SAFE = re.compile(r"^[A-Za-z0-9_.-]+$")
HASHED = re.compile(r"^[A-Za-z0-9_.-]+-[0-9a-f]{8}$")


@pytest.mark.parametrize(
    "example_id, expected",
    [
        ("img_0001.jpg", "img_0001.jpg"),
        ("a-b.c", "a-b.c"),
        (7, "7"),
        (np.int64(-3), "-3"),
        (np.str_("x1"), "x1"),
        ("ex00001", "ex00001"),
        ("x" * 80, "x" * 80),
    ],
)
def test_safe_ids_are_kept_as_they_are(example_id, expected):
    assert tags.sanitize(tags.id_text(example_id)) == expected
    assert tags.example_tag("examples", example_id) == f"examples/{expected}"
    assert tags.safe_filename(example_id, ".png") == expected + ".png"


@pytest.mark.parametrize(
    "example_id, starts",
    [
        ("../../etc/passwd", "__.._etc_passwd-"),
        ("/etc/passwd", "_etc_passwd-"),
        ("C:\\Windows\\system32", "C__Windows_system32-"),
        ("..", "_-"),
        (".", "_-"),
        (".hidden", "_hidden-"),
        ("name.", "name_-"),
        ("", "_-"),
        ("a\x00b", "a_b-"),
        ("猫の写真", "____-"),
        ("café", "caf_-"),
        ("a b", "a_b-"),
        ("CON", "_CON-"),
        ("nul.txt", "_nul.txt-"),
        ("grid", "_grid-"),
        ("x" * 81, "x" * 71 + "-"),
        (b"bytes/id", "bytes_id-"),
    ],
)
def test_unsafe_ids_are_cleaned_and_hashed(example_id, starts, tmp_path):
    name = tags.safe_filename(example_id)
    assert name.startswith(starts) and HASHED.match(name) and len(name) <= tags.MAX_ID_LENGTH
    assert name not in (".", "..") and not name.startswith(".")
    path = (tmp_path / (name + ".png")).resolve()
    assert path.parent == tmp_path.resolve()


@pytest.mark.parametrize(
    "ids",
    [
        ["a/b", "a_b", "a\\b", "a b", "a:b"],
        ["猫", "犬", "_"],
        ["", ".", "..", "_"],
        ["x" * 100 + "1", "x" * 100 + "2"],
    ],
)
def test_ids_that_clean_alike_stay_distinct(ids):
    names = [tags.sanitize(i) for i in ids]
    assert len(set(names)) == len(ids)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120), st.text(max_size=120))
def test_any_text_gives_a_safe_distinct_name(a, b):
    na, nb = tags.sanitize(a), tags.sanitize(b)
    for name in (na, nb):
        assert SAFE.match(name) and len(name) <= tags.MAX_ID_LENGTH
        assert name not in (".", "..") and not name.startswith(".") and not name.endswith(".")
    assert (na == nb) == (a == b)


@pytest.mark.parametrize(
    "bad, error",
    [(True, "bool"), (1.5, "float"), (None, "NoneType")],
)
def test_ids_of_other_types_are_refused(bad, error):
    with pytest.raises(ConfigError, match=error):
        tags.example_tag("examples", bad)


@pytest.mark.parametrize("prefix", ["", "/examples", "examples/", "a//b", "ex amples", "a/../b/é"])
def test_bad_prefixes_are_refused(prefix):
    with pytest.raises(ConfigError, match="tag prefix"):
        tags.example_tag(prefix, "x")


def test_tag_layout():
    assert tags.example_tag("eval/examples", "a") == "eval/examples/a"
    assert tags.grid_tag("examples") == "examples_grid"
    assert tags.ACCURACY_TAG == "metrics/accuracy"
    assert tags.topk_tag(5) == "metrics/top5_accuracy"
    assert tags.CONFUSION_MATRIX_TAG == "metrics/confusion_matrix"
    assert tags.example_name(None, 3) == "ex00003" and tags.example_name("x", 3) == "x"


@pytest.mark.parametrize(
    "names, num_classes, expected",
    [
        (["cat", "dog"], 2, ["cat", "dog"]),
        (None, 2, ["class_0", "class_1"]),
        (
            ["traffic light", "traffic_light", "Traffic light"],
            3,
            ["traffic_light", "traffic_light-1", "Traffic_light-2"],
        ),
        (["a"], 2, ["a", "class_1"]),
        (["", "..", "a/b"], 3, ["_", "_-1", "a_b"]),
    ],
)
def test_pr_curve_tags_are_distinct_and_readable(names, num_classes, expected):
    assert tags.pr_curve_tags(num_classes, names) == [f"pr_curve/{e}" for e in expected]


def test_unique_names_give_duplicates_a_stable_suffix():
    u = tags.UniqueNames()
    got = [u.take(n, i) for i, n in enumerate(["a", "b", "a", "A", "a"])]
    assert got == ["a", "b", "a-dup00002", "A", "a-dup00004"]  # "A" is not "a"; file_stem parts their files
    assert u.duplicates == 2


@pytest.mark.parametrize(
    "example_id, expected",
    [("cat_001", "cat_001"), ("7", "7"), ("a-b.c", "a-b.c"), ("Cat_001", None), ("CAT_001", None), ("x" * 80, "x" * 80)],
)
def test_file_names_differ_where_case_folds_and_lowercase_ones_are_kept(example_id, expected):
    name = tags.safe_filename(example_id)
    if expected is not None:
        assert name == expected
    else:
        assert HASHED.match(name) and name.startswith(example_id + "-") and len(name) <= tags.MAX_ID_LENGTH
    assert tags.safe_filename(example_id.lower()) != name or example_id == example_id.lower()
    folded = {tags.safe_filename(i).lower() for i in ("cat_001", "Cat_001", "CAT_001", "cAt_001")}
    assert len(folded) == 4


# --------------------------------------------------------------------------- text, descriptions, change tags


def test_add_text_writes_the_text_plugins_string_tensor(tmp_path):
    with EventWriter(tmp_path) as w:
        for step in range(12):
            w.add_text("summary/changes", f"| a | b |\n|---|---|\n| {step} | é |", step=step, walltime=1.0, description="what")
        w.install()
        assert w.samples_needed() == {"text": 12}
        (warning,) = w.sample_warnings()
        assert "--samples_per_plugin text=12" in warning
    acc = read_events(tmp_path)
    assert acc.Tags()["tensors"] == ["summary/changes"]
    events = acc.Tensors("summary/changes")
    assert [e.step for e in events] == list(range(12))
    proto = events[3].tensor_proto
    assert proto.dtype == 7 and not proto.tensor_shape.dim  # DT_STRING, a scalar: drawn as Markdown, not a 1-cell table
    assert proto.string_val[0].decode() == "| a | b |\n|---|---|\n| 3 | é |"
    meta = acc.SummaryMetadata("summary/changes")
    assert meta.plugin_data.plugin_name == "text" and meta.summary_description == "what"


def test_add_text_refuses_what_is_not_text(tmp_path):
    with EventWriter(tmp_path) as w, pytest.raises(ConfigError, match="must be a str"):
        w.add_text("summary/x", b"bytes", step=1)


def test_an_image_description_goes_with_the_first_event_of_its_tag(tmp_path):
    data = encode_image(np.zeros((4, 4, 3), np.uint8))
    with EventWriter(tmp_path) as w:
        for step in (1, 2):
            w.add_image("examples/a", data, height=4, width=4, step=step, description="card text")
        w.add_image("examples/b", data, height=4, width=4, step=2)
        w.install()
    acc = read_events(tmp_path)
    assert [e.step for e in acc.Images("examples/a")] == [1, 2]
    assert acc.SummaryMetadata("examples/a").summary_description == "card text"
    with pytest.raises(KeyError):  # no description, no metadata: the plain image summary of before
        acc.SummaryMetadata("examples/b")


def test_change_and_group_tags():
    assert tags.change_tag("broken", "x") == "changes/broken/x"
    assert tags.grouped_tag("eval/examples", "right", "x") == "eval/examples/right/x"
    assert tags.class_components(2, ["cat", "cat"]) == ["cat", "cat-1"]
    assert tags.pr_curve_tags(2, ["cat", "cat"]) == ["pr_curve/cat", "pr_curve/cat-1"]
    with pytest.raises(ConfigError, match="fixed, broken"):
        tags.change_tag("moved", "x")
    with pytest.raises(ConfigError, match="one safe component"):
        tags.grouped_tag("examples", "a/b", "x")
