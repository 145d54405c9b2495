"""The wheel, as a user gets it: built with ``python -m build``, installed into a fresh virtual
environment (not this checkout), and used there: import, a demo call, ``%load_ext llmkit`` in a real
IPython, and ``llmkit serve --help``. Catches a module or data file missing from the package."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.timeout(600)


def run(*command, cwd: Path) -> str:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(map(str, command))} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh virtual environment with the freshly built wheel installed (notebook and proxy extras)."""
    work = tmp_path_factory.mktemp("wheel")
    run(sys.executable, "-m", "build", "--wheel", "--outdir", str(work / "dist"), str(ROOT), cwd=work)
    (wheel,) = (work / "dist").glob("llmkit-*.whl")
    run(sys.executable, "-m", "venv", str(work / "venv"), cwd=work)
    python = work / "venv" / "bin" / "python"
    run(python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", f"{wheel}[notebook,proxy]", cwd=work)
    return wheel, python, work


def test_wheel_carries_the_package_the_license_and_the_typing_marker(installed):
    wheel, _, _ = installed
    names = zipfile.ZipFile(wheel).namelist()
    assert "llmkit/py.typed" in names
    assert any(name.endswith("licenses/LICENSE") for name in names)
    # every module of the source tree is in the wheel
    source = {str(path.relative_to(ROOT)) for path in (ROOT / "llmkit").rglob("*.py")}
    assert source <= set(names), sorted(source - set(names))


def test_installed_wheel_imports_and_calls(installed):
    _, python, work = installed
    script = (
        "import llmkit, pathlib;"
        "r = llmkit.completion('demo/echo', [{'role': 'user', 'content': 'from the wheel'}]);"
        "print(r.choices[0].message.content);"
        "print(pathlib.Path(llmkit.__file__).parent);"
        "print(llmkit.__version__)"
    )
    content, location, version = run(python, "-c", script, cwd=work).splitlines()
    assert content == "from the wheel"
    assert str(work / "venv") in location  # the installed copy, not this checkout
    import llmkit

    assert version == llmkit.__version__


def test_installed_wheel_loads_the_magic_in_a_real_ipython(installed):
    _, python, work = installed
    (work / "smoke.ipy").write_text(
        "%load_ext llmkit\nget_ipython().run_cell_magic('llm', 'demo/echo -f text --no-stream', 'hello from ipython')\n"
    )
    out = run(python, "-m", "IPython", "--no-banner", "--quick", str(work / "smoke.ipy"), cwd=work)
    assert "hello from ipython" in out


def test_installed_wheel_serve_help(installed):
    _, python, work = installed
    out = run(python.parent / "llmkit", "serve", "--help", cwd=work)
    assert "--config" in out and "--port" in out
