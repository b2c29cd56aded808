"""Worker processes that never outlive the export, and signals that unwind it cleanly.

* ``worker_init`` is the ``initializer=`` of the export's ``ProcessPoolExecutor``:
  a worker dies with its parent, even a SIGKILLed one, and leaves Ctrl-C to it.
* ``shutdown_now(pool)`` stops a pool at once: no future left to run, no worker
  left alive, no zombie.
* ``exit_on_signals()`` turns SIGTERM and SIGHUP into ``Terminated``, a
  ``SystemExit`` with status 128 + signal number, so ``finally:`` blocks remove
  staging folders and release locks as they do for Ctrl-C.
* ``signals_held()`` blocks those signals (and SIGINT) while workers are
  forked, so none lands in a worker before ``worker_init`` set its handlers.
* ``heap_arrays()`` undoes, for an export, what Dask's ``MALLOC_TRIM_THRESHOLD_``
  does to glibc's malloc (every image-sized array a fresh, page-faulted mmap).

>>> pool = ProcessPoolExecutor(4, initializer=worker_init)                 # doctest: +SKIP
>>> with exit_on_signals():                                               # doctest: +SKIP
...     try:
...         results = [f.result() for f in [pool.submit(work, u) for u in units]]
...     finally:
...         shutdown_now(pool)
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

#: ``prctl`` option: the signal the kernel sends this process when its parent dies (linux/prctl.h).
PR_SET_PDEATHSIG = 1
#: What a worker gets when its parent dies: nothing in a worker needs cleaning up, and it cannot be caught.
DEATH_SIGNAL = signal.SIGKILL if hasattr(signal, "SIGKILL") else signal.SIGTERM

_ORPHAN_EXIT = 1  # a worker's exit status when it finds its parent gone (nobody is left to read it)


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (a zombie counts as existing)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, as another user
        return True
    return True


# --------------------------------------------------------------------------- workers


def worker_init(parent_pid: int | None = None, *, poll: float = 1.0) -> None:
    """Make this worker process die with its parent and ignore Ctrl-C; for ``ProcessPoolExecutor(initializer=)``.

    On Linux the kernel kills the worker the moment its parent dies
    (``prctl(PR_SET_PDEATHSIG, SIGKILL)``); right after that call the worker
    checks its parent is still the expected one (``parent_pid``, else the pid
    multiprocessing recorded when it started the worker), since a parent that
    died just before the call would never trigger it. Everywhere, a daemon
    thread also polls the parent every ``poll`` seconds and exits the worker when
    it is gone. SIGINT is ignored (the parent handles Ctrl-C and shuts the pool
    down); SIGTERM and SIGHUP get their default action back (a ``fork`` copies
    the parent's ``exit_on_signals`` handlers, which would let a worker survive
    ``shutdown_now``).

    Linux sends the death signal when the *thread* that started the worker
    exits, not only the process: create the pool and submit to it from a thread
    that outlives the pool (the main thread), or workers die early and the pool
    breaks. Under ``forkserver`` the worker's parent is the fork server, which
    exits when the main process dies; the thread then watches the main process.
    """
    _worker_init(parent_pid, poll, deathsig=True)


def _worker_init(parent_pid: int | None, poll: float, *, deathsig: bool) -> None:
    """``worker_init``; ``deathsig=False`` leaves only the polling thread (how tests check it alone)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for sig in _terminating_signals():
        signal.signal(sig, signal.SIG_DFL)
    if hasattr(signal, "pthread_sigmask"):  # held back while the parent forked us (signals_held): let them in
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _held_signals())
    expected = parent_pid if parent_pid is not None else _recorded_parent()
    if deathsig:
        _set_death_signal(DEATH_SIGNAL)
    ppid = os.getppid()
    if expected is not None and ppid != expected and not pid_alive(expected):
        os._exit(_ORPHAN_EXIT)  # the parent died before prctl: nobody would ever kill us
    also = expected if expected is not None and expected != ppid else None
    threading.Thread(
        target=_watch_parent, args=(ppid, also, poll), name="summary-exporter-parent-watch", daemon=True
    ).start()


