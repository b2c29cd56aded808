"""Shard files: atomic write, lazy read (local or any fsspec URL), validation (format v1, see README "Shard format").

A shard is one ``.npz`` holding batch-major arrays plus a ``__meta__`` entry (a
0-d unicode array holding JSON). Nothing here ever unpickles: every load uses
``allow_pickle=False`` and object arrays are refused before they are read.

Every reader here takes a local path or a URL (``s3://evals/run1``, with
``storage_options`` for its file system). A local path stays a ``Path`` and
keeps the plain-file code path; a URL becomes a ``storage.Location`` (the
``path`` of its ``Shard``, ``Run`` and ``Batch``), read with range requests:
opening a shard reads its zip directory and ``.npy`` headers only (two
requests: the last ``TAIL_BYTES`` and the first block), ``load()`` streams the
members asked for in ``LOAD_BLOCK_SIZE`` blocks. A store that fails while a
shard is read is a ``StorageError`` naming the URL, never a "bad shard".
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import secrets
import stat
import time
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ._checks import check_choice
from ._files import atomic_write, is_temp_name
from .errors import (
    ConfigError,
    RunNotFoundError,
    ShardError,
    ShardFormatError,
    ShardTooLargeError,
    StorageError,
)
from .schema import (
    CANONICAL_FIELDS,
    DEFAULT_MAX_BYTES,
    META_KEY,
    SHARD_SUFFIX,
    ShardMeta,
    check_field_name,
    class_names,
    shard_filename,
)
from .storage import (
    DEFAULT_BLOCK_SIZE,
    DEFAULT_RETRY,
    Location,
    RetryPolicy,
    join,
    locate,
    open_read,
    put_file,
    read_errors,
    walk,
)

#: Which dumps of a step a reader uses: the newest (default) or all of them.
DUMPS = ("latest", "all")
#: What a damaged zip raises while a member is read: zlib.error for a garbled deflate stream,
#: RuntimeError for a member flagged as encrypted, NotImplementedError for an unknown compression.
_ZIP_ERRORS = (
    zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError
)
#: Most uncompressed bytes one stored byte can yield: 1 when stored, 1032 for deflate (its limit).
_MAX_RATIO = {zipfile.ZIP_STORED: 1, zipfile.ZIP_DEFLATED: 1032}
#: Block size of a remote ``load()``: one range request per this many bytes of the members read.
LOAD_BLOCK_SIZE = 32 << 20

#: Where a shard (or a run folder) is: a local ``Path``, or the ``Location`` of a URL.
ShardPath = Path | Location


def shard_path(path: str | os.PathLike | Location, storage_options: Mapping[str, Any] | None = None) -> ShardPath:
    """A local path as a ``Path`` (the plain-file code path), a URL as its ``storage.Location``.

    >>> shard_path("eval_shards/step-000000000100")
    PosixPath('eval_shards/step-000000000100')
    """
    if isinstance(path, (str, Location)):
        location = locate(path, storage_options)
        return location if not location.is_local else Path(location.path)
    return Path(path)


#: The end of a remote shard fetched in one request when the zip reader first reads there: its end record, the
#: central directory and, in a shard's usual layout (images first), the small members and their headers.
TAIL_BYTES = 128 << 10


class _RemoteFile:
    """fsspec's random-access file of a shard, whose failed reads are StorageErrors (``storage.read_errors``).

    A zip reader reads the end record, then the zip64 locator, then the central
    directory: three small reads backwards from the end, each a request of its
    own to a forward-reading cache. The last ``TAIL_BYTES`` are fetched once
    instead and those reads served from them.
    """

    def __init__(self, location: Location, block_size: int):
        self.location = location
        self.name = str(location)
        with read_errors(location):
            self._f = open_read(location, block_size=block_size)
            self._size = int(self._f.size)  # type: ignore[attr-defined]  # an fsspec file knows its size
        self._tail_start = max(0, self._size - TAIL_BYTES)
        self._tail: bytes | None = None
        #: The first failed read: zipfile turns any OSError into "File is not a zip file", so it is kept here.
        self.failure: StorageError | None = None

    def read(self, n: int = -1) -> bytes:
        try:
            with read_errors(self.location):
                pos = self._f.tell()
                end = self._size if n is None or n < 0 else min(self._size, pos + n)
                if pos < self._tail_start or pos >= end:
                    return self._f.read(n)
                if self._tail is None:
                    self._f.seek(self._tail_start)
                    self._tail = self._f.read(self._size - self._tail_start)
                self._f.seek(end)
                return self._tail[pos - self._tail_start:end - self._tail_start]
        except StorageError as exc:
            self.failure = self.failure or exc
            raise

    @contextlib.contextmanager
    def failures_first(self) -> Iterator[None]:
        """Inside: an error after a failed read is that read's StorageError, not the zip error it caused."""
        try:
            yield
        except Exception as exc:
            if self.failure is not None and self.failure is not exc:
                raise self.failure from exc
            raise

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()

    def seekable(self) -> bool:
        return True

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> _RemoteFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def _open_zip(path: ShardPath) -> Iterator[zipfile.ZipFile]:
    """The shard's zip: the file itself locally, a random-access remote file (range reads) for a URL."""
    if isinstance(path, Path):
        with zipfile.ZipFile(path) as zf:
            yield zf
        return
    with _RemoteFile(path, DEFAULT_BLOCK_SIZE) as f, f.failures_first(), zipfile.ZipFile(f) as zf:
        yield zf


