"""One summary-exporter at a time per output folder: an advisory ``flock`` on ``LOGDIR/.summary-exporter.lock``.

The holder writes who it is into the lock file (pid, host, since when, command
line), so a second export can say who is in the way::

    error: another summary-exporter (pid 123 on gpu7, since 2026-12-01T19:40:00Z) is writing tb/eval;
    wait for it with --wait

The kernel drops a ``flock`` when the last descriptor of it closes, so a
holder that dies, even by SIGKILL, frees the folder at once: there is no stale
lock to break and no pid to trust. The lock file is never deleted (deleting
it would let two processes lock two different files of the same name); it is
emptied on release.

Forked children (``ProcessPoolExecutor`` workers under ``fork``) would share
the lock's descriptor and keep the folder locked after the holder died, or
release it from under the holder with an unlock: so a forked child closes its
copy at once (``os.register_at_fork``). ``spawn``/``forkserver`` workers and
``subprocess`` children never get it.

Network file systems: on Linux NFS clients (2.6.12 and later) ``flock`` is
emulated with whole-file POSIX (``fcntl``) locks that the server arbitrates, so
two hosts exclude each other as long as the share is mounted with locking (not
``nolock``, not ``local_lock=flock``/``all``, which make locks local to one
client). A holder whose host crashes or loses the network keeps the lock until
the server's lease runs out (NFSv4: about 90 s). Some file systems (some FUSE
and SMB mounts) refuse locks: that is an OutputError naming the lock file. The
owner's pid means something only on its own host, so the message names the host.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import json
import numbers
import os
import shlex
import socket
import sys
import time
import weakref
from datetime import datetime, timezone
from pathlib import Path

from ._checks import check_number
from ._files import output_error
from ._procs import pid_alive
from .errors import ConfigError, LogdirBusyError, OutputError

LOCK_FILE = ".summary-exporter.lock"

_POLL_START = 0.05  # seconds between tries while waiting, doubling up to _POLL_MAX
_POLL_MAX = 0.5


@dataclasses.dataclass(frozen=True)
class LockOwner:
    """Who holds (or held) an output folder's lock, as written into the lock file."""

    pid: int | None
    host: str
    since: str  # ISO 8601, UTC, e.g. 2026-12-01T19:40:00Z
    command: str

    @classmethod
    def me(cls) -> LockOwner:
        """This process, now."""
        argv = getattr(sys, "orig_argv", None) or sys.argv
        return cls(
            pid=os.getpid(),
            host=socket.gethostname() or "unknown host",
            since=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            command=shlex.join(argv)[:2000],
        )

    @classmethod
    def parse(cls, text: str) -> LockOwner | None:
        """The owner recorded in a lock file's text, or None when it is empty or not ours."""
        try:
            data = json.loads(text)
            pid = data.get("pid")
            return cls(
                pid=int(pid) if pid is not None else None,
                host=str(data.get("host", "")),
                since=str(data.get("since", "")),
                command=str(data.get("command", "")),
            )
        except (ValueError, TypeError, AttributeError):
            return None

    def to_text(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True) + "\n"

    def describe(self) -> str:
        """``pid 123 on gpu7, since 2026-12-01T19:40:00Z``."""
        text = f"pid {self.pid} on {self.host or 'unknown host'}"
        if self.since:
            text += f", since {self.since}"
        if self.pid is not None and self.host == socket.gethostname() and not pid_alive(self.pid):
            text += f"; pid {self.pid} has exited, a process it started still holds the lock"
        return text


_HELD: weakref.WeakSet[OutputLock] = weakref.WeakSet()


def _forget_in_child() -> None:
    """After fork: close the child's copies of held locks, so only the parent holds them."""
    for lock in list(_HELD):
        fd, lock._fd = lock._fd, None
        if fd is not None:
            try:
                os.close(fd)  # close, never LOCK_UN: an unlock would release the parent's lock too
            except OSError:
                pass
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)


class OutputLock:
    """Exclusive advisory lock of an output folder, for the length of a ``with`` block.

    ``wait=False`` fails at once with a LogdirBusyError naming the holder;
    ``wait=True`` waits as long as it takes; a number waits that many seconds,
    then fails. The folder must exist (``prepare_output_dir``). Not re-entrant:
    a second ``OutputLock`` on the same folder conflicts even in one process.

    >>> with OutputLock("tb/eval", wait=30.0) as lock:                    # doctest: +SKIP
    ...     remove_stale(lock.outdir, keep=[staging])
    """

    def __init__(self, outdir: str | os.PathLike, *, wait: bool | float = False):
        self.outdir = Path(outdir)
        self.path = self.outdir / LOCK_FILE
        if not isinstance(wait, numbers.Real):
            raise ConfigError(f"wait must be True, False or a number of seconds >= 0, got {wait!r}")
        self.wait: bool | float = wait if isinstance(wait, bool) else check_number(wait, "wait", minimum=0)
        self.owner: LockOwner | None = None
        self._fd: int | None = None

    @property
    def locked(self) -> bool:
        return self._fd is not None

    def acquire(self) -> OutputLock:
        """Take the lock (waiting as ``wait`` says) and record this process as its owner."""
        if self._fd is not None:
            raise OutputError(f"{self.path}: this OutputLock is already held", self.path, errno.EDEADLK)
        fd, writable = self._open()
        try:
            self._lock(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        _HELD.add(self)
        self.owner = LockOwner.me()
        if writable:
            try:
                os.ftruncate(fd, 0)
                os.pwrite(fd, self.owner.to_text().encode(), 0)
            except OSError:
                pass  # the lock holds without the note; only the busy message gets vaguer
        return self

    def release(self) -> None:
        """Empty the owner note and drop the lock; harmless when not held."""
        fd, self._fd = self._fd, None
        _HELD.discard(self)
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass
        os.close(fd)  # closing our only descriptor releases the flock

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"OutputLock('{self.outdir}', wait={self.wait!r}, locked={self.locked})"

    def _open(self) -> tuple[int, bool]:
        """The lock file, opened read-write (created if need be) or, if it is someone else's, read-only."""
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666), True
        except PermissionError as exc:
            try:
                return os.open(self.path, os.O_RDONLY), False  # flock needs no write access
            except OSError:
                raise output_error(exc, self.path) from exc
        except OSError as exc:
            raise output_error(exc, self.path) from exc

    def _lock(self, fd: int) -> None:
        deadline = None if self.wait is True else time.monotonic() + float(self.wait)
        pause = _POLL_START
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                pass
            except OSError as exc:
                raise OutputError(
                    f"cannot lock {self.path}: {exc.strerror or exc} (does this file system support locks?)",
                    self.path, exc.errno, exc.strerror,
                ) from exc
            if deadline is not None and time.monotonic() >= deadline:
                raise self._busy(fd)
            time.sleep(pause if deadline is None else max(0.0, min(pause, deadline - time.monotonic())))
            pause = min(pause * 2, _POLL_MAX)

    def _busy(self, fd: int) -> LogdirBusyError:
        try:
            owner = LockOwner.parse(os.pread(fd, 65536, 0).decode("utf-8", "replace"))
        except OSError:
            owner = None
        who = owner.describe() if owner else "owner unknown"
        if self.wait is False or self.wait == 0:
            message = f"another summary-exporter ({who}) is writing {self.outdir}; wait for it with --wait"
        else:
            message = (f"another summary-exporter ({who}) is still writing {self.outdir} after waiting "
                       f"{float(self.wait):g} s; wait longer with --wait")
        return LogdirBusyError(message, self.path, errno.EWOULDBLOCK, owner=owner)
