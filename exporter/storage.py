"""Where a path or URL is resolved, once, into a place to list, read and write: a local folder or an fsspec store.

``locate(path_or_url, storage_options)`` returns a ``Location``. A plain path (or
``file://``) stays a local ``Path`` and never imports fsspec; any other URL is
resolved with ``fsspec.core.url_to_fs(url, **storage_options)`` and keeps the
file-system object, so everything after talks to it directly. Credentials are
never an argument here: s3fs, gcsfs and the rest read them from the environment
and their config files (``AWS_*``, ``~/.aws``, ``GOOGLE_APPLICATION_CREDENTIALS``...).

The helpers below each work on both kinds:

* listing: ``listdir`` (one level), ``walk`` (every file below, one recursive
  listing on an object store), ``glob``, ``exists``, and ``find_runs`` (the run
  folders under a root, for ``export-runs``);
* reading: ``open_read`` gives a seekable binary file; on a store it is fsspec's
  random-access file with a small block size, so reading a zip's directory and
  ``.npy`` headers costs a few range requests, not the whole object;
* writing: ``put_bytes`` / ``put_file`` publish a whole object under its final
  name. Locally that is ``_files.atomic_write`` (temp file, fsync, rename); an
  object store has no rename, so it is one PUT, or a multipart upload that only
  becomes visible when completed at the end. Transient errors are retried with
  bounded exponential backoff (``RetryPolicy``), then a ``StorageError`` names
  the URL and the cause. Never ``fs.open(path, "wb")``: fsspec's buffered file
  completes the upload on ``__exit__`` even when the block raised, publishing a
  truncated object.
* ``remove``, ``mkdir`` (a no-op on object stores, which have no folders).

>>> run = locate("s3://evals/run1")                                     # doctest: +SKIP
>>> walk(run)                                                           # doctest: +SKIP
['step-000000000100/20261126T040512.000000Z-3f9a2c-00000.npz', ...]
>>> put_bytes(join(run, "notes.txt"), b"hello")                         # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import posixpath
import random
import re
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from ._checks import check_int, check_number
from ._files import atomic_write
from .errors import ConfigError, ExporterError, MissingDependencyError, RunNotFoundError, StorageError
from .schema import STEP_DIR_PREFIX

T = TypeVar("T")

#: ``scheme://`` or ``scheme::`` (an fsspec chain) at the start; two letters at least, so ``C://`` is a drive.
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]+)(://|::)")
#: The schemes a local path may be written with.
_LOCAL_SCHEMES = frozenset({"file", "local"})
#: The extra that installs each backend we document.
_EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs"}
#: A step folder of the shard layout (``schema.step_dirname``): ``step-`` and the zero-padded step.
_STEP_DIR = re.compile(re.escape(STEP_DIR_PREFIX) + r"\d+")
#: ``user:password@`` in a URL: cut from every message.
_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")
#: Block size of a remote read: small, so the zip directory and each ``.npy`` header are a range request each.
DEFAULT_BLOCK_SIZE = 256 << 10


# --------------------------------------------------------------------------- locations


@dataclasses.dataclass(frozen=True)
class Location:
    """A path or URL resolved once: ``fs`` is None for a local path, else the fsspec file system holding ``path``.

    ``storage_options`` are what the file system was made with; they stay out of
    the ``repr`` (only their names show) since they may hold a token.

    >>> locate("shards/run1")
    Location('shards/run1')
    >>> locate("shards/run1").is_local
    True
    """

    path: str
    fs: Any = dataclasses.field(default=None, compare=False)
    protocol: str = "file"
    storage_options: Mapping[str, Any] = dataclasses.field(default_factory=dict, compare=False)

    @property
    def is_local(self) -> bool:
        return self.fs is None

    @property
    def local_path(self) -> Path:
        """The ``Path`` of a local location; a ConfigError for a remote one."""
        if not self.is_local:
            raise ConfigError(f"{self.url} is not a local path")
        return Path(self.path)

    @property
    def url(self) -> str:
        """The path for a local location, ``protocol://path`` for a remote one."""
        return self.path if self.is_local else self.fs.unstrip_protocol(self.path)

    @property
    def name(self) -> str:
        return posixpath.basename(self.path) if not self.is_local else Path(self.path).name

    @property
    def parent(self) -> Location:
        """The folder holding this file or folder, on the same file system.

        >>> locate("runs/run1/step-000000000100").parent
        Location('runs/run1')
        """
        if self.is_local:
            return dataclasses.replace(self, path=os.path.dirname(self.path) or ".")
        return dataclasses.replace(self, path=posixpath.dirname(self.path))

    def __truediv__(self, part: str) -> Location:
        return join(self, part)

    def __str__(self) -> str:
        return redact(self.url)

    def __repr__(self) -> str:
        options = f", storage_options=[{', '.join(sorted(self.storage_options))}]" if self.storage_options else ""
        return f"Location('{self}'{options})"


