"""The team's store: the call log in a PostgreSQL database that every process and notebook shares.

Chosen by ``LLMKIT_LOG_URL=postgresql://...``, ``configure_log(url=...)`` or the proxy config's
``log_url``. The records, columns and migrations are the SQLite store's (``sqlite.py``), in the
schema ``llmkit`` (``pgdb.py``). Writes go through ``pgwriter.Writer``: batches copied in with COPY,
kept and retried while the database is away, never dropped. Reads run in the database: the SQL is in
``pgsql.py``; a full read comes in pages of rows, all from one snapshot.
"""

from __future__ import annotations

import contextlib
import gc
from pathlib import Path
from typing import Any, Iterator

import psycopg

from llmkit.calllog import pgsql
from llmkit.calllog.pgdb import SCHEMA, Database
from llmkit.calllog.pgwriter import BUFFER_SIZE, Writer
from llmkit.calllog.record import COLUMNS
from llmkit.calllog.store import ANNOTATION_COLUMNS, Filters, LogStoreError, decode_columns, encode_row

__all__ = ["MIGRATIONS", "PostgresStore", "insert_rows"]

# Named as sqlite.MIGRATIONS are, one for one (a test holds them equal); append-only, like those.
MIGRATIONS: list[tuple[str, str]] = [
    (
        "001_create_calls",
        f"""
        CREATE TABLE {SCHEMA}.calls (
            seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            call_id TEXT NOT NULL UNIQUE,
            started_at DOUBLE PRECISION NOT NULL,
            model TEXT, provider TEXT, handler_model TEXT, kind TEXT, source TEXT,
            messages TEXT, prompt TEXT, params TEXT, response TEXT, finish_reason TEXT,
            prompt_tokens INTEGER, completion_tokens INTEGER, total_tokens INTEGER, tokens_estimated BOOLEAN,
            latency_ms DOUBLE PRECISION, ttft_ms DOUBLE PRECISION, tokens_per_s DOUBLE PRECISION,
            cost_usd DOUBLE PRECISION,
            status TEXT, error_type TEXT, status_code INTEGER, error_message TEXT,
            metadata TEXT, run_id TEXT
        );
        CREATE INDEX calls_started_at ON {SCHEMA}.calls (started_at, seq);
        CREATE INDEX calls_model ON {SCHEMA}.calls (model, started_at, seq);
        CREATE INDEX calls_status ON {SCHEMA}.calls (status, started_at, seq);
        CREATE INDEX calls_source ON {SCHEMA}.calls (source, started_at, seq);
        CREATE INDEX calls_run_id ON {SCHEMA}.calls (run_id);
        """,
    ),
    (
        "002_create_annotations",
        f"""
        CREATE TABLE {SCHEMA}.annotations (
            seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            call_id TEXT NOT NULL,
            name TEXT NOT NULL,
            value TEXT,
            group_id TEXT,
            source TEXT,
            created_at DOUBLE PRECISION NOT NULL
        );
        CREATE INDEX annotations_call_id ON {SCHEMA}.annotations (call_id);
        """,
    ),
]

_COLUMN_LIST = ", ".join(COLUMNS)
_COPY = f"COPY {SCHEMA}.calls ({_COLUMN_LIST}) FROM STDIN"
# When a batch holds a call_id already there (a batch retried after a commit whose acknowledgement
# was lost, a spill file imported twice), its rows go through a temporary table and only new ones
# are inserted.
_INCOMING = (
    f"CREATE TEMP TABLE IF NOT EXISTS llmkit_incoming ON COMMIT DELETE ROWS AS"
    f" SELECT {_COLUMN_LIST} FROM {SCHEMA}.calls WITH NO DATA"
)
_COPY_INCOMING = f"COPY llmkit_incoming ({_COLUMN_LIST}) FROM STDIN"
_MOVE = (
    f"INSERT INTO {SCHEMA}.calls ({_COLUMN_LIST}) SELECT {_COLUMN_LIST} FROM llmkit_incoming"
    " ON CONFLICT (call_id) DO NOTHING"
)
_INSERT_ANNOTATION = (
    f"INSERT INTO {SCHEMA}.annotations ({', '.join(ANNOTATION_COLUMNS)})"
    " SELECT %s::text, %s::text, %s::text, %s::text, %s::text, %s::float8"
)
# The same annotation (call, name, time) imported twice is kept once.
_INSERT_ANNOTATION_ONCE = (
    _INSERT_ANNOTATION
    + f" WHERE NOT EXISTS (SELECT 1 FROM {SCHEMA}.annotations WHERE call_id = %s AND name = %s AND created_at = %s)"
)
# Rows per page of a full read: the memory a read needs beyond its result stays bounded by a page.
_PAGE = 100_000
_STARTED = COLUMNS.index("started_at")
_SUMMARY_WORK_MEM = "256MB"  # percentiles sort a column per model; in memory, not on disk


def insert_rows(conn: Any, rows: list[tuple]) -> int:
    """Insert encoded rows (``store.encode_row``) in one transaction; returns how many were new."""
    try:
        with conn.transaction(), conn.cursor() as cursor:
            _copy(cursor, _COPY, rows)
        return len(rows)
    except psycopg.errors.UniqueViolation:
        pass
    with conn.transaction(), conn.cursor() as cursor:
        cursor.execute(_INCOMING)
        _copy(cursor, _COPY_INCOMING, rows)
        cursor.execute(_MOVE)
        return cursor.rowcount


