"""Safe output: atomic writes, the output folder check, staging inside LOGDIR, and the LOGDIR lock.

Real file systems and real processes: a 64 KiB tmpfs for a full disk and for a
mount-point LOGDIR, ``nobody`` (a subprocess that drops root) for permission
errors, other processes holding, waiting for and dying with the lock.
"""

from __future__ import annotations

import errno
import os
import pickle
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import exporter
from exporter._files import (
    STAGING_PREFIX,
    TMP_MARK,
    atomic_write,
    is_temp_name,
    move_into_place,
    prepare_output_dir,
    remove_stale,
    staged_name,
    staging_dir,
)
from exporter._lock import LOCK_FILE, LockOwner, OutputLock
from exporter.errors import ConfigError, ExporterError, LogdirBusyError, OutputError

SOURCE = Path(exporter.__file__).resolve().parents[1]  # the checkout under test, for subprocesses
NOBODY = 65534


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(SOURCE)}


def _python(code: str, *args: str, as_nobody: bool = False, timeout: float = 30) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter; ``as_nobody`` drops root after the imports (see NOBODY_PRELUDE)."""
    if as_nobody:
        code = NOBODY_PRELUDE + textwrap.dedent(code)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True, timeout=timeout,
        env=_env(), cwd=SOURCE, check=False,
    )


# The interpreter lives under /root (mode 0700), which nobody cannot enter: so the child starts as root,
# imports everything it needs, and only then becomes nobody. Not root to begin with: nothing to drop.
NOBODY_PRELUDE = textwrap.dedent(
    f"""
    import os, sys
    from exporter._files import *
    from exporter._lock import OutputLock
    from exporter.errors import OutputError
    if os.geteuid() == 0:
        os.setgroups([])
        os.setgid({NOBODY})
        os.setuid({NOBODY})
    assert os.geteuid() != 0
    """
)


@pytest.fixture
def shared_dir():
    """A folder outside root's 0700 pytest tree, so ``nobody`` can reach what the test makes in it."""
    path = Path(tempfile.mkdtemp(prefix="summary-exporter-test-"))
    path.chmod(0o755)
    yield path
    for p in [path, *path.rglob("*")]:
        if p.is_dir() and not p.is_symlink():
            p.chmod(0o755)
    shutil.rmtree(path)


def _mount_tmpfs(where: Path, options: str) -> None:
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        pytest.skip(f"mount -t tmpfs is not permitted here: {done.stderr.strip()}")


@pytest.fixture
def tmpfs(tmp_path):
    """A fresh 64 KiB tmpfs mount point; unmounted afterwards."""
    where = tmp_path / "tmpfs"
    _mount_tmpfs(where, "size=64k,mode=0755")
    yield where
    subprocess.run(["umount", "-l", str(where)], check=True)


@pytest.fixture
def readonly_tmpfs(tmp_path):
    where = tmp_path / "ro"
    _mount_tmpfs(where, "size=64k,ro")
    yield where
    subprocess.run(["umount", "-l", str(where)], check=True)