def locate(path_or_url: str | os.PathLike | Location, storage_options: Mapping[str, Any] | None = None) -> Location:
    """Resolve a local path or an fsspec URL once; the result is what every helper here takes.

    A plain path or ``file://`` URL stays local (no fsspec import); ``storage_options``
    then do not apply and are ignored. A URL whose backend is not installed raises
    MissingDependencyError naming the extra; a scheme fsspec does not know raises
    ConfigError, so ``s3://evals/run1`` never becomes a local folder named ``s3:``.

    >>> locate("file:///tmp/shards").path
    '/tmp/shards'
    >>> locate("foo://bucket/run")
    Traceback (most recent call last):
    ...
    exporter.errors.ConfigError: unknown URL scheme 'foo' in foo://bucket/run: fsspec has no file system for it (s3://, gs://, memory://... are known)
    """
    if isinstance(path_or_url, Location):
        return path_or_url
    if not isinstance(path_or_url, str):
        return Location(os.fspath(path_or_url))
    match = _SCHEME.match(path_or_url)
    if match is None:
        return Location(path_or_url)
    scheme = match.group(1).lower()
    if scheme in _LOCAL_SCHEMES and match.group(2) == "://":
        return Location(_local_path_of(path_or_url))
    return _locate_remote(path_or_url, scheme, dict(storage_options or {}))


def _local_path_of(url: str) -> str:
    """``file:///a/b`` (or ``file://localhost/a/b``, percent-encoded) → ``/a/b``."""
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise ConfigError(f"{redact(url)}: a file:// URL names a path on this machine, not on host {parts.netloc!r}")
    return unquote(parts.path) or "/"


def _locate_remote(url: str, scheme: str, storage_options: dict[str, Any]) -> Location:
    try:
        # fsspec ships no type information (mypy runs where the dev extra installed it)
        from fsspec.core import url_to_fs  # type: ignore[import-untyped]
        from fsspec.registry import known_implementations, registry  # type: ignore[import-untyped]
    except ImportError as exc:
        raise MissingDependencyError(f"{redact(url)}: reading URLs needs fsspec and its backend: {_fix(scheme)}") from exc
    if scheme not in known_implementations and scheme not in registry:
        raise ConfigError(
            f"unknown URL scheme '{scheme}' in {redact(url)}: fsspec has no file system for it "
            "(s3://, gs://, memory://... are known)"
        )
    try:
        fs, path = url_to_fs(url, **storage_options)
    except ImportError as exc:
        reason = known_implementations.get(scheme, {}).get("err") or str(exc)
        raise MissingDependencyError(f"{redact(url)}: {reason}: {_fix(scheme)}") from exc
    except TypeError as exc:  # an option the backend's constructor does not take
        names = ", ".join(sorted(storage_options)) or "none"
        raise ConfigError(f"{redact(url)}: storage options ({names}) do not fit {scheme}://: {redact(str(exc))}") from None
    except ValueError as exc:  # a chained URL with an unknown protocol inside
        raise ConfigError(f"{redact(url)}: {redact(str(exc))}") from None
    path = path.rstrip("/")
    if not path:
        raise ConfigError(f"{redact(url)}: the URL names no bucket or folder")
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return Location(path, fs, protocol, storage_options)


