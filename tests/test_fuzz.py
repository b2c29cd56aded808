"""Hypothesis fuzzing of the shard reader and the renderer.

The only exceptions allowed out of the library are its own documented errors (``ExporterError``
subclasses, see ``exporter/errors.py``), whatever the bytes, metadata, arrays or options. And a
shard that ``validate_shard`` passes must export: validate is the promise that export works.

``FUZZ_EXAMPLES`` is the budget per test; the examples actually run are counted and printed after
the module (``N fuzz examples run``).
"""

from __future__ import annotations

import collections
import dataclasses
import json
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from reporting import write_line

from exporter import CANONICAL_FIELDS, ExporterError, ShardWriter
from exporter.api import ExportOptions, export
from exporter.render import ReadOptions, RenderOptions, render_example
from exporter.schema import BOX_COORDS, BOX_FORMATS, IMAGE_LAYOUTS, META_KEY
from exporter.shards import Shard, find_shard_files
from exporter.validation import validate_shard

#: max_examples per test: the whole module stays well under a minute on 2 cores.
FUZZ_EXAMPLES = {
    "random_bytes": 500,
    "mutated_shard_bytes": 1200,
    "random_metadata": 1000,
    "random_arrays": 1300,
    "render_example": 1000,
}
RUN = collections.Counter()  # examples actually run, per test
EXPORTED = collections.Counter()  # of which validated clean and were exported

FUZZ = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}


@pytest.fixture(scope="module", autouse=True)
def _report_examples_run(request):
    """Print how many fuzz examples ran, past pytest's output capture (also with -q)."""
    yield
    detail = ", ".join(
        f"{k} {v}" + (f" ({EXPORTED[k]} valid, exported)" if EXPORTED[k] else "") for k, v in RUN.items()
    )
    budget = sum(FUZZ_EXAMPLES.values())
    write_line(request.config, f"\n{sum(RUN.values())} fuzz examples run (budget {budget}): {detail}")


