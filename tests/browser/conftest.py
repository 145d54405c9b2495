"""Fixtures for the browser tests: one JupyterLab server and one headless Chromium per session.

Locally, a missing Chromium, Playwright or JupyterLab skips these tests with the reason; on CI
(``CI`` set) it fails them instead, so that they can never be skipped there by accident.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from lab_support import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, ROOT, LabServer, copy_notebooks


def _missing() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"Chromium not found at {CHROMIUM} (apt-get install chromium; .ci/run does)"
    for module in ("playwright", "jupyterlab"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install -e '.[test]')"
    return None


@pytest.fixture(scope="session")
def browser_parts() -> None:
    reason = _missing()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"browser tests cannot run on CI: {reason}")
        pytest.skip(reason)


# Module-scoped, not session-scoped: while Playwright's sync API is open it keeps an event loop running
# in the main thread, and later tests that call asyncio.run() would fail.
@pytest.fixture(scope="module")
def lab(browser_parts):
    home = Path(tempfile.mkdtemp(prefix="llmkit-lab-"))
    names = copy_notebooks(ROOT / "notebooks", home / "notebooks")
    env = {"LLMKIT_LOG_PATH": str(home / "calls.db"), "LLMKIT_CONFIG_DIR": str(home / "config")}
    server = LabServer(home / "notebooks", home, env)
    try:
        server.wait_until_up()
        server.notebooks = names
        server.log_db = home / "calls.db"
        yield server
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def chromium(browser_parts):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(chromium, request):
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        yield page
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        name = request.node.name.replace("/", "_").replace("[", "-").rstrip("]")
        try:
            page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        except Exception:  # the screenshot is a help, not the test
            pass
        context.close()
