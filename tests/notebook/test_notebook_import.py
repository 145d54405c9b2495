"""The notebook surfaces load only when used: ``import llmkit`` pulls in none of their dependencies."""

import subprocess
import sys

import pytest

import llmkit

HEAVY = ("IPython", "ipywidgets", "traitlets", "pandas", "markdown_it", "llmkit.notebook")


def test_import_llmkit_loads_no_notebook_dependency():
    code = (
        f"import sys, llmkit; print([m for m in {HEAVY!r} if m in sys.modules]);"
        " print(callable(llmkit.load_ipython_extension))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "[]"
    assert out[1] == "True"


def test_the_widgets_module_is_the_public_path():
    from llmkit.notebook.widgets import CompareWidget
    from llmkit.widgets import CompareWidget as public

    assert public is CompareWidget


def test_a_missing_extra_says_what_to_install(monkeypatch):
    from llmkit.widgets import CompareWidget

    monkeypatch.setitem(sys.modules, "pandas", None)  # as if pandas were not installed
    with pytest.raises(ImportError, match=r"pandas is not installed; .*pip install 'llmkit\[notebook\]'"):
        CompareWidget(["demo/echo"]).to_dataframe()
    monkeypatch.setitem(sys.modules, "markdown_it", None)
    from IPython.core.interactiveshell import InteractiveShell

    with pytest.raises(ImportError, match="markdown_it is not installed"):
        llmkit.load_ipython_extension(InteractiveShell.instance())
