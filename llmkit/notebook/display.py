"""Rendering model runs in a notebook: live while they stream, then once more in the chosen format.

:class:`RichView` uses the display protocol (one display with an id, then ``update_display_data``),
at most one update per :data:`UPDATE_INTERVAL` and only when something changed, so a fast stream
never floods the front-end; several models share one display as side-by-side columns.
:class:`TerminalView` prints tokens as they arrive, for a terminal IPython.
The ``*_html`` and ``*_bundle`` functions are pure: runs in, HTML or mime bundles out.
"""

from __future__ import annotations

import html
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

from llmkit.answers import extract_code, parse_json_answer
from llmkit.notebook.runs import ModelRun
from llmkit.types.reprs import images_html, images_plain

__all__ = ["FORMATS", "RichView", "TerminalView", "extract_code", "footer", "parse_json_answer", "run_html"]

FORMATS = ("markdown", "text", "code", "html", "json", "math")
UPDATE_INTERVAL = 0.05  # seconds: at most 20 display updates a second per output
_CURSOR = "\u258c"


# -- pure pieces ------------------------------------------------------------------------------------
def footer(run: ModelRun) -> str:
    """One line of figures: model, latency, time to first token, tokens, tokens per second."""
    parts = [run.model if run.model == run.target else f"{run.model} ({run.target})"]
    if run.cache_hit:  # the cache's speed is not the model's: say where the answer came from instead
        parts.append("cached")
        if run.tokens:
            parts.append(f"{run.tokens} tokens")
        return " \u00b7 ".join(parts)
    if run.latency is not None:
        parts.append(_duration(run.latency))
    if run.ttft is not None and run.tokens:
        parts.append(f"first token {_duration(run.ttft)}")
    if run.tokens:
        parts.append(f"{run.tokens} tokens")
    rate = run.tokens_per_second
    if rate:
        parts.append(f"{rate:,.0f} tokens/s" if rate >= 100 else f"{rate:.1f} tokens/s")
    if run.status in ("error", "cancelled"):
        parts.append(run.status)
    return " \u00b7 ".join(parts)


