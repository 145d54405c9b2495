"""Lines for whoever runs the server, about things that can happen once per request.

A handler bug hit by every request, or a thousand clients dropping their uploads, must not bury
the rest of stderr: each kind of line is written at most once per ``INTERVAL`` seconds, and the next
one says how many were held back meanwhile.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Hashable
from typing import Any

from llmkit.faults import handler_fault, traceback_text

__all__ = ["handler_failed", "notice"]

logger = logging.getLogger("llmkit.proxy")

INTERVAL = 60.0
_last: dict[Hashable, float] = {}
_held: dict[Hashable, int] = {}


def notice(kind: Hashable, level: int, message: str, *args: Any) -> None:
    """Log ``message % args`` unless a line of this ``kind`` went out less than INTERVAL s ago."""
    now = time.monotonic()
    last = _last.get(kind)
    if last is not None and now - last < INTERVAL:
        _held[kind] = _held.get(kind, 0) + 1
        return
    _last[kind] = now
    held = _held.pop(kind, 0)
    if held:
        message += f" ({held} more like this in the last {INTERVAL:g} s were not shown)"
    logger.log(level, message, *args)


def handler_failed(model_name: str, deployment: str, error: BaseException) -> None:
    """One line and the traceback when a handler raised by mistake (not an answer such as a 429)."""
    fault = handler_fault(error)
    if fault is None:
        return
    notice(
        ("fault", model_name, type(fault)),
        logging.ERROR,
        "model %r (deployment %s): the handler raised %s\n%s",
        model_name,
        deployment,
        f"{type(fault).__name__}: {fault}",
        traceback_text(fault).rstrip(),
    )
