"""A real task function for ``exporter.distributed.run_tasks`` tests, importable by Dask workers.

``write_output`` stands in for ``export_run_task``: it is pure and idempotent the
same way (its one output, ``LOGDIR/output.txt``, is written whole through a temp
name and a rename, so a rerun replaces it), and it leaves a record of every
attempt in ``options["attempts"]``: ``<run>.<pid>.<n>.started`` before it works and
``.finished`` after, so a test can tell which worker ran, lost and reran what.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from exporter.distributed import RunResult
from exporter.storage import join, locate, put_bytes


def output_text(shards_url: str) -> str:
    return f"exported {shards_url}\n"


def write_output(shards_url: str, logdir_url: str, options: Mapping[str, Any],
                 storage_options: Mapping[str, Any]) -> RunResult:
    t0 = time.perf_counter()
    run = Path(shards_url).name
    attempts = options.get("attempts")
    tag = f"{run}.{os.getpid()}.{uuid.uuid4().hex[:6]}"
    if attempts:
        Path(attempts, tag + ".started").write_text(str(time.time()))
    time.sleep(float(options.get("sleep", 0)))
    if run in options.get("fail", ()):
        raise ValueError(f"{run} cannot be exported (as the test asked)")
    put_bytes(join(locate(logdir_url, storage_options), "output.txt"), output_text(shards_url).encode())
    if attempts:
        Path(attempts, tag + ".finished").write_text(str(time.time()))
    return RunResult(run=shards_url, images=1, steps=1, seconds=time.perf_counter() - t0)


def noop(shards_url: str, logdir_url: str, options: Mapping[str, Any], storage_options: Mapping[str, Any]) -> RunResult:
    """Nothing at all: what a task costs in scheduling alone."""
    return RunResult(run=shards_url)