def _duration(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def error_text(run: ModelRun) -> str:
    return f"{type(run.error).__name__}: {run.error}"


def markdown_html(text: str) -> str:
    from markdown_it import MarkdownIt  # loaded only when several answers are shown side by side

    html: str = MarkdownIt("commonmark", {"html": False}).enable("table").render(text)
    return html


def _pre(text: str) -> str:
    return f'<pre style="white-space:pre-wrap;margin:0">{html.escape(text)}</pre>'


def body_html(run: ModelRun, fmt: str, final: bool) -> str:
    """A run's answer as HTML: plain while it streams, in ``fmt`` once it is done."""
    if run.status == "error":
        prefix = _pre(run.text) if run.text else ""
        return prefix + f'<pre style="white-space:pre-wrap;color:#c0392b;margin:0">{html.escape(error_text(run))}</pre>'
    if run.images is not None:
        return images_html(run.images)
    text = run.text
    if not final:
        return _pre(text + _CURSOR)
    if fmt == "html":
        return text
    if fmt == "json":
        try:
            return _pre(json.dumps(parse_json_answer(text), indent=2, ensure_ascii=False))
        except ValueError as exc:
            return _pre(text) + f"<i>not valid JSON: {html.escape(str(exc))}</i>"
    if fmt in ("markdown", "code"):
        return markdown_html(text)
    if fmt == "math":
        from llmkit.notebook.latex import math_html

        return math_html(text)
    return _pre(text)


def run_html(run: ModelRun, fmt: str, final: bool) -> str:
    """One column: the model's name, its answer, and its figures."""
    return (
        '<div style="flex:1 1 0;min-width:240px;padding:0 8px;border-left:3px solid #8884">'
        f"<b>{html.escape(run.model)}</b>"
        f"<div>{body_html(run, fmt, final)}</div>"
        f'<div style="font-size:85%;opacity:.7">{html.escape(footer(run))}</div>'
        "</div>"
    )


def columns_bundle(runs: Sequence[ModelRun], fmt: str, final: bool) -> dict[str, Any]:
    """Several runs side by side (HTML flex), with a plain-text fallback."""
    columns = "".join(run_html(run, fmt, final) for run in runs)
    plain = "\n\n".join(f"== {run.model} ==\n{_plain_body(run)}\n{footer(run)}" for run in runs)
    return {"text/html": f'<div style="display:flex;flex-wrap:wrap;gap:4px">{columns}</div>', "text/plain": plain}


def _plain_body(run: ModelRun) -> str:
    if run.status == "error":
        return (run.text + "\n" if run.text else "") + error_text(run)
    if run.images is not None:
        return images_plain(run.images)
    return run.text


def single_bundle(run: ModelRun, fmt: str, final: bool) -> dict[str, Any]:
    """One run's bundle: live text while it streams, then its answer in ``fmt`` with the footer."""
    text = run.text
    if run.status == "error" or run.images is not None:
        return columns_bundle([run], fmt, final)
    if not final:
        if fmt == "markdown":
            return {"text/markdown": text + _CURSOR, "text/plain": text}
        return {"text/plain": text + _CURSOR}
    line = footer(run)
    if fmt == "markdown" or fmt == "code":
        return {"text/markdown": f"{text}\n\n*{line}*", "text/plain": f"{text}\n\n{line}"}
    if fmt == "math":
        from llmkit.notebook.latex import math_markdown

        return {"text/markdown": f"{math_markdown(text)}\n\n*{line}*", "text/plain": f"{text}\n\n{line}"}
    if fmt == "html":
        return {
            "text/html": f'{text}<div style="font-size:85%;opacity:.7">{html.escape(line)}</div>',
            "text/plain": text,
        }
    if fmt == "json":
        try:
            value = parse_json_answer(text)
        except ValueError as exc:
            return {"text/plain": f"{text}\n\nnot valid JSON: {exc}\n{line}"}
        return {"application/json": value, "text/plain": f"{json.dumps(value, indent=2, ensure_ascii=False)}\n\n{line}"}
    return {"text/plain": f"{text}\n\n{line}"}


def bundle(runs: Sequence[ModelRun], fmt: str, final: bool) -> dict[str, Any]:
    return single_bundle(runs[0], fmt, final) if len(runs) == 1 else columns_bundle(runs, fmt, final)


# -- views -------------------------------------------------------------------------------------------
def _state(runs: Sequence[ModelRun]) -> tuple:
    return tuple((len(run.parts), run.status) for run in runs)


class RichView:
    """One display for the cell, updated in place at most every UPDATE_INTERVAL seconds."""

    def __init__(self, runs: Sequence[ModelRun], fmt: str) -> None:
        from IPython.display import display

        self.runs, self.fmt = runs, fmt
        self._shown = _state(runs)
        self._last = time.perf_counter()
        self.handle = display(bundle(runs, fmt, final=False), raw=True, display_id=True)

    def refresh(self) -> None:
        """Show what arrived since the last update, unless that was less than UPDATE_INTERVAL ago."""
        now = time.perf_counter()
        if now - self._last < UPDATE_INTERVAL:
            return
        state = _state(self.runs)
        if state != self._shown:
            self._shown, self._last = state, now
            self.handle.update(bundle(self.runs, self.fmt, final=False), raw=True)

    def finish(self) -> None:
        self.handle.update(bundle(self.runs, self.fmt, final=True), raw=True)


class TerminalView:
    """Prints each model's tokens as they arrive, one model after the other, then its footer."""

    def __init__(self, runs: Sequence[ModelRun], fmt: str, out: Any = None) -> None:
        self.runs, self.fmt = runs, fmt
        self.out = out or sys.stdout
        self._current = 0  # the run being printed; the others print when their turn comes
        self._printed = 0  # parts of the current run printed so far
        self._header()

    def _header(self) -> None:
        if len(self.runs) > 1 and self._current < len(self.runs):
            self.out.write(f"== {self.runs[self._current].model} ==\n")

    def refresh(self) -> None:
        while self._current < len(self.runs):
            run = self.runs[self._current]
            parts = run.parts[self._printed :]
            if parts:
                self.out.write("".join(parts))
                self._printed += len(parts)
            if not run.finished:
                break
            self._close(run)
        self.out.flush()

    def _close(self, run: ModelRun) -> None:
        if run.status == "error":
            self.out.write(("\n" if run.text else "") + error_text(run))
        elif run.images is not None:
            self.out.write(images_plain(run.images))
        self.out.write(f"\n[{footer(run)}]\n")
        self._current += 1
        self._printed = 0
        self._header()

    def finish(self) -> None:
        self.refresh()
        while self._current < len(self.runs):  # interrupted: show what the others had
            run = self.runs[self._current]
            self.out.write("".join(run.parts[self._printed :]))
            self._close(run)
        self.out.flush()
