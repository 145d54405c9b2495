"""The SQL of the call log's reads, for every SQL store: filters, the newest ``last``, counts, summaries.

A store turns a :class:`~llmkit.calllog.store.Filters` into SQL here and runs it, so that filters run in
the database (``WHERE`` and ``ORDER BY ... LIMIT`` over the indexes on ``(column, started_at)``) and a
filtered read touches only the rows it returns. What differs between databases is a :class:`Dialect`:
the placeholder style, a list of allowed values, JSON access for ``tags``, and percentiles where the
database has them (where it has not, :func:`percentiles` computes them from the one column needed).

Every table read here has the log's columns (``record.COLUMNS``) and ``seq``, a number increasing with
insertion, which orders calls that started at the same instant.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from llmkit.calllog.record import COLUMNS

__all__ = [
    "EXACT_FILTERS",
    "FILTERS",
    "GROUP_COLUMNS",
    "LIST_FILTERS",
    "PERCENTILES",
    "SQLITE",
    "SUMMARY_COLUMNS",
    "Dialect",
    "Query",
    "check_group",
    "count_calls",
    "percentile_values",
    "percentiles",
    "select_calls",
    "summary",
    "summary_columns",
    "where",
]

#: Filters matched against a set of allowed values.
LIST_FILTERS = ("model", "provider", "status", "source", "kind", "user")
#: Filters matched against one value.
EXACT_FILTERS = ("run_id", "session_id", "conversation_id")
#: Every filter a store applies (see ``store.Filters``).
FILTERS = (*LIST_FILTERS, *EXACT_FILTERS, "since", "until", "tags")
#: Columns ``summary(by=...)`` may group by.
GROUP_COLUMNS = (
    "model", "provider", "handler_model", "kind", "source", "status", "finish_reason", "error_type", "status_code",
    "run_id", "user", "session_id",
)  # fmt: skip
#: The summary's columns after the grouping column, as ``frame.summary`` names them: the figures are
#: the live calls', and the answers the response cache gave are counted apart (``cache_hits``).
SUMMARY_COLUMNS = (
    "calls", "error_rate", "latency_p50_ms", "latency_p95_ms", "ttft_p50_ms", "ttft_p95_ms",
    "tokens_per_s_median", "total_tokens", "cost_usd", "cache_hits",
)  # fmt: skip
#: The summary's percentiles: (its column, the log's column, the fraction), interpolated linearly
#: between the closest ranks with nulls left out, as pandas' ``quantile`` does.
PERCENTILES = (
    ("latency_p50_ms", "latency_ms", 0.5),
    ("latency_p95_ms", "latency_ms", 0.95),
    ("ttft_p50_ms", "ttft_ms", 0.5),
    ("ttft_p95_ms", "ttft_ms", 0.95),
    ("tokens_per_s_median", "tokens_per_s", 0.5),
)
_PERCENTILE_SOURCES = tuple(dict.fromkeys(column for _, column, _ in PERCENTILES))
_ORDER = "started_at, seq"


class Query(NamedTuple):
    sql: str
    args: list[Any]


class Dialect:
    """What differs between SQL databases in the log's queries; this one is SQLite's.

    The PostgreSQL dialect (``pgsql.POSTGRES``) sets ``placeholder = "%s"`` and ``table``, and
    overrides :meth:`name`, :meth:`any_of`, :meth:`tags`, :meth:`flag`, :meth:`percentile` and
    :meth:`sort_key`.
    """

    placeholder = "?"
    table = "calls"

    def name(self, column: str) -> str:
        """A column of the log as SQL names it (PostgreSQL reserves ``user``)."""
        return column

    def any_of(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        if len(values) == 1:  # "=" lets an index on (column, started_at) return rows already in order
            return f"{column} = {self.placeholder}", [values[0]]
        return f"{column} IN ({', '.join([self.placeholder] * len(values))})", list(values)

    def tags(self, tags: Any) -> tuple[list[str], list[Any]]:
        """Conditions on ``metadata`` for the ``tags`` filter, and their arguments: as ``store.tag_matcher``
        tests, for a dict whose values are None, strings or numbers (see ``store.split_tags``), or names."""
        p = self.placeholder
        # json_each walks the metadata's own keys: no JSON path to quote. CASE keeps it away from text
        # that is not JSON (rows written before the log's JSON was strict).
        guarded = "CASE WHEN json_valid(metadata) THEN EXISTS ({}) ELSE 0 END"
        clauses: list[str] = []
        args: list[Any] = []
        if isinstance(tags, dict):
            for key, value in tags.items():
                if value is None:
                    condition, value_args = "type = 'null'", []
                elif isinstance(value, str):
                    condition, value_args = f"type = 'text' AND value = {p}", [value]
                else:  # as Python compares them, True == 1 == 1.0
                    condition, value_args = f"type IN ('integer', 'real', 'true', 'false') AND value = {p}", [value]
                clauses.append(guarded.format(f"SELECT 1 FROM json_each(metadata) WHERE key = {p} AND {condition}"))
                args.extend([key, *value_args])
            return clauses, args
        for name in tags:  # a metadata key, or an entry of metadata["tags"]
            in_list = (
                "SELECT 1 FROM json_each(metadata, '$.tags') WHERE json_type(metadata, '$.tags') = 'array'"
                f" AND type = 'text' AND value = {p}"
            )
            clauses.append(guarded.format(f"SELECT 1 FROM json_each(metadata) WHERE key = {p} UNION ALL {in_list}"))
            args.extend([name, name])
        return clauses, args

    def flag(self, column: str) -> str:
        """A boolean column as a condition that is never null (0/1 or null in SQLite)."""
        return f"coalesce({column}, 0) = 1"

    def percentile(self, column: str, fraction: float) -> str | None:
        """SQL for a linearly interpolated percentile of ``column`` in a group, or None: SQLite has none."""
        return None

    def sort_key(self, column: str) -> str:
        """``column`` as a summary groups and sorts it, in the order Python sorts its values (SQLite
        compares text by code point; PostgreSQL needs ``COLLATE "C"`` on text for that)."""
        return column


SQLITE = Dialect()


def where(filters: Any, dialect: Dialect = SQLITE) -> Query:
    """`` WHERE ...`` (or nothing) for ``filters``; a filter no SQL store knows is an error."""
    unknown = set(filters) - set(FILTERS)
    if unknown:  # never silently return rows a caller asked to leave out
        raise ValueError(f"the call log cannot filter by {', '.join(sorted(unknown))}")
    p = dialect.placeholder
    clauses: list[str] = []
    args: list[Any] = []
    for name in LIST_FILTERS:
        allowed = filters.get(name)
        if allowed is not None:
            clause, values = dialect.any_of(dialect.name(name), tuple(allowed))
            clauses.append(clause)
            args.extend(values)
    for name in EXACT_FILTERS:
        if filters.get(name) is not None:
            clauses.append(f"{dialect.name(name)} = {p}")
            args.append(filters[name])
    if filters.get("since") is not None:
        clauses.append(f"started_at >= {p}")
        args.append(float(filters["since"]))
    if filters.get("until") is not None:
        clauses.append(f"started_at < {p}")
        args.append(float(filters["until"]))
    if filters.get("tags") is not None:
        tag_clauses, tag_args = dialect.tags(filters["tags"])
        clauses.extend(tag_clauses)
        args.extend(tag_args)
    return Query(" WHERE " + " AND ".join(clauses) if clauses else "", args)


def select_calls(filters: Any, last: int | None = None, dialect: Dialect = SQLITE) -> Query:
    """The calls matching ``filters`` in ``COLUMNS`` order, oldest first; only the newest ``last``."""
    condition = where(filters, dialect)
    columns = ", ".join(map(dialect.name, COLUMNS))
    table = dialect.table
    if last is None:
        return Query(f"SELECT {columns} FROM {table}{condition.sql} ORDER BY {_ORDER}", condition.args)
    newest = (
        f"SELECT seq, {columns} FROM {table}{condition.sql}"
        f" ORDER BY started_at DESC, seq DESC LIMIT {dialect.placeholder}"
    )
    return Query(f"SELECT {columns} FROM ({newest}) AS newest ORDER BY {_ORDER}", [*condition.args, int(last)])


def count_calls(filters: Any, dialect: Dialect = SQLITE) -> Query:
    condition = where(filters, dialect)
    return Query(f"SELECT count(*) FROM {dialect.table}{condition.sql}", condition.args)


def summary(by: str, filters: Any, dialect: Dialect = SQLITE, up_to: int | None = None) -> Query:
    """One row per value of ``by`` (nulls left out), in order of ``by``: ``by``, then ``SUMMARY_COLUMNS``,
    the percentiles null where the dialect has none (see :func:`percentile_values`). ``up_to``: only
    the calls whose ``seq`` is at most this, so that two queries made apart count the same calls."""
    condition = _grouped(filters, by, dialect, up_to)
    hit = dialect.flag("cache_hit")

    def live(column: str) -> str:  # the column for live calls, null for answers from the cache
        return f"CASE WHEN {hit} THEN NULL ELSE {column} END"

    percentile = {name: dialect.percentile(live(column), fraction) or "NULL" for name, column, fraction in PERCENTILES}
    hits = f"sum(CASE WHEN {hit} THEN 1 ELSE 0 END)"
    key = dialect.sort_key(dialect.name(by))  # grouped in the order sorted: one sort serves both
    sql = (
        f"SELECT {key}, count(*) - {hits},"
        f" CAST(avg(CASE WHEN {hit} THEN NULL WHEN status = 'ok' THEN 0 ELSE 1 END) AS DOUBLE PRECISION),"
        f" {', '.join(percentile[name] for name, _, _ in PERCENTILES)},"
        f" sum({live('total_tokens')}), sum({live('cost_usd')}), {hits}"
        f" FROM {dialect.table}{condition.sql} GROUP BY {key} ORDER BY {key}"
    )
    return Query(sql, condition.args)


def percentile_values(by: str, filters: Any, dialect: Dialect = SQLITE, up_to: int | None = None) -> Query:
    """The columns the percentiles are taken of, for the live calls :func:`summary` counts, in the same
    order of ``by``: the first ``calls`` rows are the first group's, and so on."""
    condition = _grouped(filters, by, dialect, up_to)
    order = dialect.sort_key(dialect.name(by))
    return Query(
        f"SELECT {', '.join(_PERCENTILE_SOURCES)} FROM {dialect.table}{condition.sql}"
        f" AND NOT {dialect.flag('cache_hit')} ORDER BY {order}",
        condition.args,
    )