# --------------------------------------------------------------------------- records


@dataclasses.dataclass(frozen=True)
class FieldInfo:
    """Shape and dtype of one field, read from the ``.npy`` header without loading data."""

    shape: tuple[int | None, ...]
    dtype: np.dtype

    def __str__(self) -> str:
        dims = ",".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.dtype.str.lstrip('<>|=')}[{dims}]"


@dataclasses.dataclass(frozen=True)
class Problem:
    """One thing wrong with one shard: printed as a single line."""

    path: str
    message: str
    field: str | None = None
    level: str = "error"  # or "warning": reported, but the shard is valid and exports

    def __str__(self) -> str:
        where = f"field '{self.field}': " if self.field else ""
        return f"{self.path}: {where}{self.message}"

    @classmethod
    def from_error(cls, path: str | os.PathLike | Location, exc: ShardError | ShardTooLargeError) -> Problem:
        """The problem a reader's error describes (the path is not repeated in the message)."""
        if isinstance(exc, ShardError):
            return cls(str(path), exc.reason, exc.field)
        return cls(str(path), str(exc).removeprefix(f"{path}: "))


# --------------------------------------------------------------------------- writing


def as_array(name: str, value: Any) -> np.ndarray:
    """``value`` as a numpy array: arrays, lists, and framework tensors (``.detach().cpu().numpy()``, ``__array__``).

    No framework is imported: a torch tensor is recognised by its methods. A
    generator or other one-shot iterator is refused, since ``np.asarray`` would
    make a 0-d object of it.

    >>> as_array("labels", (i for i in range(3)))
    Traceback (most recent call last):
    ...
    exporter.errors.ConfigError: field 'labels' is a generator, which is read only once and has no shape: pass a list or an array, e.g. list(...) or np.stack(list(...))
    """
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, Iterator):
        raise ConfigError(
            f"field '{name}' is a {type(value).__name__}, which is read only once and has no shape: "
            "pass a list or an array, e.g. list(...) or np.stack(list(...))"
        )
    if callable(getattr(value, "detach", None)) and callable(getattr(value, "numpy", None)):
        value = value.detach()  # a torch tensor: off the autograd graph and the GPU first
        value = value.cpu() if callable(getattr(value, "cpu", None)) else value
        value = value.numpy()
    try:
        return np.asarray(value)
    except ValueError as exc:  # numpy >= 1.24: a list of differently shaped arrays
        shapes = sorted({np.shape(v) for v in value}) if isinstance(value, (list, tuple)) else None
        if shapes is None or len(shapes) < 2:
            raise ConfigError(f"field '{name}' cannot be made an array: {exc}") from None
        raise ConfigError(
            f"field '{name}' is a list of arrays of different shapes {shapes}: a shard holds one shape per field, "
            "so add them in separate add() calls (a new shape starts a new shard)"
        ) from None