def _fix(scheme: str) -> str:
    """The one line that installs a scheme's backend."""
    extra = _EXTRAS.get(scheme)
    if extra is not None:
        return f"pip install 'summary-exporter[{extra}]'"
    return "pip install fsspec and the package it names for this scheme"


def redact(text: str) -> str:
    """``text`` with any ``user:password@`` of a URL in it cut out.

    >>> redact("https://me:secret@host/x")
    'https://***@host/x'
    """
    return _USERINFO.sub("***@", text)


def join(location: Location, *parts: str) -> Location:
    """``location`` with ``parts`` ('/'-separated names, never '..') appended; the file system is not resolved again.

    >>> join(locate("runs"), "run1", "step-000000000100").path
    'runs/run1/step-000000000100'
    """
    names = [n for part in parts for n in part.split("/") if n not in ("", ".")]
    if any(n == ".." for n in names) or any(p.startswith("/") for p in parts):
        raise ConfigError(f"join({location}, {', '.join(map(repr, parts))}): only names below the location, no '..' or '/...'")
    if not names:
        return location
    if location.is_local:
        return dataclasses.replace(location, path=os.path.join(location.path, *names))
    return dataclasses.replace(location, path=posixpath.join(location.path, *names))


# --------------------------------------------------------------------------- listing


def exists(location: Location) -> bool:
    """Whether a file or folder is there (on an object store: an object, or objects below the prefix)."""
    if location.is_local:
        return os.path.exists(location.path)
    location.fs.invalidate_cache(location.path)
    return bool(location.fs.exists(location.path))


def listdir(location: Location) -> list[str]:
    """Names of the files and folders directly in ``location``, sorted; RunNotFoundError if it is not there."""
    if location.is_local:
        try:
            return sorted(os.listdir(location.path))
        except (FileNotFoundError, NotADirectoryError):
            raise RunNotFoundError(f"{location}: no such folder") from None
    location.fs.invalidate_cache(location.path)
    try:
        entries = location.fs.ls(location.path, detail=False)
    except FileNotFoundError:
        raise RunNotFoundError(f"{location}: no such folder") from None
    prefix = location.path + "/"
    return sorted({e.rstrip("/")[len(prefix):] for e in entries if e.rstrip("/").startswith(prefix)})


def walk(location: Location) -> list[str]:
    """Every file below ``location`` as a '/'-separated path relative to it, sorted.

    On an object store this is one recursive listing (S3: one ``ListObjectsV2``
    page per 1,000 keys), never a request per folder. RunNotFoundError if there
    is nothing there (an object store has no empty folders).
    """
    if location.is_local:
        if not os.path.isdir(location.path):
            raise RunNotFoundError(f"{location}: no such folder")
        out: list[str] = []
        for dirpath, _dirnames, filenames in os.walk(location.path):
            rel = os.path.relpath(dirpath, location.path)
            base = "" if rel == "." else rel.replace(os.sep, "/") + "/"
            out.extend(base + f for f in filenames)
        return sorted(out)
    fs = location.fs
    fs.invalidate_cache(location.path)
    prefix = location.path + "/"
    files = [f for f in fs.find(location.path) if f.startswith(prefix)]
    if not files:
        raise RunNotFoundError(f"{location}: no such folder (or nothing in it)")
    return sorted(f[len(prefix):] for f in files)


def glob(location: Location, pattern: str) -> list[str]:
    """Files below ``location`` whose relative path matches ``pattern``, sorted.

    ``*`` and ``?`` stay within one name, ``**/`` is any number of folders, ``[...]``
    a character class: ``glob(run, "step-*/*.npz")``. One listing on an object store.
    """
    regex = _glob_regex(pattern)
    try:
        files = walk(location)
    except RunNotFoundError:
        return []
    return [f for f in files if regex.fullmatch(f)]


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A glob pattern over '/'-separated relative paths as a regex."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:[^/]+/)*")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i + 2:]:
            end = pattern.index("]", i + 2)
            body = pattern[i + 1:end]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body).replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


