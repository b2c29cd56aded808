"""Where a file is written atomically, and where an export stages its output.

Three building blocks:

* ``atomic_write`` writes a hidden temp file in the destination folder, flushes
  and fsyncs it, renames it over the destination and fsyncs the folder. A
  reader sees the old file or the new one, never half of one; an error (or
  Ctrl-C) removes the temp and raises an ``OutputError`` naming the path.
* ``prepare_output_dir`` creates or checks the output folder before any work,
  with a real probe file, so a file in the way, a folder we may not write or a
  read-only mount is one line at the start instead of a traceback at the end.
* ``staging_dir`` / ``remove_stale`` / ``move_into_place``: an export writes into
  a hidden staging folder *inside* the output folder and renames the finished
  files up into it. Inside, not beside: the rename then never crosses file
  systems, even when the output folder is a mount point, and a parent folder we
  may not write does not matter.

TensorBoard and hidden names
----------------------------
TensorBoard (the Python loader, ``io_wrapper.IsTensorFlowEventsFile``, and the
Rust data server, ``disk_logdir.rs``) reads every file whose *name contains*
``tfevents``, in every subfolder of ``--logdir``, hidden or not, and makes each
folder holding one a run. So:

* no temp or staging name made here contains ``tfevents``: ``atomic_write``'s
  temp for ``events.out.tfevents.1.host`` is ``.events.out.tf-events.1.host.tmp-<pid>-<hex>``;
* a staging folder (``.summary-exporter-tmp-<pid>-<hex>``) must never hold a file
  named ``*tfevents*`` either, or TensorBoard shows the folder as a run (and the
  Python loader keeps showing it after it is gone). Files in staging are named
  ``staged_name(final_name)`` and get their real name only from
  ``move_into_place``, the rename into the output folder.

>>> out = prepare_output_dir("tb/eval")                                  # doctest: +SKIP
>>> atomic_write(out / "notes.txt", "hello")                             # doctest: +SKIP
PosixPath('tb/eval/notes.txt')
"""

from __future__ import annotations

import errno
import logging
import os
import re
import secrets
import shutil
import stat
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

from .errors import OutputError

log = logging.getLogger(__name__)

#: Every temp file made here has this in its (hidden) name: ``.<name>.tmp-<pid>-<hex>``.
TMP_MARK = ".tmp-"
#: Staging folders inside an output folder: ``.summary-exporter-tmp-<pid>-<hex>``.
STAGING_PREFIX = ".summary-exporter-tmp-"
#: What TensorBoard looks for in a file name (a substring test, case-sensitive).
TFEVENTS = "tfevents"
_DEFUSED = "tf-events"  # cannot form "tfevents" with its neighbours: the "-" sits inside any overlap

_NAME_MAX = 255  # bytes, ext4/xfs/tmpfs/NFS
_STALE_TEMP = re.compile(r"\..+" + re.escape(TMP_MARK) + r"\d+(-[0-9a-f]+)?")
_STALE_STAGING = re.compile(re.escape(STAGING_PREFIX) + r"\d+-[0-9a-f]+")

Data = bytes | bytearray | memoryview | str | Callable[[BinaryIO], None]


def is_temp_name(name: str) -> bool:
    """Whether ``name`` is a temp file or staging folder of a writer, which readers skip.

    >>> is_temp_name(".shard-00001.npz.tmp-123-9f2a"), is_temp_name("shard-00001.npz")
    (True, False)
    """
    return name.startswith(STAGING_PREFIX) or (name.startswith(".") and TMP_MARK in name)


def staged_name(name: str) -> str:
    """The name a file has in a staging folder: ``name`` with ``tfevents`` spelt so TensorBoard skips it.

    >>> staged_name("events.out.tfevents.1764618000.host.0000.summary-exporter")
    'events.out.tf-events.1764618000.host.0000.summary-exporter'
    """
    return name.replace(TFEVENTS, _DEFUSED)


