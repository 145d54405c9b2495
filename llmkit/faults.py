"""Telling a handler's bug from an answer it meant to give.

A handler that raises ``CustomLLMError(429, ...)``, an HTTP library's status error or a timeout is
answering; one that raises ``KeyError: 'missing'`` has a bug, and whoever runs it needs the
traceback. The dispatcher re-raises a handler's exception as an llmkit error ``from`` the original,
so the original is found at the end of the ``__cause__`` chain.
"""

from __future__ import annotations

__all__ = ["handler_fault", "traceback_text"]

TRACEBACK_CHARS = 4000


def handler_fault(error: BaseException | None) -> BaseException | None:
    """The exception a handler raised by mistake behind ``error``, or None if ``error`` is an answer."""
    root, seen = error, set()
    while root is not None and root.__cause__ is not None and id(root) not in seen:  # chains can loop
        seen.add(id(root))
        root = root.__cause__
    if root is None or _is_answer(root):
        return None
    return root


def _is_answer(exc: BaseException) -> bool:
    from llmkit.errors import LLMKitError

    if isinstance(exc, (LLMKitError, TimeoutError)) or type(exc).__name__ in ("TimeoutError", "CancelledError"):
        return True
    return isinstance(getattr(exc, "status_code", None), int)


def traceback_text(exc: BaseException, limit: int = TRACEBACK_CHARS) -> str:
    """``exc``'s traceback as text, its last ``limit`` characters (where the error was raised)."""
    import traceback

    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return text if len(text) <= limit else "...\n" + text[-limit:]
