"""The bad-shard corpus: generated damaged, malformed and hostile shard files, one per case.

Every case writes one file (or a folder, FIFO or symlink) as ``RUN/step-000000000002/<case>.npz``
in a run folder that also holds one GOOD shard in ``RUN/step-000000000001/`` (written by
``ShardWriter``; its examples are tagged ``examples/good_0`` and ``examples/good_1``).
``Case.problems`` is what ``summary-exporter validate`` must print about the case's file, one
substring per printed line; an empty tuple means the file is NOT bad and must export.

What is bad and what is not (the README's "Shard format v1" is the spec):

* **bad** (validate lists it, export refuses it, ``--skip-bad`` skips it): anything that is not a
  readable zip of ``.npy`` arrays plus a JSON ``__meta__`` object of a known major version; pickled
  (object) arrays; duplicate or foreign zip members; sizes the file cannot hold; canonical fields
  of the wrong rank, dtype, leading N or values (class ids outside ``class_names``, boxes inverted or
  outside 0..1 when normalized, ``num_boxes`` outside 0..M, NaN/inf scores or box coordinates,
  images with no 1/3/4-channel axis or an empty side).
* **not bad** (valid, exported): NaN/inf pixels (drawn magenta; validate warns); any id text — path-like,
  absolute, ``C:\\``, NUL, emoji, empty, ``..``, 5000 characters, duplicated — (the tags module
  sanitises it); a newer minor version (warning, unknown keys kept); names that are not canonical,
  misspellings included (``image``, ``lables``): the spec makes every identifier-like name an
  extra carried along untouched, so a shard whose only picture field is ``image`` is a valid shard
  without images (export warns that it has nothing to draw); a shard with no examples; class ids
  beyond any confusion matrix when there are no ``class_names`` (the matrix is skipped with a
  warning); a symlink to a shard outside the run folder (it is the user's folder: read it).
* **validate only**: a shard in ``step-X/`` whose metadata says another step is a layout problem
  that ``validate`` reports, but the metadata is authoritative and ``export`` uses it.

Run ``python tests/corpus.py`` to print the table.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import os
import struct
import tempfile
import warnings
import zipfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from exporter import ShardWriter, tags
from exporter.schema import META_KEY, step_dirname

CLASSES = ["cat", "dog", "bird"]
GOOD_STEP, CASE_STEP = 1, 2
GOOD_TAGS = ("examples/good_0", "examples/good_1")
CASE_IDS = ("case_0", "case_1")
CASE_TAGS = ("examples/case_0", "examples/case_1")

Make = Callable[[Path], None]  # writes the case's file at the given path


@dataclasses.dataclass(frozen=True)
class Case:
    """One corpus entry: how to make the file and what must be said about it."""

    name: str
    make: Make
    problems: tuple[str, ...]  # one substring per line validate prints; () = not bad
    doc: str
    exports: bool | None = None  # None: exports exactly when there are no problems
    tags: tuple[str, ...] = CASE_TAGS  # image tags a not-bad case's file exports at CASE_STEP

    @property
    def bad(self) -> bool:
        return bool(self.problems)

    @property
    def exportable(self) -> bool:
        return not self.bad if self.exports is None else self.exports

    def path(self, run: Path) -> Path:
        return run / step_dirname(CASE_STEP) / f"{self.name}.npz"

    def write(self, run: Path) -> Path:
        """Make the run folder: the good shard at step 1, this case's file at step 2."""
        write_good(run)
        path = self.path(run)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.make(path)
        return path


# --------------------------------------------------------------------------- the good shards


def example_arrays(ids: Sequence[Any], side: int = 8) -> dict[str, np.ndarray]:
    """Two side x side examples with every kind of field, all valid for CLASSES and yxyx normalized boxes."""
    y, x = np.mgrid[0:side, 0:side] * 8 // side
    image = np.stack([y * 32, x * 32, (x + y) * 16], axis=-1).astype(np.uint8)
    return {
        "images": np.stack([image, image[::-1]]),
        "labels": np.array([0, 1]),
        "pred_labels": np.array([0, 2]),
        "probs": np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]], np.float32),
        "boxes": np.array([[[0.1, 0.1, 0.5, 0.5], [0.2, 0.3, 0.9, 0.8]]] * 2, np.float32),
        "box_labels": np.array([[0, 1], [2, 0]]),
        "box_scores": np.array([[0.9, 0.4], [0.8, 0.3]], np.float32),
        "num_boxes": np.array([2, 1]),
        "gt_masks": (y + x >= 8).astype(np.int64)[None].repeat(2, axis=0),
        "ids": np.array(ids),
    }


@dataclasses.dataclass(frozen=True)
class _Written:
    files: dict[str, bytes]  # name → bytes of what ShardWriter left in the step folder
    shard: bytes
    arrays: dict[str, np.ndarray]
    meta: dict[str, Any]


