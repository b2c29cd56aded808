"""Export killed at random moments and at every step of its installation, in real processes.

* SIGKILL and SIGTERM at seeded random moments of an export of 400 images, with ``--workers 1``
  and ``2``, into a fresh LOGDIR, over an existing export and during an ``--incremental`` append:
  afterwards no process of the export runs (its whole process group is polled in /proc, and the
  children recorded before the signal); SIGTERM exits 143 with one line; the next export leaves
  no temp or staging file and every event exactly once, steps ascending (read back event by event
  and with TensorBoard's ``EventAccumulator``, against an export nobody disturbed).
* Every ``install:*`` fault point forced with ``SUMMARY_EXPORTER_KILL_AT`` (a SIGKILL exactly
  there), for a full export over an existing one and for an ``--incremental`` append, then
  repaired by the next export, plain or incremental; also a second kill during that repair.
* SIGINT from the first moment ``main`` runs (several timings, and Ctrl-C to the whole process
  group during the export): one line, exit 130, no traceback, no trace in LOGDIR.

The default run does a few trials of each kind; the ``slow``-marked tests (``make test`` runs
them) do 24 SIGKILL and 12 SIGTERM trials.
"""

from __future__ import annotations

import dataclasses
import itertools
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from .exportrun import (
    Child,
    Done,
    check_export,
    descendants,
    leftovers,
    run_cli,
    shard_keys,
    state_keys,
    wait_all_gone,
)

pytestmark = pytest.mark.campaign  # framework-free: make test runs these in the core environment only

SCENARIOS = ("fresh", "existing", "incremental")
INSTALL_POINTS = ("install:journal-written", "install:old-removed", "install:renamed", "install:file-written")


def _setup(scenario: str, runs, logdir: Path) -> list[str]:
    """Put ``logdir`` in the state the scenario starts from; the export command it runs."""
    if scenario == "existing":
        shutil.copytree(runs.base_full, logdir)
    elif scenario in ("incremental", "append"):
        shutil.copytree(runs.base_first, logdir)  # step 1 exported: the run's other steps get appended
    args = ["export", str(runs.full), str(logdir), "--no-progress"]
    return args + (["--incremental"] if scenario in ("incremental", "append") else [])


def _next_export(logdir: Path, runs, *, incremental: bool) -> Done:
    args = ["export", str(runs.full), str(logdir), "--no-progress"] + (["--incremental"] if incremental else [])
    done = run_cli(args)
    assert done.returncode == 0, done
    assert "Traceback" not in done.stderr, done
    return done


def _assert_no_process_left(child: Child, before: set[int]) -> None:
    left = wait_all_gone(child.pid, before | {child.pid})
    assert not left, f"still running after the export ended: {left} (its children were {sorted(before)})"


# --------------------------------------------------------------------------- random moments


@pytest.fixture(scope="module")
def export_seconds(big_runs, tmp_path_factory) -> dict[int, float]:
    """How long an undisturbed export of the big run takes from ``main`` to exit, per worker count (best of 2)."""
    out = {}
    for workers in (1, 2):
        times = []
        for _ in range(2):
            logdir = tmp_path_factory.mktemp("calibrate") / "logs"
            child = Child(["export", big_runs.full, logdir, "--no-progress", "--workers", str(workers)])
            start = child.wait_ready()
            done = child.finish()
            assert done.returncode == 0, done
            times.append(time.monotonic() - start)
        out[workers] = min(times)
    return out


@dataclasses.dataclass(frozen=True)
class Trial:
    scenario: str
    workers: int
    at: float  # fraction of an undisturbed export's duration
    group: bool = False  # the signal goes to the whole process group (a terminal, systemd)

    def __str__(self) -> str:
        return f"{self.scenario}, --workers {self.workers}, at {self.at:.2f}{', to the group' if self.group else ''}"


def _trials(per_combination: int, seed: int, *, earliest: float = 0.0, groups: bool = False) -> list[Trial]:
    """``per_combination`` trials for every scenario x worker count, at seeded random moments."""
    rng = np.random.default_rng(seed)
    combos = list(itertools.product(SCENARIOS, (1, 2)))
    out = []
    for i in range(per_combination):
        for k, (scenario, workers) in enumerate(combos):
            out.append(Trial(scenario, workers, float(rng.uniform(earliest, 0.85)), groups and (i + k) % 2 == 1))
    return out


# A SIGTERM in the first instants of main(), before it has set its handler (tens of microseconds after
# the interpreter started), ends the process by the signal's default action: status 143 as a shell
# reports it, but no line. The SIGTERM trials start at 2% of an export; Ctrl-C, whose handler Python
# sets before main runs, is tried from the first instant on (test_sigint_from_the_start...).
TERM_EARLIEST = 0.02


