"""``summary()`` from the log's columns in memory, for a SQL store that holds a copy of them.

SQLite's ``GROUP BY`` is quick, but the percentiles are not: SQLite has none, and reading a million
rows' latencies back through Python costs more than a second. When the read cache holds the log's
columns (in memory, or in its file on disk), the summary is computed from them with numpy instead,
giving what :func:`query.summary` and :func:`query.percentile_values` give: the groups' rows, and the
percentile columns of their live calls in the order of the groups.
"""

from __future__ import annotations

from itertools import repeat
from typing import Any

from llmkit.calllog.query import _PERCENTILE_SOURCES, EXACT_FILTERS, LIST_FILTERS, summary_columns
from llmkit.calllog.store import matching

__all__ = ["NEEDED", "filterable", "grouped", "needed", "table"]

#: The columns a summary reads, besides the one it groups by and those its filters look at.
NEEDED = frozenset(("status", "cache_hit", "total_tokens", "cost_usd", *_PERCENTILE_SOURCES))


def filterable(filters: Any) -> bool:
    """Whether :func:`table` applies these filters itself: all but ``tags``, which looks inside JSON."""
    return filters.get("tags") is None


def needed(by: str, filters: Any) -> set[str]:
    """The columns a summary by ``by`` with ``filters`` reads."""
    looked_at = {name for name in (*LIST_FILTERS, *EXACT_FILTERS) if filters.get(name) is not None}
    if filters.get("since") is not None or filters.get("until") is not None:
        looked_at.add("started_at")
    return {by, *NEEDED, *looked_at}


def table(by: str, columns: dict[str, Any], filters: Any = None) -> dict[str, list]:
    """The summary's columns (``by``, then ``query.SUMMARY_COLUMNS``) of the calls in ``columns`` that
    pass ``filters`` (as ``query.where`` applies them; not ``tags``, see :func:`filterable`).
    Raises TypeError when the values of ``by`` do not sort (a BLOB among texts)."""
    if filters:
        columns = _passing(columns, filters)
    return summary_columns(by, *grouped(by, columns))


def _passing(columns: dict[str, Any], filters: Any) -> dict[str, Any]:
    """The rows of ``columns`` that pass ``filters``."""
    import numpy as np

    passing = matching(columns, filters)
    if passing is None:  # filters that are all None
        return columns
    index = np.array(passing, dtype=np.intp)
    return {
        name: _floats(values)[index] if not isinstance(values, list) else list(map(values.__getitem__, index.tolist()))
        for name, values in columns.items()
    }


def grouped(by: str, columns: dict[str, Any]) -> tuple[list[tuple[Any, ...]], Any]:
    """(the rows :func:`query.summary` returns, the values :func:`query.percentile_values` returns)
    for ``columns``: lists of plain values, or arrays of floats with NaN for null for numbers."""
    import numpy as np

    codes, keys = _codes(columns[by])
    grouped_rows = codes >= 0
    hit = _objects(columns["cache_hit"]) == True  # noqa: E712 - elementwise: True or 1, not None
    live = grouped_rows & ~hit
    ok = _objects(columns["status"]) == "ok"
    size = len(keys)

    def count(mask: Any) -> Any:
        return np.bincount(codes[mask], minlength=size)

    calls, hits, errors = count(live), count(grouped_rows & hit), count(live & ~ok)

    def total(name: str) -> tuple[Any, Any]:
        values = _floats(columns[name])
        present = live & ~np.isnan(values)
        return np.bincount(codes[present], weights=values[present], minlength=size), count(present)

    tokens, with_tokens = total("total_tokens")
    cost, with_cost = total("cost_usd")
    rows = [
        (
            key,
            int(calls[g]),
            float(errors[g] / calls[g]) if calls[g] else None,
            *(None for _ in range(5)),  # the percentiles, taken from the values returned beside
            int(tokens[g]) if with_tokens[g] else None,
            float(cost[g]) if with_cost[g] else None,
            int(hits[g]),
        )
        for g, key in enumerate(keys)
    ]
    chosen = np.flatnonzero(live)
    chosen = chosen[np.argsort(codes[chosen], kind="stable")]
    values = np.column_stack([_floats(columns[name])[chosen] for name in _PERCENTILE_SOURCES])
    return rows, values


def _codes(values: Any) -> tuple[Any, list[Any]]:
    """Each row's group number (-1 for null), and the groups' keys in the order SQLite sorts them."""
    import numpy as np

    if not isinstance(values, list):  # numbers (status_code): whole numbers, as SQLite groups them
        numbers = _floats(values)
        present = ~np.isnan(numbers)
        distinct = np.unique(numbers[present])
        codes = np.full(len(numbers), -1, dtype=np.intp)
        codes[present] = np.searchsorted(distinct, numbers[present])
        return codes, [int(key) for key in distinct]
    keys = sorted(key for key in dict.fromkeys(values) if key is not None)  # texts, by code point
    number = {key: index for index, key in enumerate(keys)}
    return np.fromiter(map(number.get, values, repeat(-1)), dtype=np.intp, count=len(values)), keys


def _objects(values: Any) -> Any:
    import numpy as np

    return np.fromiter(values, dtype=object, count=len(values))


def _floats(values: Any) -> Any:
    import numpy as np

    if isinstance(values, list):  # None becomes NaN
        return np.array(values, dtype=float)
    if isinstance(values, np.ndarray):
        return values
    return np.frombuffer(values, dtype=float)