def _write_with_shardwriter(step: int, ids: Sequence[Any], side: int = 8, **kwargs: Any) -> _Written:
    with tempfile.TemporaryDirectory() as tmp:
        with ShardWriter(tmp, step=step, class_names=CLASSES, **kwargs) as w:
            w.add(**example_arrays(ids, side))
        folder = Path(tmp) / step_dirname(step)
        files = {p.name: p.read_bytes() for p in folder.iterdir()}
        (shard,) = [name for name in files if name.endswith(".npz")]
        with np.load(folder / shard, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(str(arrays.pop(META_KEY)))
    return _Written(files, files[shard], arrays, meta)


@functools.cache
def _good() -> _Written:
    return _write_with_shardwriter(GOOD_STEP, ["good_0", "good_1"])


@functools.cache
def template(compress: bool = False, side: int = 8) -> _Written:
    """The valid step-2 shard every case starts from (ids case_0, case_1; 8x8 images unless ``side``)."""
    return _write_with_shardwriter(CASE_STEP, list(CASE_IDS), side, compress=compress)


def write_good(run: Path) -> None:
    """The good shard (and its dump manifest), as ShardWriter wrote it."""
    folder = run / step_dirname(GOOD_STEP)
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in _good().files.items():
        (folder / name).write_bytes(data)


# --------------------------------------------------------------------------- building blocks

_DROP = object()


def save(path: Path, arrays: Mapping[str, Any], meta: Any = None, *, compress: bool = False) -> None:
    """``np.savez`` into ``path``; ``meta`` is a dict (JSON, NaN allowed), a str, an array, or None (no entry)."""
    payload = dict(arrays)
    if isinstance(meta, dict):
        payload[META_KEY] = np.array(json.dumps(meta))
    elif isinstance(meta, str):
        payload[META_KEY] = np.array(meta)
    elif meta is not None:
        payload[META_KEY] = meta
    with open(path, "wb") as f:
        (np.savez_compressed if compress else np.savez)(f, **payload)


def variant(
    *,
    drop: Sequence[str] = (),
    meta: Mapping[str, Any] | None = None,
    meta_entry: Any = _DROP,
    compress: bool = False,
    **fields: Any,
) -> Make:
    """The template shard with fields replaced/added (``drop`` removes some) and metadata keys changed.

    A metadata value of ``_DROP`` removes the key; ``meta_entry`` replaces the whole ``__meta__`` entry.
    """

    def make(path: Path) -> None:
        t = template()
        arrays = {k: v for k, v in t.arrays.items() if k not in drop}
        arrays.update(fields)
        m = dict(t.meta)
        for k, v in (meta or {}).items():
            if v is _DROP:
                m.pop(k, None)
            else:
                m[k] = v
        save(path, arrays, m if meta_entry is _DROP else meta_entry, compress=compress)

    return make


def raw(data: bytes | Callable[[], bytes]) -> Make:
    def make(path: Path) -> None:
        path.write_bytes(data() if callable(data) else data)

    return make


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, array, allow_pickle=True)
    return buf.getvalue()


def npy_header(shape: tuple[int, ...], descr: str = "|u1", *, payload: bytes = b"\0" * 16) -> bytes:
    """A ``.npy`` member whose header claims ``shape`` but which holds only ``payload``."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue() + payload


def raw_npy_header(header: str, version: bytes = b"\x01\x00") -> bytes:
    """A ``.npy`` member with a hand-written header dict (possibly invalid)."""
    text = header + " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    return b"\x93NUMPY" + version + struct.pack("<H", len(text)) + text.encode("latin1") + b"\0" * 16


def template_members() -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(io.BytesIO(template().shard)) as zf:
        return [(info.filename, zf.read(info)) for info in zf.infolist()]


def zip_of(members: Callable[[], Sequence[tuple[str, bytes]]], *, compression: int = zipfile.ZIP_STORED) -> Make:
    """A zip of exactly these (name, bytes) members, duplicates allowed."""

    def make(path: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zipfile warns on duplicate names: that is the point
            with zipfile.ZipFile(path, "w", compression) as zf:
                for name, data in members():
                    zf.writestr(name, data)

    return make


def with_members(*extra: tuple[str, bytes], drop: Sequence[str] = ()) -> Callable[[], list[tuple[str, bytes]]]:
    return lambda: [(n, d) for n, d in template_members() if n not in drop] + list(extra)


def _member_data_offset(data: bytes, name: str) -> tuple[zipfile.ZipInfo, int]:
    """The member's ZipInfo and where its (possibly compressed) bytes start in ``data``."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        info = zf.getinfo(name)
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26 : info.header_offset + 30])
    return info, info.header_offset + 30 + name_len + extra_len