def percentiles(rows: Sequence[Sequence[Any]], counts: Sequence[int]) -> list[tuple[float, ...]]:
    """The ``PERCENTILES`` of each group, from :func:`percentile_values`' rows and each group's number of
    rows (``calls``); NaN where a group has no values."""
    import numpy as np

    if len(rows) == 0:
        return [(float("nan"),) * len(PERCENTILES) for _ in counts]
    values = np.array(rows, dtype=float)  # None becomes NaN
    column = {name: index for index, name in enumerate(_PERCENTILE_SOURCES)}
    out = []
    for group in np.split(values, np.cumsum(counts)[:-1]):
        result = []
        for _, source, fraction in PERCENTILES:
            present = group[:, column[source]]
            present = present[~np.isnan(present)]
            result.append(float(np.quantile(present, fraction)) if len(present) else float("nan"))
        out.append(tuple(result))
    return out


def check_group(by: str) -> None:
    """Refuse a ``by`` that is not one of ``GROUP_COLUMNS`` (which also keeps anything but a column
    name out of the SQL)."""
    if by not in GROUP_COLUMNS:
        raise ValueError(f"cannot summarize by {by!r}; group by one of {', '.join(GROUP_COLUMNS)}")


def summary_columns(by: str, groups: Sequence[Sequence[Any]], values: Any) -> dict[str, list]:
    """The summary's columns from its groups' rows and, in the order of the groups, the values of
    their live calls' percentile columns."""
    names = (by, *SUMMARY_COLUMNS)
    first = names.index(PERCENTILES[0][0])
    out: dict[str, list] = {name: [] for name in names}
    for group, figures in zip(groups, percentiles(values, [group[1] for group in groups]), strict=True):
        row = list(group)
        row[first : first + len(figures)] = figures
        for name, value in zip(names, row, strict=True):
            out[name].append(value)
    return out


def _grouped(filters: Any, by: str, dialect: Dialect, up_to: int | None) -> Query:
    """``where`` for the rows a summary by ``by`` counts: those whose ``by`` is not null, as pandas groups
    (and whose ``seq`` is at most ``up_to``)."""
    check_group(by)
    condition = where(filters, dialect)
    sql = (condition.sql + " AND " if condition.sql else " WHERE ") + f"{dialect.name(by)} IS NOT NULL"
    if up_to is None:
        return Query(sql, condition.args)
    return Query(f"{sql} AND seq <= {dialect.placeholder}", [*condition.args, int(up_to)])
