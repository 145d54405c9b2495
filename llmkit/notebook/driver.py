"""Run a cell's calls concurrently while the cell's thread keeps their display up to date.

The calls run on llmkit's bridge event loop (one long-lived loop in its own thread, so a handler's
async clients survive from cell to cell, and it works inside the kernel's own running loop). The
calling thread only wakes every UPDATE_INTERVAL to refresh the view: rendering never sits between
a chunk and the next one. Ctrl-C (a kernel interrupt) cancels every call, which closes their streams.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine, Sequence
from typing import Any

from llmkit.aio import submit
from llmkit.notebook.display import UPDATE_INTERVAL

__all__ = ["drive"]

_CANCEL_GRACE = 5.0  # seconds to wait for cancelled streams to close


def drive(calls: Sequence[Coroutine[Any, Any, None]], view: Any) -> None:
    """Run ``calls`` to the end, refreshing ``view`` meanwhile, then render it one last time."""
    closed = threading.Event()
    future = submit(_all(calls, closed))
    try:
        while True:
            try:
                future.result(timeout=UPDATE_INTERVAL)
                break
            except concurrent.futures.TimeoutError:
                view.refresh()
    except BaseException as exc:  # an interrupt, or a failure while rendering: stop the calls too
        future.cancel()
        closed.wait(_CANCEL_GRACE)
        if isinstance(exc, KeyboardInterrupt):
            view.finish()
        raise
    view.finish()


async def _all(calls: Sequence[Coroutine[Any, Any, None]], closed: threading.Event) -> None:
    try:
        await asyncio.gather(*calls)
    finally:
        closed.set()
