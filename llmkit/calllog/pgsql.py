"""What is PostgreSQL's own in the log's SQL: its :class:`~llmkit.calllog.query.Dialect`, and keyset pages.

Every read is built by ``query.py`` like SQLite's, with :data:`POSTGRES` for what differs: ``%s``
placeholders, the table in the ``llmkit`` schema, ``"user"`` quoted (a reserved word here),
``= ANY(%s)`` for a list of values, ``tags`` tested on the metadata as ``jsonb``, percentiles by
``percentile_cont``, booleans that are booleans, and text grouped and sorted in byte order
(``COLLATE "C"``: pandas' order, and a cheaper sort than a language's collation). A full read comes in
pages (:func:`page`), so that neither the server nor this process holds the whole result twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llmkit.calllog.query import Dialect, Query, where
from llmkit.calllog.record import COLUMNS

__all__ = ["POSTGRES", "PostgresDialect", "page"]

SCHEMA = "llmkit"
_RESERVED = frozenset(("user",))
_NOT_TEXT = frozenset(("status_code",))  # the one column summaries group by that is no text
_METADATA = "metadata::jsonb"  # stored as JSON text (a type PostgreSQL can read it as: the writer sees to it)
_OBJECT = f"jsonb_typeof({_METADATA}) = 'object'"


class PostgresDialect(Dialect):
    placeholder = "%s"
    table = f"{SCHEMA}.calls"

    def name(self, column: str) -> str:
        return f'"{column}"' if column in _RESERVED else column

    def any_of(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        if len(values) == 1:  # "=" lets an index on (column, started_at) return rows already in order
            return f"{column} = %s", [values[0]]
        return f"{column} = ANY(%s)", [list(values)]

    def tags(self, tags: Any) -> tuple[list[str], list[Any]]:
        """As ``store.tag_matcher`` tests: the metadata is an object with each item of a dict (a number
        equal to a number or a boolean, as Python compares them), or with each name as a key or an entry
        of its ``tags`` list."""
        clauses: list[str] = []
        args: list[Any] = []
        if isinstance(tags, dict):
            for key, value in tags.items():
                item = f"({_METADATA} -> %s)"
                if value is None:
                    clauses.append(f"{_OBJECT} AND {item} = 'null'::jsonb")
                    args.append(key)
                elif isinstance(value, str):
                    clauses.append(f"{_OBJECT} AND {item} = to_jsonb(%s::text)")
                    args.extend([key, value])
                else:  # True == 1 == 1.0; a number past float's range equals no tag (tags are < 2**53)
                    clauses.append(
                        f"{_OBJECT} AND CASE jsonb_typeof({item})"
                        f" WHEN 'boolean' THEN {item}::boolean::int = %s"
                        f" WHEN 'number' THEN CASE WHEN abs({item}::numeric) < 1e300"
                        f" THEN {item}::numeric::float8 = %s END END"
                    )
                    args.extend([key, key, float(value), key, key, float(value)])
            return clauses, args
        for name in tags:  # a metadata key, or an entry of metadata["tags"] when that is a list
            clauses.append(
                f"{_OBJECT} AND ({_METADATA} ? %s OR (jsonb_typeof({_METADATA} -> 'tags') = 'array'"
                f" AND {_METADATA} -> 'tags' ? %s))"
            )
            args.extend([name, name])
        return clauses, args

    def flag(self, column: str) -> str:
        return f"coalesce({column}, false)"

    def percentile(self, column: str, fraction: float) -> str | None:
        # percentile_cont interpolates between the closest ranks and skips nulls, as pandas' quantile
        # does; those of one column share one sort.
        return f"percentile_cont({fraction}) WITHIN GROUP (ORDER BY {column})"

    def sort_key(self, column: str) -> str:
        return column if column in _NOT_TEXT else f'{column} COLLATE "C"'


POSTGRES = PostgresDialect()


def page(filters: Any, after: tuple[float, int] | None, size: int) -> Query:
    """Up to ``size`` calls matching ``filters`` after the (started_at, seq) ``after``, oldest first:
    ``seq``, then ``COLUMNS``. Each page is read from the index on started_at (or a filter's), from
    where the previous one ended."""
    condition = where(filters, POSTGRES)
    sql, args = condition.sql, condition.args
    if after is not None:
        sql = (sql + " AND" if sql else " WHERE") + " (started_at, seq) > (%s, %s)"
        args = [*args, *after]
    columns = ", ".join(map(POSTGRES.name, COLUMNS))
    return Query(
        f"SELECT seq, {columns} FROM {POSTGRES.table}{sql} ORDER BY started_at, seq LIMIT %s", [*args, int(size)]
    )