def find_runs(root: Location) -> list[str]:
    """Every run folder under ``root`` (one holding ``step-<digits>`` folders), relative to it, sorted.

    ``root`` itself is ``"."`` when it is a run. A folder inside a run's step
    folder is part of that step, never a run of its own, and hidden folders
    (``.staging``...) are skipped. A step folder counts when something is in it:
    an object store has no empty folders, so an empty local one does not count
    either. One recursive listing on an object store.

    >>> find_runs(locate("s3://evals/job7"))                             # doctest: +SKIP
    ['eval_a', 'eval_b/coco', 'eval_b/voc']
    """
    if root.is_local:
        if not os.path.isdir(root.path):
            raise RunNotFoundError(f"{root}: no such folder")
        return sorted(_local_runs(root.path))
    runs = set()
    for rel in walk(root):  # RunNotFoundError when nothing is there
        parts = rel.split("/")
        for i, part in enumerate(parts[:-1]):
            if part.startswith("."):
                break
            if _STEP_DIR.fullmatch(part):
                runs.add("/".join(parts[:i]) or ".")
                break
    return sorted(runs)


def _has_entries(folder: str) -> bool:
    with os.scandir(folder) as entries:  # closed: an open scandir iterator warns (ResourceWarning)
        return next(entries, None) is not None


def _local_runs(top: str) -> list[str]:
    runs = []
    for dirpath, dirnames, _ in os.walk(top):
        steps = [d for d in dirnames if _STEP_DIR.fullmatch(d)]
        if any(_has_entries(os.path.join(dirpath, d)) for d in steps):
            rel = os.path.relpath(dirpath, top)
            runs.append("." if rel == "." else rel.replace(os.sep, "/"))
        # a step folder's insides are that step's; hidden folders are nobody's runs
        dirnames[:] = [d for d in dirnames if d not in steps and not d.startswith(".")]
    return runs


# --------------------------------------------------------------------------- reading


def open_read(location: Location, *, block_size: int = DEFAULT_BLOCK_SIZE) -> BinaryIO:
    """A seekable binary file; on a store each read fetches what it needs plus ``block_size`` (one range request).

    >>> with open_read(locate("s3://evals/run1/step-000000000100/x-00000.npz")) as f:  # doctest: +SKIP
    ...     zipfile.ZipFile(f).namelist()                                              # a few range reads
    """
    try:
        if location.is_local:
            return open(location.path, "rb")
        return location.fs.open(location.path, "rb", block_size=block_size, cache_type="readahead")
    except FileNotFoundError:
        raise RunNotFoundError(f"{location}: no such file") from None
    except IsADirectoryError:
        raise RunNotFoundError(f"{location}: is a folder, not a file") from None


