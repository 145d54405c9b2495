"""The SQL of the PostgreSQL store's reads, in one place: filters, the newest ``last``, the summary.

Every read the store makes is built here from a ``store.Filters``, so that the filters run in the
database (``WHERE``, ``ORDER BY ... LIMIT`` over the indexes of migration 001) and the summary is
computed there (``GROUP BY``, ``percentile_cont``). Placeholders are psycopg's ``%s``. The store
reads the whole log in pages (keyset pagination on ``(started_at, seq)``), in one snapshot.
"""

from __future__ import annotations

from typing import Any

from llmkit.calllog.record import COLUMNS
from llmkit.calllog.store import Filters

__all__ = ["SUMMARY_COLUMNS", "newest", "page", "summary", "where"]

CALLS = "llmkit.calls"
_ORDER = "started_at, seq"
_LIST_FILTERS = ("model", "status", "source", "kind")
_KNOWN = frozenset((*_LIST_FILTERS, "run_id", "since"))

#: The summary's columns after ``model``, as ``frame.summary`` names them.
SUMMARY_COLUMNS = (
    "calls", "error_rate", "latency_p50_ms", "latency_p95_ms", "ttft_p50_ms", "ttft_p95_ms",
    "tokens_per_s_median", "total_tokens", "cost_usd",
)  # fmt: skip


def where(filters: Filters) -> tuple[str, list[Any]]:
    """`` WHERE ...`` (or nothing) and its arguments; a filter this store cannot apply is an error."""
    unknown = set(filters) - _KNOWN
    if unknown:  # never silently return rows a caller asked to leave out
        raise ValueError(f"the PostgreSQL store cannot filter by {', '.join(sorted(unknown))}")
    clauses: list[str] = []
    args: list[Any] = []
    for name in _LIST_FILTERS:
        allowed = filters.get(name)
        if allowed is None:
            continue
        if len(allowed) == 1:  # "=" lets an index on (name, started_at) return rows already in order
            clauses.append(f"{name} = %s")
            args.append(allowed[0])
        else:
            clauses.append(f"{name} = ANY(%s)")
            args.append(list(allowed))
    if filters.get("run_id") is not None:
        clauses.append("run_id = %s")
        args.append(filters["run_id"])
    if filters.get("since") is not None:
        clauses.append("started_at >= %s")
        args.append(float(filters["since"]))
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), args


def newest(filters: Filters, last: int) -> tuple[str, list[Any]]:
    """The newest ``last`` calls matching ``filters``, oldest first, in ``COLUMNS`` order."""
    condition, args = where(filters)
    columns = ", ".join(COLUMNS)
    newest = f"SELECT seq, {columns} FROM {CALLS}{condition} ORDER BY started_at DESC, seq DESC LIMIT %s"
    return f"SELECT {columns} FROM ({newest}) AS newest ORDER BY {_ORDER}", [*args, int(last)]


def page(filters: Filters, after: tuple[float, int] | None, size: int) -> tuple[str, list[Any]]:
    """Up to ``size`` calls matching ``filters`` after the (started_at, seq) ``after``, oldest first:
    ``seq`` then ``COLUMNS``. Pages read the whole log a bounded piece at a time, each from the index."""
    condition, args = where(filters)
    if after is not None:
        condition = (condition + " AND" if condition else " WHERE") + " (started_at, seq) > (%s, %s)"
        args = [*args, *after]
    return f"SELECT seq, {', '.join(COLUMNS)} FROM {CALLS}{condition} ORDER BY {_ORDER} LIMIT %s", [*args, int(size)]


def summary(filters: Filters) -> tuple[str, list[Any]]:
    """One row per model (code-point order, as pandas sorts): ``model`` then ``SUMMARY_COLUMNS``.

    ``percentile_cont`` interpolates linearly between the closest ranks, as pandas' ``quantile``
    does, and skips nulls as pandas skips NaN; so does ``sum``, which is null when every value is.
    """
    condition, args = where(filters)
    condition = (condition + " AND" if condition else " WHERE") + " model IS NOT NULL"
    # Grouped by byte order ("C"): the order pandas sorts in, and a far cheaper sort of a million
    # rows than a language's collation, which a team's database usually has.
    sql = f"""
        SELECT model, calls, error_rate, latency[1], latency[2], ttft[1], ttft[2], tokens_per_s_median,
               total_tokens, cost_usd
        FROM (
            SELECT model COLLATE "C" AS model,
                   count(*) AS calls,
                   avg((status IS DISTINCT FROM 'ok')::int)::float8 AS error_rate,
                   percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY latency_ms) AS latency,
                   percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY ttft_ms) AS ttft,
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY tokens_per_s) AS tokens_per_s_median,
                   sum(total_tokens) AS total_tokens,
                   sum(cost_usd) AS cost_usd
            FROM {CALLS}{condition}
            GROUP BY 1
        ) AS per_model
        ORDER BY model
    """
    return sql, args
