"""Every notebook in notebooks/, opened in JupyterLab in a real Chromium and run as a person would.

What is checked is what a person sees: every cell ran without an error output; a streamed answer
grows over several observations before it completes and renders as Markdown with its footer; the
generated images have loaded; the comparison widget's panes fill after a real click on Run, and a
click on a vote button lands in the call log.
"""

from __future__ import annotations

import sqlite3
import time

import pytest
from lab_support import ARTIFACTS

pytestmark = pytest.mark.timeout(300)

CELL_TIMEOUT_MS = 120_000
IDLE = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator[data-status='idle']"

# Samples a cell's output every 20 ms from inside the page, so that what is seen does not depend on
# how fast this process polls: the text's length and whether the streaming cursor is at its end.
_WATCH_CELL = """
(marker) => {
  const cell = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell')]
    .find(c => c.querySelector('.jp-InputArea-editor').textContent.includes(marker));
  if (!cell) throw new Error('no cell containing ' + marker);
  window.__llmkitSamples = [];
  window.__llmkitWatch = setInterval(() => {
    const out = cell.querySelector('.jp-OutputArea');
    const text = out ? out.innerText.trim() : '';
    window.__llmkitSamples.push([text.length, text.endsWith('\\u258c')]);
  }, 20);
}
"""


def open_notebook(page, lab, name: str) -> None:
    page.goto(lab.notebook_url(name))
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    # JupyterLab may ask which kernel to start; a person picks the one offered.
    dialog = page.locator(".jp-Dialog").filter(has_text="Select Kernel")
    try:
        dialog.wait_for(timeout=5_000)
        dialog.get_by_role("button", name="Select").click()
    except Exception:  # no dialog: the kernel started on its own
        pass
    page.wait_for_selector(IDLE, timeout=60_000)


def run_all_cells(page) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()


def wait_until_all_ran(page) -> None:
    """Every code cell has an execution count (no "[ ]" or "[*]" left) and the kernel is idle."""
    page.wait_for_function(
        """() => {
          const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')];
          return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
        }""",
        timeout=CELL_TIMEOUT_MS,
    )
    page.wait_for_selector(IDLE, timeout=CELL_TIMEOUT_MS)


def error_outputs(page) -> list[str]:
    errors = page.locator(
        ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error'],"
        " .jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
    )
    return [errors.nth(i).inner_text()[:500] for i in range(errors.count())]


def code_cell(page, marker: str):
    return page.locator(".jp-CodeCell").filter(has=page.locator(".jp-InputArea-editor", has_text=marker)).first