@contextlib.contextmanager
def read_errors(location: Location) -> Iterator[None]:
    """Inside: a store failing (lost connection, time-out, 5xx, access denied) is a StorageError naming the URL.

    Readers take any OSError for a damaged file (a zip reader does); a network
    error is not one, and must never make ``--skip-bad`` skip a good shard.
    Other errors, the library's own included, pass through unchanged.
    """
    try:
        yield
    except (ExporterError, FileNotFoundError):
        raise
    except Exception as exc:
        if not location.is_local and (isinstance(exc, PermissionError) or is_transient(exc)):
            cause = redact(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
            raise StorageError(f"reading {location} failed: {cause}", str(location)) from exc
        raise


def read_bytes(location: Location) -> bytes:
    """The whole content of a small file (a manifest, an export state); RunNotFoundError if it is not there."""
    with read_errors(location), open_read(location) as f:
        return f.read()


# --------------------------------------------------------------------------- writing


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How long an upload keeps trying through transient errors (connection lost, timeouts, 5xx, throttling).

    A call makes at most ``tries`` attempts and gives up ``deadline`` seconds
    after it started, plus the time to send the data at ``min_rate`` bytes/s
    (so a large upload is not cut off for being large). Each attempt on an async
    store (s3fs, gcsfs) is cancelled at that deadline, so a server that stops
    answering is an error in bounded time, never a hang. Waits between attempts
    grow from ``first_delay`` by ×2 up to ``max_delay``, with jitter so many
    workers do not retry in step.

    >>> RetryPolicy(tries=5, deadline=30).budget(0)
    30.0
    """

    tries: int = 3
    deadline: float = 10.0
    min_rate: float = float(1 << 20)
    first_delay: float = 0.25
    max_delay: float = 2.0

    def __post_init__(self) -> None:
        check_int(self.tries, "RetryPolicy.tries", minimum=1)
        check_number(self.deadline, "RetryPolicy.deadline", above=0)
        check_number(self.min_rate, "RetryPolicy.min_rate", above=0)
        check_number(self.first_delay, "RetryPolicy.first_delay", minimum=0)
        check_number(self.max_delay, "RetryPolicy.max_delay", minimum=0)

    def budget(self, nbytes: int) -> float:
        """Seconds a call sending ``nbytes`` may take in all."""
        return float(self.deadline + nbytes / self.min_rate)


DEFAULT_RETRY = RetryPolicy()


def put_bytes(location: Location, data: bytes | bytearray | memoryview, *, retry: RetryPolicy = DEFAULT_RETRY) -> Location:
    """Publish ``data`` whole under ``location``: a reader sees the old object or the new one, never part of one.

    Locally an atomic write (parent folders are made); on a store one PUT (a
    multipart upload above 100 MiB on S3, completed only at the end).
    """
    data = bytes(data) if isinstance(data, memoryview) else data
    if location.is_local:
        path = Path(location.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, data)
        return location
    _with_retry(location, "upload", len(data), retry, lambda fs, kw: fs.pipe_file(location.path, data, **kw))
    return location


def put_file(local_path: str | os.PathLike, location: Location, *, retry: RetryPolicy = DEFAULT_RETRY,
             part_size: int | None = None, concurrency: int | None = None) -> Location:
    """Publish the file at ``local_path`` whole under ``location`` (see ``put_bytes``).

    s3fs sends a file below twice its part size (default 50 MiB) in one PUT and
    a larger one as a multipart upload of ``part_size`` parts, completed at the
    end and aborted on an error: an interrupted upload leaves no object. A
    single PUT holds the whole file in memory (about 1.5 times its size, with
    botocore's copies), a multipart upload ``concurrency`` parts (s3fs: 10 by
    default); ``part_size`` and ``concurrency`` are s3fs's (S3 only).
    """
    src = Path(local_path)
    if not src.is_file():
        raise RunNotFoundError(f"{src}: no such file to upload")
    if location.is_local:
        dst = Path(location.path)
        dst.parent.mkdir(parents=True, exist_ok=True)
        with open(src, "rb") as f:
            atomic_write(dst, lambda out: shutil.copyfileobj(f, out, 1 << 20))
        return location
    extra: dict[str, int] = {} if part_size is None else {"chunksize": check_int(part_size, "part_size", minimum=5 << 20)}
    if concurrency is not None:
        extra["max_concurrency"] = check_int(concurrency, "concurrency", minimum=1)
    size = src.stat().st_size
    _with_retry(location, "upload", size, retry, lambda fs, kw: fs.put_file(str(src), location.path, **extra, **kw))
    return location


def mkdir(location: Location) -> None:
    """Make the folder (and its parents) locally; nothing on an object store, where folders are key prefixes."""
    if location.is_local:
        os.makedirs(location.path, exist_ok=True)
    elif not _is_object_store(location):
        location.fs.makedirs(location.path, exist_ok=True)


def remove(location: Location, *, recursive: bool = False) -> None:
    """Remove a file (or, with ``recursive``, a folder and everything below); nothing there is not an error."""
    if location.is_local:
        path = Path(location.path)
        if path.is_dir() and not path.is_symlink():
            if not recursive:
                raise ConfigError(f"{location} is a folder: remove(..., recursive=True) removes it with all below")
            shutil.rmtree(path)
        else:
            try:
                path.unlink()
            except FileNotFoundError:
                pass
        return
    try:
        location.fs.rm(location.path, recursive=recursive)
    except FileNotFoundError:
        pass
    location.fs.invalidate_cache(location.path)


def _is_object_store(location: Location) -> bool:
    return location.protocol in ("s3", "s3a", "gs", "gcs", "abfs", "az", "oci", "oss")


def _with_retry(location: Location, what: str, nbytes: int, retry: RetryPolicy, call: Callable[[Any, dict], T]) -> T:
    """``call(fs, kw)`` until it succeeds, a non-transient error comes, or the policy's tries or time run out."""
    from fsspec.asyn import AsyncFileSystem  # type: ignore[import-untyped]

    fs = _uploader(location)
    budget = retry.budget(nbytes)
    start = time.monotonic()
    cancellable = isinstance(fs, AsyncFileSystem)
    attempt, delay = 0, retry.first_delay
    while True:
        attempt += 1
        remaining = max(budget - (time.monotonic() - start), 0.001)
        try:
            # sync() of an async file system takes timeout= and cancels the coroutine at it
            return call(fs, {"timeout": remaining} if cancellable else {})
        except Exception as exc:
            elapsed = time.monotonic() - start
            wait = min(delay, retry.max_delay) * random.uniform(0.5, 1.0)
            transient = is_transient(exc)
            if not transient or attempt >= retry.tries or elapsed + wait >= budget:
                raise _storage_error(location, what, exc, attempt, elapsed, transient=transient,
                                     timeout=remaining if cancellable else None) from exc
            time.sleep(wait)
            delay *= 2


#: Per-request retries left to s3fs inside one upload attempt: a part that fails once is sent again at once,
#: while a dead server fails the attempt in well under a second and RetryPolicy decides what happens next.
_REQUEST_RETRIES = 2


def _uploader(location: Location) -> Any:
    """The file system uploads go through: for S3, a sibling whose inner retry loops are short.

    s3fs retries each request 5 times and botocore each connection 5 times more,
    so against a dead endpoint one attempt takes seconds and ends in our time-out
    instead of the real cause. The sibling has botocore's retries off (unless the
    storage options set them) and s3fs's down to ``_REQUEST_RETRIES``; fsspec's
    instance cache makes it once per set of options.
    """
    fs = location.fs
    if location.protocol not in ("s3", "s3a"):
        return fs
    options = dict(fs.storage_options)
    config = dict(options.get("config_kwargs") or {})
    config.setdefault("retries", {"total_max_attempts": 1, "mode": "standard"})
    options["config_kwargs"] = config
    sibling = type(fs)(**options)
    sibling.retries = min(getattr(sibling, "retries", _REQUEST_RETRIES), _REQUEST_RETRIES)
    return sibling


def _storage_error(location: Location, what: str, exc: BaseException, attempts: int, elapsed: float, *,
                   transient: bool, timeout: float | None) -> StorageError:
    if isinstance(exc, TimeoutError) and not str(exc) and timeout is not None:
        cause = f"{type(exc).__name__}: no answer within {timeout:.1f} s"
    else:
        cause = redact(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
    if transient:
        tries = f"after {attempts} {'try' if attempts == 1 else 'tries'} in {elapsed:.1f} s"
        return StorageError(f"{what} to {location} failed {tries}: {cause}", str(location), attempts)
    return StorageError(f"{what} to {location} failed: {cause}", str(location), attempts)


#: Exception class names (anywhere in the MRO or the cause chain) that mean "try again": connection lost,
#: timeouts, a truncated response. Named, not imported, so this layer needs neither botocore nor aiohttp.
_TRANSIENT_NAMES = frozenset({
    "ConnectionError", "TimeoutError", "FSTimeoutError", "EndpointConnectionError", "ConnectTimeoutError",
    "ReadTimeoutError", "ConnectionClosedError", "ProxyConnectionError", "IncompleteRead", "HTTPClientError",
    "ResponseStreamingError", "ClientConnectionError", "ClientConnectorError", "ServerDisconnectedError",
    "ServerTimeoutError", "ClientPayloadError", "ClientOSError",
})
_TRANSIENT_CODES = frozenset({
    "SlowDown", "RequestTimeout", "RequestTimeTooSkewed", "InternalError", "ServiceUnavailable", "Throttling",
    "ThrottlingException", "RequestLimitExceeded", "TooManyRequests",
})
_PERMANENT = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError)


def is_transient(exc: BaseException) -> bool:
    """Whether an error from a store is worth another try (lost connection, timeout, 5xx, 429, throttling)."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, _PERMANENT):
            return False
        if any(c.__name__ in _TRANSIENT_NAMES for c in type(cur).__mro__):
            return True
        response = getattr(cur, "response", None)
        if isinstance(response, Mapping):
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            code = response.get("Error", {}).get("Code")
            if code in _TRANSIENT_CODES or (isinstance(status, int) and (status >= 500 or status == 429)):
                return True
        status = getattr(cur, "code", None) or getattr(cur, "status", None)  # gcsfs HttpError, aiohttp
        if isinstance(status, int) and (status >= 500 or status == 429):
            return True
        cur = cur.__cause__ or cur.__context__
    return False


# --------------------------------------------------------------------------- command line


#: Option names that hold a secret: refused on the command line, where shell history and ``ps`` would show them.
_SECRET_OPTIONS = frozenset({
    "key", "secret", "token", "password", "passwd", "session_token", "aws_access_key_id",
    "aws_secret_access_key", "aws_session_token", "access_key", "secret_key", "account_key", "sas_token",
    "client_secret", "credential", "credentials", "connection_string",
})
#: Token values that are modes, not secrets (gcsfs: ``token=anon``, ``token=google_default``...).
_TOKEN_MODES = frozenset({"anon", "google_default", "cloud", "browser", "cache"})
_OPTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def parse_storage_options(items: Iterable[str]) -> dict[str, Any]:
    """``--storage-option KEY=VALUE`` items as a dict; values are JSON literals when they parse, else strings.

    Credentials are refused: they come from the environment and config files.

    >>> parse_storage_options(["anon=true", "default_block_size=1048576", "profile=eval", 'client_kwargs={"region_name": "eu-west-1"}'])
    {'anon': True, 'default_block_size': 1048576, 'profile': 'eval', 'client_kwargs': {'region_name': 'eu-west-1'}}
    >>> parse_storage_options(["anon"])
    Traceback (most recent call last):
    ...
    exporter.errors.ConfigError: --storage-option must be KEY=VALUE (like anon=true), got 'anon'
    """
    out: dict[str, Any] = {}
    for item in items:
        if not isinstance(item, str) or "=" not in item:
            raise ConfigError(f"--storage-option must be KEY=VALUE (like anon=true), got {item!r}")
        key, text = item.split("=", 1)
        key = key.strip()
        if not _OPTION_NAME.fullmatch(key):
            raise ConfigError(f"--storage-option {item.split('=', 1)[0]!r}: the name must be an identifier (like anon, profile)")
        if key in out:
            raise ConfigError(f"--storage-option {key} given twice")
        if key.lower() in _SECRET_OPTIONS and not (key.lower() == "token" and text in _TOKEN_MODES):
            raise ConfigError(
                f"--storage-option {key}=...: credentials are not taken on the command line (shell history and ps "
                "show them); set them in the environment or the store's config file (AWS_ACCESS_KEY_ID/"
                "AWS_SECRET_ACCESS_KEY or ~/.aws/credentials, GOOGLE_APPLICATION_CREDENTIALS...)"
            )
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        out[key] = value
    return out