def _signal_trial(trial: Trial, sig: int, runs, folder: Path, seconds: dict[int, float]) -> bool:
    """One export signalled at ``trial.at``; checks it and the next export. True if the signal hit it running."""
    logdir = folder / "logs"
    args = _setup(trial.scenario, runs, logdir)
    child = Child([*args, "--workers", str(trial.workers)])
    start = child.wait_ready()
    length = seconds[trial.workers] * (0.75 if trial.scenario == "incremental" else 1.0)  # 3 of 4 steps
    time.sleep(max(0.0, start + trial.at * length - time.monotonic()))
    before = descendants(child.pid)  # the workers, recorded before the signal
    hit = child.send(sig, group=trial.group)
    done = child.finish()
    _assert_no_process_left(child, before)
    if "wrote" in done.stdout or done.returncode == 0:
        hit = False  # it had finished: the signal came (if at all) while the interpreter exited
    elif sig == signal.SIGKILL:
        assert done.returncode == -signal.SIGKILL, done
    else:
        assert done.returncode == 128 + sig, done
        assert done.err_lines == [f"terminated by {signal.Signals(sig).name}"] and done.stdout == "", done
        if trial.scenario == "fresh":
            assert not logdir.exists(), "a terminated export left the LOGDIR it had created"
        else:
            assert leftovers(logdir) == [], leftovers(logdir)
    _next_export(logdir, runs, incremental=trial.scenario == "incremental")
    check_export(logdir, runs.ref_full)
    assert state_keys(logdir) == shard_keys(runs.full)
    return hit


def _run_trials(trials: list[Trial], sig: int, runs, tmp_path: Path, seconds: dict[int, float]) -> None:
    hits = 0
    for i, trial in enumerate(trials):
        try:
            hits += _signal_trial(trial, sig, runs, tmp_path / f"trial{i}", seconds)
        except AssertionError as exc:
            raise AssertionError(f"trial {i} ({trial}): {exc}") from exc
    # the signals must really land inside exports, or the test proves nothing
    assert hits >= 0.6 * len(trials), f"only {hits} of {len(trials)} signals hit a running export"
    print(f"\n{signal.Signals(sig).name}: {len(trials)} trials, {hits} during the export", file=sys.__stderr__)


def test_sigkill_at_random_moments(big_runs, export_seconds, tmp_path):
    trials = _trials(1, seed=20261201)[::2]  # fresh/1, existing/1, incremental/1 (and their /2 in slow)
    _run_trials(trials, signal.SIGKILL, big_runs, tmp_path, export_seconds)


def test_sigterm_at_random_moments(big_runs, export_seconds, tmp_path):
    trials = _trials(1, seed=20261202, earliest=TERM_EARLIEST, groups=True)[1::2]  # fresh/2, existing/2, incremental/2
    _run_trials(trials, signal.SIGTERM, big_runs, tmp_path, export_seconds)


@pytest.mark.slow
def test_sigkill_at_random_moments_many_trials(big_runs, export_seconds, tmp_path):
    _run_trials(_trials(4, seed=1), signal.SIGKILL, big_runs, tmp_path, export_seconds)  # 24 trials


@pytest.mark.slow
def test_sigterm_at_random_moments_many_trials(big_runs, export_seconds, tmp_path):
    trials = _trials(2, seed=2, earliest=TERM_EARLIEST, groups=True)  # 12 trials
    _run_trials(trials, signal.SIGTERM, big_runs, tmp_path, export_seconds)


# --------------------------------------------------------------------------- every step of the installation


def _killed_at(point: str, scenario: str, runs, logdir: Path) -> Done:
    args = _setup(scenario, runs, logdir)
    child = Child(args, env={"SUMMARY_EXPORTER_KILL_AT": point})
    child.wait_ready()
    before = descendants(child.pid)
    done = child.finish()
    _assert_no_process_left(child, before)
    return done


CASES = [
    (point, scenario, then)
    for point in INSTALL_POINTS
    for scenario in ("existing", "append")
    for then in ("plain", "incremental")
    if not (point == "install:old-removed" and scenario == "append")  # an append removes nothing
]


@pytest.mark.parametrize("point, scenario, then", CASES)
def test_a_kill_at_each_install_step_is_repaired_by_the_next_export(point, scenario, then, small_runs, tmp_path):
    logdir = tmp_path / "logs"
    done = _killed_at(point, scenario, small_runs, logdir)
    assert done.returncode == -signal.SIGKILL, done
    assert (logdir / ".summary-exporter-journal.json").exists()  # killed inside the installation
    repaired = _next_export(logdir, small_runs, incremental=then == "incremental")
    assert "finished installing" in repaired.stderr, repaired
    check_export(logdir, small_runs.ref_full)
    assert state_keys(logdir) == shard_keys(small_runs.full)
    again = _next_export(logdir, small_runs, incremental=True)
    assert "is up to date" in again.stdout, again  # the state knows every shard, and says so only now
    check_export(logdir, small_runs.ref_full)


