"""Workers die with their parent, shutdown_now leaves nothing running, SIGTERM/SIGHUP unwind through finally.

Real processes and real signals throughout: a parent process SIGKILLed under its
pool, SIGINT and SIGTERM sent to workers, SIGTERM and SIGHUP sent to a CLI-like
process. A worker counts as gone once /proc has no running process of that pid
(an orphan nobody reaps stays a zombie here: PID 1 of a container may not reap).
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import exporter
from exporter._procs import Terminated, exit_on_signals, pid_alive, shutdown_now, worker_init

SOURCE = Path(exporter.__file__).resolve().parents[1]


def _popen(code: str, *args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env={**os.environ, "PYTHONPATH": str(SOURCE)}, cwd=SOURCE, **kw,
    )


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (not absent, not a zombie)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def _wait_gone(pids, seconds: float) -> list[int]:
    """Poll /proc until none of ``pids`` runs or ``seconds`` pass; the ones still running."""
    deadline = time.monotonic() + seconds
    while True:
        left = [p for p in pids if _running(p)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


@pytest.fixture
def stray():
    """Pids a test may leave behind on failure: killed afterwards."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# --------------------------------------------------------------------------- workers die with their parent

PARENT = """
import functools, sys, time, concurrent.futures as cf, multiprocessing as mp
from exporter import _procs
method, mode = sys.argv[1], sys.argv[2]
init = {
    "worker_init": _procs.worker_init,
    "thread only": functools.partial(_procs._worker_init, None, 0.2, deathsig=False),
    "prctl only": functools.partial(_procs._worker_init, None, 3600.0, deathsig=True),
    "none": None,
}[mode]
pool = cf.ProcessPoolExecutor(2, mp_context=mp.get_context(method), initializer=init)
cf.wait([pool.submit(time.sleep, 0.3) for _ in range(2)])  # two at once: both workers exist
print(*pool._processes, flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize(
    "method, mode",
    [("fork", "worker_init"), ("forkserver", "worker_init"), ("fork", "prctl only"), ("fork", "thread only")],
    ids=["fork", "forkserver", "fork, prctl alone", "fork, polling thread alone"],
)
def test_workers_die_when_their_parent_is_sigkilled(method, mode, stray):
    parent = _popen(PARENT, method, mode)
    workers = [int(p) for p in parent.stdout.readline().split()]
    stray.extend(workers)
    assert len(workers) == 2 and all(_running(p) for p in workers), parent.stderr.read()
    parent.send_signal(signal.SIGKILL)
    parent.wait(timeout=10)
    assert _wait_gone(workers, 5.0) == []


def test_without_worker_init_orphaned_workers_live_on(stray):
    """The control: what worker_init is for."""
    parent = _popen(PARENT, "fork", "none")
    workers = [int(p) for p in parent.stdout.readline().split()]
    stray.extend(workers)
    parent.send_signal(signal.SIGKILL)
    parent.wait(timeout=10)
    time.sleep(1.0)
    assert all(_running(p) for p in workers)


def test_worker_whose_parent_died_before_prctl_exits_at_once():
    gone = subprocess.Popen(["true"])
    gone.wait()
    proc = _popen(
        """
        import sys, time
        from exporter._procs import worker_init
        worker_init(parent_pid=int(sys.argv[1]), poll=60)  # no help from the polling thread
        time.sleep(10)
        print("survived")
        """,
        str(gone.pid),
    )
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 1 and out == "", err


def test_worker_watches_the_expected_parent_when_it_is_not_its_os_parent(stray):
    """As under forkserver: the OS parent is the fork server, the one to outlive is the main process."""
    main = subprocess.Popen(["sleep", "60"])
    stray.append(main.pid)
    worker = _popen(
        """
        import sys, time
        from exporter._procs import worker_init
        worker_init(parent_pid=int(sys.argv[1]), poll=0.1)
        print("started", flush=True)
        time.sleep(30)
        """,
        str(main.pid),
    )
    assert worker.stdout.readline().strip() == "started"
    time.sleep(0.3)
    assert worker.poll() is None  # main is alive: the worker carries on
    main.kill()
    main.wait()
    assert worker.wait(timeout=5) == 1


# --------------------------------------------------------------------------- shutdown_now


def test_shutdown_now_kills_busy_workers_and_cancels_the_rest():
    with exit_on_signals():  # forked workers copy this SIGTERM handler; worker_init must undo it
        pool = cf.ProcessPoolExecutor(2, initializer=worker_init)
        futures = [pool.submit(time.sleep, 30) for _ in range(6)]
        deadline = time.monotonic() + 10
        while len(pool._processes) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        processes = list(pool._processes.values())
        manager = pool._executor_manager_thread
        time.sleep(0.3)  # both workers inside time.sleep
        for p in processes:
            os.kill(p.pid, signal.SIGINT)  # Ctrl-C is the parent's: workers ignore it
        time.sleep(0.2)
        assert all(_running(p.pid) for p in processes)
        t0 = time.monotonic()
        shutdown_now(pool, timeout=3.0)
        took = time.monotonic() - t0
    assert took < 2.0  # SIGTERM was enough: no wait for the SIGKILL fallback
    assert [p.exitcode for p in processes] == [-signal.SIGTERM] * 2
    assert not any(os.path.exists(f"/proc/{p.pid}") for p in processes)  # reaped: no zombies either
    assert not manager.is_alive()
    assert not set(multiprocessing.active_children()) & set(processes)
    assert all(f.done() for f in futures)
    outcomes = set()
    for f in futures:
        if f.cancelled():
            outcomes.add("cancelled")
        else:
            assert isinstance(f.exception(), cf.process.BrokenProcessPool)
            outcomes.add("broken")
    assert "broken" in outcomes  # the running ones


def _deaf_sleep(seconds: float) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a task stuck where SIGTERM cannot stop it
    time.sleep(seconds)


def test_shutdown_now_kills_workers_that_ignore_sigterm():
    pool = cf.ProcessPoolExecutor(2, initializer=worker_init)
    futures = [pool.submit(_deaf_sleep, 30) for _ in range(2)]
    time.sleep(0.5)
    processes = list(pool._processes.values())
    t0 = time.monotonic()
    shutdown_now(pool, timeout=0.5)
    assert time.monotonic() - t0 < 2.0
    assert [p.exitcode for p in processes] == [-signal.SIGKILL] * 2
    assert all(isinstance(f.exception(timeout=5), cf.process.BrokenProcessPool) for f in futures)


def test_shutdown_now_on_an_unused_or_finished_pool():
    pool = cf.ProcessPoolExecutor(2, initializer=worker_init)
    shutdown_now(pool)  # never started a worker
    pool = cf.ProcessPoolExecutor(2, initializer=worker_init)
    assert pool.submit(pow, 2, 10).result() == 1024
    processes = list(pool._processes.values())
    shutdown_now(pool)
    assert not any(_running(p.pid) for p in processes)
    shutdown_now(pool)  # twice: harmless


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_process_using_shutdown_now_exits_promptly_leaving_nothing(method, stray):
    proc = _popen(
        """
        import sys, time, concurrent.futures as cf, multiprocessing as mp
        from exporter._procs import shutdown_now, worker_init
        pool = cf.ProcessPoolExecutor(2, mp_context=mp.get_context(sys.argv[1]), initializer=worker_init)
        futures = [pool.submit(time.sleep, 30) for _ in range(5)]
        while len(pool._processes) < 2:
            time.sleep(0.01)
        print(*pool._processes, flush=True)
        time.sleep(0.3)
        shutdown_now(pool)
        print("done", flush=True)
        """,
        method,
    )
    workers = [int(p) for p in proc.stdout.readline().split()]
    stray.extend(workers)
    out, err = proc.communicate(timeout=15)  # a pool left half-alive would hang the interpreter's exit
    assert proc.returncode == 0 and out.strip() == "done", err
    assert _wait_gone(workers, 1.0) == []


# --------------------------------------------------------------------------- exit_on_signals

CLI = """
import os, signal, time
from exporter._procs import exit_on_signals
with exit_on_signals():
    try:
        print("ready", flush=True)
        time.sleep(30)
    finally:
        os.kill(os.getpid(), signal.SIGTERM)  # a second signal while cleaning up does not cut it short
        time.sleep(0.1)
        print("cleanup ran", flush=True)
