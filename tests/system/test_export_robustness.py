"""Export where it gets hard: mounts, folders it may not write, other users, two exports at once.

All through the real command line in child processes: a tmpfs mounted as LOGDIR, a LOGDIR inside
a folder (or a read-only mount) the exporting user cannot write, permission errors met as the
unprivileged user ``nobody``, and two exports (two incremental ones, an export and a render)
started at the same instant on one LOGDIR, with and without ``--wait``. Mounting needs root; the
tests that need it skip, saying so, where it is not allowed.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from exporter._lock import OutputLock
from exporter.errors import LogdirBusyError
from exporter.schema import step_dirname

from .exportrun import NOBODY, Child, Done, check_export, give, leftovers, run_cli, shard_keys, state_keys

pytestmark = pytest.mark.campaign  # framework-free: make test runs these in the core environment only

ROOT = os.geteuid() == 0


def _mount(where: Path, options: str) -> None:
    where.mkdir(parents=True, exist_ok=True)
    if not ROOT:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"mount -t tmpfs is not permitted here: {done.stderr.strip()}")


@pytest.fixture
def mounts():
    """``mount(where, options)`` mounts a tmpfs; all are unmounted (innermost first) afterwards."""
    made: list[Path] = []

    def mount(where: Path, options: str = "size=32m,mode=0755") -> Path:
        _mount(where, options)
        made.append(where)
        return where

    yield mount
    for where in reversed(made):
        subprocess.run(["umount", "-l", str(where)], check=False)


def _needs_root_to_drop() -> None:
    if not ROOT:
        pytest.skip("becoming nobody needs root")


def _export(runs, shards: Path, logdir: Path, *extra: str, user: int | None = None) -> Done:
    """``summary-exporter export SHARDS LOGDIR`` (as ``user``); must succeed in one go, without a traceback."""
    warm = {} if user is None else {"warm": runs.first, "as_user": user}
    done = run_cli(["export", shards, logdir, "--no-progress", *extra], **warm)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done
    return done


# --------------------------------------------------------------------------- mounts and parents


def _mount_point(scratch: Path, mount) -> tuple[Path, int | None]:
    return mount(scratch / "logs"), None


def _nobodys_mount_point(scratch: Path, mount) -> tuple[Path, int | None]:
    _needs_root_to_drop()
    return mount(scratch / "logs", f"size=32m,mode=0755,uid={NOBODY},gid={NOBODY}"), NOBODY  # in root's 0755 folder


def _nobodys_folder_in_roots(scratch: Path, mount) -> tuple[Path, int | None]:
    _needs_root_to_drop()
    parent = scratch / "roots"
    parent.mkdir(mode=0o755)
    logdir = parent / "logs"
    logdir.mkdir()
    return give(logdir, NOBODY), NOBODY


def _mount_point_in_read_only_mount(scratch: Path, mount) -> tuple[Path, int | None]:
    ro = mount(scratch / "ro", "size=1m,mode=0755")
    (ro / "logs").mkdir()
    done = subprocess.run(["mount", "-o", "remount,ro", str(ro)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot remount a tmpfs read-only here: {done.stderr.strip()}")
    return mount(ro / "logs"), None


PLACES = {
    "tmpfs mount point (root)": _mount_point,
    "tmpfs mount point of nobody's in root's folder (nobody)": _nobodys_mount_point,
    "folder of nobody's in root's folder (nobody)": _nobodys_folder_in_roots,
    "tmpfs mount point inside a read-only mount (root)": _mount_point_in_read_only_mount,
}


@pytest.mark.parametrize("place", PLACES)
def test_export_incremental_and_again_where_only_logdir_is_writable(place, small_runs, scratch, mounts):
    logdir, user = PLACES[place](scratch, mounts)
    _export(small_runs, small_runs.first, logdir, user=user)
    check_export(logdir, small_runs.ref_first)
    appended = _export(small_runs, small_runs.full, logdir, "--incremental", user=user)
    assert f"for steps {list(small_runs.steps[1:])}" in appended.stdout, appended  # appended, not rewritten
    check_export(logdir, small_runs.ref_full)
    assert state_keys(logdir) == shard_keys(small_runs.full)
    _export(small_runs, small_runs.full, logdir, user=user)  # a full export over it replaces it
    check_export(logdir, small_runs.ref_full)
    if user is not None:
        assert {p.stat().st_uid for p in logdir.iterdir()} == {user}


def test_a_full_logdir_is_named_and_the_earlier_export_stays_whole(small_runs, big_runs, scratch, mounts):
    logdir = mounts(scratch / "logs", "size=1m,mode=0755")  # room for the small export, not for the big one
    _export(small_runs, small_runs.full, logdir)
    for extra in ([], ["--incremental"], ["--workers", "2"]):
        done = run_cli(["export", big_runs.full, logdir, "--no-progress", *extra])
        assert done.returncode == 1, done
        assert done.err_lines == [f"error: No space left on device: cannot write events to {logdir}"], done
        check_export(logdir, small_runs.ref_full)  # untouched, and no staging file left behind


# --------------------------------------------------------------------------- permission errors, as nobody


def _copy_of(runs, scratch: Path) -> Path:
    run = scratch / "run"
    shutil.copytree(runs.full, run)
    return run


def _victim_shard(run: Path) -> Path:
    return sorted((run / step_dirname(2)).glob("*.npz"))[0]


def _break_step_folder(run: Path, logdir: Path) -> Path:
    (run / step_dirname(2)).chmod(0o000)
    return run / step_dirname(2)


def _break_shard(run: Path, logdir: Path) -> Path:
    _victim_shard(run).chmod(0o000)
    return _victim_shard(run)


def _break_shards_folder(run: Path, logdir: Path) -> Path:
    run.chmod(0o311)  # can pass through, cannot list
    return run


def _break_logdir(run: Path, logdir: Path) -> Path:
    logdir.mkdir(mode=0o755)  # root's
    return logdir


def _logdir_is_a_file(run: Path, logdir: Path) -> Path:
    logdir.write_text("not a folder")
    return logdir


PERMISSION_CASES = [
    # name, what to break, the one line expected ({p}: the path that step returns)
    ("unreadable step folder", _break_step_folder, "error: {p}: permission denied; cannot look for shards there"),
    ("unreadable shard", _break_shard, "error: {p}: cannot read the file: permission denied"),
    ("unreadable shards folder", _break_shards_folder, "error: {p}: permission denied; cannot look for shards there"),
    ("unwritable LOGDIR", _break_logdir, "error: permission denied: cannot write to {p}"),
    ("LOGDIR that is a regular file", _logdir_is_a_file, "error: LOGDIR {p} is a file, not a folder"),
]


@pytest.mark.parametrize("name, breaker, expected", PERMISSION_CASES, ids=[c[0] for c in PERMISSION_CASES])
@pytest.mark.parametrize("skip_bad", [False, True], ids=["", "--skip-bad"])
def test_permission_problems_as_nobody_are_one_line_naming_the_path(
    name, breaker, expected, skip_bad, small_runs, scratch
):
    _needs_root_to_drop()
    run = _copy_of(small_runs, scratch)
    (scratch / "out").mkdir()
    logdir = give(scratch / "out", NOBODY) / "logs"  # nobody may create it
    path = breaker(run, logdir)
    args = ["export", run, logdir, "--no-progress"] + (["--skip-bad"] if skip_bad else [])
    done = run_cli(args, warm=small_runs.first, as_user=NOBODY)
    if skip_bad and name == "unreadable shard":
        assert done.returncode == 3, done  # exported, but something was skipped
        assert done.err_lines == [f"skipped: {path}: cannot read the file: permission denied"], done
        assert "wrote" in done.stdout
        return
    assert done.returncode == 1, done
    assert done.err_lines == [expected.format(p=path)], done
    assert "no shard files" not in done.stderr and "Traceback" not in done.stderr
    if name not in ("unwritable LOGDIR", "LOGDIR that is a regular file"):
        assert not logdir.exists()  # nothing written, not even the folder


def test_validate_as_nobody_names_an_unreadable_shard(small_runs, scratch):
    _needs_root_to_drop()
    run = _copy_of(small_runs, scratch)
    victim = _break_shard(run, scratch / "logs")
    done = run_cli(["validate", run], warm=small_runs.first, as_user=NOBODY)
    assert done.returncode == 1, done
    assert done.stdout.splitlines() == [f"{victim}: cannot read the file: permission denied"], done


def test_skip_bad_exit_status_is_documented_in_help():
    done = run_cli(["export", "--help"])
    assert done.returncode == 0
    assert re.search(r"exit status.*\b3\b.*skipped", " ".join(done.stdout.split()), re.IGNORECASE), done.stdout


# --------------------------------------------------------------------------- two at once

HOST = socket.gethostname()
SINCE = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
PAIRS = {
    "two exports": (["export"], ["export"]),
    "two incremental exports": (["export", "--incremental"], ["export", "--incremental"]),
    "an export and a render": (["export"], ["render"]),
}


def _command(kind: list[str], runs, logdir: Path, wait: bool) -> list[str | os.PathLike]:
    return [kind[0], runs.full, logdir, "--no-progress", *kind[1:], *(["--wait"] if wait else [])]


def _start_together(commands: list[list]) -> list[Child]:
    children = [Child(c, go=True) for c in commands]
    for c in children:
        c.wait_ready()
    for c in children:
        c.go()
    return children


def _pngs(logdir: Path) -> int:
    return sum(1 for _ in logdir.glob("step-*/*.png"))


def _third_is_refused(logdir: Path, holder: Child) -> None:
    """A third export now must find LOGDIR held by the winner: the loser left its lock file (and folder) alone."""
    try:
        OutputLock(logdir).acquire().release()
    except LogdirBusyError as exc:
        assert f"pid {holder.pid} on" in str(exc), exc
    except OSError as exc:
        raise AssertionError(f"the loser removed what the winner holds: {exc}") from exc
    else:
        assert not holder.running(), "a third export got LOGDIR's lock while the winner was still writing"


def _overlap_trial(pair: str, wait: bool, runs, logdir: Path, existing: bool) -> None:
    first, second = PAIRS[pair]
    incremental = "--incremental" in first
    if existing:
        shutil.copytree(runs.base_first if incremental else runs.base_full, logdir)
    children = _start_together([_command(first, runs, logdir, wait), _command(second, runs, logdir, wait)])
    kinds = [first[0], second[0]]
    done: dict[int, Done] = {}
    checked_third = False
    while len(done) < 2:
        for i, c in enumerate(children):
            if i not in done and not c.running():
                done[i] = c.finish()
                other = children[1 - i]
                if done[i].returncode != 0 and other.running() and not checked_third:
                    _third_is_refused(logdir, other)
                    checked_third = True
        time.sleep(0.005)
    codes = [done[0].returncode, done[1].returncode]
    renders = [k == "render" for k in kinds]
    if wait:
        assert codes == [0, 0], done
    else:
        assert sorted(codes) == [0, 1], done
        loser = codes.index(1)
        winner = 1 - loser
        line = (rf"error: another summary-exporter \(pid {children[winner].pid} on {re.escape(HOST)}, since {SINCE}\) "
                rf"is writing {re.escape(str(logdir))}; wait for it with --wait")
        assert len(done[loser].err_lines) == 1 and re.fullmatch(line, done[loser].err_lines[0]), done[loser]
        assert "Traceback" not in done[loser].stderr
        renders = [r and i == winner for i, r in enumerate(renders)]  # only the winner's output counts
    exported = any(k == "export" for i, k in enumerate(kinds) if wait or codes[i] == 0) or existing
    rendered = any(renders)
    steps = {step_dirname(s) for s in runs.steps}
    if rendered:
        assert _pngs(logdir) == runs.images, "the render is incomplete"
    else:
        assert not set(os.listdir(logdir)) & steps, "a render that lost left files"
    if exported:
        check_export(logdir, runs.ref_full, others=steps if rendered else ())
        assert state_keys(logdir) == shard_keys(runs.full)
    else:  # only the render ran, in a fresh LOGDIR
        assert not leftovers(logdir) and not list(logdir.glob("*tfevents*"))


def _overlap_trials(pair: str, wait: bool, runs, tmp_path: Path, trials: range) -> None:
    for i in trials:
        try:
            _overlap_trial(pair, wait, runs, tmp_path / f"trial{i}" / "logs", existing=i % 2 == 1)
        except AssertionError as exc:
            raise AssertionError(f"trial {i} ({'over an existing export' if i % 2 else 'fresh'}): {exc}") from exc


@pytest.mark.parametrize("wait", [False, True], ids=["", "--wait"])
@pytest.mark.parametrize("pair", PAIRS)
def test_two_started_together(pair, wait, big_runs, tmp_path):
    _overlap_trials(pair, wait, big_runs, tmp_path, trials=range(2))


@pytest.mark.slow
@pytest.mark.parametrize("wait", [False, True], ids=["", "--wait"])
@pytest.mark.parametrize("pair", PAIRS)
def test_two_started_together_many_trials(pair, wait, big_runs, tmp_path):
    # trials 2.. after the default run's 0 and 1: with it, 10 of each pair racing for the lock, and 4 with
    # --wait (both succeed, one after the other), each half fresh, half over an earlier export
    _overlap_trials(pair, wait, big_runs, tmp_path, trials=range(2, 4 if wait else 10))