def test_an_append_never_reaches_old_removed(small_runs, tmp_path):
    logdir = tmp_path / "logs"
    done = _killed_at("install:old-removed", "append", small_runs, logdir)
    assert done.returncode == 0, done  # nothing to remove: the point is not on an append's path
    check_export(logdir, small_runs.ref_full)


@pytest.mark.parametrize("second", ["install:old-removed", "install:renamed", "install:file-written"])
def test_a_kill_during_the_repair_is_repaired_too(second, small_runs, tmp_path):
    logdir = tmp_path / "logs"
    assert _killed_at("install:journal-written", "existing", small_runs, logdir).returncode == -signal.SIGKILL
    args = ["export", str(small_runs.full), str(logdir), "--no-progress"]
    assert run_cli(args, env={"SUMMARY_EXPORTER_KILL_AT": second}).returncode == -signal.SIGKILL
    _next_export(logdir, small_runs, incremental=True)
    check_export(logdir, small_runs.ref_full)
    assert state_keys(logdir) == shard_keys(small_runs.full)


def test_a_kill_before_the_journal_leaves_the_earlier_export_whole(small_runs, tmp_path):
    """Killed after the events are staged but before the journal: nothing moved, the next export cleans up."""
    logdir = tmp_path / "logs"
    args = _setup("append", small_runs, logdir)
    child = Child(args, env={"SUMMARY_EXPORTER_KILL_AT": "install:journal-written"})
    child.wait_ready()
    assert child.finish().returncode == -signal.SIGKILL
    (logdir / ".summary-exporter-journal.json").unlink()  # as if killed just before writing it
    assert leftovers(logdir)  # the staged event file
    repaired = _next_export(logdir, small_runs, incremental=True)
    assert f"for steps {list(small_runs.steps[1:])}" in repaired.stdout, repaired  # appended again
    check_export(logdir, small_runs.ref_full)


# --------------------------------------------------------------------------- Ctrl-C


def test_importing_the_command_line_loads_almost_nothing():
    """What the console script imports before ``main`` runs is where a Ctrl-C still gives a traceback: keep it tiny."""
    code = "import sys; old = set(sys.modules); import exporter.cli; print(*sorted(set(sys.modules) - old))"
    new = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/").stdout.split()
    assert {m for m in new if m.startswith("exporter")} == {
        "exporter", "exporter.cli", "exporter._procs", "exporter._version", "exporter.errors"
    }
    heavy = {"numpy", "PIL", "tensorboardX", "tqdm", "argparse", "json", "dataclasses", "pathlib", "zipfile", "ctypes",
             "concurrent", "multiprocessing", "re"}
    assert not {m.split(".")[0] for m in new} & heavy, new


SIGINT_DELAYS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4)


@pytest.mark.parametrize("workers", [1, 2])
def test_sigint_from_the_start_gives_one_line_and_130(workers, big_runs, export_seconds, tmp_path):
    delays = [d for d in SIGINT_DELAYS if d < 0.6 * export_seconds[workers]]  # all before the export ends
    assert len(delays) >= 8
    for i, delay in enumerate(delays):
        logdir = tmp_path / f"logs{i}"
        child = Child(["export", big_runs.full, logdir, "--no-progress", "--workers", str(workers)])
        start = child.wait_ready()
        time.sleep(max(0.0, start + delay - time.monotonic()))
        before = descendants(child.pid)
        assert child.send(signal.SIGINT)
        done = child.finish()
        _assert_no_process_left(child, before)
        assert (done.returncode, done.stderr, done.stdout) == (130, "interrupted\n", ""), f"at {delay} s: {done}"
        assert not logdir.exists(), f"at {delay} s: an interrupted export left the LOGDIR it had created"


def test_ctrl_c_in_a_terminal_reaches_the_workers_too(big_runs, export_seconds, tmp_path):
    """A terminal sends SIGINT to the whole foreground process group: workers ignore it, the export exits 130."""
    hits = 0
    for i, at in enumerate((0.1, 0.25, 0.4, 0.55)):
        logdir = tmp_path / f"logs{i}"
        shutil.copytree(big_runs.base_full, logdir)
        child = Child(["export", big_runs.full, logdir, "--no-progress", "--workers", "2"])
        start = child.wait_ready()
        time.sleep(max(0.0, start + at * export_seconds[2] - time.monotonic()))
        before = descendants(child.pid)
        assert child.send(signal.SIGINT, group=True)
        done = child.finish()
        _assert_no_process_left(child, before)
        if "wrote" not in done.stdout:  # else it had finished: the signal came while the interpreter exited
            assert (done.returncode, done.stderr) == (130, "interrupted\n"), done
            hits += 1
        check_export(logdir, big_runs.ref_full)  # the earlier export is untouched, or replaced whole
    assert hits >= 3
