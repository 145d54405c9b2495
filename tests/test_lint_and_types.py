"""Style and types are checked with the tests: ruff (lint and format) on the code, mypy on llmkit/.

The settings are in pyproject.toml ([tool.ruff], [tool.mypy]); the tools come with the test extra.
To fix what these report: ``ruff check --fix`` and ``ruff format`` for style, then what mypy says.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CODE = ["llmkit", "tests", "bench", "docs/_hooks.py", "examples"]

_MYPY_LINE = re.compile(r"^(?P<path>[^:\s]+\.py):\d+: (?P<level>error|note): (?P<message>.*)$")


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )


def ruff(*args: str) -> subprocess.CompletedProcess[str]:
    return run("ruff", *args, "--force-exclude", *CODE)


def test_ruff_finds_nothing():
    result = ruff("check", "--output-format", "concise")
    assert result.returncode == 0, (
        f"ruff check found problems (ruff check --fix fixes some):\n{result.stdout}{result.stderr}"
    )


def test_code_is_ruff_formatted():
    result = ruff("format", "--check", "--diff")
    assert result.returncode == 0, f"not ruff-formatted (run ruff format):\n{result.stdout}{result.stderr}"


def test_mypy_finds_no_type_errors_in_llmkit():
    result = run("mypy", "--no-error-summary", "--no-pretty", "--show-error-codes")
    assert result.returncode in (0, 1), f"mypy did not run:\n{result.stdout}{result.stderr}"
    errors = []
    for line in result.stdout.splitlines():
        found = _MYPY_LINE.match(line)
        if found is None:  # not a finding: let it show
            errors.append(line)
        elif found["level"] == "error":
            errors.append(line)
    assert not errors, "mypy llmkit:\n" + "\n".join(errors) + result.stderr
