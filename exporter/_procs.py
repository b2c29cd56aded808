"""Worker processes that never outlive the export, and signals that unwind it cleanly.

* ``worker_init`` is the ``initializer=`` of the export's ``ProcessPoolExecutor``:
  a worker dies with its parent, even a SIGKILLed one, and leaves Ctrl-C to it.
* ``shutdown_now(pool)`` stops a pool at once: no future left to run, no worker
  left alive, no zombie.
* ``exit_on_signals()`` turns SIGTERM and SIGHUP into ``Terminated``, a
  ``SystemExit`` with status 128 + signal number, so ``finally:`` blocks remove
  staging folders and release locks as they do for Ctrl-C.

>>> pool = ProcessPoolExecutor(4, initializer=worker_init)                 # doctest: +SKIP
>>> with exit_on_signals():                                               # doctest: +SKIP
...     try:
...         results = [f.result() for f in [pool.submit(work, u) for u in units]]
...     finally:
...         shutdown_now(pool)
"""

from __future__ import annotations

import contextlib
import ctypes
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
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
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


@contextlib.contextmanager
def exit_on_signals() -> Iterator[None]:
    """Inside the block, SIGTERM and SIGHUP raise ``Terminated``; the previous handlers come back after it.

    Only the first signal raises: more of them while the block unwinds are
    ignored, so they cannot cut a cleanup short (SIGKILL still can). A signal
    that is ignored when the block starts stays ignored (``nohup`` ignores
    SIGHUP). Python runs signal handlers in the main thread only: elsewhere this
    does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    raised = False

    def handler(signum: int, frame: Any) -> None:
        nonlocal raised
        if not raised:
            raised = True
            raise Terminated(signum)

    previous: dict[int, Any] = {}
    try:
        for sig in _terminating_signals():
            if signal.getsignal(sig) is not signal.SIG_IGN:
                previous[sig] = signal.signal(sig, handler)
        yield
    finally:
        for num, old in previous.items():
            signal.signal(num, old if old is not None else signal.SIG_DFL)  # None: set outside Python


#: Test hook: ``SUMMARY_EXPORTER_KILL_AT=<point>`` SIGKILLs the process when it reaches that point.
KILL_AT_ENV = "SUMMARY_EXPORTER_KILL_AT"


def fault_point(name: str) -> None:
    """Die here, by SIGKILL, if ``$SUMMARY_EXPORTER_KILL_AT`` names this point (how tests cut every crash window)."""
    if os.environ.get(KILL_AT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
