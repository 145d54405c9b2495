"""Put values from the user's namespace into a prompt without ever breaking a prompt full of code.

Only two forms are replaced: ``{name}`` when ``name`` is a variable that exists, and ``{In[n]}`` /
``{Out[n]}`` / ``{Err[n]}`` (the traceback of cell n, see :mod:`~llmkit.notebook.explain`) when that
cell exists. Everything else stays exactly as written: dict and set literals,
f-string fields with format specs or conversions (``{x:.2f}``, ``{x!r}``), JSON, doubled braces
(``{{ }}``), and names that are not defined. Unlike ``str.format`` this never raises.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["interpolate"]

# Doubled braces are matched first so that they are skipped whole, never read as a field.
_FIELD = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)(?:\[(-?\d+)\])?\}")


def interpolate(text: str, namespace: Mapping[str, Any]) -> str:
    """``text`` with its ``{name}``, ``{In[n]}`` and ``{Out[n]}`` references to ``namespace`` filled in."""

    def replace(match: re.Match[str]) -> str:
        name, index = match.group(1), match.group(2)
        if name is None or name not in namespace:
            return match.group(0)
        value = namespace[name]
        if index is not None:
            if name not in ("In", "Out", "Err"):
                return match.group(0)
            try:
                value = value[int(index)]
            except (KeyError, IndexError, TypeError):
                return match.group(0)
        return str(value)

    return _FIELD.sub(replace, text)