def _listing(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


# --------------------------------------------------------------------------- atomic_write


@pytest.mark.parametrize(
    "data, expected",
    [
        (b"\x00\x01bytes", b"\x00\x01bytes"),
        ("text, é", "text, é".encode()),
        (bytearray(b"array"), b"array"),
        (lambda f: (f.write(b"writ"), f.write(b"ten")), b"written"),
    ],
    ids=["bytes", "str", "bytearray", "callable"],
)
def test_atomic_write_writes_and_replaces(tmp_path, data, expected):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    assert atomic_write(target, data) == target
    assert target.read_bytes() == expected
    assert _listing(tmp_path) == ["out.bin"]


@pytest.mark.parametrize("error", [ValueError("no"), KeyboardInterrupt()], ids=["ValueError", "KeyboardInterrupt"])
def test_atomic_write_error_leaves_old_file_and_no_temp(tmp_path, error):
    target = tmp_path / "state.json"
    target.write_text("old")

    def fail(f):
        f.write(b"half")
        raise error

    with pytest.raises(type(error)) as info:
        atomic_write(target, fail)
    assert info.value is error  # not wrapped: it is not about the file
    assert target.read_text() == "old"
    assert _listing(tmp_path) == ["state.json"]


@pytest.mark.parametrize("how", ["bytes", "callable"])
def test_atomic_write_on_full_disk_names_path_and_leaves_no_temp(tmpfs, how):
    target = tmpfs / "big.bin"
    (tmpfs / "keep.txt").write_text("old")
    big = os.urandom(256 * 1024)  # four times the file system
    data = big if how == "bytes" else (lambda f: [f.write(big[i:i + 4096]) for i in range(0, len(big), 4096)])
    with pytest.raises(OutputError) as info:
        atomic_write(target, data)
    exc = info.value
    assert str(exc) == f"No space left on device: {target}"
    assert exc.errno == errno.ENOSPC and exc.filename == str(target)
    assert isinstance(exc, OSError) and isinstance(exc, ExporterError)
    assert _listing(tmpfs) == ["keep.txt"]
    assert pickle.loads(pickle.dumps(exc)).errno == errno.ENOSPC  # workers send errors back pickled


def test_atomic_write_into_missing_folder_names_path(tmp_path):
    target = tmp_path / "no" / "such" / "file"
    with pytest.raises(OutputError, match=f"^No such file or directory: {re.escape(str(target))}$") as info:
        atomic_write(target, b"x")
    assert info.value.errno == errno.ENOENT


def test_atomic_write_over_a_folder_names_path(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(OutputError, match="Is a directory: .*/d$") as info:
        atomic_write(tmp_path / "d", b"x")
    assert info.value.errno == errno.EISDIR
    assert _listing(tmp_path) == ["d"]


@pytest.mark.parametrize(
    "name",
    [
        "events.out.tfevents.1764618000.host.0000.summary-exporter",
        "tftfeventsevents",
        "x" * 240 + "tfevents",  # long: the temp name is shortened to fit NAME_MAX, never left matching
        "é" * 127,  # 254 bytes
    ],
)
def test_temp_name_is_hidden_short_and_never_a_tensorboard_event_file(tmp_path, name):
    seen: list[str] = []
    atomic_write(tmp_path / name, lambda f: seen.extend(os.listdir(tmp_path)))
    (temp,) = seen
    assert temp.startswith(".") and TMP_MARK in temp and is_temp_name(temp)
    assert "tfevents" not in temp
    assert len(os.fsencode(temp)) <= 255
    assert _listing(tmp_path) == [name]


@given(st.text(alphabet="tfevns.-x", max_size=40))
def test_staged_name_never_contains_tfevents(name):
    assert "tfevents" not in staged_name(name)
    if "tfevents" not in name:
        assert staged_name(name) == name


@pytest.mark.parametrize(
    "name, temp",
    [
        (".shard-00001.npz.tmp-123-9f2a", True),
        (".summary-exporter-state.json.tmp-77", True),
        (STAGING_PREFIX + "123-9f2a0b1c", True),
        ("shard-00001.npz", False),
        ("notes.tmp-1", False),  # not hidden: a user's file
        (LOCK_FILE, False),
        ("events.out.tfevents.1.h.summary-exporter", False),
    ],
)
def test_is_temp_name(name, temp):
    assert is_temp_name(name) is temp


# --------------------------------------------------------------------------- TensorBoard never sees staging


def test_tensorboard_sees_no_run_in_staging_and_no_temp_event_file(tmp_path):
    io_wrapper = pytest.importorskip("tensorboard.backend.event_processing.io_wrapper")
    final = "events.out.tfevents.1764618000.host.0000.summary-exporter"
    logdir = tmp_path / "logdir"
    prepare_output_dir(logdir)
    stage = staging_dir(logdir)
    atomic_write(stage / staged_name(final), b"")
    seen_temp: list[str] = []
    atomic_write(logdir / "other", lambda f: seen_temp.extend(os.listdir(logdir)))  # a temp in LOGDIR itself
    assert list(io_wrapper.GetLogdirSubdirectories(str(logdir))) == []
    assert not any(io_wrapper.IsTensorFlowEventsFile(n) for n in seen_temp)

    # Why staged names matter: TensorBoard walks hidden folders too and would show this one as a run.
    (stage / final).write_bytes(b"")
    assert list(io_wrapper.GetLogdirSubdirectories(str(logdir))) == [str(stage)]
    (stage / final).unlink()

    move_into_place(stage / staged_name(final), logdir / final)
    stage.rmdir()
    assert list(io_wrapper.GetLogdirSubdirectories(str(logdir))) == [str(logdir)]


# --------------------------------------------------------------------------- prepare_output_dir


def test_prepare_output_dir_creates_parents_and_leaves_nothing(tmp_path):
    target = tmp_path / "a" / "b" / "logdir"
    assert prepare_output_dir(target) == target
    assert target.is_dir() and _listing(target) == []
    assert prepare_output_dir(target) == target  # existing: fine


def test_prepare_output_dir_refuses_a_file(tmp_path):
    target = tmp_path / "logdir"
    target.write_text("")
    with pytest.raises(OutputError, match=f"^LOGDIR {re.escape(str(target))} is a file, not a folder$"):
        prepare_output_dir(target)
    with pytest.raises(OutputError, match=f"^cannot create LOGDIR .*/logdir/run: {re.escape(str(target))} is a file"):
        prepare_output_dir(target / "run")


def test_prepare_output_dir_refuses_a_broken_symlink(tmp_path):
    (tmp_path / "logdir").symlink_to(tmp_path / "gone")
    with pytest.raises(OutputError, match="is a broken symbolic link, not a folder$"):
        prepare_output_dir(tmp_path / "logdir")


def test_prepare_output_dir_on_a_mount_point(tmpfs):
    assert prepare_output_dir(tmpfs) == tmpfs
    assert os.path.ismount(tmpfs) and _listing(tmpfs) == []


def test_prepare_output_dir_on_a_read_only_mount_even_as_root(readonly_tmpfs):
    with pytest.raises(OutputError, match=f"^read-only file system: cannot write to {re.escape(str(readonly_tmpfs))}$"):
        prepare_output_dir(readonly_tmpfs)
    with pytest.raises(OutputError, match="^read-only file system: cannot create .*/run in "):
        prepare_output_dir(readonly_tmpfs / "run")


@pytest.mark.parametrize(
    "layout, target, expected",
    [
        # (mode of parent, mode of logdir or None when absent), the folder asked for, what comes out
        ((0o755, 0o755), "parent/logdir", "error: permission denied: cannot write to {d}/parent/logdir"),
        ((0o555, None), "parent/logdir", "error: permission denied: cannot create {d}/parent/logdir in {d}/parent"),
        ((0o555, 0o777), "parent/logdir", "ok"),  # staging inside LOGDIR: the parent does not matter
    ],
    ids=["unwritable logdir", "new logdir in read-only parent", "writable logdir in read-only parent"],
)
def test_prepare_output_dir_as_a_user_without_permission(shared_dir, layout, target, expected):
    parent_mode, logdir_mode = layout
    parent = shared_dir / "parent"
    parent.mkdir()
    if logdir_mode is not None:
        (parent / "logdir").mkdir()
        (parent / "logdir").chmod(logdir_mode)
    parent.chmod(parent_mode)
    done = _python(
        """
        try:
            out = prepare_output_dir(sys.argv[1])
            stage = staging_dir(out)
            move_into_place(atomic_write(stage / "f", b"x"), out / "f")
            stage.rmdir()
            print("ok")
        except OutputError as exc:
            print("error:", exc)
        """,
        str(shared_dir / target),
        as_nobody=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == expected.format(d=shared_dir)


# --------------------------------------------------------------------------- staging and remove_stale


def test_staging_inside_a_mount_point_logdir_renames_within_one_file_system(tmpfs):
    outdir = prepare_output_dir(tmpfs)
    stage = staging_dir(outdir)
    assert stage.parent == outdir and stage.name.startswith(STAGING_PREFIX) and is_temp_name(stage.name)
    final = "events.out.tfevents.1.host.0000.summary-exporter"
    staged = atomic_write(stage / staged_name(final), b"events")
    assert move_into_place(staged, outdir / final).read_bytes() == b"events"
    stage.rmdir()
    assert _listing(outdir) == [final]

    # Why not beside the logdir, as api._temp_dir does today: the parent is another file system.
    beside = tmpfs.parent / "beside"
    beside.write_bytes(b"x")
    with pytest.raises(OutputError, match=f"Invalid cross-device link: {re.escape(str(outdir / 'moved'))}$") as info:
        move_into_place(beside, outdir / "moved")
    assert info.value.errno == errno.EXDEV


def test_remove_stale_removes_only_leftovers_of_exports(tmp_path):
    outdir = prepare_output_dir(tmp_path / "logdir")
    ours = staging_dir(outdir)
    stale = outdir / (STAGING_PREFIX + "4242-0badcafe")
    (stale / "deep").mkdir(parents=True)
    (stale / "deep" / "events.out.tf-events.1.h").write_bytes(b"x")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("keep")
    (outdir / (STAGING_PREFIX + "4243-0badcafe")).symlink_to(outside)
    leftovers = [".events.out.tf-events.1.h.tmp-4242-ab12cd34", ".summary-exporter-state.json.tmp-77"]
    kept = [LOCK_FILE, "events.out.tfevents.1.h.summary-exporter", ".hidden-user-file", "notes.tmp-1",
            ".summary-exporter-tmp-not-ours"]
    for name in leftovers + kept:
        (outdir / name).write_text("")
    removed = remove_stale(outdir, keep=[ours])
    assert sorted(p.name for p in removed) == sorted(leftovers + [stale.name, STAGING_PREFIX + "4243-0badcafe"])
    assert _listing(outdir) == sorted(kept + [ours.name])
    assert (outside / "precious").read_text() == "keep"  # a symlink is unlinked, never followed
    assert remove_stale(tmp_path / "absent") == []


# --------------------------------------------------------------------------- OutputLock

HOLDER = """
import os, sys, time
from exporter._lock import OutputLock
with OutputLock(sys.argv[1], wait=float(sys.argv[2]) if len(sys.argv) > 2 else False):
    print("locked", os.getpid(), time.monotonic(), flush=True)
    sys.stdin.read()  # hold until the test closes our stdin (or kills us)
print("released", flush=True)
"""


def _holder(outdir: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(outdir), *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True, env=_env(), cwd=SOURCE,
    )


def _wait_locked(proc: subprocess.Popen) -> list[str]:
    line = proc.stdout.readline().split()
    assert line[:1] == ["locked"], line
    return line


@pytest.fixture
def procs():
    """Processes a test starts; killed and reaped whatever happens."""
    started: list[subprocess.Popen] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=10)


def test_second_export_fails_at_once_naming_the_holder(tmp_path, procs):
    outdir = prepare_output_dir(tmp_path / "logdir")
    holder = _holder(outdir)
    procs.append(holder)
    _wait_locked(holder)
    t0 = time.monotonic()
    with pytest.raises(LogdirBusyError) as info, OutputLock(outdir):
        pass
    assert time.monotonic() - t0 < 0.5
    message = str(info.value)
    pattern = (rf"another summary-exporter \(pid {holder.pid} on {re.escape(socket.gethostname())}, "
               rf"since \d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\dZ\) is writing {re.escape(str(outdir))}; "
               r"wait for it with --wait")
    assert re.fullmatch(pattern, message), message
    assert "\n" not in message
    assert info.value.owner.pid == holder.pid and "-c" in info.value.owner.command
    assert isinstance(info.value, (BlockingIOError, OutputError, ExporterError))
    assert info.value.errno == errno.EWOULDBLOCK


def test_waiting_export_gets_the_lock_when_the_first_releases(tmp_path, procs):
    outdir = prepare_output_dir(tmp_path / "logdir")
    first = _holder(outdir)
    procs.append(first)
    _wait_locked(first)
    second = _holder(outdir, "30")
    procs.append(second)
    time.sleep(0.4)
    assert second.poll() is None  # still waiting
    released_at = time.monotonic()
    first.stdin.close()
    assert first.stdout.readline().strip() == "released"
    _, pid, locked_at = _wait_locked(second)
    assert float(locked_at) >= released_at and int(pid) == second.pid
    assert LockOwner.parse((outdir / LOCK_FILE).read_text()).pid == second.pid
    second.stdin.close()
    assert second.wait(timeout=10) == 0 and first.wait(timeout=10) == 0
    assert (outdir / LOCK_FILE).read_text() == ""  # emptied on release, never deleted


def test_wait_with_a_limit_gives_up_naming_the_holder(tmp_path, procs):
    outdir = prepare_output_dir(tmp_path / "logdir")
    holder = _holder(outdir)
    procs.append(holder)
    _wait_locked(holder)
    t0 = time.monotonic()
    with pytest.raises(LogdirBusyError, match=rf"\(pid {holder.pid} on .* still writing .* after waiting 0.3 s"):
        OutputLock(outdir, wait=0.3).acquire()
    assert 0.3 <= time.monotonic() - t0 < 1.5


def test_lock_of_a_sigkilled_holder_is_taken_over_at_once(tmp_path, procs):
    outdir = prepare_output_dir(tmp_path / "logdir")
    holder = _holder(outdir)
    procs.append(holder)
    _wait_locked(holder)
    assert LockOwner.parse((outdir / LOCK_FILE).read_text()).pid == holder.pid
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)
    assert LockOwner.parse((outdir / LOCK_FILE).read_text()).pid == holder.pid  # its note is still there...
    with OutputLock(outdir) as lock:  # ...but the kernel dropped its lock
        assert lock.locked and LockOwner.parse((outdir / LOCK_FILE).read_text()).pid == os.getpid()


def test_forked_children_neither_keep_nor_release_the_lock(tmp_path, procs):
    outdir = prepare_output_dir(tmp_path / "logdir")
    # A holder that forks a long-lived child (as a fork-started worker pool would) and is then SIGKILLed.
    forker = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent("""
            import os, sys, time
            from exporter._lock import OutputLock
            lock = OutputLock(sys.argv[1]).acquire()
            child = os.fork()
            if child == 0:
                time.sleep(60)
                os._exit(0)
            print(child, flush=True)
            time.sleep(60)
        """), str(outdir)],
        stdout=subprocess.PIPE, text=True, env=_env(), cwd=SOURCE,
    )
    procs.append(forker)
    child = int(forker.stdout.readline())
    try:
        forker.send_signal(signal.SIGKILL)
        forker.wait(timeout=10)
        assert os.path.exists(f"/proc/{child}")
        with OutputLock(outdir, wait=2.0):
            pass  # the live child did not keep it
    finally:
        os.kill(child, signal.SIGKILL)

    # And a child that releases (an inherited ``with`` block unwinding) does not unlock its parent.
    with OutputLock(outdir) as lock:
        pid = os.fork()
        if pid == 0:
            lock.release()
            os._exit(0)
        assert os.waitpid(pid, 0)[1] == 0
        with pytest.raises(LogdirBusyError):
            OutputLock(outdir).acquire()


