"""The inspection notebook runs top to bottom in a real Jupyter kernel and shows images."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

nbclient = pytest.importorskip("nbclient", reason="nbclient is needed to execute notebooks (the dev extra)")
nbformat = pytest.importorskip("nbformat", reason="nbformat is needed to read notebooks (the dev extra)")
pytest.importorskip("ipykernel", reason="ipykernel is needed for a python3 kernel (the dev extra)")

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "inspect_eval_shards.ipynb"


def _kernel_executable(argv0: str) -> str:
    """The interpreter jupyter_client starts for a kernel.json ``argv[0]`` (it maps "python", "python3"... to ours)."""
    if argv0 in {"python", f"python{sys.version_info[0]}", "python{}.{}".format(*sys.version_info[:2])}:
        return sys.executable
    return argv0


@pytest.fixture
def python3_kernel(tmp_path, monkeypatch):
    """Make kernel "python3" run this interpreter; if the one found runs another, install one that runs ours."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        argv0 = KernelSpecManager().get_kernel_spec("python3").argv[0]
    except NoSuchKernel:
        argv0 = None
    if argv0 is None or os.path.abspath(_kernel_executable(argv0)) != os.path.abspath(sys.executable):
        from ipykernel.kernelspec import write_kernel_spec

        write_kernel_spec(tmp_path / "jupyter" / "kernels" / "python3")  # its argv[0] is sys.executable
        monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))  # searched before every other kernel folder
    return "python3"


def test_notebook_is_stored_without_outputs():
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code and all(c["outputs"] == [] and c["execution_count"] is None for c in code)
    assert nb["metadata"]["kernelspec"]["name"] == "python3"


def test_notebook_runs_in_a_real_kernel(python3_kernel, tmp_path):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    # one more cell, after the notebook's: which interpreter ran it
    nb.cells.append(nbformat.v4.new_code_cell("import sys; print(sys.executable)"))
    workdir = tmp_path / "cwd"  # no demo_out/shards here: the notebook writes its own shards
    workdir.mkdir()
    client = nbclient.NotebookClient(
        nb, kernel_name=python3_kernel, timeout=300, resources={"metadata": {"path": str(workdir)}}
    )
    client.execute()  # raises CellExecutionError naming the cell if one raised

    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    errors = [o for o in outputs if o.output_type == "error"]
    assert not errors, errors
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 2
    assert nb.cells[-1].outputs[0].text.strip() == os.path.abspath(sys.executable)
    assert any("tensorboard --logdir" in o.get("text", "") for o in outputs)
    # run.changes: what changed between the two checkpoints, printed, tabled and drawn
    (cell,) = [c for c in nb.cells if c.cell_type == "code" and "run.changes(" in c.source]
    text = "".join(o.get("text", "") for o in cell.outputs)
    assert "StepChanges(step 1000 → 2000:" in text and "| **total** |" in text
    assert any("image/png" in o.get("data", {}) for o in cell.outputs)
    assert any("changes at step 2000" in o.get("text", "") for o in outputs)  # the export's report
