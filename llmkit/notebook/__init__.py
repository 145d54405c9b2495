"""llmkit in Jupyter: the ``%%llm`` / ``%llm`` magics, streamed rendering, and the widgets' plumbing.

``%load_ext llmkit`` calls :func:`load_ipython_extension`. Nothing here is imported by ``import llmkit``;
it needs ``pip install 'llmkit[notebook]'``.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["load_ipython_extension", "missing_extra", "require", "unload_ipython_extension"]


def require(module: str) -> Any:
    """Import an optional dependency of the notebook surfaces, or say which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise missing_extra(module) from exc


def missing_extra(module: str | None) -> ImportError:
    return ImportError(f"{module} is not installed; install the notebook extra: pip install 'llmkit[notebook]'")


_loaded: dict[int, Any] = {}  # id(shell) -> its LLMMagics, for unloading


def load_ipython_extension(shell: Any) -> None:
    """Register ``%%llm`` and ``%llm`` in ``shell``."""
    require("markdown_it")  # renders answers side by side: missing, it would fail only after a call
    from llmkit.notebook.magics import LLMMagics

    magics = LLMMagics(shell)
    shell.register_magics(magics)
    _loaded[id(shell)] = magics


def unload_ipython_extension(shell: Any) -> None:
    """``%unload_ext llmkit``: remove the magics, the LLM configurable and the error hook."""
    magics = _loaded.pop(id(shell), None)
    if magics is None:
        return
    for kind in ("line", "cell"):
        if getattr(shell.magics_manager.magics[kind].get("llm"), "__self__", None) is magics:
            del shell.magics_manager.magics[kind]["llm"]
    shell.magics_manager.registry.pop(type(magics).__name__, None)
    magics.close()