def _temp_path(path: Path) -> Path:
    """A fresh hidden temp name beside ``path``, never matching ``*tfevents*``, within NAME_MAX."""
    tail = f"{TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}"
    stem = "." + staged_name(path.name)
    while len(os.fsencode(stem + tail)) > _NAME_MAX:
        stem = stem[:-1]
    return path.with_name(stem + tail)


def output_error(exc: OSError, path: str | os.PathLike) -> OutputError:
    """``exc`` as an OutputError whose one-line message names ``path``, keeping errno and strerror."""
    if isinstance(exc, OutputError):
        return exc
    reason = exc.strerror or str(exc) or type(exc).__name__
    return OutputError(f"{reason}: {os.fspath(path)}", path, exc.errno, exc.strerror)


def _about(exc: OSError, *paths: Path) -> bool:
    """Whether ``exc`` is about one of ``paths`` (a write error names no file: it is about ours)."""
    if exc.filename is None:
        return True
    return os.fspath(exc.filename) in {os.fspath(p) for p in paths}


def atomic_write(path: str | os.PathLike, data: Data, *, fsync: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``path``. The folder must exist.

    ``data`` is bytes, a str (written as UTF-8) or a function that writes into
    the open binary file. Writes go to ``.<name>.tmp-<pid>-<hex>`` in the same
    folder, which is flushed, fsynced (unless ``fsync=False``) and renamed over
    ``path``; then the folder is fsynced so the rename survives a power cut. On
    any error, KeyboardInterrupt included, the temp is removed; OS errors come
    out as ``OutputError("No space left on device: <path>")``.

    >>> atomic_write("tb/eval/.summary-exporter-state.json", '{"version": 1}')  # doctest: +SKIP
    >>> atomic_write("out.bin", lambda f: f.write(b"..."))                      # doctest: +SKIP
    """
    path = Path(path)
    tmp = _temp_path(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    except OSError as exc:
        raise output_error(exc, path) from exc
    try:
        with open(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError) and not isinstance(exc, OutputError) and _about(exc, tmp, path):
            raise output_error(exc, path) from exc
        raise
    if fsync:
        fsync_dir(path.parent)
    return path


def fsync_dir(path: str | os.PathLike) -> None:
    """fsync a folder so renames and creations in it are durable.

    Quietly does nothing where folders cannot be opened or fsynced (Windows, some
    network and FUSE file systems); a real I/O error is an OutputError.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EBADF, errno.EROFS):
            raise output_error(exc, path) from exc
    finally:
        os.close(fd)


def move_into_place(src: str | os.PathLike, dst: str | os.PathLike, *, fsync: bool = True) -> Path:
    """Rename a finished file (from a staging folder) to ``dst`` and fsync ``dst``'s folder; returns ``dst``.

    Both must be on one file system, which a staging folder inside the output
    folder guarantees. Errors are OutputErrors naming ``dst``.
    """
    dst = Path(dst)
    try:
        os.replace(src, dst)
    except OSError as exc:
        raise output_error(exc, dst) from exc
    if fsync:
        fsync_dir(dst.parent)
    return dst


def staging_dir(outdir: str | os.PathLike) -> Path:
    """Make a fresh hidden staging folder ``outdir/.summary-exporter-tmp-<pid>-<hex>/`` (mode 0700).

    Name the files in it with ``staged_name`` and install them with
    ``move_into_place``; remove the folder in a ``finally:``. Leftovers of a
    killed export are removed by the next one's ``remove_stale``.
    """
    path = Path(outdir) / f"{STAGING_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
    try:
        path.mkdir(mode=0o700)
    except OSError as exc:
        raise output_error(exc, path) from exc
    return path


