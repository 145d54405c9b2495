"""The notebook surfaces load only when used: ``import llmkit`` pulls in none of their dependencies."""

import subprocess
import sys

HEAVY = ("IPython", "ipywidgets", "traitlets", "pandas", "markdown_it", "llmkit.notebook")


def test_import_llmkit_loads_no_notebook_dependency():
    code = f"import sys, llmkit; print([m for m in {HEAVY!r} if m in sys.modules]); print(callable(llmkit.load_ipython_extension))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "[]"
    assert out[1] == "True"


def test_the_widgets_module_is_the_public_path():
    from llmkit.notebook.widgets import CompareWidget
    from llmkit.widgets import CompareWidget as public

    assert public is CompareWidget
