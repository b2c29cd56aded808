"""summary-exporter in real child processes, and what it left in LOGDIR, for the system tests.

``Child`` starts the command line (``cli_child.py``: the console script plus test hooks) in its own
process group, so every process it starts can be found in /proc afterwards; ``check_export``
reads a LOGDIR back, event by event and with TensorBoard's ``EventAccumulator``, against the
events of an export nobody disturbed.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from tbutil import read_events

import exporter
from exporter._files import TFEVENTS, is_temp_name
from exporter._lock import LOCK_FILE
from exporter.tensorboard import EVENT_FILE_SUFFIX, JOURNAL_FILE

CHILD = Path(__file__).with_name("cli_child.py")
#: The checkout under test: children must import the exporter from here (cli_child checks it).
CHECKOUT = Path(exporter.__file__).resolve().parents[1]
NOBODY = 65534
STATE_FILE = ".summary-exporter-state.json"
#: What a finished export leaves at the top of LOGDIR besides its event files.
OWN_FILES = {STATE_FILE, LOCK_FILE}

Records = collections.Counter  # (tag, step) -> how many events hold that value


# --------------------------------------------------------------------------- child processes


@dataclasses.dataclass
class Done:
    """How a child ended."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def err_lines(self) -> list[str]:
        return self.stderr.splitlines()

    def __str__(self) -> str:
        return f"exit {self.returncode}\n--- stdout\n{self.stdout}--- stderr\n{self.stderr}"


class Child:
    """``summary-exporter ARGS`` in a new session (its pid is its process group), stdout and stderr piped.

    ``wait_ready()`` returns once the child has imported the CLI and is about to call ``main``
    (after ``warm``-up and dropping to ``as_user``); with ``go=True`` it then waits for ``go()``.
    """

    def __init__(
        self,
        args: Sequence[str | os.PathLike],
        *,
        env: dict[str, str] | None = None,
        warm: str | os.PathLike | None = None,
        as_user: int | None = None,
        go: bool = False,
    ):
        ready_r, ready_w = os.pipe()
        cmd = [sys.executable, str(CHILD), "--checkout", str(CHECKOUT), "--ready-fd", str(ready_w)]
        fds = [ready_w]
        self._go_w: int | None = None
        go_r = None
        if go:
            go_r, self._go_w = os.pipe()
            cmd += ["--go-fd", str(go_r)]
            fds.append(go_r)
        if warm is not None:
            cmd += ["--warm", str(warm)]
        if as_user is not None:
            cmd += ["--as-user", str(as_user)]
        base = {k: v for k, v in os.environ.items() if k != "SUMMARY_EXPORTER_KILL_AT"}
        base["PYTHONFAULTHANDLER"] = "1"  # a hung child shows where (see finish)
        self.proc = subprocess.Popen(
            [*cmd, "--", *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**base, **(env or {})}, pass_fds=fds, start_new_session=True, cwd="/",
        )
        os.close(ready_w)
        if go_r is not None:
            os.close(go_r)
        self._ready_r: int | None = ready_r
        self.pid = self.proc.pid
        self.started = time.monotonic()

    def wait_ready(self, timeout: float = 120.0) -> float:
        """Block until the child is about to run ``main``; returns that moment (``time.monotonic``)."""
        assert self._ready_r is not None, "wait_ready() once"
        fd, self._ready_r = self._ready_r, None
        try:
            readable, _, _ = select.select([fd], [], [], timeout)
            got = os.read(fd, 1) if readable else b""
        finally:
            os.close(fd)
        if got != b"r":
            self.proc.kill()
            raise AssertionError(f"child {self.pid} never got ready:\n{self.finish()}")
        return time.monotonic()

    def go(self) -> None:
        assert self._go_w is not None
        os.write(self._go_w, b"g")
        os.close(self._go_w)
        self._go_w = None

    def running(self) -> bool:
        return self.proc.poll() is None

    def send(self, sig: int, *, group: bool = False) -> bool:
        """Send ``sig`` to the child (or its whole process group); False if it had already exited."""
        if not self.running():
            return False
        try:
            os.killpg(self.pid, sig) if group else os.kill(self.pid, sig)
        except ProcessLookupError:
            return False
        return True

    def finish(self, timeout: float = 180.0) -> Done:
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            alive = sorted(descendants(self.pid))
            self.proc.send_signal(signal.SIGABRT)  # PYTHONFAULTHANDLER: every thread's stack goes to stderr
            try:
                out, err = self.proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                out, err = "", ""
            kill_group(self.pid)
            self.proc.communicate()
            raise AssertionError(
                f"child {self.pid} (children {alive}) did not finish in {timeout} s:\n{out}\n{err}"
            ) from None
        finally:
            if self._go_w is not None:
                os.close(self._go_w)
                self._go_w = None
            if self._ready_r is not None:
                os.close(self._ready_r)
                self._ready_r = None
        return Done(self.proc.returncode, out, err)