def remove_stale(outdir: str | os.PathLike, keep: Iterable[str | os.PathLike] = ()) -> list[Path]:
    """Remove staging folders and temp files that earlier exports left in ``outdir``; returns what went.

    Call it while holding ``OutputLock(outdir)``: then no other export is
    writing there, so every staging folder and temp not in ``keep`` (names or
    paths, e.g. our own staging folder) is a leftover of a dead one. Only names
    this package makes are touched (``.summary-exporter-tmp-<pid>-<hex>``,
    ``.<name>.tmp-<pid>[-<hex>]``), at the top level. What cannot be removed is
    logged and left.
    """
    outdir = Path(outdir)
    kept = {Path(k).name for k in keep}
    removed: list[Path] = []
    try:
        entries = list(os.scandir(outdir))
    except FileNotFoundError:
        return removed
    except OSError as exc:
        raise output_error(exc, outdir) from exc
    for entry in entries:
        name = entry.name
        if name in kept or not (_STALE_STAGING.fullmatch(name) or _STALE_TEMP.fullmatch(name)):
            continue
        path = Path(entry.path)
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path)
            else:
                path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("could not remove a leftover of an earlier export: %s", output_error(exc, path))
            continue
        removed.append(path)
    return removed


def prepare_output_dir(path: str | os.PathLike) -> Path:
    """Create ``path`` (with parents) or check it, and prove we can write there; returns ``path``.

    Refuses with a one-line OutputError: a file where the folder should be
    ("LOGDIR x is a file, not a folder"), a folder we may not write
    ("permission denied: cannot write to x"), a read-only file system. The proof
    is a real probe file created and removed (``os.access`` does not know about
    read-only mounts, ACLs or root squashing on NFS). A mount point is fine, and
    so is an existing folder inside a parent we may not write.

    >>> prepare_output_dir("tb/eval")                                    # doctest: +SKIP
    PosixPath('tb/eval')
    """
    path = Path(path)
    kind = _kind(path)
    if kind in ("a file", "a broken symbolic link"):
        raise OutputError(f"LOGDIR {path} is {kind}, not a folder", path, errno.ENOTDIR)
    if kind != "folder":
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as exc:
            raise _mkdir_error(exc, path) from exc
    probe = _temp_path(path / ".summary-exporter-probe")
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise _cannot_write(exc, path, "write to") from exc
    os.close(fd)
    try:
        os.unlink(probe)
    except OSError as exc:  # created but not removable: someone else's sticky folder, or worse
        raise _cannot_write(exc, path, "remove files in") from exc
    return path


def _kind(path: Path) -> str | None:
    """"folder", "a file", "a broken symbolic link", None (absent) or "unknown" (we may not look)."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return "a broken symbolic link" if os.path.islink(path) else None
    except OSError:
        return "unknown"
    return "folder" if stat.S_ISDIR(st.st_mode) else "a file"


def _cannot_write(exc: OSError, path: Path, what: str) -> OutputError:
    """A one-line OutputError for a failed probe in ``path``."""
    reasons = {errno.EACCES: "permission denied", errno.EPERM: "permission denied",
               errno.EROFS: "read-only file system"}
    reason = reasons.get(exc.errno or 0, (exc.strerror or str(exc)).lower())
    return OutputError(f"{reason}: cannot {what} {path}", path, exc.errno, exc.strerror)


def _mkdir_error(exc: OSError, path: Path) -> OutputError:
    """Why ``path`` could not be created, naming the ancestor in the way or the one we may not write."""
    for p in path.parents:
        kind = _kind(p)
        if kind in ("a file", "a broken symbolic link"):
            return OutputError(f"cannot create LOGDIR {path}: {p} is {kind}, not a folder", path, exc.errno,
                               exc.strerror)
        if kind == "folder":
            break
    else:
        p = None
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS) and p is not None:
        reason = "read-only file system" if exc.errno == errno.EROFS else "permission denied"
        return OutputError(f"{reason}: cannot create {path} in {p}", path, exc.errno, exc.strerror)
    return output_error(exc, path)