def _recorded_parent() -> int | None:
    """The pid of the process that created this multiprocessing worker, as recorded before it started."""
    mp = sys.modules.get("multiprocessing")
    parent = mp.parent_process() if mp is not None else None
    return parent.pid if parent is not None else None


def _set_death_signal(sig: int) -> bool:
    """``prctl(PR_SET_PDEATHSIG, sig)`` through libc; False where that does not exist."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes  # here, not at the top: the command line imports this module before it handles Ctrl-C

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (ImportError, OSError, AttributeError):
        return False
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0


def _watch_parent(ppid: int, also: int | None, poll: float) -> None:
    """Exit this process once it is re-parented (its parent died) or once ``also`` is gone."""
    while True:
        time.sleep(poll)
        if os.getppid() != ppid or (also is not None and not pid_alive(also)):
            os._exit(_ORPHAN_EXIT)


def shutdown_now(pool: Any, *, timeout: float = 5.0) -> None:
    """Stop a ``ProcessPoolExecutor`` at once: cancel what has not started, kill the workers, reap them.

    Pending futures are cancelled, running ones end with ``BrokenProcessPool``.
    Workers get SIGTERM, and SIGKILL if still there after ``timeout`` seconds;
    then they and the pool's manager thread are joined, so nothing is left
    running and no zombie stays behind. Uses the pool's private ``_processes``
    and ``_executor_manager_thread`` where they exist (CPython 3.10 to 3.14);
    without them it is ``shutdown(wait=False, cancel_futures=True)``.
    """
    processes = getattr(pool, "_processes", None)  # the dict itself: its manager thread adds and removes
    manager = getattr(pool, "_executor_manager_thread", None)
    pool.shutdown(wait=False, cancel_futures=True)
    deadline = time.monotonic() + timeout
    seen = {id(p): p for p in _snapshot(processes)}
    for p in seen.values():
        _signal_process(p, kill=False)
    left = _wait_exited(seen.values(), deadline)
    late = [p for p in _snapshot(processes) if id(p) not in seen]  # a replacement the manager started meanwhile
    seen.update((id(p), p) for p in late)
    if left or late:
        for p in seen.values():
            _signal_process(p, kill=True)
        _wait_exited(seen.values(), time.monotonic() + 1.0)
    for p in seen.values():
        with contextlib.suppress(Exception):
            p.join(max(0.1, deadline - time.monotonic()))
    if isinstance(manager, threading.Thread) and manager.is_alive() and manager is not threading.current_thread():
        manager.join(max(0.1, deadline - time.monotonic()))


def _snapshot(processes: Any) -> list[Any]:
    """The pool's worker processes right now (the dict may change under us)."""
    for _ in range(3):
        try:
            return list(dict(processes or {}).values())
        except RuntimeError:  # changed size during the copy
            continue
    return []


def _signal_process(p: Any, *, kill: bool) -> None:
    """SIGTERM (or SIGKILL) a multiprocessing.Process that has not exited; never one already reaped."""
    with contextlib.suppress(Exception):  # ProcessLookupError, closed process (ValueError)...
        if p.exitcode is None:
            p.kill() if kill else p.terminate()


