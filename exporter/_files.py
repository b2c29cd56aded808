"""Where a file is written atomically: temp file in the same folder, fsync, rename, fsync the folder.

(Interim version: the full module with output staging and the LOGDIR lock replaces it.)
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

#: Part of every temp file name: readers skip names holding it.
TMP_MARK = ".tmp-"


def is_temp_name(name: str) -> bool:
    """Whether ``name`` is a temp file of ``atomic_write`` (hidden, holding ``TMP_MARK``)."""
    return name.startswith(".") and TMP_MARK in name


def fsync_dir(directory: str | os.PathLike) -> None:
    """Make a rename in ``directory`` durable where the platform allows it (not on Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, data: bytes | str | Callable[[BinaryIO], None], *, fsync: bool = True) -> Path:
    """Write ``data`` (bytes, text, or a function writing to a binary file) to ``path`` atomically."""
    final = Path(path)
    tmp = final.with_name(f".{final.name}{TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}")
    try:
        with open(tmp, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, final)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise
    if fsync:
        fsync_dir(final.parent)
    return final
