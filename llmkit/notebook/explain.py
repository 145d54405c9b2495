"""Errors of the notebook's cells, kept for ``%%llm --explain``, ``%llm fix`` and ``{Err[n]}``.

An IPython ``post_run_cell`` hook notes each cell that raised: its number, its code, and the
traceback as text without IPython's own frames. ``Err`` in the user's namespace maps a cell's number
to that traceback, as ``Out`` maps it to the output; the prompt built by :func:`explain_prompt` asks
a model for the cause and a fix, with the fix as one fenced code block (the ``code`` format puts it in
a new cell below).
"""

from __future__ import annotations

import os
import traceback
from dataclasses import dataclass
from typing import Any

__all__ = ["CellError", "ErrorBook", "explain_prompt"]

EXPLAIN_SYSTEM = (
    "You help a Python programmer working in a Jupyter notebook. Explain briefly, in Markdown, why the"
    " cell failed, then give the corrected code of the cell as one fenced ```python code block."
)


@dataclass
class CellError:
    count: int | None  # the cell's execution count
    code: str
    traceback: str


class ErrorBook:
    """The errors of this session's cells, by execution count, and the latest one."""

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.by_cell: dict[int, str] = {}  # Err: count -> traceback text
        self.last: CellError | None = None
        shell.user_ns.setdefault("Err", self.by_cell)
        self.by_cell = shell.user_ns["Err"]  # a reloaded extension keeps the errors noted so far
        shell.events.register("post_run_cell", self.note)

    def close(self) -> None:
        self.shell.events.unregister("post_run_cell", self.note)

    def note(self, result: Any) -> None:
        error = result.error_in_exec or result.error_before_exec
        if error is None or isinstance(error, KeyboardInterrupt):
            return
        count = result.execution_count
        code = getattr(result.info, "raw_cell", "") or ""
        self.last = CellError(count, code, format_error(error))
        if count is not None:
            self.by_cell[count] = self.last.traceback

    def latest(self) -> CellError | None:
        """The last cell error; without one, the last traceback IPython showed (a cell that failed
        before llmkit was loaded), with no code."""
        if self.last is not None:
            return self.last
        import sys

        error = getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)
        return None if error is None else CellError(None, "", format_error(error))


def format_error(error: BaseException) -> str:
    """The traceback as text, from the cell's own frame on (IPython's frames above it say nothing)."""
    tb = error.__traceback__
    while tb is not None and _is_ipython(tb.tb_frame.f_code.co_filename) and tb.tb_next is not None:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(error), error, tb)).rstrip()


def _is_ipython(filename: str) -> bool:
    import IPython

    return filename.startswith(os.path.dirname(IPython.__file__))


def explain_prompt(error: CellError, question: str = "") -> str:
    """What ``--explain`` sends: the failing cell's code, its traceback, and the user's own words."""
    parts = []
    if error.code.strip():
        label = f"cell [{error.count}]" if error.count is not None else "the cell"
        parts.append(f"This notebook {label} failed:\n\n```python\n{error.code.strip()}\n```")
    parts.append(f"The error:\n\n```\n{error.traceback}\n```")
    parts.append(question.strip() or "What is the cause, and how do I fix it?")
    return "\n\n".join(parts)
