"""Every notebook in notebooks/ runs top to bottom on a real kernel, offline, without errors."""

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parents[2] / "notebooks").glob("*.ipynb"))


def outputs(nb, kind):
    return [out for c in nb.cells if c.cell_type == "code" for out in c.outputs if out.output_type == kind]


# Cells whose output must show something in particular: {cell id: text in its HTML output}.
EXPECTED = {
    "quickstart-23": "<td>magic</td>",  # %llm log 5: the notebook's own calls
    "quickstart-26": "shouty/v1",  # %llm summary
    "compare-models-16": "Describe the sea in one line.",  # side_by_side
    "compare-models-21": "background: linear-gradient",  # the summary's bars
    "evaluate-4": "check_pairwise",  # compare with samples and checks
    "evaluate-6": "pass_rate_high",  # the pass-rate summary
    "evaluate-11": "rating_low",  # the ratings
}


# {cell id: text in its Markdown output}
EXPECTED_MARKDOWN = {
    "quickstart-restart": "And a third day?",  # the chat's next turn
    "quickstart-chat-show": "**user:** Two days in Lisbon?",  # its transcript, every turn
    "quickstart-default-cell": "NO MODEL NAMED, SO THE DEFAULT ANSWERS",  # shouty/v1, the default
    "quickstart-math": "$e^{i\\pi} + 1 = 0$",
}


def markdown_of(cell):
    return "".join(out.get("data", {}).get("text/markdown", "") for out in cell.outputs)


def html_of(cell):
    return "".join(out.get("data", {}).get("text/html", "") for out in cell.outputs)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path, tmp_path, monkeypatch):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))  # the kernel's temporary folder: a user's runs must not litter it
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    assert not outputs(nb, "error")
    assert not list(scratch.iterdir()), f"{path.name} left temporary files behind"
    shown = [out for kind in ("display_data", "execute_result") for out in outputs(nb, kind)]
    assert shown, "a notebook that shows nothing has rotted"
    cells = {cell.get("id"): cell for cell in nb.cells}
    for cell_id, text in EXPECTED.items():
        if cell_id.startswith(path.stem + "-"):
            assert text in html_of(cells[cell_id]), f"cell {cell_id} of {path.name}"
    for cell_id, text in EXPECTED_MARKDOWN.items():
        if cell_id.startswith(path.stem + "-"):
            assert text in markdown_of(cells[cell_id]), f"cell {cell_id} of {path.name}"


def run_notebook(path):
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    assert not outputs(nb, "error")
    return {cell.get("id"): cell for cell in nb.cells}


def printed(cell):
    return "".join(out.get("text", "") for out in cell.outputs if out.output_type == "stream")


def test_evaluate_runs_again_from_the_cache_without_calling_a_model(tmp_path, monkeypatch):
    """The second run, with LLMKIT_CACHE=replay, answers every call from the cache: the handlers are
    called zero times (any call the cache lacked would fail the run), and the results are the same."""
    path = next(p for p in NOTEBOOKS if p.name == "evaluate.ipynb")
    monkeypatch.setenv("LLMKIT_LOG_PATH", str(tmp_path / "calls.db"))  # the kernels' log, and the cache beside it
    monkeypatch.delenv("LLMKIT_CACHE", raising=False)
    first = run_notebook(path)
    monkeypatch.setenv("LLMKIT_CACHE", "replay")
    second = run_notebook(path)

    def live_calls(cells):
        return int(re.search(r"live calls answered by the handlers: (\d+)", printed(cells["evaluate-15"])).group(1))

    assert live_calls(first) > 50  # 30 answers, their judges, the widget's
    assert live_calls(second) == 0
    assert "'replay'" in str(second["evaluate-2b"].outputs[0]["data"]["text/plain"])
    assert html_of(second["evaluate-4"]) == html_of(first["evaluate-4"])  # the same answers and scores


def test_the_notebooks_are_there():
    assert {p.name for p in NOTEBOOKS} >= {
        "quickstart.ipynb",
        "compare-models.ipynb",
        "custom-provider.ipynb",
        "evaluate.ipynb",
    }
