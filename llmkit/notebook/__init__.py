"""llmkit in Jupyter: the ``%%llm`` / ``%llm`` magics, streamed rendering, and the widgets' plumbing.

``%load_ext llmkit`` calls :func:`load_ipython_extension`. Nothing here is imported by ``import llmkit``;
it needs ``pip install 'llmkit[notebook]'``.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["load_ipython_extension", "missing_extra", "require"]


def require(module: str) -> Any:
    """Import an optional dependency of the notebook surfaces, or say which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise missing_extra(module) from exc


def missing_extra(module: str | None) -> ImportError:
    return ImportError(f"{module} is not installed; install the notebook extra: pip install 'llmkit[notebook]'")


def load_ipython_extension(shell: Any) -> None:
    """Register ``%%llm`` and ``%llm`` in ``shell``."""
    require("markdown_it")  # renders answers side by side: missing, it would fail only after a call
    from llmkit.notebook.magics import LLMMagics

    shell.register_magics(LLMMagics(shell))