def run_cli(args: Sequence[str | os.PathLike], **kwargs) -> Done:
    """Run ``summary-exporter ARGS`` to the end."""
    child = Child(args, **kwargs)
    return child.finish()


# --------------------------------------------------------------------------- processes in /proc


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, process group) of a process, or None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return fields[0], int(fields[1]), int(fields[2])


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` right now (children of every thread, recursively)."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except FileNotFoundError:
            continue
        for t in tasks:
            try:
                kids = Path(f"/proc/{p}/task/{t}/children").read_text().split()
            except FileNotFoundError:
                continue
            for k in map(int, kids):
                if k not in found:
                    found.add(k)
                    todo.append(k)
    return found


def running_in_group(pgid: int) -> list[int]:
    """Processes of process group ``pgid`` that still run (a zombie has ended: nobody may reap it here)."""
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _stat(int(name))
            if st is not None and st[2] == pgid and st[0] not in ("Z", "X"):
                out.append(int(name))
    return out


def still_running(pids: Iterable[int]) -> list[int]:
    return [p for p in pids if (st := _stat(p)) is not None and st[0] not in ("Z", "X")]


def wait_all_gone(pgid: int, pids: Iterable[int], seconds: float = 15.0) -> list[int]:
    """Poll /proc until no process of group ``pgid`` and none of ``pids`` runs; those still running."""
    pids = set(pids)
    deadline = time.monotonic() + seconds
    while True:
        left = sorted(set(running_in_group(pgid)) | set(still_running(pids)))
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# --------------------------------------------------------------------------- what an export left


def event_files(logdir: str | os.PathLike) -> list[Path]:
    """Every file TensorBoard would read under ``logdir`` (name contains ``tfevents``, any depth), sorted."""
    return sorted(p for p in Path(logdir).rglob(f"*{TFEVENTS}*") if p.is_file())


def records(logdir: str | os.PathLike) -> Records:
    """How many events hold each (tag, step), over every event file TensorBoard would read."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    counts: Records = collections.Counter()
    for path in event_files(logdir):
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                counts[(value.tag, int(event.step))] += 1
    return counts


def _steps_in_files(logdir: Path) -> list[list[int]]:
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    return [
        [int(e.step) for e in EventFileLoader(str(p)).Load() if e.HasField("summary")] for p in event_files(logdir)
    ]


def leftovers(logdir: str | os.PathLike) -> list[str]:
    """Names at the top of ``logdir`` that a finished export must not leave: temps, staging, a journal."""
    return sorted(n for n in os.listdir(logdir) if is_temp_name(n) or n == JOURNAL_FILE or n.startswith(".events"))


def check_export(logdir: str | os.PathLike, expected: Records, *, others: Iterable[str] = ()) -> None:
    """``logdir`` holds exactly the events of ``expected``: once each, steps ascending, nothing left over.

    ``others`` are names besides ours that may sit at the top of ``logdir`` (a render's step folders).
    """
    logdir = Path(logdir)
    assert logdir.is_dir(), f"{logdir} is missing"
    assert leftovers(logdir) == [], f"leftovers in {logdir}: {leftovers(logdir)}"
    files = event_files(logdir)
    assert files, f"no event file in {logdir}: {sorted(os.listdir(logdir))}"
    for f in files:  # a tfevents name anywhere else would be a second run in TensorBoard
        assert f.parent == logdir and f.name.endswith(EVENT_FILE_SUFFIX), f
    names = set(os.listdir(logdir)) - {f.name for f in files} - OWN_FILES - set(others)
    assert not names, f"unexpected files in {logdir}: {sorted(names)}"
    got = records(logdir)
    twice = {k: n for k, n in got.items() if n > 1}
    assert not twice, f"{len(twice)} (tag, step) written more than once, e.g. {sorted(twice.items())[:5]}"
    missing, extra = sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
    assert not missing and not extra, f"missing {len(missing)} e.g. {missing[:5]}; extra {len(extra)} e.g. {extra[:5]}"
    flat = [s for steps in _steps_in_files(logdir) for s in steps]  # files in name order: TensorBoard's order
    assert flat == sorted(flat), "steps go down across or within event files"
    acc = read_events(logdir)  # TensorBoard's own reader: it would purge on a step that goes back
    by_tag: dict[str, list[int]] = collections.defaultdict(list)
    for tag, step in expected:
        by_tag[tag].append(step)
    tags = acc.Tags()
    seen = 0
    for tag in tags["images"]:
        assert [e.step for e in acc.Images(tag)] == sorted(by_tag[tag]), tag
        seen += 1
    for tag in tags["scalars"]:
        assert [e.step for e in acc.Scalars(tag)] == sorted(by_tag[tag]), tag
        seen += 1
    for tag in tags["tensors"]:
        assert [e.step for e in acc.Tensors(tag)] == sorted(by_tag[tag]), tag
        seen += 1
    assert seen == len(by_tag), f"TensorBoard shows {seen} tags, the export wrote {len(by_tag)}"


def state_keys(logdir: str | os.PathLike) -> set[str]:
    """The shards an export's state file says were exported."""
    import json

    return set(json.loads((Path(logdir) / STATE_FILE).read_text())["shards"])


def shard_keys(run: str | os.PathLike) -> set[str]:
    from exporter import open_run
    from exporter._incremental import shard_key

    return {shard_key(s) for s in open_run(run).shards()}


# --------------------------------------------------------------------------- folders other users can reach


def shared_dir(prefix: str = "summary-exporter-sys-") -> Path:
    """A fresh folder under the system temp dir, mode 0755 (pytest's own tmp tree is root's 0700)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


def remove_tree(path: Path) -> None:
    """Remove a tree whatever modes the test left in it (unmounting first is the caller's job)."""
    if not path.exists():
        return
    for p in [path, *path.rglob("*")]:
        try:
            if p.is_dir() and not p.is_symlink():
                p.chmod(p.stat().st_mode | stat.S_IRWXU)
        except OSError:
            pass
    shutil.rmtree(path, ignore_errors=True)


def copy_run(src: Path, dst: Path, steps: Iterable[int]) -> Path:
    """A run folder holding copies of ``src``'s step folders for ``steps`` (same dumps: same shard keys)."""
    from exporter.schema import step_dirname

    dst.mkdir(parents=True, exist_ok=True)
    for step in steps:
        shutil.copytree(src / step_dirname(step), dst / step_dirname(step))
    return dst


def give(path: Path, uid: int) -> Path:
    """``chown -R uid:nogroup path``."""
    for p in [path, *path.rglob("*")]:
        os.chown(p, uid, 65534, follow_symlinks=False)
    return path
