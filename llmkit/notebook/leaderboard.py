"""``Leaderboard``: ``llmkit.calls.summary()`` with votes, ratings and pass rates per model, as a
table that refreshes itself as calls finish and votes are cast (see :func:`tables.leaderboard`).
"""

from __future__ import annotations

import html
import threading
import time
import weakref
from typing import Any

from llmkit.notebook import missing_extra

try:
    import ipywidgets as widgets
    from traitlets import Dict, Float, List, Unicode
except ImportError as exc:
    raise missing_extra(exc.name) from exc

import llmkit
from llmkit.notebook import tables

__all__ = ["Leaderboard", "refresh_leaderboards"]

_leaderboards: weakref.WeakSet = weakref.WeakSet()  # open ones, refreshed after a vote


def refresh_leaderboards() -> None:
    """Refresh every open Leaderboard (after a vote, which makes no call)."""
    for board in list(_leaderboards):
        board._changed()


class Leaderboard(widgets.VBox):
    """``llmkit.calls.summary()`` with votes, ratings and pass rates per model, as a table that refreshes itself.

    ``Leaderboard(source="widget")``: keyword arguments filter the log as ``llmkit.calls`` does. It
    counts this session's calls (this kernel's: ``session_id=llmkit.calls.session_id``), unless
    ``all=True`` or a ``session_id=`` of your own. The table refreshes after calls finish and after a
    CompareWidget vote, at most once per ``interval`` seconds; :meth:`refresh` does it now, and
    :meth:`close` stops it.
    """

    rows = List(Dict(), read_only=True, help="one dict per model, best first: the summary's columns, votes, ratings")
    filters = Dict(help="filters for the log (model, status, source, kind, since, run_id, session_id, tags)")
    interval = Float(1.0, help="at most one automatic refresh per this many seconds")
    status = Unicode("", read_only=True, help="why the last refresh failed, if it did")

    def __init__(self, interval: float = 1.0, all: bool = False, **filters: Any) -> None:
        super().__init__()
        if not all:
            filters.setdefault("session_id", llmkit.calls.session_id)
        self._table = widgets.HTML()
        self._message = widgets.HTML()
        self.children = [self._table, self._message]
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._last = 0.0  # when the table was last refreshed (time.monotonic)
        self._took = 0.0  # how long that refresh took
        self._closed = False
        self.interval = interval
        self.filters = filters
        self.refresh()  # bad filters raise here, before any callback is added
        self.observe(lambda change: self.refresh(), "filters")
        self._on_call = lambda record: self._changed()  # one object, so that close() can remove it
        llmkit.calls.on_success(self._on_call)
        llmkit.calls.on_failure(self._on_call)
        _leaderboards.add(self)

    def refresh(self) -> None:
        """Read the log and show it now."""
        started = self._last = time.monotonic()
        table = tables.leaderboard(**self.filters)
        columns = {name: [_plain(value) for value in table[name]] for name in table.columns}
        rows = [{"model": model, **{name: columns[name][i] for name in columns}} for i, model in enumerate(table.index)]
        with self.hold_sync():
            self.set_trait("rows", rows)
            self.set_trait("status", "")
            self._table.value = _table_html(table)
            self._message.value = ""
        self._took = time.monotonic() - started

    def _changed(self) -> None:
        """Something was logged: refresh once the interval since the last refresh has passed.

        On a log so large that a refresh takes a while, they are spaced further apart: reading
        it takes at most a tenth of the time, and the calls being made keep the rest.
        """
        with self._lock:
            if self._timer is not None or self._closed:
                return
            gap = max(self.interval, 10 * self._took)
            delay = max(0.0, self._last + gap - time.monotonic())
            self._timer = threading.Timer(delay, self._timed_refresh)
            self._timer.daemon = True
            self._timer.start()

    def _timed_refresh(self) -> None:
        with self._lock:
            self._timer = None  # calls finishing from here on schedule the next refresh
            if self._closed:
                return
        try:
            self.refresh()
        except Exception as exc:  # a timer thread has nobody to raise to
            self.set_trait("status", f"{type(exc).__name__}: {exc}")
            self._message.value = f'<span style="color:#c0392b">{html.escape(self.status)}</span>'

    def close(self) -> None:
        """Stop refreshing and close the widget."""
        llmkit.calls.remove_callback(self._on_call)
        _leaderboards.discard(self)
        with self._lock:
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        super().close()


def _plain(value: Any) -> Any:
    """A table cell as a plain Python value: None for NaN and <NA>, int or float for numpy numbers."""
    import pandas as pd

    if pd.isna(value):
        return None
    return value.item() if hasattr(value, "item") else value


_FORMATS = {"error_rate": "{:.0%}", "tokens_per_s_median": "{:.1f}", "cost_usd": "{:.6f}", "rating": "{:.0f}"}
_FORMATS.update({name: "{:.0%}" for name in ("pass_rate", "pass_rate_low", "pass_rate_high", "pass_rate_sd")})
_FORMATS.update({name: "{:.0f}" for name in ("rating_low", "rating_high", "samples", "checked")})


def _table_html(table: Any) -> str:
    if table.empty:
        return "<i>no calls in the log yet</i>"
    import pandas as pd

    formats = {name: _FORMATS.get(name, "{:.0f}" if name.endswith("_ms") else "{}") for name in table.columns}
    cells = {
        name: ["" if _plain(value) is None else formats[name].format(value) for value in table[name]]
        for name in table.columns
    }
    return pd.DataFrame(cells, index=table.index.rename(None)).to_html(border=0)
