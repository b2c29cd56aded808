"""Fixtures for the system tests: real servers (an S3 endpoint, a GCS emulator, a Dask cluster), and runs of
shards with the exports nobody disturbed, shared by the export robustness tests.

Everything listens on 127.0.0.1, on a free port, and is stopped after the test.
The code under test finds the servers only through the standard configuration
(``AWS_ENDPOINT_URL`` and dummy ``AWS_*`` credentials, ``STORAGE_EMULATOR_HOST``),
set with ``monkeypatch`` for the one test.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from runs import write_run

from exporter.api import ExportOptions, export

from .exportrun import Records, copy_run, records, remove_tree, shared_dir
from .servers import (
    DaskProcesses,
    MotoServer,
    dask_processes,
    gcs_emulator,
    gcs_emulator_available,
    moto_server,
    s3_environment,
)

#: The folder holding the ``system`` package: workers import the test's task functions from it.
TESTS = Path(__file__).resolve().parents[1]


def _forget_s3_clients() -> None:
    """fsspec caches S3FileSystem instances by their options, not by the endpoint in the environment."""
    s3fs = sys.modules.get("s3fs")
    if s3fs is not None:
        s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture
def moto(tmp_path_factory, monkeypatch) -> Iterator[MotoServer]:
    """A running moto S3 server for this test, with the environment pointing at it; killed after."""
    pytest.importorskip("s3fs", reason="the s3 extra is not installed")
    pytest.importorskip("moto", reason="moto[server] (dev extra) is not installed")
    logs = tmp_path_factory.mktemp("moto")
    with moto_server(logs / "access.log") as server:
        for name, value in s3_environment(server.endpoint, logs).items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("AWS_PROFILE", raising=False)
        _forget_s3_clients()
        try:
            yield server
        finally:
            _forget_s3_clients()


@pytest.fixture
def s3_server(moto) -> str:
    """``s3://<bucket>`` of a fresh bucket on the ``moto`` server of this test."""
    import boto3

    bucket = f"evals-{uuid.uuid4().hex[:8]}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    return f"s3://{bucket}"


@pytest.fixture
def gcs_server(tmp_path_factory, monkeypatch) -> Iterator[str]:
    """``gs://<bucket>`` on a ``gcp-storage-emulator`` for this test, reached through STORAGE_EMULATOR_HOST."""
    if not gcs_emulator_available():
        pytest.skip("gcp-storage-emulator is not installed in this virtualenv")
    # gcsfs >= 2026.8 asks a gRPC control API for each bucket's layout first, which an emulator does not serve
    # (a 60 s time-out per call); the setting is read when gcsfs is imported.
    monkeypatch.setenv("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
    imported = sys.modules.get("gcsfs")
    if imported is not None and imported.GCSFileSystem.__name__ != "GCSFileSystem":
        pytest.skip("gcsfs was imported before this fixture, with its gRPC layer on")
    pytest.importorskip("gcsfs", reason="the gcs extra is not installed")
    bucket = f"evals-{uuid.uuid4().hex[:8]}"
    with gcs_emulator(tmp_path_factory.mktemp("gcs") / "emulator.log", bucket) as endpoint:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", endpoint)
        import gcsfs

        gcsfs.GCSFileSystem.clear_instance_cache()
        try:
            yield f"gs://{bucket}"
        finally:
            gcsfs.GCSFileSystem.clear_instance_cache()


@pytest.fixture
def dask_cluster(tmp_path_factory) -> Iterator[DaskProcesses]:
    """``dask scheduler`` and two one-thread ``dask worker`` processes on 127.0.0.1; ``.workers`` may be SIGKILLed."""
    pytest.importorskip("distributed", reason="the dask extra is not installed")
    paths = [str(TESTS), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = {"PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}
    with dask_processes(2, tmp_path_factory.mktemp("dask"), env=env) as cluster:
        yield cluster


# --------------------------------------------------------------------------- runs to export, and their undisturbed exports


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
