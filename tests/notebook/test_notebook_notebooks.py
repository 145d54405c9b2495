"""Every notebook in notebooks/ runs top to bottom on a real kernel, offline, without errors."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parents[2] / "notebooks").glob("*.ipynb"))


def outputs(nb, kind):
    return [out for c in nb.cells if c.cell_type == "code" for out in c.outputs if out.output_type == kind]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path):
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    assert not outputs(nb, "error")
    shown = [out for kind in ("display_data", "execute_result") for out in outputs(nb, kind)]
    assert shown, "a notebook that shows nothing has rotted"


def test_the_notebooks_are_there():
    assert {p.name for p in NOTEBOOKS} >= {"quickstart.ipynb", "compare-models.ipynb", "custom-provider.ipynb"}