def corrupt(
    name: str, at: float, length: int = 16, *, compress: bool = False, value: int | None = None, side: int = 8
) -> Make:
    """The template with ``length`` bytes of member ``name`` inverted (or set to ``value``), ``at`` a fraction of it."""

    def make(path: Path) -> None:
        data = bytearray(template(compress, side).shard)
        info, start = _member_data_offset(bytes(data), name)
        first = start + int(info.compress_size * at)
        for i in range(first, min(first + length, start + info.compress_size)):
            data[i] = value if value is not None else data[i] ^ 0xFF
        path.write_bytes(bytes(data))

    return make


def set_flag(name: str, bit: int) -> Make:
    """The template with a general-purpose flag bit set on member ``name`` (bit 0: encrypted)."""

    def make(path: Path) -> None:
        data = bytearray(template().shard)
        info, _ = _member_data_offset(bytes(data), name)
        for offset in (info.header_offset + 6, _central_entry(bytes(data), name) + 8):  # local, central
            (flags,) = struct.unpack("<H", data[offset : offset + 2])
            data[offset : offset + 2] = struct.pack("<H", flags | (1 << bit))
        path.write_bytes(bytes(data))

    return make


def _central_entry(data: bytes, name: str) -> int:
    """Offset of ``name``'s central directory entry."""
    pos = data.find(b"PK\x01\x02")
    while pos >= 0:
        name_len, extra_len, comment_len = struct.unpack("<HHH", data[pos + 28 : pos + 34])
        if data[pos + 46 : pos + 46 + name_len].decode() == name:
            return pos
        pos = data.find(b"PK\x01\x02", pos + 46 + name_len + extra_len + comment_len)
    raise KeyError(name)


def forged_size(shape: tuple[int, ...], claimed: int) -> Make:
    """Zip bomb-ish: a small deflated member whose zip entry claims ``claimed`` bytes unpacked."""

    def make(path: Path) -> None:
        members = with_members(("images.npy", npy_header(shape, payload=b"\0" * 4096)), drop=["images.npy"])()
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in members:
                zf.writestr(name, data)
        data = bytearray(buf.getvalue())
        info, _ = _member_data_offset(bytes(data), "images.npy")
        data[info.header_offset + 22 : info.header_offset + 26] = struct.pack("<I", claimed)
        entry = _central_entry(bytes(data), "images.npy")
        data[entry + 24 : entry + 28] = struct.pack("<I", claimed)
        path.write_bytes(bytes(data))

    return make


