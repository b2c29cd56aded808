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


def test_core_environment_really_has_no_tensorflow():
    """The test command runs this suite once without TensorFlow: prove that environment is what it says."""
    if os.environ.get("SUMMARY_EXPORTER_TEST_ENV") != "core":
        pytest.skip("only meaningful in the 'core' test environment")
    import importlib.util

    assert importlib.util.find_spec("tensorflow") is None
    assert importlib.util.find_spec("keras") is None


def test_console_script_and_module_entry_point_are_installed():
    script = shutil.which("summary-exporter", path=os.path.dirname(sys.executable))
    assert script is not None, "pip install -e . should install the summary-exporter console script"
    for cmd in ([script, "--help"], [sys.executable, "-m", "exporter", "--help"]):
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert "summary-exporter" in out.stdout and "export" in out.stdout
