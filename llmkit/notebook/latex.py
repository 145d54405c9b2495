"""``-f math``: answers with LaTeX, rendered by the front-end's MathJax.

Models write math as ``$...$``, ``$$...$$``, ``\\(...\\)`` or ``\\[...\\]``. Jupyter's Markdown renders
the dollar forms; the backslash forms would lose their backslashes to Markdown, so they become dollars.
In the side-by-side HTML columns the math is kept out of the Markdown renderer (which would read its
``_`` and ``*`` as emphasis) and put back as text for MathJax to typeset.
"""

from __future__ import annotations

import html
import re

__all__ = ["math_html", "math_markdown"]

# Display math first, so that $$ is never read as two empty inline spans.
_MATH = re.compile(
    r"\$\$(?P<dd>.+?)\$\$|\\\[(?P<bd>.+?)\\\]|\\\((?P<bi>.+?)\\\)|(?<![\\$\w])\$(?P<di>[^\s$](?:[^$\n]*?[^\s$])?)\$",
    re.S,
)


def _dollars(match: re.Match) -> str:
    display = match.group("dd") if match.group("dd") is not None else match.group("bd")
    if display is not None:
        return f"$${display}$$"
    return f"${match.group('bi') if match.group('bi') is not None else match.group('di')}$"


def math_markdown(text: str) -> str:
    """``text`` with every math span in dollar delimiters, as Jupyter's Markdown renders them."""
    return _MATH.sub(_dollars, text)


def math_html(text: str) -> str:
    """``text`` as HTML: Markdown rendered, math spans left whole (in dollars) for MathJax."""
    from llmkit.notebook.display import markdown_html

    spans: list[str] = []

    def hold(match: re.Match) -> str:
        spans.append(_dollars(match))
        return f"LLMKITMATH{len(spans) - 1}X"

    rendered = markdown_html(_MATH.sub(hold, text))
    return re.sub(r"LLMKITMATH(\d+)X", lambda m: html.escape(spans[int(m.group(1))]), rendered)
