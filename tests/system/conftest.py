"""Runs of shards and the exports nobody disturbed, shared by the system tests of export."""

from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path

import pytest
from runs import write_run

from exporter.api import ExportOptions, export

from .exportrun import Records, copy_run, records, remove_tree, shared_dir


@dataclasses.dataclass(frozen=True)
class Runs:
    """One run of shards (``full``), its first step alone (``first``: the same dumps, so the same shard
    keys), and what exporting each gives: the events (``ref_*``) and a LOGDIR to start from (``base_*``)."""

    root: Path
    full: Path
    first: Path
    steps: tuple[int, ...]
    images: int
    ref_full: Records
    ref_first: Records
    base_full: Path
    base_first: Path


def _runs(root: Path, steps: tuple[int, ...], n: int, per_shard: int) -> Runs:
    full = write_run(root / "run", steps=steps, n=n, image_shape=(32, 32), examples_per_shard=per_shard)
    first = copy_run(full, root / "run-first", steps[:1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export(full, root / "base-full", ExportOptions())
        export(first, root / "base-first", ExportOptions())
    for p in [root, *root.rglob("*")]:  # readable by every user, writable by root only
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    return Runs(
        root=root, full=full, first=first, steps=steps, images=n * len(steps),
        ref_full=records(root / "base-full"), ref_first=records(root / "base-first"),
        base_full=root / "base-full", base_first=root / "base-first",
    )


@pytest.fixture(scope="session")
def small_runs():
    """3 steps of 8 examples: quick exports, for mounts, permissions and fault points."""
    root = shared_dir()
    try:
        yield _runs(root, (1, 2, 3), 8, 4)
    finally:
        remove_tree(root)


@pytest.fixture(scope="session")
def big_runs():
    """4 steps of 100 examples (400 images, a few seconds to export): long enough to kill at random moments."""
    root = shared_dir()
    try:
        yield _runs(root, (1, 2, 3, 4), 100, 25)
    finally:
        remove_tree(root)


@pytest.fixture
def scratch():
    """A fresh folder other users can reach, removed afterwards."""
    path = shared_dir()
    try:
        yield path
    finally:
        remove_tree(path)
