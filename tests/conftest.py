"""Fixtures for the whole suite.

Helpers the tests import: ``runs`` writes shards (``write_run``, ``run_arrays``), ``tbutil`` reads
events back with TensorBoard's own reader, ``reporting`` prints figures past pytest's capture.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from runs import write_run

import exporter

#: The checkout under test: the folder that holds the ``exporter`` package this process imported.
CHECKOUT = Path(exporter.__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def _child_processes_import_this_checkout():
    """Scripts, the console script and notebook kernels started by tests import the exporter under test.

    Without this a child imports whatever the virtualenv's editable install points at: run from
    another checkout (a git worktree sharing the virtualenv) the children would test that one.
    """
    paths = [str(CHECKOUT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", os.pathsep.join(dict.fromkeys(paths)))
        yield


@pytest.fixture
def bucket():
    """A fresh folder of fsspec's memory:// file system (``memory://bucket-...``), removed after the test."""
    fsspec = pytest.importorskip("fsspec")
    name = f"bucket-{os.getpid()}-{time.monotonic_ns()}"
    yield f"memory://{name}"
    memory = fsspec.filesystem("memory")
    if memory.exists(f"/{name}"):
        memory.rm(f"/{name}", recursive=True)


@pytest.fixture
def make_run(tmp_path):
    """``runs.write_run`` into ``tmp_path / name``; returns that folder.

    >>> shards = make_run(steps=(100, 200), ids=["a", "b"], class_names=["cat", "dog"])  # doctest: +SKIP
    >>> make_run(steps=(300,))  # the same folder again: one more step  # doctest: +SKIP
    """

    def make(name: str = "shards", **kwargs) -> Path:
        return write_run(tmp_path / name, **kwargs)

    return make


#: The environment that runs the ``campaign`` tests; ``make test`` names each one in SUMMARY_EXPORTER_TEST_ENV.
CAMPAIGN_ENV = "core"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under ``make test``, the ``campaign`` trials (signals, mounts, overlap on the exporter's own
    processes) run in one environment: they need no framework, and three runs would triple the
    slowest part of the suite. Deselected, not skipped; outside ``make test`` they always run."""
    env = os.environ.get("SUMMARY_EXPORTER_TEST_ENV")
    if env is None or env == CAMPAIGN_ENV:
        return
    elsewhere = [item for item in items if item.get_closest_marker("campaign")]
    if elsewhere:
        config.hook.pytest_deselected(items=elsewhere)
        items[:] = [item for item in items if not item.get_closest_marker("campaign")]