def _copy(cursor: Any, sql: str, rows: list[tuple]) -> None:
    with cursor.copy(sql) as copy:
        for row in rows:
            copy.write_row(row)


class PostgresStore:
    """The call log in PostgreSQL at ``url`` (``postgresql://user:password@host:port/database``).

    ``buffer_size`` records wait in memory while the database is unreachable; older ones go to a
    SQLite file in ``spill_dir`` (the folder of ``LLMKIT_LOG_PATH`` by default), named in a warning.
    """

    def __init__(self, url: str, *, buffer_size: int = BUFFER_SIZE, spill_dir: str | Path | None = None) -> None:
        self.database = Database(url, MIGRATIONS)
        if spill_dir is None:
            from llmkit.calllog.config import default_path

            spill_dir = default_path().parent
        self._writer = Writer(
            self.database.connect,
            _insert_records,
            describe=f"PostgreSQL at {self.database.url}",
            scrub=self.database.url.scrub,
            spill_dir=Path(spill_dir).expanduser(),
            buffer_size=buffer_size,
        )

    def __str__(self) -> str:
        return str(self.database.url)

    def __repr__(self) -> str:
        return f"PostgresStore({self.database.url})"

    # -- writing --------------------------------------------------------------------------------------
    def write(self, records: list[dict[str, Any]]) -> None:
        if records:
            self._writer.submit(records)

    def insert_rows(self, rows: list[tuple]) -> int:
        """Insert encoded rows now (``llmkit logs import``); returns how many were not there yet."""
        with self.database.connection() as conn:
            return insert_rows(conn, rows)

    def annotate(self, rows: list[tuple]) -> None:
        self.insert_annotations(rows)

    def insert_annotations(self, rows: list[tuple], *, skip_present: bool = False) -> int:
        """Append annotation rows; with ``skip_present``, not those already there. Returns how many were added."""
        if skip_present:
            sql, args = _INSERT_ANNOTATION_ONCE, [(*row, row[0], row[1], row[-1]) for row in rows]
        else:
            sql, args = _INSERT_ANNOTATION, rows
        with self.database.connection() as conn:
            with conn.transaction(), conn.cursor() as cursor:
                cursor.executemany(sql, args)
                return cursor.rowcount

    def clear(self) -> None:
        self._written()
        with self.database.connection() as conn:
            conn.execute(f"TRUNCATE {SCHEMA}.calls, {SCHEMA}.annotations")

    def close(self) -> None:
        self._writer.close()
        self.database.close()

    # -- reading --------------------------------------------------------------------------------------
    def read(self, filters: Filters, last: int | None = None) -> dict[str, list]:
        self._written()
        with self.database.connection() as conn, _collector_paused():
            cursor = conn.cursor(binary=True)
            if last is not None:
                rows = cursor.execute(*pgsql.newest(filters, last)).fetchall()
                return _as_columns(decode_columns(list(zip(*rows))))
            columns: list[list] = [[] for _ in COLUMNS]
            with conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")  # one snapshot
                after = None
                while True:
                    rows = cursor.execute(*pgsql.page(filters, after, _PAGE)).fetchall()
                    if rows:  # seq first, then COLUMNS
                        for column, values in zip(columns, decode_columns(list(zip(*rows))[1:])):
                            column.extend(values)
                    if len(rows) < _PAGE:
                        return dict(zip(COLUMNS, columns))
                    after = (rows[-1][1 + _STARTED], rows[-1][0])

    def summary(self, filters: Filters) -> dict[str, list]:
        """The per-model summary computed by the database: ``model`` and ``pgsql.SUMMARY_COLUMNS``."""
        self._written()
        sql, args = pgsql.summary(filters)
        with self.database.connection() as conn:
            with conn.transaction():
                conn.execute(f"SET LOCAL work_mem = '{_SUMMARY_WORK_MEM}'")
                rows = conn.execute(sql, args).fetchall()
        names = ("model", *pgsql.SUMMARY_COLUMNS)
        return {name: list(values) for name, values in zip(names, zip(*rows))} if rows else {n: [] for n in names}

    def read_annotations(self) -> list[tuple]:
        self._written()
        sql = f"SELECT {', '.join(ANNOTATION_COLUMNS)} FROM {SCHEMA}.annotations ORDER BY seq"
        with self.database.connection() as conn:
            return conn.execute(sql).fetchall()

    def _written(self) -> None:
        """Readers see every call made before they read: write what waits, or say why it cannot be."""
        if self._writer.waiting and not self._writer.flush():
            raise LogStoreError(
                f"{self._writer.waiting} calls wait to be written: {self._writer.down}; they are written"
                " when the database is back"
            )


def _insert_records(conn: Any, records: list[dict[str, Any]]) -> None:
    insert_rows(conn, [encode_row(record) for record in records])


def _as_columns(columns: list) -> dict[str, list]:
    if not columns:
        return {name: [] for name in COLUMNS}
    return {name: list(values) for name, values in zip(COLUMNS, columns)}


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    # A full read makes tens of millions of objects; each collection of the oldest generation would
    # walk them all again. None of them can form a cycle, so the cyclic collector waits till the end.
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
