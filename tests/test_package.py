"""Packaging promises: light import, console script, no framework in the core."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest


def test_import_exporter_loads_no_framework():
    code = (
        "import sys, exporter, exporter.shards, exporter.writer, exporter.schema;"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'keras', 'torch', 'jax', 'PIL', 'tensorboardX'})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


#: What each environment of ``make test`` holds (the Makefile's extras): module -> version prefix,
#: None for "not installed". The framework tests skip where their framework is missing, so a broken
#: environment would pass by skipping them all; this checks that each environment is what it says.
ENVIRONMENTS = {
    "core": {"numpy": "2.", "tensorflow": None, "keras": None, "tensorflow_estimator": None},
    "tf215": {"numpy": "1.", "tensorflow": "2.15.", "keras": "2.15.", "tensorflow_estimator": "2.15."},
    "tf221": {"numpy": "2.", "tensorflow": "2.21.", "keras": "3.", "tensorflow_estimator": None},
}
DEV_EXTRA = ("hypothesis", "tensorboard", "nbclient", "nbformat", "ipykernel")  # in every environment


def test_the_test_environment_has_the_stack_it_names():
    import importlib
    import importlib.metadata
    import importlib.util

    env = os.environ.get("SUMMARY_EXPORTER_TEST_ENV")
    if env is None:
        pytest.skip("SUMMARY_EXPORTER_TEST_ENV is not set (make test sets it for each environment)")
    assert env in ENVIRONMENTS, f"unknown test environment {env!r}; known: {sorted(ENVIRONMENTS)}"
    for module, version in {**ENVIRONMENTS[env], **dict.fromkeys(DEV_EXTRA, "")}.items():
        if version is None:
            assert importlib.util.find_spec(module) is None, f"{module} is installed in the {env!r} environment"
            continue
        try:
            imported = importlib.import_module(module)  # importable, not only installed
        except ImportError as exc:
            pytest.fail(f"{module} does not import in the {env!r} environment: {exc}")
        found = getattr(imported, "__version__", None) or importlib.metadata.version(module.replace("_", "-"))
        assert found.startswith(version), f"{module} {found} in the {env!r} environment, expected {version}*"


def test_console_script_and_module_entry_point_are_installed():
    script = shutil.which("summary-exporter", path=os.path.dirname(sys.executable))
    assert script is not None, "pip install -e . should install the summary-exporter console script"
    for cmd in ([script, "--help"], [sys.executable, "-m", "exporter", "--help"]):
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert "summary-exporter" in out.stdout and "export" in out.stdout
