"""Fixtures for the whole suite.

Helpers the tests import: ``runs`` writes shards (``write_run``, ``run_arrays``), ``tbutil`` reads
events back with TensorBoard's own reader, ``reporting`` prints figures past pytest's capture.
"""

from __future__ import annotations

import os
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
def make_run(tmp_path):
    """``runs.write_run`` into ``tmp_path / name``; returns that folder.

    >>> shards = make_run(steps=(100, 200), ids=["a", "b"], class_names=["cat", "dog"])  # doctest: +SKIP
    >>> make_run(steps=(300,))  # the same folder again: one more step  # doctest: +SKIP
    """

    def make(name: str = "shards", **kwargs) -> Path:
        return write_run(tmp_path / name, **kwargs)

    return make