def as_field_array(name: str, value: Any) -> np.ndarray:
    """Coerce one batch-major field to a storable array: numbers stay, text becomes fixed-width unicode."""
    check_field_name(name)
    arr = as_array(name, value)
    if arr.ndim == 0:
        raise ConfigError(f"field '{name}' must be batch-major with a leading N axis, got a scalar")
    kind = arr.dtype.kind
    if kind == "S":
        arr = np.char.decode(arr, "utf-8", errors="replace")
    elif kind == "O":
        flat = arr.ravel()
        if all(isinstance(v, (str, bytes, np.str_, np.bytes_)) for v in flat):
            arr = np.array(
                [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in flat], dtype=str
            ).reshape(arr.shape)
        else:
            raise ConfigError(
                f"field '{name}' holds Python objects (dtype=object); shards store numbers and text only"
            )
    elif kind not in "biufU":
        raise ConfigError(f"field '{name}' has dtype {arr.dtype}, which shards cannot store (numbers or text only)")
    spec = CANONICAL_FIELDS.get(name)
    if spec is not None and arr.ndim not in spec.ranks:
        ranks = " or ".join(str(r) for r in spec.ranks)
        raise ConfigError(f"field '{name}' must have {ranks} dims ({spec.doc}), but got shape {arr.shape}")
    if spec is not None and spec.kind in ("box",) and arr.shape[-1] != 4:
        raise ConfigError(f"field '{name}' must have shape (N, M, 4), but got shape {arr.shape}")
    return arr


def write_shard(
    directory: str | os.PathLike,
    meta: ShardMeta,
    arrays: Mapping[str, np.ndarray] | Sequence[Mapping[str, np.ndarray]],
    *,
    compress: bool = False,
    create: bool = True,
) -> Path:
    """Write one shard atomically (``exporter._files.atomic_write``: temp file, fsync, rename).

    ``create=False`` writes only into an existing ``directory`` (an error when it is gone).

    ``arrays`` is one mapping of batch-major arrays, or a list of such chunks
    that are written one after the other into each ``.npy`` member (what
    ``numpy.savez`` would write for their concatenation, without building it).
    A reader never sees a half-written shard; a crash leaves at most a hidden
    temp file that readers ignore.
    """
    directory = Path(directory)
    if create:
        directory.mkdir(parents=True, exist_ok=True)
    return atomic_write(directory / shard_filename(meta.dump_id, meta.shard_index), _zip_writer(meta, arrays, compress))


def upload_shard(
    directory: Location,
    meta: ShardMeta,
    arrays: Mapping[str, np.ndarray] | Sequence[Mapping[str, np.ndarray]],
    *,
    compress: bool = False,
    retry: RetryPolicy = DEFAULT_RETRY,
) -> Location:
    """``write_shard`` into a folder of an object store (any fsspec URL): whole or absent there too.

    The zip goes to a local temp file first (no fsync: it is a copy on its way),
    then ``storage.put_file`` publishes it under its final key in one PUT (a
    multipart upload above 100 MiB, visible only when complete), retried under
    ``retry``; the temp file is removed either way. A reader listing the folder
    never sees a temp or partial object; a killed writer leaves at most a temp
    file in the local temp folder.
    """
    import tempfile

    target = join(directory, shard_filename(meta.dump_id, meta.shard_index))
    fd, tmp = tempfile.mkstemp(prefix=".summary-exporter-upload-", suffix=SHARD_SUFFIX)
    try:
        with open(fd, "wb") as f:
            _zip_writer(meta, arrays, compress)(f)
        return put_file(tmp, target, retry=retry)
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def _zip_writer(
    meta: ShardMeta, arrays: Mapping[str, np.ndarray] | Sequence[Mapping[str, np.ndarray]], compress: bool
) -> Callable[[BinaryIO], None]:
    """What writes one shard's zip into an open binary file."""
    chunks = [arrays] if isinstance(arrays, Mapping) else list(arrays)
    compression = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED

    def write(f: BinaryIO) -> None:
        with zipfile.ZipFile(f, mode="w", compression=compression, allowZip64=True) as zf:
            for name in chunks[0]:
                _write_member(zf, name, [c[name] for c in chunks])
            _write_member(zf, META_KEY, [np.array(meta.to_json())])

    return write


