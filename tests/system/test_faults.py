"""Faults while capturing, in real processes: SIGKILL at random moments, a full disk (file-size limit)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from exporter.shards import find_shard_files, validate_shard

WORKER = str(Path(__file__).parent / "fault_worker.py")
needs_estimator = pytest.mark.skipif(
    __import__("importlib").util.find_spec("tensorflow_estimator") is None, reason="needs tensorflow-estimator 2.15"
)


def _run(args, timeout=240):
    return subprocess.run([sys.executable, WORKER, *map(str, args)], capture_output=True, text=True, timeout=timeout)


def _assert_only_complete_shards(folder: Path) -> int:
    files = find_shard_files(folder)
    for f in files:
        assert validate_shard(f) == [], f
    for p in folder.rglob("*"):  # anything else is a directory, a manifest, a model file or a hidden temp file
        if p.suffix == ".npz":
            assert p in files or p.name.startswith("."), p
    return len(files)


@pytest.mark.parametrize("on_error", ["raise", "drop"])
def test_file_size_limit_in_a_plain_writer(tmp_path, on_error):
    # 12 batches of 4 = 12 shards: the first 3 (~12 KB) fit under 30 KB, the other 9 (~49 KB) fail with EFBIG
    proc = _run(["writer", tmp_path, on_error, 12, 30_000], timeout=120)
    if on_error == "raise":
        assert proc.returncode != 0
        assert "WriterError: writing shards to" in proc.stderr and "File too large" in proc.stderr
    else:
        assert proc.returncode == 0, proc.stderr
        done = dict(kv.split("=") for kv in proc.stdout.split("done ")[1].split())
        assert (int(done["written"]), int(done["dropped"])) == (12, 36)
        assert "dropped shard" in proc.stderr
    assert _assert_only_complete_shards(tmp_path) == 3


@pytest.fixture
def full_disk(tmp_path):
    """A real 64 KiB filesystem (tmpfs): room for two ~25 KB shards, then ENOSPC."""
    mount = tmp_path / "shards"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {proc.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@needs_estimator
@pytest.mark.parametrize("on_error", ["raise", "drop"])
def test_disk_full_during_estimator_evaluate(tmp_path, full_disk, on_error):
    proc = _run(["estimator", tmp_path, on_error, 3])
    if on_error == "raise":
        assert proc.returncode != 0
        assert "WriterError: writing shards to" in proc.stderr and "No space left on device" in proc.stderr
    else:
        assert proc.returncode == 0, proc.stderr[-2000:]
        done = dict(kv.split("=") for kv in proc.stdout.split("done ")[1].split())
        written, dropped = int(done["written"]), int(done["dropped"])
        assert written >= 8 and dropped > 0 and written + dropped == int(done["kept"]) == 3 * 64
        assert "dropped shard" in proc.stderr
    assert _assert_only_complete_shards(full_disk) >= 1


def _kill_trials(tmp_path: Path, kind: str, trials: int, max_delay: float) -> int:
    rng = np.random.default_rng(1)
    finished = 0
    for trial in range(trials):
        out = tmp_path / f"t{trial}"
        proc = subprocess.Popen([sys.executable, WORKER, kind, str(out), "raise", "1000"], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, max_delay))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        finished += _assert_only_complete_shards(out)
    return finished


@needs_estimator
def test_sigkill_during_estimator_evaluate(tmp_path):
    assert _kill_trials(tmp_path, "estimator", trials=3, max_delay=1.5) > 0


@needs_estimator
@pytest.mark.slow
def test_sigkill_during_estimator_evaluate_many_trials(tmp_path):
    assert _kill_trials(tmp_path, "estimator", trials=20, max_delay=2.0) > 0