print("not reached")
"""


@pytest.mark.parametrize("sig, status", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)], ids=["SIGTERM", "SIGHUP"])
def test_signal_runs_finally_and_exits_128_plus_signum(sig, status):
    proc = _popen(CLI)
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == status
    assert out.strip() == "cleanup ran"
    assert err == ""  # SystemExit: no traceback


def test_exit_on_signals_raises_terminated_and_restores_handlers():
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    with pytest.raises(Terminated) as info, exit_on_signals():
        assert signal.getsignal(signal.SIGTERM) is not before[signal.SIGTERM]
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    exc = info.value
    assert (exc.signum, exc.code, str(exc)) == (signal.SIGTERM, 143, "terminated by SIGTERM")
    assert isinstance(exc, SystemExit) and not isinstance(exc, Exception)
    assert {s: signal.getsignal(s) for s in before} == before
    again = pickle.loads(pickle.dumps(exc))
    assert (again.signum, again.code) == (signal.SIGTERM, 143)


def test_exit_on_signals_keeps_an_ignored_signal_ignored():
    old = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as under nohup
    try:
        with exit_on_signals():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGHUP)
            time.sleep(0.05)
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, old)


def test_exit_on_signals_outside_the_main_thread_does_nothing():
    before = signal.getsignal(signal.SIGTERM)
    seen = []

    def run():
        with exit_on_signals():
            seen.append(signal.getsignal(signal.SIGTERM))

    t = threading.Thread(target=run)
    t.start()
    t.join()
    assert seen == [before]


def test_pid_alive():
    assert pid_alive(os.getpid())
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert not pid_alive(gone.pid)


# --------------------------------------------------------------------------- signals lost or changed on their way up


def test_a_signal_lost_in_a_callback_is_raised_again_and_not_reported():
    """A handler's exception raised inside a weakref callback is lost ("Exception ignored in ..."):
    ``Caught`` keeps it, ``raise_if_signalled`` raises it again, and the report is kept quiet."""
    proc = _popen(
        """
        import os, signal, weakref
        from exporter._procs import exit_on_signals, raise_if_signalled

        class Thing:
            pass

        def callback(ref):
            os.kill(os.getpid(), signal.SIGINT)  # the handler runs here, inside the callback
            for _ in range(1000):
                pass

        with exit_on_signals(interrupt=True) as caught:
            thing = Thing()
            ref = weakref.ref(thing, callback)
            del thing  # the callback runs, the KeyboardInterrupt is lost
            print("went on", caught.signum == signal.SIGINT, flush=True)
            try:
                raise_if_signalled()
            except KeyboardInterrupt:
                print("raised again", flush=True)
        """
    )
    out, err = proc.communicate(timeout=10)
    assert out.split("\n")[:2] == ["went on True", "raised again"], (out, err)
    assert err == ""  # no "Exception ignored in ..." for our own signal


def test_a_signal_that_became_another_exception_still_exits_with_its_status(tmp_path):
    """numpy's C import turns a KeyboardInterrupt or Terminated raised inside it into an ImportError:
    the command line still says one line and exits 128 + N."""
    proc = _popen(
        """
        import os, signal, sys, time
        from exporter import cli

        def run(args):
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)
            except BaseException as exc:  # what PyCapsule_Import does with it
                raise ImportError("PyCapsule_Import could not import module 'datetime'") from exc

        cli._run = run
        sys.exit(cli.main(["inspect", sys.argv[1]]))
        """,
        str(tmp_path),
    )
    out, err = proc.communicate(timeout=10)
    assert (proc.returncode, err) == (143, "terminated by SIGTERM\n"), (out, err)


def _slow_start(parent_pid: int) -> None:
    time.sleep(0.6)  # a worker between fork and worker_init: it still has its parent's Python handlers
    worker_init(parent_pid)


@pytest.mark.parametrize("held", [True, False], ids=["signals_held", "without"])
def test_a_signal_to_the_group_while_workers_start_is_held_until_they_can_take_it(held, stray):
    """systemd and terminals signal the whole process group. Sent while a worker is still starting, the
    signal waits (blocked since the fork) until worker_init has set the worker's own handlers."""
    proc = _popen(
        """
        import contextlib, os, sys, time, concurrent.futures as cf
        from exporter._procs import exit_on_signals, signals_held, shutdown_now
        sys.path.insert(0, sys.argv[2])
        from test_procs import _slow_start

        with exit_on_signals():
            hold = signals_held() if sys.argv[1] == "1" else contextlib.nullcontext()
            pool = cf.ProcessPoolExecutor(2, initializer=_slow_start, initargs=(os.getpid(),))
            try:
                with hold:
                    futures = [pool.submit(pow, 2, 8) for _ in range(2)]
                    print(*pool._processes, flush=True)
                    time.sleep(0.3)  # the signal comes now, the workers are still in _slow_start
                time.sleep(5)
            finally:
                shutdown_now(pool)
        """,
        "1" if held else "0", str(Path(__file__).parent),
        start_new_session=True,
    )
    workers = [int(p) for p in proc.stdout.readline().split()]
    stray.extend(workers)
    time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 143
    if held:
        assert err == "", err  # the workers died of the signal, quietly, once they could take it
    else:  # the copy of the parent's handler raised inside the half-made workers
        assert "Terminated" in err
    assert _wait_gone(workers, 2.0) == []