def _write_member(zf: zipfile.ZipFile, name: str, parts: Sequence[np.ndarray]) -> None:
    """One ``.npy`` member holding the concatenation of ``parts`` along axis 0 (or one 0-d array)."""
    first = parts[0]
    dtype = np.result_type(*parts) if first.dtype.kind == "U" else first.dtype  # text widths may differ
    shape = first.shape if first.ndim == 0 else (sum(p.shape[0] for p in parts),) + first.shape[1:]
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
    with zf.open(name + ".npy", "w", force_zip64=True) as member:
        np.lib.format.write_array_header_2_0(member, header) if _needs_v2(header) else np.lib.format.write_array_header_1_0(member, header)
        for p in parts:
            p = np.ascontiguousarray(p, dtype=dtype)
            if p.size:
                member.write(memoryview(p).cast("B"))  # type: ignore[arg-type]  # an ndarray is a buffer


def _needs_v2(header: dict) -> bool:
    """npy format 1.0 holds headers up to 65535 bytes; larger (many-field) headers need 2.0."""
    return len(repr(header)) > 60000


def new_dump_id() -> str:
    """A sortable, unique id for one writer session: UTC time (microseconds) then randomness."""
    now = time.time()
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z-" + secrets.token_hex(3)


# --------------------------------------------------------------------------- reading


def _read_headers(zf: zipfile.ZipFile, path: str) -> dict[str, tuple[tuple[int, ...], np.dtype, int]]:
    """Shape, dtype and stored size of every array, from the ``.npy`` headers only."""
    out = {}
    for info in zf.infolist():
        name = info.filename
        if not name.endswith(".npy"):
            raise ShardFormatError(f"unexpected member {name!r} in the zip (a shard holds only .npy arrays)", path=path)
        key = name[: -len(".npy")]
        if key in out:  # zip allows it; numpy would read the last copy, another tool the first
            raise ShardFormatError(f"duplicate member {name!r} in the zip: which copy is meant is ambiguous", path=path)
        limit = _MAX_RATIO.get(info.compress_type)
        if limit is not None and info.file_size > limit * info.compress_size + 1024:
            raise ShardFormatError(
                f"member {name!r} claims {info.file_size} bytes unpacked from {info.compress_size} bytes, more than "
                "its compression can produce (a forged size or a zip bomb)",
                path=path,
            )
        try:
            with zf.open(info) as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(f, max_header_size=10000)
                elif version in ((2, 0), (3, 0)):
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(f, max_header_size=10000)
                else:
                    raise ValueError(f"unknown .npy version {version}")
        except StorageError:
            raise
        except _ZIP_ERRORS as exc:  # small members are read whole here, so a bad CRC shows up now
            raise ShardFormatError(f"array {key!r} is damaged ({exc})", path=path) from None
        except (ValueError, SyntaxError, TypeError) as exc:
            raise ShardFormatError(f"array {key!r} has an unreadable header ({exc})", path=path) from None
        if dtype.hasobject:
            raise ShardFormatError(
                f"array {key!r} holds pickled Python objects (dtype={dtype}); shards never load pickles",
                path=path,
            )
        out[key] = (tuple(shape), dtype, info.file_size)
    return out