def _wait_exited(processes: Iterable[Any], deadline: float) -> list[Any]:
    """Wait until every process has exited (its sentinel fires) or ``deadline``; those still running."""
    from multiprocessing.connection import wait

    running = {}
    for p in processes:
        try:
            running[p.sentinel] = p
        except (ValueError, AttributeError):  # closed, or never started
            continue
    while running:
        ready = wait(list(running), max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        for sentinel in ready:
            running.pop(sentinel, None)
    return list(running.values())


# --------------------------------------------------------------------------- signals


class Terminated(SystemExit):
    """SIGTERM or SIGHUP arrived inside ``exit_on_signals``; exits with status 128 + ``signum`` if not caught.

    A ``SystemExit``, so ``except Exception`` does not swallow it, ``finally:``
    blocks run, and an uncaught one ends the process quietly with 143 (SIGTERM)
    or 129 (SIGHUP), what a shell reports for a process killed by that signal.
    """

    def __init__(self, signum: int):
        super().__init__(128 + signum)
        self.signum = signum

    def __str__(self) -> str:
        return f"terminated by {signal.Signals(self.signum).name}"

    def __reduce__(self):
        return (type(self), (self.signum,))


def _terminating_signals() -> list[signal.Signals]:
    return [s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s is not None]


class Caught:
    """What ``exit_on_signals`` caught: the number of the first signal, or None."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def exception(self) -> BaseException:
        """What the signal raises: ``KeyboardInterrupt`` for SIGINT, else ``Terminated``."""
        assert self.signum is not None
        return KeyboardInterrupt() if self.signum == signal.SIGINT else Terminated(self.signum)

    def __repr__(self) -> str:
        return f"Caught(signum={self.signum!r})"


_ACTIVE: list[Caught] = []  # the blocks of exit_on_signals now running (main thread), innermost last


def raise_if_signalled() -> None:
    """Raise again the exception of a signal ``exit_on_signals`` caught, if it was swallowed on its way up.

    A handler's exception surfaces wherever the interpreter happens to be:
    inside a weakref callback or a C extension that clears errors, it is lost
    and the work would go on. Long loops call this at each step (never from a
    ``finally:``), so Ctrl-C and SIGTERM stop them all the same.
    """
    for caught in _ACTIVE:
        if caught.signum is not None:
            raise caught.exception()


@contextlib.contextmanager
def exit_on_signals(*, interrupt: bool = False) -> Iterator[Caught]:
    """Inside the block, SIGTERM and SIGHUP raise ``Terminated``; the previous handlers come back after it.

    With ``interrupt=True`` SIGINT is handled too, raising ``KeyboardInterrupt``
    as Python's own handler does (only where that handler is in place). Only
    the first signal raises: more of them while the block unwinds are ignored,
    so they cannot cut a cleanup short (SIGKILL still can). The block gets a
    ``Caught`` saying which signal that was: an exception raised by a handler
    can come out as another one (an import of a C extension turns it into an
    ImportError), or be lost (in a weakref callback, reported as "Exception
    ignored", which is kept quiet here), and ``Caught`` still tells;
    ``raise_if_signalled`` raises it again. A signal that is ignored when the
    block starts stays ignored (``nohup`` ignores SIGHUP). Python runs signal
    handlers in the main thread only: elsewhere this does nothing.
    """
    caught = Caught()
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return

    def handler(signum: int, frame: Any) -> None:
        if caught.signum is None:
            caught.signum = signum
            raise caught.exception()

    def unraisable(info: Any) -> None:
        # "Exception ignored in ...": our signal's exception, lost in a callback; raise_if_signalled raises it again
        if not (caught.signum is not None and isinstance(info.exc_value, (KeyboardInterrupt, Terminated))):
            previous_hook(info)

    previous: dict[int, Any] = {}
    previous_hook = sys.unraisablehook
    _ACTIVE.append(caught)
    sys.unraisablehook = unraisable
    try:
        for sig in _terminating_signals():
            if signal.getsignal(sig) is not signal.SIG_IGN:
                previous[sig] = signal.signal(sig, handler)
        if interrupt and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            previous[signal.SIGINT] = signal.signal(signal.SIGINT, handler)
        yield caught
    finally:
        for num, old in previous.items():
            signal.signal(num, old if old is not None else signal.SIG_DFL)  # None: set outside Python
        sys.unraisablehook = previous_hook
        _ACTIVE.remove(caught)


def _held_signals() -> set[int]:
    return {signal.SIGINT, *_terminating_signals()}


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT, SIGTERM and SIGHUP back (blocked, delivered when the block ends); for starting workers.

    A forked worker starts with its parent's Python handlers: a signal sent to
    the whole process group (a terminal's Ctrl-C, systemd's SIGTERM) landing
    before ``worker_init`` replaced them would raise the parent's exception
    inside the half-made worker. Blocked, it waits: ``worker_init`` sets the
    worker's own handlers, then lets it in. Does nothing where there is no
    ``pthread_sigmask`` or outside the main thread.
    """
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _held_signals())
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


#: Test hook: ``SUMMARY_EXPORTER_KILL_AT=<point>`` SIGKILLs the process when it reaches that point.
KILL_AT_ENV = "SUMMARY_EXPORTER_KILL_AT"


def fault_point(name: str) -> None:
    """Die here, by SIGKILL, if ``$SUMMARY_EXPORTER_KILL_AT`` names this point (how tests cut every crash window)."""
    if os.environ.get(KILL_AT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


# --------------------------------------------------------------------------- malloc on Dask workers

#: glibc's ``mallopt`` parameters, and the ceiling glibc's own dynamic mmap threshold grows to on 64-bit
#: (DEFAULT_MMAP_THRESHOLD_MAX; the trim threshold follows it at twice that): what an export gets from
#: glibc when nobody set a threshold.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_HEAP_UP_TO = 32 << 20
#: The environment variables that switch glibc's dynamic mmap threshold off, and the fixed one it then keeps.
_MALLOC_ENV = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")
_FIXED_DEFAULT = 128 << 10
_heap_lock = threading.Lock()
_heap_users = 0


@contextlib.contextmanager
def heap_arrays() -> Iterator[None]:
    """Inside the block, glibc serves allocations up to 32 MiB from the heap, as it does by default.

    Dask's nanny starts its workers with ``MALLOC_TRIM_THRESHOLD_=65536`` (so
    they give memory back to the system). Setting any malloc threshold turns
    glibc's dynamic mmap threshold off: every array over 128 KiB, an image
    among them, becomes a fresh mmap, zero-filled page by page and unmapped
    when freed (and with a 64 KiB trim threshold the heap's top goes the same
    way), so an export ran 2-3 times slower on a Dask worker than in a plain
    process. The block sets both thresholds to where glibc's dynamic ones would
    go and puts the fixed ones back after, when the heap's free top goes back
    to the system. Nested and concurrent blocks (exports in threads of one
    worker) share one setting. Does nothing unless such a variable is set, and
    outside glibc.
    """
    global _heap_users
    mallopt = _mallopt() if any(name in os.environ for name in _MALLOC_ENV) else None
    if mallopt is None:
        yield
        return
    with _heap_lock:
        if _heap_users == 0:
            mallopt(_M_MMAP_THRESHOLD, _HEAP_UP_TO)
            mallopt(_M_TRIM_THRESHOLD, 2 * _HEAP_UP_TO)
        _heap_users += 1
    try:
        yield
    finally:
        with _heap_lock:
            _heap_users -= 1
            if _heap_users == 0:
                mallopt(_M_MMAP_THRESHOLD, _fixed("MALLOC_MMAP_THRESHOLD_"))
                mallopt(_M_TRIM_THRESHOLD, _fixed("MALLOC_TRIM_THRESHOLD_"))


def _fixed(name: str) -> int:
    """The threshold the environment fixed (glibc's 128 KiB default for one it left alone)."""
    try:
        return int(os.environ.get(name, _FIXED_DEFAULT))
    except ValueError:
        return _FIXED_DEFAULT


def _mallopt() -> Any:
    """glibc's ``mallopt``, or None (another C library, or no ctypes)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        if not hasattr(libc, "gnu_get_libc_version"):
            return None  # musl has no mallopt thresholds worth setting
        mallopt = libc.mallopt
    except (ImportError, OSError, AttributeError):
        return None
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return mallopt
