"""A writer process killed with SIGKILL leaves only complete shards plus ignorable temp files."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from exporter.shards import find_shard_files, validate_shard

WRITER = textwrap.dedent(
    """
    import sys, numpy as np
    from exporter import ShardWriter
    rng = np.random.default_rng(int(sys.argv[2]))
    w = ShardWriter(sys.argv[1], step=int(sys.argv[2]), examples_per_shard=8)
    print("ready", flush=True)
    i = 0
    while True:  # until killed
        w.add(images=rng.integers(0, 255, (8, 96, 96, 3), dtype=np.uint8), labels=np.arange(i, i + 8))
        i += 8
    """
)


def _kill_trials(tmp_path, trials):
    rng = np.random.default_rng(0)
    seen_tmp = 0
    for trial in range(trials):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(trial)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        seen_tmp += len(list(tmp_path.rglob(".*.tmp-*")))
    files = find_shard_files(tmp_path)
    assert files, "the writers should have finished some shards before being killed"
    for f in files:
        assert validate_shard(f) == [], f
        labels = np.load(f, allow_pickle=False)["labels"]
        assert len(labels) == 8 and (np.diff(labels) == 1).all()  # whole shards, in order
    for tmp in tmp_path.rglob("*"):
        assert tmp.is_dir() or tmp.suffix == ".npz" or ".tmp-" in tmp.name, tmp
    return len(files), seen_tmp


def test_sigkill_leaves_only_complete_shards(tmp_path):
    _kill_trials(tmp_path, trials=4)


@pytest.mark.slow
def test_sigkill_many_trials(tmp_path):
    _kill_trials(tmp_path, trials=25)
