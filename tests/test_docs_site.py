"""The documentation site builds in MkDocs' strict mode: a broken link, a page missing from the nav,
or an API reference that names something that no longer exists fails here. The notebooks are
executed during the build (offline), so a notebook that stops working fails here too."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    pytest.importorskip("mkdocs", reason="the docs extra is not installed: pip install -e '.[docs]'")
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "LLMKIT_LOG_PATH": str(out.parent / "docs-calls.db")}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return out


def test_every_docs_page_is_in_the_site(site):
    pages = {path.stem for path in (ROOT / "docs").glob("*.md")}
    built = {path.parent.name for path in site.rglob("index.html")} | {"index"}
    assert pages <= built, sorted(pages - built)


def test_api_reference_is_generated_from_docstrings(site):
    api = (site / "api" / "index.html").read_text()
    import llmkit

    for name in ("completion", "acompletion", "CustomLLM", "CustomStreamWrapper", "calllog.log.CallLog.to_dataframe"):
        assert f'id="llmkit.{name}"' in api, name
    first_words = " ".join(llmkit.completion.__doc__.split()[:5])  # "Chat completion through the provider"
    assert first_words in api


def test_notebooks_are_rendered_with_their_outputs(site):
    for name in (path.stem for path in (ROOT / "notebooks").glob("*.ipynb")):
        page = (site / "notebooks" / name / "index.html").read_text()
        assert "jp-OutputArea" in page or "output_area" in page, name
    quickstart = (site / "notebooks" / "quickstart" / "index.html").read_text()
    assert "tokens/s" in quickstart  # the footer of an executed %%llm cell