@pytest.fixture(scope="module")
def workdir():
    path = Path(tempfile.mkdtemp(prefix="fuzz-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------- helpers

CLASSES = ["cat", "dog", "bird"]


def _base_arrays(n: int = 2) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "images": rng.integers(0, 256, (n, 6, 5, 3), dtype=np.uint8),
        "labels": np.arange(n) % 3,
        "pred_labels": (np.arange(n) + 1) % 3,
        "probs": np.full((n, 3), 1 / 3, np.float32),
        "boxes": np.tile(np.array([0.1, 0.2, 0.6, 0.7], np.float32), (n, 2, 1)),
        "box_labels": np.zeros((n, 2), int),
        "box_scores": np.full((n, 2), 0.5, np.float32),
        "num_boxes": np.full(n, 1),
        "gt_masks": np.zeros((n, 6, 5), np.int64),
        "ids": np.array([f"id{i}" for i in range(n)]),
    }


def _shard_bytes(compress: bool) -> tuple[bytes, dict]:
    with tempfile.TemporaryDirectory() as tmp:
        with ShardWriter(tmp, step=7, class_names=CLASSES, compress=compress) as w:
            w.add(**_base_arrays())
        (path,) = find_shard_files(tmp)
        with np.load(path, allow_pickle=False) as npz:
            meta = json.loads(str(npz[META_KEY]))
        return path.read_bytes(), meta


BASE = {compress: _shard_bytes(compress) for compress in (False, True)}
BASE_META = BASE[False][1]


def _save(path: Path, arrays: dict, meta) -> None:
    payload = dict(arrays)
    payload[META_KEY] = np.array(meta if isinstance(meta, str) else json.dumps(meta))
    with open(path, "wb") as f:
        np.savez(f, **payload)


def read_everything(path: Path) -> list:
    """Everything a reader does with a file; returns validate's problems. Only ExporterError may escape."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a newer minor version warns
        problems = validate_shard(path)  # never raises for a bad file: it reports
        try:
            shard = Shard(path)
            repr(shard)
            _ = shard.fields
            shard.nbytes()
            shard.load()
        except ExporterError:
            assert problems, "Shard() refused a file that validate_shard passed"
    return problems


def export_must_work(path: Path, workdir: Path, test: str) -> None:
    """A shard validate passes must export without any error."""
    EXPORTED[test] += 1
    logdir = workdir / "logs"
    shutil.rmtree(logdir, ignore_errors=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a newer minor version warns
        report = export(path, logdir, ExportOptions(grid=True))
        shard = Shard(path)
    assert report.bad == []
    if "images" in shard.fields:
        assert report.images >= len(shard)


# --------------------------------------------------------------------------- the reader


@settings(max_examples=FUZZ_EXAMPLES["random_bytes"], **FUZZ)
@given(data=st.one_of(st.binary(max_size=600), st.binary(max_size=200).map(lambda b: b"PK\x03\x04" + b)))
def test_random_bytes_are_refused_cleanly(workdir, data):
    RUN["random_bytes"] += 1
    path = workdir / "random.npz"
    path.write_bytes(data)
    assert read_everything(path)


_MUTATION = st.tuples(
    st.sampled_from(["set", "flip", "truncate", "insert", "delete", "duplicate"]),
    st.floats(0, 1, allow_nan=False),
    st.integers(0, 255),
    st.integers(1, 64),
)


@settings(max_examples=FUZZ_EXAMPLES["mutated_shard_bytes"], **FUZZ)
@given(compress=st.booleans(), mutations=st.lists(_MUTATION, min_size=1, max_size=4))
def test_mutated_shard_bytes_are_refused_or_export(workdir, compress, mutations):
    RUN["mutated_shard_bytes"] += 1
    data = bytearray(BASE[compress][0])
    for op, where, value, length in mutations:
        if not data:
            break
        i = int(where * (len(data) - 1))
        if op == "set":
            data[i] = value
        elif op == "flip":
            data[i] ^= 1 << (value % 8)
        elif op == "truncate":
            del data[i:]
        elif op == "insert":
            data[i:i] = bytes([value]) * length
        elif op == "delete":
            del data[i : i + length]
        else:
            data[i:i] = data[i : i + length]
    path = workdir / "mutated.npz"
    path.write_bytes(bytes(data))
    if not read_everything(path):
        export_must_work(path, workdir, "mutated_shard_bytes")


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_META_VALUES = {
    "step": st.integers(-2, 2**64) | _JSON,
    "num_examples": st.sampled_from([0, 1, 2, 3]) | _JSON,
    "format_version": st.sampled_from(["1.0", "1.9", "2.0", "0.1", "1", ""]) | _JSON,
    "class_names": st.none() | st.lists(st.text(max_size=5), max_size=4) | _JSON,
    "box_format": st.sampled_from(BOX_FORMATS) | _JSON,
    "box_coords": st.sampled_from(BOX_COORDS) | _JSON,
    "image_layout": st.sampled_from((None,) + IMAGE_LAYOUTS) | _JSON,
    "image_range": st.none() | st.lists(st.floats() | st.integers(), min_size=2, max_size=2) | _JSON,
    "created": st.floats() | st.integers() | _JSON,
    "dump_id": st.text(max_size=10) | _JSON,
    "user": _JSON,
}


@settings(max_examples=FUZZ_EXAMPLES["random_metadata"], **FUZZ)
@given(
    changes=st.dictionaries(st.sampled_from(sorted(_META_VALUES) + ["format", "extra_key"]), _JSON, max_size=2),
    typed=st.fixed_dictionaries({}, optional=_META_VALUES),
    drop=st.lists(st.sampled_from(sorted(BASE_META)), max_size=2),
    # mostly a real metadata object with a few keys changed; now and then any JSON or text at all
    whole=st.sampled_from([None] * 4)
    | _JSON.map(lambda v: json.dumps(v))
    | st.text(max_size=30)
    | st.integers(4000, 4400).map(lambda digits: '{"num_examples": ' + "7" * digits + "}"),  # int parse limit
)
def test_random_metadata_is_refused_or_exports(workdir, changes, typed, drop, whole):
    RUN["random_metadata"] += 1
    meta = {k: v for k, v in BASE_META.items() if k not in drop}
    meta.update(typed)
    meta.update(changes)
    path = workdir / "meta.npz"
    _save(path, _base_arrays(), whole if whole is not None else meta)
    if not read_everything(path):
        export_must_work(path, workdir, "random_metadata")


_DTYPES = st.sampled_from(
    ["uint8", "uint16", "int8", "int32", "int64", "uint64", "float16", "float32", "float64", "bool"]
) | st.sampled_from(["complex64", "<U3", "M8[s]", "V2"])
_NAMES = sorted(CANONICAL_FIELDS) + ["image", "lables", "extra"]


def arrays_of(dtype: str, shape, elements=None):
    """hypothesis.extra.numpy.arrays, plus void dtypes (which it cannot generate): zeros."""
    if np.dtype(dtype).kind == "V":
        return st.just(np.zeros(shape, dtype))
    return hnp.arrays(dtype, shape, elements=elements)


@st.composite
def shard_arrays(draw):
    """Mostly plausible shards (right ranks, one N), with wrong shapes, dtypes and values mixed in."""
    n = draw(st.integers(0, 3))
    h, w, m, k = draw(st.integers(0, 5)), draw(st.integers(0, 5)), draw(st.integers(0, 3)), draw(st.integers(0, 4))
    c = draw(st.sampled_from([1, 3, 4, 2, 5]))
    shapes = {
        "images": draw(st.sampled_from([(n, h, w, c), (n, h, w), (n, c, h, w)])),
        "labels": (n,),
        "pred_labels": (n,),
        "pred_scores": (n,),
        "num_boxes": (n,),
        "gt_num_boxes": (n,),
        "ids": (n,),
        "probs": (n, k),
        "boxes": (n, m, draw(st.sampled_from([4, 4, 4, 3]))),
        "gt_boxes": (n, m, 4),
        "box_labels": (n, m),
        "box_scores": (n, m),
        "gt_box_labels": (n, m),
        "masks": (n, h, w),
        "gt_masks": (n, h, w),
    }
    arrays = {}
    for name in draw(st.lists(st.sampled_from(_NAMES), min_size=1, max_size=7, unique=True)):
        shape = shapes.get(name, (n, 2))
        if draw(st.integers(0, 9)) == 0:  # now and then a shape from nowhere
            shape = draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4))
        dtype = draw(_DTYPES)
        if name in ("labels", "pred_labels", "box_labels", "gt_box_labels", "num_boxes", "gt_num_boxes"):
            elements = st.integers(-1, 4) if np.dtype(dtype).kind in "iu" and dtype != "uint8" else None
            if np.dtype(dtype).kind == "u":
                elements = st.integers(0, 4)
        elif name in ("boxes", "gt_boxes") and np.dtype(dtype).kind == "f":
            elements = st.sampled_from(
                [0.0, 0.125, 0.25, 0.5, 0.75, 1.0, -0.25, 1.5, np.nan, np.inf]
            )  # exact in float16
        else:
            elements = None
        arrays[name] = draw(arrays_of(dtype, shape, elements))
    return n, arrays


@settings(max_examples=FUZZ_EXAMPLES["random_arrays"], **FUZZ)
@given(
    case=shard_arrays(),
    class_names=st.none() | st.lists(st.sampled_from(CLASSES), min_size=1, max_size=5),
    layout=st.sampled_from((None,) + IMAGE_LAYOUTS),
    box_format=st.sampled_from(BOX_FORMATS),
    box_coords=st.sampled_from(BOX_COORDS),
    image_range=st.none() | st.sampled_from([[0, 1], [-1, 1], [0, 255], [-1e30, 1e30]]),
)
def test_random_arrays_are_refused_or_export(workdir, case, class_names, layout, box_format, box_coords, image_range):
    RUN["random_arrays"] += 1
    n, arrays = case
    meta = dict(
        BASE_META,
        num_examples=n,
        class_names=class_names,
        image_layout=layout,
        box_format=box_format,
        box_coords=box_coords,
        image_range=image_range,
    )
    path = workdir / "arrays.npz"
    _save(path, arrays, meta)
    if not read_everything(path):
        export_must_work(path, workdir, "random_arrays")


# --------------------------------------------------------------------------- the renderer

_ANY_DTYPE = _DTYPES | st.sampled_from(["<U4", "S3", "O"])


@st.composite
def any_array(draw, max_dims: int = 4, max_side: int = 6):
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=max_dims, min_side=0, max_side=max_side))
    dtype = draw(_ANY_DTYPE)
    if dtype == "O":
        return np.array(draw(st.lists(st.none() | st.text(max_size=2) | st.integers(), max_size=4)), dtype=object)
    return draw(arrays_of(dtype, shape))


@st.composite
def examples(draw):
    """One example: a drawable image most of the time, and any subset of fields, right or wrong."""
    h, w = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    m = draw(st.integers(0, 4))
    good = {
        "images": hnp.arrays(
            st.sampled_from(["uint8", "float32", "float64", "int16", "bool", "uint16"]),
            st.sampled_from([(h, w, 3), (h, w), (h, w, 1), (h, w, 4), (3, h, w)]),
        ),
        "labels": st.integers(-3, 5).map(np.int64),
        "pred_labels": st.integers(-3, 5).map(np.int64),
        "pred_scores": st.floats(width=32).map(np.float32),
        "probs": hnp.arrays("float32", st.integers(1, 5)),
        "boxes": hnp.arrays("float32", (m, 4)),
        "box_labels": hnp.arrays("int64", (m,), elements=st.integers(-2, 6)),
        "box_scores": hnp.arrays("float32", (m,)),
        "num_boxes": st.integers(-1, m + 1).map(np.int64),
        "gt_boxes": hnp.arrays("float64", (m, 4)),
        "gt_box_labels": hnp.arrays("int32", (m,)),
        "gt_num_boxes": st.integers(0, m).map(np.int32),
        "masks": hnp.arrays("int64", (h, w), elements=st.integers(-1, 300)),
        "gt_masks": hnp.arrays("uint8", (h + 1, w)),
        "ids": st.text(max_size=20).map(np.str_) | st.integers(-(2**63), 2**63 - 1).map(np.int64),
    }
    example = {}
    for name in draw(st.lists(st.sampled_from(sorted(good)), max_size=8, unique=True)) + ["images"]:
        wrong = draw(st.integers(0, 5)) == 0  # sometimes anything at all
        example[name] = draw(any_array() if wrong else good[name])
    return example


_FLOATS = st.floats(allow_nan=True, allow_infinity=True)
render_options = st.fixed_dictionaries(
    {},
    optional={
        "class_names": st.none() | st.lists(st.text(max_size=6), max_size=6),
        "score_threshold": _FLOATS | st.integers(-1, 2),
        "max_boxes": st.integers(-1, 5),
        "box_format": st.sampled_from(BOX_FORMATS),
        "box_coords": st.sampled_from(BOX_COORDS),
        "side_by_side": st.booleans(),
        "match_iou": st.none() | _FLOATS,
        "mask_alpha": _FLOATS,
        "mask_outline": st.booleans(),
        "topk": st.integers(-1, 6),
        "min_size": st.integers(-1, 200),
        "layout": st.sampled_from((None,) + IMAGE_LAYOUTS),
        "bgr": st.booleans(),
        "value_range": st.none() | st.just("minmax") | st.tuples(_FLOATS, _FLOATS),
        "mean": st.none() | _FLOATS | st.lists(_FLOATS, max_size=4),
        "std": st.none() | _FLOATS | st.lists(_FLOATS, max_size=4),
        "mask_background": st.none() | st.just("none") | st.integers(-2, 3) | st.just("0"),
        "draw_gt": st.booleans(),
        "draw_caption": st.booleans(),
    },
)


_READ_OPTIONS = {f.name for f in dataclasses.fields(ReadOptions)}


@settings(max_examples=FUZZ_EXAMPLES["render_example"], **FUZZ)
@given(example=examples(), kwargs=render_options)
def test_render_example_raises_only_library_errors_and_never_modifies_inputs(example, kwargs):
    RUN["render_example"] += 1
    copies = {k: np.array(v, copy=True) for k, v in example.items()}
    try:
        read = ReadOptions(**{k: v for k, v in kwargs.items() if k in _READ_OPTIONS})
        options = RenderOptions(**{k: v for k, v in kwargs.items() if k not in _READ_OPTIONS})
        img = render_example(example, options, read)
    except ExporterError:
        pass
    else:
        assert img.mode == "RGB" and img.width > 0 and img.height > 0
    for name, before in copies.items():
        after = np.asarray(example[name])
        assert after.dtype == before.dtype and after.shape == before.shape, name
        if before.dtype.hasobject:
            assert after.tolist() == before.tolist(), name
        else:
            assert after.tobytes() == before.tobytes(), name  # bytes: NaN and NaT compare equal to themselves
