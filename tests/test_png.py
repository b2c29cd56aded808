"""``exporter.png``: lossless and readable by two independent decoders, with either deflate back end.

Pillow decodes every output pixel-exact; pypng (a pure-Python decoder that
checks every chunk CRC and undoes the filters itself, in the dev extra) reads
the same pixels when it is installed.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image
from tbutil import decode

from exporter import png
from exporter.errors import ConfigError, MissingDependencyError
from exporter.tensorboard import encode_image, fpng_available

try:
    import png as pypng  # the PyPI package "pypng"; exporter.png is ours
except ImportError:
    pypng = None

DEFLATES = ["zlib"] + (["isal"] if png.isal_available() else [])
PIL_MODE = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


def _pixels(shape, seed=0):
    """Noise on a gradient: runs for RLE to find and bytes it cannot, so every deflate path is taken."""
    rng = np.random.default_rng(seed)
    base = np.add.outer(np.arange(shape[0]), np.arange(shape[1])).astype(np.uint8)
    base = base.reshape(shape[:2] + (1,) * (len(shape) - 2))
    return (base + rng.integers(0, 4, shape, dtype=np.uint8) * 60).astype(np.uint8)


def _check_decodes(data: bytes, expected: np.ndarray) -> None:
    """Pillow and pypng both read exactly ``expected`` (grey as (H, W), else (H, W, C))."""
    img = decode(data)
    channels = 1 if expected.ndim == 2 else expected.shape[2]
    assert img.format == "PNG" and img.mode == PIL_MODE[channels]
    assert img.size == (expected.shape[1], expected.shape[0])
    assert np.array_equal(np.asarray(img), expected)
    if pypng is not None:
        width, height, rows, info = pypng.Reader(bytes=data).read()  # checks the CRCs and the zlib stream
        assert (width, height, info["bitdepth"], info["planes"]) == (expected.shape[1], expected.shape[0], 8, channels)
        got = np.vstack([np.frombuffer(bytes(r), np.uint8) for r in rows]).reshape(expected.shape)
        assert np.array_equal(got, expected)


@pytest.mark.parametrize("deflate", DEFLATES)
@pytest.mark.parametrize(
    "shape",
    [
        (1, 1), (1, 1, 3), (1, 1, 4),  # the smallest image
        (1, 37, 3), (37, 1, 3), (1, 9), (9, 1, 2),  # one row, one column
        (13, 7), (13, 7, 2), (13, 7, 3), (13, 7, 4),  # grey, grey + alpha, RGB, RGBA at odd sizes
        (247, 224, 3),  # what export draws by default
    ],
)
def test_encode_png_is_lossless(deflate, shape):
    a = _pixels(shape)
    _check_decodes(png.encode_png(a, deflate=deflate), a)


@pytest.mark.parametrize("deflate", DEFLATES)
def test_a_large_image_stays_exact(deflate):
    a = _pixels((1537, 2049, 4), seed=3)  # 12.6 MB of RGBA
    _check_decodes(png.encode_png(a, deflate=deflate), a)


def test_trailing_grey_channel_and_strided_arrays_are_read_as_they_are():
    a = _pixels((9, 11, 3))
    _check_decodes(png.encode_png(a[:, :, :1]), a[:, :, 0])
    _check_decodes(png.encode_png(a[:, ::2]), np.ascontiguousarray(a[:, ::2]))


@pytest.mark.parametrize("deflate", DEFLATES)
def test_compressed_data_larger_than_a_chunk_is_split_into_several_idat_chunks(monkeypatch, deflate):
    monkeypatch.setattr(png, "MAX_CHUNK", 1000)
    a = _pixels((64, 80, 3), seed=1)
    data = png.encode_png(a, deflate=deflate)
    assert data.count(b"IDAT") > 3
    _check_decodes(data, a)


def test_both_back_ends_write_the_same_filtered_rows():
    if len(DEFLATES) < 2:
        pytest.skip("isal is not installed: only one back end here")
    a = _pixels((31, 17, 3))
    import zlib

    def rows(data: bytes) -> bytes:  # the IDAT payload inflated: filter bytes and filtered samples
        start = data.index(b"IDAT") + 4
        return zlib.decompress(data[start : data.index(b"IEND") - 8])

    assert rows(png.encode_png(a, deflate="zlib")) == rows(png.encode_png(a, deflate="isal"))


@settings(max_examples=60, deadline=None)
@given(a=hnp.arrays(np.uint8, st.tuples(st.integers(1, 12), st.integers(1, 12), st.integers(1, 4))))
def test_every_uint8_image_round_trips(a):
    for deflate in DEFLATES:
        _check_decodes(png.encode_png(a, deflate=deflate), a[:, :, 0] if a.shape[2] == 1 else a)


@pytest.mark.parametrize(
    "pixels, kwargs, error, match",
    [
        (np.zeros((4, 4, 3), np.float32), {}, ConfigError, "uint8"),
        (np.zeros((4, 4, 5), np.uint8), {}, ConfigError, r"\(H, W, 1-4\)"),
        (np.zeros((4,), np.uint8), {}, ConfigError, r"uint8 \(H, W\)"),
        (np.zeros((0, 4, 3), np.uint8), {}, ConfigError, "4 x 0"),
        (np.zeros((4, 4, 3), np.uint8), {"deflate": "gzip"}, ConfigError, "auto, isal, zlib"),
    ],
)
def test_encode_png_refuses_what_it_cannot_write(pixels, kwargs, error, match):
    with pytest.raises(error, match=match):
        png.encode_png(pixels, **kwargs)


def test_isal_asked_for_but_missing_names_the_extra(monkeypatch):
    monkeypatch.setattr(png, "_isal", lambda: None)
    assert png.deflate_name() == "zlib"
    with pytest.raises(MissingDependencyError, match=r"summary-exporter\[fast\]"):
        png.encode_png(np.zeros((2, 2), np.uint8), deflate="isal")


# --------------------------------------------------------------------------- every encoder path, same pixels


def _encoder_paths(monkeypatch):
    """(name, encode) for every PNG path ``encode_image`` has here."""
    paths = [("pillow", lambda img: encode_image(img, png_encoder="pillow"))]

    def numpy_with(backend):
        def encode(img):
            with monkeypatch.context() as m:
                if backend == "zlib":
                    m.setattr(png, "_isal", lambda: None)
                return encode_image(img, png_encoder="numpy")
        return encode

    paths += [(f"numpy+{b}", numpy_with(b)) for b in DEFLATES]
    if fpng_available():
        paths.append(("fpng", lambda img: encode_image(img, png_encoder="fpng")))
    return paths


def _modes():
    rgba = _pixels((23, 19, 4), seed=5)
    rgb = Image.fromarray(rgba[:, :, :3])
    return {
        "L": Image.fromarray(rgba[:, :, 0]),
        "LA": Image.fromarray(rgba[:, :, :2]),
        "RGB": rgb,
        "RGBA": Image.fromarray(rgba),
        "P": rgb.quantize(64),  # a palette: Pillow writes it (the numpy writer is 8-bit grey/colour only)
        "1": Image.fromarray(rgba[:, :, 0] > 100),
        "I;16": Image.fromarray(rgba[:, :, 0].astype(np.uint16) * 257),
    }


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA", "P", "1", "I;16"])
def test_every_encoder_path_gives_the_same_pixels(monkeypatch, mode):
    source = _modes()[mode]
    want = np.asarray(source.convert("RGBA"))
    for name, encode in _encoder_paths(monkeypatch):
        if name == "fpng" and mode == "I;16":
            continue  # fpng is 8-bit only; encode_image converts (lossy), as it always has
        got = decode(encode(source))
        if name != "fpng":  # fpng writes RGB or RGBA only: grey comes back as RGB
            assert got.mode == source.mode or (mode == "P" and got.mode == "P"), (name, got.mode)
        if mode == "I;16":
            assert np.array_equal(np.asarray(got), np.asarray(source)), name
        else:
            assert np.array_equal(np.asarray(got.convert("RGBA")), want), name


def test_pil_images_and_arrays_give_the_same_bytes():
    a = _pixels((15, 21, 3))
    assert encode_image(a) == encode_image(Image.fromarray(a)) == png.encode_png(a)
    assert encode_image(a[:, :, :1]) == encode_image(Image.fromarray(a[:, :, 0]))


def test_default_encoder_output_is_read_by_pillow_from_a_stream():
    data = encode_image(_pixels((40, 30, 3)))
    img = Image.open(io.BytesIO(data))
    img.verify()  # Pillow's chunk-CRC check