def deflate_error_at_load(path: Path) -> None:
    """images.npy as a deflate stream valid for its first half, then an invalid block type (deterministic)."""
    images = np.random.default_rng(1).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)  # incompressible
    data = npy_bytes(images)
    co = zlib.compressobj(6, zlib.DEFLATED, -15)
    # after a full flush the stream is byte-aligned; 0x07 = last block, block type 3 (reserved)
    stream = co.compress(data[: len(data) // 2]) + co.flush(zlib.Z_FULL_FLUSH) + b"\x07" + b"\0" * 16
    zip_of(with_members(("images.npy", stream), drop=["images.npy"]))(path)  # stored, then relabelled:
    buf = bytearray(path.read_bytes())
    info, _ = _member_data_offset(bytes(buf), "images.npy")
    crc, size = zlib.crc32(data), len(data)
    for base, method_at, crc_at, size_at in (
        (info.header_offset, 8, 14, 22),
        (_central_entry(bytes(buf), "images.npy"), 10, 16, 24),
    ):
        buf[base + method_at : base + method_at + 2] = struct.pack("<H", zipfile.ZIP_DEFLATED)
        buf[base + crc_at : base + crc_at + 4] = struct.pack("<I", crc)
        buf[base + size_at : base + size_at + 4] = struct.pack("<I", size)
    path.write_bytes(bytes(buf))


def truncated(at: Callable[[bytes], int]) -> Make:
    return raw(lambda: template().shard[: at(template().shard)])


class PickleMarker:
    """Unpickling this creates ``path``: proof that a shard's object array was (or was not) loaded."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def marker_path(path: Path) -> Path:
    """Where the pickle payload of the case at ``path`` would create its marker (outside the run)."""
    return path.parents[2] / f"PWNED-{path.stem}"


def pickled(field: str) -> Make:
    def make(path: Path) -> None:
        payload = np.array([PickleMarker(str(marker_path(path)))] * 2, dtype=object)
        t = template()
        if field == META_KEY:
            save(path, t.arrays, np.array(PickleMarker(str(marker_path(path))), dtype=object))
        else:
            save(path, {**t.arrays, field: payload}, t.meta)

    return make


def header_is_code(path: Path) -> None:
    code = f"__import__('pathlib').Path({str(marker_path(path))!r}).touch()"
    zip_of(with_members(("images.npy", raw_npy_header(code)), drop=["images.npy"]))(path)


def directory(path: Path) -> None:
    path.mkdir()


def fifo(path: Path) -> None:
    os.mkfifo(path)


def dangling_symlink(path: Path) -> None:
    path.symlink_to(path.parent / "gone.npz")


def symlink_loop(path: Path) -> None:
    other = path.with_name(path.stem + "-other.lnk")
    path.symlink_to(other.name)
    other.symlink_to(path.name)


def symlink_outside(path: Path) -> None:
    """A link to a valid shard in a folder beside the run folder (the user put it there)."""
    outside = path.parents[2] / "elsewhere"
    outside.mkdir(exist_ok=True)
    target = outside / "shard.npz"
    target.write_bytes(template().shard)
    path.symlink_to(target)


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


N2 = {"drop": [k for k in example_arrays(CASE_IDS) if k not in ("images", "labels")]}  # images + labels only


# --------------------------------------------------------------------------- the table

FMT = "not a readable .npz/zip file"
CASES: list[Case] = [
    # ---- not a zip at all / a broken zip
    Case("empty_file", raw(b""), (FMT,), "0 bytes"),
    Case("text_file", raw(b"this is not a shard\n"), (FMT,), "a text file named .npz"),
    Case("npy_not_npz", raw(lambda: npy_bytes(np.zeros((2, 8, 8, 3), np.uint8))), (FMT,), "a bare .npy renamed .npz"),
    Case("truncated_10_bytes", truncated(lambda d: 10), (FMT,), "cut inside the first local header"),
    Case("truncated_half", truncated(lambda d: len(d) // 2), (FMT,), "cut in the middle of the members"),
    Case(
        "truncated_at_central_dir",
        truncated(lambda d: d.rfind(b"PK\x01\x02") - 10),
        (FMT,),
        "cut just before the central directory's last entry",
    ),
    Case(
        "truncated_end_record",
        truncated(lambda d: len(d) - 10),
        (FMT,),
        "cut inside the end-of-central-directory record",
    ),
    Case("truncated_last_byte", truncated(lambda d: len(d) - 1), (FMT,), "one byte short"),
    Case(
        "zip_of_text",
        zip_of(lambda: [("readme.txt", b"hello")]),
        ("unexpected member 'readme.txt'",),
        "a valid zip that is not a shard",
    ),
    Case(
        "zip_with_foreign_member",
        zip_of(with_members(("notes.txt", b"hi"))),
        ("unexpected member 'notes.txt'",),
        "a shard plus a non-.npy member",
    ),
    Case("plain_npz", raw(lambda: _plain_npz()), ("no '__meta__' metadata entry",), "np.savez of arrays, no metadata"),
    Case("no_meta", variant(meta_entry=None), ("no '__meta__' metadata entry",), "the template without __meta__"),
    Case("directory", directory, ("is a folder, not a shard file",), "a directory named x.npz"),
    Case(
        "fifo",
        fifo,
        ("is a FIFO (named pipe), not a shard file",),
        "a FIFO named x.npz (opening it would block forever)",
    ),
    Case("dangling_symlink", dangling_symlink, ("is a broken symbolic link",), "a symlink to a missing file"),
    Case("symlink_loop", symlink_loop, ("cannot read the file",), "a symlink pointing (via another) at itself"),
    # ---- damaged members
    Case(
        "corrupt_image_bytes",
        corrupt("images.npy", 0.6),
        ("array 'images' is damaged (Bad CRC-32",),
        "16 bytes of a small member inverted: read whole with its header, the CRC catches it",
    ),
    Case(
        "corrupt_big_image_bytes",
        corrupt("images.npy", 0.6, side=128),
        ("could not read arrays (Bad CRC-32",),
        "16 bytes of a 96 KB member inverted: caught by the CRC when the arrays are loaded",
    ),
    Case(
        "npy_bad_magic",
        zip_of(with_members(("images.npy", b"NOTNUMPY" + b"\0" * 64), drop=["images.npy"])),
        ("array 'images' has an unreadable header (the magic string is not correct",),
        "a member that is not an .npy (CRC consistent)",
    ),
    Case(
        "corrupt_deflate_start",
        corrupt("images.npy", 0.0, 1, compress=True, value=0xFF),
        ("array 'images' is damaged (Error -3 while decompressing data: invalid block type)",),
        "compressed shard: invalid deflate block type (zlib.error)",
    ),
    Case(
        "corrupt_deflate_middle",
        corrupt("images.npy", 0.5, 8, compress=True, side=128),
        ("could not read arrays (",),
        "compressed shard: garbage in the middle of a deflate stream (a zlib error or a bad CRC)",
    ),
    Case(
        "deflate_error_at_load",
        deflate_error_at_load,
        ("could not read arrays (Error -3 while decompressing data",),
        "a deflate stream that breaks half-way: the header reads, loading the array hits zlib.error",
    ),
    Case(
        "corrupt_meta_bytes",
        corrupt(META_KEY + ".npy", 0.5),
        ("array '__meta__' is damaged (Bad CRC-32",),
        "bytes inside the metadata JSON inverted",
    ),
    Case("encrypted_flag", set_flag("images.npy", 0), ("is encrypted",), "a member flagged as encrypted"),
    Case(
        "npy_version_9",
        zip_of(with_members(("images.npy", b"\x93NUMPY\x09\x00" + b"\0" * 64), drop=["images.npy"])),
        ("unknown .npy version (9, 0)",),
        "an .npy header version that does not exist",
    ),
    Case(
        "npy_bad_descr",
        zip_of(
            with_members(
                ("images.npy", raw_npy_header("{'descr': '<x9', 'fortran_order': False, 'shape': (2, 8, 8, 3), }")),
                drop=["images.npy"],
            )
        ),
        ("'images' has an unreadable header",),
        "a dtype descriptor numpy does not know",
    ),
    Case(
        "npy_header_is_code",
        header_is_code,
        ("'images' has an unreadable header",),
        "an .npy header that is Python code creating a marker file (numpy uses literal_eval: never run)",
    ),
    Case(
        "duplicate_member",
        zip_of(with_members(("images.npy", npy_bytes(np.zeros((2, 4, 4, 3), np.uint8))))),
        ("duplicate member 'images.npy'",),
        "two images.npy members: numpy reads one, other tools the other",
    ),
    Case(
        "duplicate_meta",
        zip_of(with_members((META_KEY + ".npy", npy_bytes(np.array("{}"))))),
        ("duplicate member '__meta__.npy'",),
        "two metadata entries",
    ),
    Case(
        "member_path_traversal",
        zip_of(with_members(("../../evil.npy", npy_bytes(np.zeros(2))))),
        ("field '../../evil': is not a valid field name",),
        "a member named ../../evil.npy (nothing is extracted)",
    ),
    # ---- pickles (never loaded)
    Case(
        "pickled_extra_field",
        pickled("evil"),
        ("holds pickled Python objects",),
        "an object array whose unpickling would create a marker file",
    ),
    Case("pickled_images", pickled("images"), ("holds pickled Python objects",), "images as an object array"),
    Case("pickled_meta", pickled(META_KEY), ("holds pickled Python objects",), "__meta__ as a pickled object"),
    Case(
        "object_in_struct",
        variant(rec=np.zeros(2, dtype=[("a", "i4"), ("b", "O")])),
        ("holds pickled Python objects",),
        "a structured dtype with an object field",
    ),
    # ---- sizes the file cannot hold
    Case(
        "declares_terabytes",
        zip_of(with_members(("huge.npy", npy_header((2, 10**6, 10**6, 3))))),
        ("array 'huge' declares shape (2, 1000000, 1000000, 3)",),
        "header claims 6 TB, member holds 16 bytes",
    ),
    Case(
        "declares_int64_overflow",
        zip_of(with_members(("huge.npy", npy_header((2**32 + 1, 2**32))))),
        ("array 'huge' declares shape",),
        "a shape whose int64 product wraps around to a small number",
    ),
    Case(
        "declares_beyond_int64",
        zip_of(with_members(("huge.npy", npy_header((2, 2**70))))),
        ("array 'huge' declares shape",),
        "a dimension too big for int64",
    ),
    Case(
        "zip_bomb_forged_size",
        forged_size((2, 30000, 30000, 3), 0xFFFFFFF0),
        ("more than its compression can produce",),
        "4 KB deflated, the zip entry claims 4 GB unpacked",
    ),
    Case(
        "zip_bomb_under_limit",
        forged_size((1, 1000, 1000, 1000), 10**9 + 128),
        ("more than its compression can produce",),
        "claims 1 GB (under the 4 GiB reader limit) from a few bytes",
    ),
    # ---- metadata
    Case(
        "meta_not_json", variant(meta_entry="{not json"), ("metadata entry '__meta__' is not valid JSON",), "not JSON"
    ),
    Case("meta_json_list", variant(meta_entry="[1, 2]"), ("must be a JSON object, got list",), "JSON, not an object"),
    Case("meta_json_null", variant(meta_entry="null"), ("must be a JSON object, got NoneType",), "JSON null"),
    Case(
        "meta_deeply_nested",
        variant(meta_entry=nested(200_000)),
        ("is not valid JSON",),
        "200000 nested lists: a RecursionError, refused cleanly",
    ),
    Case(
        "meta_nested_in_user",
        variant(meta_entry='{"user": ' + nested(200_000) + "}"),
        ("is not valid JSON",),
        "deep nesting inside an otherwise fine object",
    ),
    Case(
        "meta_int_5000_digits",
        variant(meta_entry='{"step": ' + "9" * 5000 + "}"),
        ("is not valid JSON (Exceeds the limit",),
        "an integer Python refuses to parse (int max str digits): a ValueError, not a JSONDecodeError",
    ),
    Case(
        "meta_bytes_entry", variant(meta_entry=np.array(b"{}")), ("must be a 0-d unicode array",), "__meta__ as bytes"
    ),
    Case(
        "meta_1d_entry",
        variant(meta_entry=np.array(["{}"])),
        ("must be a 0-d unicode array",),
        "__meta__ of shape (1,)",
    ),
    Case(
        "meta_too_big",
        variant(meta_entry=np.array(" " * 1_000_001)),
        ("must be a 0-d unicode array",),
        "4 MB of metadata text",
    ),
    Case(
        "meta_other_format",
        variant(meta={"format": "something/else"}),
        ("not a summary-exporter shard",),
        "a JSON object from another tool",
    ),
    Case(
        "meta_missing_keys",
        variant(meta={"step": _DROP, "dump_id": _DROP}),
        ("metadata is missing step, dump_id",),
        "required keys missing",
    ),
    Case("meta_step_is_text", variant(meta={"step": "2"}), ("'step' must be a non-negative integer",), "wrong type"),
    Case(
        "meta_step_beyond_int64",
        variant(meta={"step": 2**64}),
        ("'step' must be a non-negative integer below 2**63",),
        "a step TensorBoard cannot store",
    ),
    Case(
        "meta_num_examples_huge",
        variant(meta={"num_examples": 2**64}),
        ("'num_examples' must be",),
        "more examples than an index can count",
    ),
    Case(
        "meta_class_names_text",
        variant(meta={"class_names": "cat,dog,bird"}),
        ("'class_names' must be a list of strings",),
        "a string where a list belongs",
    ),
    Case("meta_box_coords_unknown", variant(meta={"box_coords": "percent"}), ("'box_coords' must be one of",), "enum"),
    Case("meta_layout_unknown", variant(meta={"image_layout": "WHC"}), ("'image_layout' must be one of",), "enum"),
    Case("meta_user_list", variant(meta={"user": [1, 2]}), ("'user' must be an object",), "wrong type"),
    Case(
        "meta_image_range_nan",
        variant(meta={"image_range": [0, float("nan")]}),
        ("'image_range' must be",),
        "JSON NaN in the value range",
    ),
    Case("meta_image_range_inverted", variant(meta={"image_range": [1, 0]}), ("'image_range' must be",), "low > high"),
    Case("meta_created_text", variant(meta={"created": "yesterday"}), ("'created' must be a finite number",), "type"),
    Case(
        "meta_created_infinity",
        variant(meta={"created": float("inf")}),
        ("'created' must be a finite number",),
        "JSON Infinity as the creation time",
    ),
    Case("meta_dump_id_path", variant(meta={"dump_id": "../../x"}), ("'dump_id'",), "a dump id that is a path"),
    Case(
        "version_2",
        variant(meta={"format_version": "2.0"}),
        ("shard format version 2.0 is not supported",),
        "an unknown major version",
    ),
    Case("version_garbage", variant(meta={"format_version": "1"}), ("'format_version' must look like '1.0'",), "x.y"),
    Case(
        "version_number",
        variant(meta={"format_version": 1.0}),
        ("'format_version' must look like '1.0'",),
        "a JSON number, not a string",
    ),
    # ---- fields: rank, dtype, N
    Case("no_fields", variant(drop=list(example_arrays(CASE_IDS))), ("holds no fields",), "only __meta__"),
    Case(
        "images_2d",
        variant(images=np.zeros((2, 8), np.uint8)),
        ("field 'images': has shape (2, 8), expected",),
        "one row of pixels per example",
    ),
    Case(
        "images_complex",
        variant(images=np.zeros((2, 8, 8, 3), np.complex64)),
        ("field 'images': has dtype complex64, expected numbers",),
        "complex pixels",
    ),
    Case("images_text", variant(images=np.full((2, 8, 8, 3), "x")), ("field 'images': has dtype <U1",), "text pixels"),
    Case(
        "images_struct",
        variant(images=np.zeros((2, 8, 8, 3), [("r", "u1")])),
        ("field 'images': has dtype",),
        "a structured dtype",
    ),
    Case(
        "images_five_channels",
        variant(images=np.zeros((2, 8, 8, 5), np.uint8)),
        ("field 'images': has shape (2, 8, 8, 5), expected 1, 3 or 4 channels",),
        "no axis the renderer can draw",
    ),
    Case(
        "images_empty_side",
        variant(images=np.zeros((2, 0, 8, 3), np.uint8)),
        ("field 'images': has shape (2, 0, 8, 3): an empty picture",),
        "0 pixels tall",
    ),
    Case(
        "images_layout_contradiction",
        variant(meta={"image_layout": "HW"}),
        ("expected (N,H,W) for metadata image_layout 'HW'",),
        "metadata says grey, the array has channels",
    ),
    Case(
        "labels_float",
        variant(labels=np.array([0.0, 1.0])),
        ("field 'labels': has dtype float64, expected integer",),
        "float class ids",
    ),
    Case(
        "labels_datetime",
        variant(labels=np.array(["2020-01-01", "2020-01-02"], "M8[D]")),
        ("field 'labels': has dtype datetime64[D]",),
        "dates as class ids",
    ),
    Case(
        "ids_float",
        variant(ids=np.array([0.5, 1.5])),
        ("field 'ids': has dtype float64, expected integers or text",),
        "float ids",
    ),
    Case("ids_2d", variant(ids=np.array([["a"], ["b"]])), ("field 'ids': has shape (2, 1), expected",), "(N, 1) ids"),
    Case(
        "boxes_three_coords",
        variant(boxes=np.zeros((2, 2, 3), np.float32)),
        ("field 'boxes': has shape (2, 2, 3), expected",),
        "boxes of 3 numbers",
    ),
    Case(
        "gt_masks_float",
        variant(gt_masks=np.zeros((2, 8, 8), np.float32)),
        ("field 'gt_masks': has dtype float32, expected integer",),
        "a float class map",
    ),
    Case(
        "labels_n_mismatch",
        variant(labels=np.array([0, 1, 2])),
        ("field 'labels': has shape (3,), expected a leading N=2",),
        "3 labels for 2 examples",
    ),
    Case(
        "num_examples_mismatch",
        variant(meta={"num_examples": 5}, **N2),
        ("field 'images': has shape (2, 8, 8, 3), expected a leading N=5", "field 'labels': has shape (2,)"),
        "metadata says 5 examples, the arrays hold 2 (one line per field)",
    ),
    # ---- fields: values
    Case(
        "labels_outside_classes",
        variant(labels=np.array([0, 7])),
        ("field 'labels': has class id 7, outside the 3 class names",),
        "class id beyond class_names",
    ),
    Case(
        "pred_labels_negative",
        variant(pred_labels=np.array([-1, 0])),
        ("field 'pred_labels': has negative class id -1",),
        "negative class id",
    ),
    Case(
        "box_labels_outside_classes",
        variant(box_labels=np.array([[0, 5], [0, 0]])),
        ("field 'box_labels': has class id 5",),
        "box class id beyond class_names",
    ),
    Case(
        "gt_masks_outside_mask_classes",
        variant(meta={"mask_class_names": ["bg", "fg"]}, gt_masks=np.full((2, 8, 8), 9)),
        ("field 'gt_masks': has class id 9, outside the 2 mask class names",),
        "mask class beyond mask_class_names",
    ),
    Case(
        "num_boxes_negative",
        variant(num_boxes=np.array([-1, 1])),
        ("field 'num_boxes': has values in [-1, 1], expected 0..2",),
        "negative box count",
    ),
    Case(
        "num_boxes_too_large",
        variant(num_boxes=np.array([2, 3])),
        ("field 'num_boxes': has values in [2, 3], expected 0..2",),
        "more boxes than the padded count",
    ),
    Case(
        "boxes_out_of_range",
        variant(boxes=np.array([[[0.1, 0.1, 3.0, 0.5]] * 2] * 2, np.float32)),
        ("but box_coords is 'normalized'",),
        "normalized coordinates up to 3.0",
    ),
    Case(
        "boxes_inverted",
        variant(boxes=np.array([[[0.5, 0.5, 0.1, 0.1]] * 2] * 2, np.float32)),
        ("field 'boxes': has 3 inverted boxes",),
        "ymax < ymin (3 of the valid rows)",
    ),
    Case(
        "boxes_nan",
        variant(boxes=np.full((2, 2, 4), np.nan, np.float32)),
        ("field 'boxes': has NaN/inf coordinates",),
        "NaN boxes within num_boxes",
    ),
    Case(
        "box_labels_shape",
        variant(box_labels=np.zeros((2, 3), int)),
        ("field 'box_labels': has shape (2, 3), expected (2, 2) to match 'boxes'",),
        "3 labels for 2 boxes",
    ),
    Case(
        "box_scores_shape",
        variant(box_scores=np.zeros((2, 1), np.float32)),
        ("field 'box_scores': has shape (2, 1), expected (2, 2) to match 'boxes'",),
        "1 score for 2 boxes",
    ),
    Case(
        "gt_num_boxes_alone",
        variant(gt_num_boxes=np.array([1, 1])),
        ("field 'gt_num_boxes': is present but 'gt_boxes' is not",),
        "a count of boxes that do not exist",
    ),
    Case(
        "probs_nan",
        variant(probs=np.full((2, 3), np.nan, np.float32)),
        ("field 'probs': has NaN/inf scores",),
        "a diverged model: metrics would be meaningless",
    ),
    Case(
        "probs_no_classes",
        variant(probs=np.zeros((2, 0), np.float32)),
        ("field 'probs': has shape (2, 0), expected at least one class",),
        "(N, 0) probabilities",
    ),
    # ---- validate only
    Case(
        "folder_step_mismatch",
        variant(meta={"step": 5}),
        ("lies in folder step-000000000002 but its metadata says step 5",),
        "a shard moved to another step folder: validate says so, export trusts the metadata",
        exports=True,
        tags=(),
    ),
    # ---- NOT bad: must export
    Case(
        "ids_path_like",
        variant(ids=np.array(["../../etc/passwd", "/abs/path"])),
        (),
        "path-like ids are sanitised into tags",
        tags=(tags.example_tag("examples", "../../etc/passwd"), tags.example_tag("examples", "/abs/path")),
    ),
    Case(
        "ids_windows_and_nul",
        variant(ids=np.array(["C:\\x\\y", "a\x00b"])),
        (),
        "drive letters and an inner NUL",
        tags=(tags.example_tag("examples", "C:\\x\\y"), tags.example_tag("examples", "a\x00b")),
    ),
    Case(
        "ids_unicode",
        variant(ids=np.array(["猫/🐱", "café"])),
        (),
        "CJK, emoji, accents",
        tags=(tags.example_tag("examples", "猫/🐱"), tags.example_tag("examples", "café")),
    ),
    Case(
        "ids_empty_and_dots",
        variant(ids=np.array(["", ".."])),
        (),
        "an empty id and '..'",
        tags=(tags.example_tag("examples", ""), tags.example_tag("examples", "..")),
    ),
    Case(
        "ids_very_long",
        variant(ids=np.array(["x" * 5000, "y/" * 2500])),
        (),
        "5000-character ids",
        tags=(tags.example_tag("examples", "x" * 5000), tags.example_tag("examples", "y/" * 2500)),
    ),
    Case(
        "ids_duplicate",
        variant(ids=np.array(["same", "same"])),
        (),
        "the second copy gets -dup<index>",
        tags=("examples/same", "examples/same-dup00001"),
    ),
    Case(
        "ids_int_extremes",
        variant(ids=np.array([-5, 2**62])),
        (),
        "negative and huge integer ids",
        tags=("examples/-5", f"examples/{2**62}"),
    ),
    Case(
        "images_nan_inf",
        variant(images=np.array([[[[np.nan, np.inf, -np.inf]] * 8] * 8] * 2, np.float32)),
        (),
        "NaN/inf pixels are drawn (magenta), not refused; validate warns on stderr",
    ),
    Case("images_chw_uint16", variant(images=np.zeros((2, 3, 8, 8), np.uint16)), (), "(N, C, H, W) 16-bit"),
    Case(
        "newer_minor_version",
        variant(meta={"format_version": "1.7", "future_key": [1, 2]}, depth=np.zeros((2, 8, 8), np.float32)),
        (),
        "a newer 1.x: warns, reads what it knows, keeps unknown keys and fields",
    ),
    Case(
        "misspelled_image",
        variant(drop=["images"], image=example_arrays(CASE_IDS)["images"]),
        (),
        "'image' is an extra (not canonical): a valid shard with no pictures, export warns",
        tags=(),
    ),
    Case(
        "misspelled_lables", variant(lables=np.array([0, 1])), (), "'lables' next to 'labels': an extra, carried along"
    ),
    Case(
        "extra_fields",
        variant(embeddings=np.zeros((2, 16), np.float32), note=np.array(["a", "b"])),
        (),
        "identifier-like extras are carried along",
    ),
    Case(
        "only_images",
        variant(drop=[k for k in example_arrays(CASE_IDS) if k != "images"]),
        (),
        "every other field is optional",
        tags=("examples/ex00000", "examples/ex00001"),
    ),
    Case(
        "zero_examples",
        variant(meta={"num_examples": 0}, **{k: v[:0] for k, v in example_arrays(CASE_IDS).items()}),
        (),
        "an empty shard: nothing to draw, nothing wrong",
        tags=(),
    ),
    Case(
        "huge_ids_without_class_names",
        variant(
            meta={"class_names": None}, labels=np.array([0, 10**12]), pred_labels=np.array([0, 10**12]), drop=["probs"]
        ),
        (),
        "no class_names to check against: ids are drawn as numbers, the confusion matrix is skipped",
    ),
    Case(
        "padding_boxes_garbage",
        variant(
            boxes=np.array([[[0.1, 0.1, 0.5, 0.5], [np.nan, 9, -9, np.inf]]] * 2, np.float32),
            num_boxes=np.array([1, 1]),
        ),
        (),
        "rows beyond num_boxes are padding and never checked",
    ),
    Case("compressed", variant(compress=True), (), "savez_compressed"),
    Case(
        "symlink_outside_run", symlink_outside, (), "a link to a shard outside the run folder: read (the user's folder)"
    ),
]


def _plain_npz() -> bytes:
    buf = io.BytesIO()
    np.savez(buf, images=np.zeros((2, 8, 8, 3), np.uint8))
    return buf.getvalue()


def summary() -> str:
    bad = sum(c.bad for c in CASES)
    return f"{len(CASES)} corpus cases: {bad} bad, {len(CASES) - bad} not bad"


if __name__ == "__main__":
    for case in CASES:
        verdict = "; ".join(case.problems) if case.bad else "NOT BAD: exports"
        print(f"{case.name:<32} {verdict}\n{'':<32} ({case.doc})")
    print(summary())