def test_lock_file_of_another_user_is_locked_read_only(shared_dir):
    outdir = shared_dir / "logdir"
    outdir.mkdir()
    outdir.chmod(0o777)
    OutputLock(outdir).acquire().release()  # root's lock file, mode 0644 (umask): nobody cannot write it
    (outdir / LOCK_FILE).chmod(0o644)
    done = _python(
        """
        with OutputLock(sys.argv[1]) as lock:
            print("locked", lock.locked)
        """,
        str(outdir),
        as_nobody=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "locked True"


def test_lock_is_not_reentrant_and_releases_cleanly(tmp_path):
    lock = OutputLock(prepare_output_dir(tmp_path))
    with lock:
        with pytest.raises(OutputError, match="already held"):
            lock.acquire()
        with pytest.raises(LogdirBusyError, match=rf"pid {os.getpid()} on"):
            OutputLock(tmp_path).acquire()
    assert not lock.locked
    lock.release()  # harmless
    assert "locked=False" in repr(lock)
    assert not is_temp_name(LOCK_FILE) and "tfevents" not in LOCK_FILE


def test_lock_in_a_missing_folder_names_the_lock_file(tmp_path):
    with pytest.raises(OutputError, match=f"^No such file or directory: .*/absent/{re.escape(LOCK_FILE)}$"):
        OutputLock(tmp_path / "absent").acquire()


@pytest.mark.parametrize("wait", ["yes", -1, float("nan"), None])
def test_lock_wait_is_checked(tmp_path, wait):
    with pytest.raises(ConfigError, match="wait must be"):
        OutputLock(tmp_path, wait=wait)
