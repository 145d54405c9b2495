"""A bounded in-process copy of the whole log, for repeated unfiltered reads of a SQL store.

Filtered reads go to the database, which returns only their rows. An unfiltered read returns every
row, and reading a million rows back from SQLite costs seconds each time: a notebook that reads the
whole log again and again (a board refreshed after each call) keeps a copy instead, from the second
such read on, in a compact form (numbers in ``array('d')``, NaN for null, which numpy takes without
converting a float object per value; repeated short texts sharing one string; JSON decoded once).
Later unfiltered reads fetch only the rows written since, by any process. The copy is bounded: a log
of more than ``max_rows`` calls is not kept, and its reads go to the database each time.
"""

from __future__ import annotations

import itertools
from array import array
from collections.abc import Callable, Sequence
from typing import Any

from llmkit.calllog.record import COLUMNS

__all__ = ["NUMBERS", "ReadCache", "plain"]

#: Columns kept as floats, NaN for null.
NUMBERS = frozenset(
    ("started_at", "prompt_tokens", "completion_tokens", "total_tokens", "latency_ms", "ttft_ms",
     "tokens_per_s", "cost_usd", "status_code")
)  # fmt: skip
#: Short texts that repeat from row to row.
SHARED = frozenset(
    ("model", "provider", "handler_model", "kind", "source", "finish_reason", "status", "error_type", "run_id")
)
_NAN = float("nan")
_STARTED = COLUMNS.index("started_at")


class ReadCache:
    """The whole log as compact columns, kept from the second unfiltered read on. Not thread-safe by
    itself: its store calls it under its read lock."""

    def __init__(self, max_rows: int) -> None:
        self.max_rows = max_rows
        self._columns: dict[str, Any] | None = None
        self._shared: dict[Any, Any] = {}
        self._seq = 0  # the last row kept
        self._ordered = True
        self._unfiltered_reads = 0

    def __len__(self) -> int:
        return len(self._columns["call_id"]) if self._columns is not None else 0

    def read(
        self, count_up_to: Callable[[int], tuple[int, int]], rows_after: Callable[[int], list]
    ) -> dict[str, Any] | None:
        """The whole log's columns (numbers as NaN-for-null arrays), or None when it is not kept.

        ``count_up_to(seq)`` gives (rows with seq <= it, rows in all); ``rows_after(seq)`` the decoded
        columns of the rows written after it, ``seq`` first, in order of ``seq``; both in one snapshot.
        """
        self._unfiltered_reads += 1
        if self._unfiltered_reads < 2:  # one read is no reason to keep a copy
            return None
        kept, total = count_up_to(self._seq)
        if total > self.max_rows:
            self.clear()
            return None
        if kept != len(self):  # rows were deleted (the log cleared, perhaps by another process)
            self.clear()
        seqs, *fresh = rows_after(self._seq) or [[]]
        if seqs:
            self._extend(fresh)
            self._seq = seqs[-1]
        if self._columns is None:
            return {name: [] for name in COLUMNS}
        self._order()
        return {name: _copy(values) for name, values in self._columns.items()}

    def clear(self) -> None:
        self._columns, self._seq, self._ordered = None, 0, True
        self._shared.clear()

    def _extend(self, columns: list[Sequence[Any]]) -> None:
        if self._columns is None:
            self._columns = {name: array("d") if name in NUMBERS else [] for name in COLUMNS}
        started, new = self._columns["started_at"], columns[_STARTED]
        if (started and new[0] < started[-1]) or any(a > b for a, b in itertools.pairwise(new)):
            self._ordered = False
        share = self._shared.setdefault
        for name, column in zip(COLUMNS, columns, strict=True):
            values = self._columns[name]
            if name in NUMBERS:
                values.extend([_NAN if v is None else v for v in column])
            elif name in SHARED:
                values.extend([share(v, v) for v in column])
            else:
                values.extend(column)

    def _order(self) -> None:
        if self._ordered or self._columns is None:
            return
        started = self._columns["started_at"]
        order = sorted(range(len(started)), key=started.__getitem__)  # stable: ties keep the order written
        for name, values in self._columns.items():
            self._columns[name] = _copy(values, order)
        self._ordered = True


def plain(columns: dict[str, Any]) -> dict[str, Any]:
    """Columns with the cache's arrays turned back into lists of plain values (None for NaN, whole
    numbers as ints), as records carry them."""
    out = dict(columns)
    for name, values in columns.items():
        if isinstance(values, array):
            whole = name in _INTEGERS
            out[name] = [None if v != v else int(v) if whole else v for v in values]
    return out


_INTEGERS = frozenset(("prompt_tokens", "completion_tokens", "total_tokens", "status_code"))


def _copy(values: Any, index: Any = None) -> Any:
    if isinstance(values, array):
        return array("d", values) if index is None else array("d", [values[i] for i in index])
    return list(values) if index is None else [values[i] for i in index]