def snap(locator, name: str) -> None:
    """A screenshot of one part of the page, for a person to look at (test-artifacts/browser/)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    locator.scroll_into_view_if_needed()
    locator.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def run_notebook(page, lab, name: str) -> None:
    open_notebook(page, lab, name)
    run_all_cells(page)
    wait_until_all_ran(page)
    assert error_outputs(page) == [], f"{name} shows errors"


def test_every_notebook_is_checked(lab):
    """A notebook added to notebooks/ gets a test here, or this fails."""
    assert sorted(lab.notebooks) == sorted(NOTEBOOK_CHECKS)


def test_quickstart_streams_renders_and_draws(page, lab):
    open_notebook(page, lab, "quickstart.ipynb")
    page.evaluate(_WATCH_CELL, "demo/lorem --max-tokens 60")
    run_all_cells(page)
    wait_until_all_ran(page)
    samples = page.evaluate("() => { clearInterval(window.__llmkitWatch); return window.__llmkitSamples; }")
    assert error_outputs(page) == []

    # Streaming: the answer grew, with the cursor at its end, over several observations.
    streaming = sorted({length for length, cursor in samples if cursor and length > 0})
    assert len(streaming) >= 3, f"saw the streamed answer at only {streaming} characters"
    # Then the final render: Markdown (no cursor) with the footer of figures.
    lorem = code_cell(page, "demo/lorem --max-tokens 60")
    final = lorem.locator(".jp-RenderedMarkdown").inner_text()
    assert "\u258c" not in final
    assert "demo/lorem" in final and "tokens/s" in final and "first token" in final
    assert len(final) > max(streaming) // 2
    snap(lorem, "quickstart-streamed-answer")

    # The images drawn by demo/image have loaded: three, each with a real width.
    images = code_cell(page, "demo/image -p n=3").locator(".jp-OutputArea img")
    assert images.count() == 3
    widths = [images.nth(i).evaluate("img => img.complete ? img.naturalWidth : 0") for i in range(3)]
    assert all(width > 0 for width in widths), widths
    snap(code_cell(page, "demo/image -p n=3"), "quickstart-images")

    # -f math: the front-end's MathJax typeset the answer's LaTeX, inline and display.
    math = code_cell(page, "-f math")
    math.locator(".jp-OutputArea mjx-container").first.wait_for(timeout=30_000)
    assert math.locator(".jp-OutputArea mjx-container").count() >= 2
    assert "$" not in math.locator(".jp-RenderedMarkdown").inner_text()
    snap(math, "quickstart-math")

    # The conversation continued, and its transcript shows every turn.
    transcript = code_cell(page, "%llm chat trip --show").locator(".jp-RenderedMarkdown").inner_text()
    assert transcript.index("Two days in Lisbon?") < transcript.index("And a third day?")


def test_compare_models_widget_runs_on_click_and_records_votes(page, lab):
    run_notebook(page, lab, "compare-models.ipynb")
    widget = code_cell(page, "w = CompareWidget(").locator(".jp-OutputArea .widget-vbox").first
    widget.wait_for(timeout=30_000)

    # A person types a new prompt, then clicks Run: every pane fills with that comparison's answers.
    prompt = f"browser prompt {time.time_ns()}"
    widget.locator("textarea").first.fill(prompt)
    widget.get_by_role("button", name="Run").click()
    panes = widget.locator(".widget-hbox .widget-vbox").filter(has=page.get_by_role("button", name="best"))
    page.wait_for_function(
        """([el, prompt]) => el.innerText.includes(prompt)""", arg=[widget.element_handle(), prompt], timeout=30_000
    )
    widget.get_by_role("button", name="Run").wait_for(timeout=30_000)
    models = widget_models(page, widget)
    assert panes.count() == len(models) >= 2
    for i in range(panes.count()):
        assert len(panes.nth(i).inner_text().strip()) > len(models[i]), f"pane {i} stayed empty"
    snap(widget, "compare-widget-after-run-click")

    # The vote button: a click records the vote in the call log, on this comparison's calls.
    before = votes(lab.log_db)
    wait_for_enabled(page, widget.get_by_role("button", name="Run"))
    panes.nth(0).get_by_role("button", name="best").click()
    deadline = time.monotonic() + 15
    while len(votes(lab.log_db)) == len(before) and time.monotonic() < deadline:
        time.sleep(0.2)
    added = votes(lab.log_db)[len(before) :]
    assert sorted(value for value, _ in added) == sorted(['"best"'] + ['"not_best"'] * (len(models) - 1))
    assert len({group for _, group in added}) == 1


def widget_models(page, widget) -> list[str]:
    """The model names the panes show, in order (each pane starts with its model in bold)."""
    return widget.locator(".widget-hbox .widget-vbox b").all_inner_texts()


def wait_for_enabled(page, button) -> None:
    page.wait_for_function("b => !b.disabled", arg=button.element_handle(), timeout=30_000)


def votes(path) -> list[tuple[str, str]]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT value, group_id FROM annotations WHERE name = 'vote' ORDER BY seq").fetchall()


def test_custom_provider_notebook_runs(page, lab):
    run_notebook(page, lab, "custom-provider.ipynb")
    # The 429 from the stand-in API shows in the cell's output, not as a traceback.
    busy = code_cell(page, "are you busy right now?").locator(".jp-OutputArea").inner_text()
    assert "RateLimitError" in busy or "429" in busy


def test_evaluate_notebook_scores_and_reveals_the_blind_comparison(page, lab):
    run_notebook(page, lab, "evaluate.ipynb")
    table = code_cell(page, "samples=3").locator(".jp-OutputArea").inner_text()
    assert "check_judge" in table and "passed" in table
    # The blind widget was voted on by the next cell: its panes now name the models behind the letters.
    blind = code_cell(page, "blind=True").locator(".jp-OutputArea .widget-vbox").first
    blind.wait_for(timeout=30_000)
    titles = " ".join(blind.locator("b").all_inner_texts())
    assert "house/careful" in titles and "house/hasty" in titles, titles
    snap(blind, "evaluate-blind-widget-after-vote")


NOTEBOOK_CHECKS = {
    "quickstart.ipynb": test_quickstart_streams_renders_and_draws,
    "compare-models.ipynb": test_compare_models_widget_runs_on_click_and_records_votes,
    "custom-provider.ipynb": test_custom_provider_notebook_runs,
    "evaluate.ipynb": test_evaluate_notebook_scores_and_reveals_the_blind_comparison,
}