class Shard:
    """A lazy view of one shard file: metadata and headers now, arrays on ``load()``.

    >>> shard = Shard("run/step-000000000100/20261126T040512Z-3f9a2c-00000.npz")  # doctest: +SKIP
    >>> shard.meta.step, shard.fields["images"].shape                            # doctest: +SKIP
    (100, (32, 64, 64, 3))
    """

    def __init__(
        self,
        path: str | os.PathLike | Location,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        storage_options: Mapping[str, Any] | None = None,
    ):
        self.path: ShardPath = shard_path(path, storage_options)
        self.max_bytes = max_bytes
        p = str(self.path)
        if isinstance(self.path, Path):
            _check_regular_file(self.path)
        try:
            with _open_zip(self.path) as zf:
                headers = _read_headers(zf, p)
                if META_KEY not in headers:
                    raise ShardFormatError(f"no '{META_KEY}' metadata entry: not a summary-exporter shard", path=p)
                shape, dtype, _ = headers[META_KEY]
                if shape != () or dtype.kind != "U" or dtype.itemsize > 4 * 1_000_000:
                    raise ShardFormatError(
                        f"'{META_KEY}' must be a 0-d unicode array holding JSON, got {dtype} {shape}", path=p
                    )
                with zf.open(META_KEY + ".npy") as f:
                    meta_text = str(np.lib.format.read_array(f, allow_pickle=False)[()])
        except FileNotFoundError:
            raise RunNotFoundError(f"{p}: no such shard file") from None
        except StorageError:
            raise
        except PermissionError as exc:  # a file we may not read is not a damaged one: say which it is
            raise ShardFormatError(f"cannot read the file: {_reason(exc)}", path=p) from None
        except _ZIP_ERRORS as exc:
            raise ShardFormatError(f"not a readable .npz/zip file ({exc})", path=p) from None
        except ValueError as exc:
            if isinstance(exc, ShardError):
                raise
            raise ShardFormatError(f"unreadable metadata entry ({exc})", path=p) from None
        self.meta = ShardMeta.from_json(meta_text, path=p)
        self._headers = {k: v for k, v in headers.items() if k != META_KEY}

    @property
    def fields(self) -> dict[str, FieldInfo]:
        return {k: FieldInfo(shape, dtype) for k, (shape, dtype, _) in sorted(self._headers.items())}

    @property
    def step(self) -> int:
        return self.meta.step

    def __len__(self) -> int:
        return self.meta.num_examples

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v}" for k, v in self.fields.items())
        return f"Shard('{self.path}', step={self.step}, examples={len(self)}, {fields})"

    def nbytes(self, names: Iterable[str] | None = None) -> int:
        names = self._headers if names is None else names
        # math.prod on Python ints: np.prod(dtype=int64) silently wraps a forged header's shape to a small size
        return sum(math.prod(self._headers[n][0]) * self._headers[n][1].itemsize for n in names)

    def load(self, names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Load the named fields (default: all). Refuses, before allocating, sizes beyond ``max_bytes``."""
        p = str(self.path)
        names = list(self._headers) if names is None else [n for n in names if n in self._headers]
        total = 0
        for n in names:
            shape, dtype, stored = self._headers[n]
            declared = math.prod(shape) * dtype.itemsize if all(d >= 0 for d in shape) else -1  # exact, never wraps
            if declared < 0 or declared > stored:
                raise ShardFormatError(
                    f"array {n!r} declares shape {shape} ({declared} bytes) but the file holds {stored} bytes",
                    path=p,
                    field=None,
                )
            total += declared
        if total > self.max_bytes:
            raise ShardTooLargeError(
                f"{p}: the arrays asked for need {total / 2**20:.0f} MiB, above the reader's limit of "
                f"{self.max_bytes / 2**20:.0f} MiB; raise max_bytes (--max-shard-mb) if this shard is trusted"
            )
        out = {}
        try:
            with self._open_npz() as npz:
                for n in names:
                    out[n] = npz[n]
        except MemoryError:
            raise ShardTooLargeError(f"{p}: not enough memory to load {total / 2**20:.0f} MiB of arrays") from None
        except StorageError:
            raise
        except (ValueError, *_ZIP_ERRORS) as exc:
            raise ShardFormatError(f"could not read arrays ({exc})", path=p) from None
        return out

    @contextlib.contextmanager
    def _open_npz(self) -> Iterator[Any]:
        """``np.load`` of the file; for a URL over a remote file read in ``LOAD_BLOCK_SIZE`` range requests."""
        if isinstance(self.path, Path):
            with np.load(self.path, allow_pickle=False) as npz:
                yield npz
            return
        # NpzFile, not np.load: np.load first reads the magic at offset 0, which costs a whole block that the zip
        # directory at the end of the file then replaces, and the first member fetches it again
        with _RemoteFile(self.path, LOAD_BLOCK_SIZE) as f, f.failures_first(), \
                np.lib.npyio.NpzFile(f, allow_pickle=False) as npz:  # type: ignore[arg-type]
            yield npz


def _check_regular_file(path: Path) -> None:
    """Refuse, before opening, what is not a regular file: a folder, a FIFO (opening it would block), a device."""
    p = str(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        if os.path.islink(path):  # listed by the folder scan, but its target is gone
            raise ShardFormatError(f"is a broken symbolic link (to {os.readlink(path)!r})", path=p) from None
        raise RunNotFoundError(f"{p}: no such shard file") from None
    except OSError as exc:  # a symlink loop, a permission denied on the way...
        raise ShardFormatError(f"cannot read the file: {_reason(exc)}", path=p) from None
    if not stat.S_ISREG(mode):
        kind = (
            "a folder" if stat.S_ISDIR(mode)
            else "a FIFO (named pipe)" if stat.S_ISFIFO(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "a special file"
        )
        raise ShardFormatError(f"is {kind}, not a shard file", path=p)


def _is_shard_name(name: str) -> bool:
    return name.endswith(SHARD_SUFFIX) and not name.startswith(".") and not is_temp_name(name)


def find_shard_files(
    path: str | os.PathLike | Location, storage_options: Mapping[str, Any] | None = None
) -> list[ShardPath]:
    """Shard files under ``path`` (a run folder, a step folder, or one file); temp files are ignored.

    A folder that cannot be read is an error naming it (``RunNotFoundError``
    saying "permission denied"), never silently skipped: a missing step would
    otherwise vanish from TensorBoard without a word. Under a URL this is one
    recursive listing (``storage.walk``), and the files come as ``Location``s.
    """
    where = shard_path(path, storage_options)
    if isinstance(where, Location):
        return _find_remote_shards(where)
    path = where
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise RunNotFoundError(f"{path}: no such file or folder") from None
    except OSError as exc:
        raise RunNotFoundError(f"{path}: {_reason(exc)}") from None
    if not stat.S_ISDIR(mode):
        return [path]
    files: list[Path] = []

    def fail(exc: OSError) -> None:
        raise RunNotFoundError(f"{exc.filename or path}: {_reason(exc)}; cannot look for shards there")

    for folder, dirs, names in os.walk(path, onerror=fail):
        dirs[:] = sorted(d for d in dirs if not is_temp_name(d))
        # a folder named like a shard is listed too: opening it says "is a folder, not a shard file"
        files += [Path(folder) / n for n in names + dirs if _is_shard_name(n)]
    return [*sorted(files)]


def _find_remote_shards(location: Location) -> list[ShardPath]:
    with read_errors(location):
        try:
            files = walk(location)
        except RunNotFoundError:
            if location.fs.isfile(location.path):
                return [location]
            raise RunNotFoundError(f"{location}: no such file or folder") from None
    found: list[ShardPath] = []
    for rel in files:
        *folders, name = rel.split("/")
        if _is_shard_name(name) and not any(is_temp_name(f) for f in folders):
            found.append(join(location, rel))
    return found


def _reason(exc: OSError) -> str:
    """"permission denied", "not a directory"... from an OSError, lower case as in one-line messages."""
    return (exc.strerror or str(exc)).lower()


@dataclasses.dataclass
class Batch:
    """One shard's worth of arrays, with the metadata that explains them."""

    step: int
    meta: ShardMeta
    path: ShardPath
    arrays: dict[str, np.ndarray]

    def __len__(self) -> int:
        return self.meta.num_examples


class Run:
    """A lazy view of a run folder: shards grouped by global step.

    When the same step was dumped more than once (the same checkpoint evaluated
    twice), only the newest dump is used unless ``dumps="all"``; the older dumps
    are listed in ``ignored`` and a warning says so.

    >>> run = open_run("eval_shards")   # doctest: +SKIP
    >>> run.steps                        # doctest: +SKIP
    [100, 200]
    """

    def __init__(
        self,
        path: str | os.PathLike | Location,
        *,
        dumps: str = "latest",
        max_bytes: int = DEFAULT_MAX_BYTES,
        skip_bad: bool = False,
        storage_options: Mapping[str, Any] | None = None,
    ):
        check_choice(dumps, DUMPS, "dumps")
        self.path: ShardPath = shard_path(path, storage_options)
        self.dumps = dumps
        files = find_shard_files(self.path)
        if not files:
            raise RunNotFoundError(f"{self.path}: no shard files (*.npz) found")
        #: Unreadable shards (only with ``skip_bad``; otherwise the first one raises).
        self.bad: list[Problem] = []
        shards = []
        for f in files:
            try:
                shards.append(Shard(f, max_bytes=max_bytes))
            except ShardError as exc:
                if not skip_bad:
                    raise
                self.bad.append(Problem.from_error(f, exc))
        by_step: dict[int, dict[str, list[Shard]]] = {}
        for s in shards:
            by_step.setdefault(s.step, {}).setdefault(s.meta.dump_id, []).append(s)
        self._by_step: dict[int, list[Shard]] = {}
        self.ignored: list[Shard] = []
        for step in sorted(by_step):
            # Oldest first: by the dump's first creation time, then its (time-based) id.
            dump_ids = sorted(by_step[step], key=lambda d: (min(s.meta.created for s in by_step[step][d]), d))
            keep = dump_ids if dumps == "all" else dump_ids[-1:]
            for d in dump_ids:
                group = sorted(by_step[step][d], key=lambda s: s.meta.shard_index)
                if d in keep:
                    self._by_step.setdefault(step, []).extend(group)
                else:
                    self.ignored.extend(group)
        if self.ignored and not skip_bad:  # with skip_bad the caller reports what was left out
            warnings.warn(
                f"{self.path}: {len(self.ignored)} shard(s) from older dumps of the same step(s) "
                f"{sorted({s.step for s in self.ignored})} are ignored (newest dump wins; use dumps='all' to read them)",
                stacklevel=2,
            )

    @property
    def steps(self) -> list[int]:
        return list(self._by_step)

    def shards(self, step: int | None = None) -> list[Shard]:
        if step is None:
            return [s for group in self._by_step.values() for s in group]
        if step not in self._by_step:
            raise RunNotFoundError(f"{self.path}: no shards for step {step} (steps: {self.steps})")
        return list(self._by_step[step])

    def num_examples(self, step: int | None = None) -> int:
        return sum(len(s) for s in self.shards(step))

    @property
    def fields(self) -> dict[str, FieldInfo]:
        """Fields over all shards: the N axis summed per step maximum, a varying dim shown as None."""
        merged: dict[str, FieldInfo] = {}
        for s in self.shards():
            for name, info in s.fields.items():
                prev = merged.get(name)
                if prev is None:
                    merged[name] = FieldInfo((None,) + info.shape[1:], info.dtype)
                    continue
                shape = prev.shape
                if len(shape) != len(info.shape):
                    shape = (None,)
                else:
                    shape = tuple(a if a == b else None for a, b in zip(shape, (None,) + info.shape[1:], strict=True))
                dtype = prev.dtype if prev.dtype == info.dtype else np.result_type(prev.dtype, info.dtype)
                merged[name] = FieldInfo(shape, dtype)
        return dict(sorted(merged.items()))

    @property
    def class_names(self) -> list[str] | None:
        """The run's class names by ``schema.class_names`` (the last shard with names)."""
        names = class_names(s.meta for s in self.shards())
        return None if names is None else list(names)

    def iter_batches(self, step: int | None = None, fields: Sequence[str] | None = None) -> Iterator[Batch]:
        """Yield one ``Batch`` per shard, in ascending step order, loading arrays only now."""
        for s in self.shards(step):
            yield Batch(step=s.step, meta=s.meta, path=s.path, arrays=s.load(fields))

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v}" for k, v in self.fields.items())
        return (
            f"Run('{self.path}', steps={self.steps}, shards={len(self.shards())}, "
            f"examples={self.num_examples()}, fields: {fields})"
        )


def open_run(
    path: str | os.PathLike | Location,
    *,
    dumps: str = "latest",
    max_bytes: int = DEFAULT_MAX_BYTES,
    skip_bad: bool = False,
    storage_options: Mapping[str, Any] | None = None,
) -> Run:
    """Open a run folder (or a step folder, or one shard file, local or a URL) lazily.

    >>> run = open_run("eval_shards")          # doctest: +SKIP
    >>> for batch in run.iter_batches():       # doctest: +SKIP
    ...     print(batch.step, batch.arrays["images"].shape)
    >>> open_run("s3://evals/run1", storage_options={"profile": "eval"}).steps   # doctest: +SKIP
    [100, 200]
    """
    return Run(path, dumps=dumps, max_bytes=max_bytes, skip_bad=skip_bad, storage_options=storage_options)