HEAP_PROBE = """
import resource, numpy as np
from exporter._procs import heap_arrays

def faults():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(200):
        a = np.ones(1 << 20, np.uint8)  # an image-sized array (1 MiB), allocated and freed
        del a
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

faults()
outside = faults()
with heap_arrays():
    faults()
    inside = faults()
after = faults()
print(outside, inside, after)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_heap_arrays_undoes_what_dasks_malloc_trim_threshold_costs_each_array():
    """Dask's nanny sets MALLOC_TRIM_THRESHOLD_=65536: every array over 128 KiB is then a fresh mmap, each
    of its pages faulted in again. Inside heap_arrays the heap serves them; after it, the setting is back."""
    env = {**os.environ, "MALLOC_TRIM_THRESHOLD_": "65536"}
    out = subprocess.run([sys.executable, "-c", HEAP_PROBE], env=env, capture_output=True, text=True, check=True)
    outside, inside, after = map(int, out.stdout.split())
    assert outside >= 200 * 200  # 256 pages of 4 KiB per array, faulted in every time
    assert inside < outside / 20
    assert after >= 200 * 200  # the fixed threshold Dask asked for is back
    plain = subprocess.run([sys.executable, "-c", HEAP_PROBE], env={k: v for k, v in env.items() if k != "MALLOC_TRIM_THRESHOLD_"},
                           capture_output=True, text=True, check=True)
    assert max(map(int, plain.stdout.split())) < outside / 20  # without the variable glibc reuses them by itself
