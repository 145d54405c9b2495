"""llmkit in Jupyter: the ``%%llm`` / ``%llm`` magics, streamed rendering, and the widgets' plumbing.

``%load_ext llmkit`` calls :func:`load_ipython_extension`. Nothing here is imported by ``import llmkit``;
it needs ``pip install 'llmkit[notebook]'``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["load_ipython_extension"]


def load_ipython_extension(shell: Any) -> None:
    """Register ``%%llm`` and ``%llm`` in ``shell``."""
    from llmkit.notebook.magics import LLMMagics

    shell.register_magics(LLMMagics(shell))
