"""The team's store: the call log in a PostgreSQL database that every process and notebook shares.

Chosen by ``LLMKIT_LOG_URL=postgresql://...``, ``configure_log(url=...)`` or the proxy config's
``log_url``. The records, columns and migrations are the SQLite store's (``sqlite.py``), in the
schema ``llmkit`` (``pgdb.py``), and so is the response cache's table (``cache/postgres.py``). Writes
go through ``pgwriter.Writer``: batches copied in with COPY, kept and retried while the database is
away, never dropped. Reads run in the database, built by ``query.py`` with PostgreSQL's dialect
(``pgsql.py``); a full read comes in pages of rows, all from one snapshot. ``search`` uses
PostgreSQL's full-text search over each call's prompt (derived from its messages, in SQL) and response.

Unfiltered reads keep a copy of the log as SQLite's store does (``readcache.py``): in memory from the
second read, and for a large log in a file of llmkit's data folder (``log-copies``, one file per
database and user, the four most recently written kept), so that a notebook's next read, in this
process or a new one, fetches only the rows written since.
"""

from __future__ import annotations

import hashlib
import json
import threading
from array import array
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg

from llmkit.calllog import colsummary, diskcopy, query
from llmkit.calllog.pgdb import Database, RedactedURL
from llmkit.calllog.pgsql import POSTGRES, SCHEMA, page
from llmkit.calllog.pgwriter import BUFFER_SIZE, Writer, cleaned_value
from llmkit.calllog.readcache import ReadCache
from llmkit.calllog.record import COLUMNS, JSON_COLUMNS
from llmkit.calllog.sqlite import SEARCH_MIGRATION
from llmkit.calllog.store import (
    ANNOTATION_COLUMNS,
    Filters,
    LogStoreError,
    collector_paused,
    decode_columns,
    empty_columns,
    encode_json,
    encode_row,
    records_of,
)

__all__ = ["MIGRATIONS", "PostgresStore", "WorkerOpener", "insert_rows"]

_CALLS = f"{SCHEMA}.calls"
# Named as sqlite.MIGRATIONS are, one for one (a test holds them equal), with the search index (which
# SQLite makes on a first search) after them; append-only, like those.
MIGRATIONS: list[tuple[str, str]] = [
    (
        "001_create_calls",
        f"""
        CREATE TABLE {_CALLS} (
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
        CREATE INDEX calls_started_at ON {_CALLS} (started_at, seq);
        CREATE INDEX calls_model ON {_CALLS} (model, started_at, seq);
        CREATE INDEX calls_status ON {_CALLS} (status, started_at, seq);
        CREATE INDEX calls_source ON {_CALLS} (source, started_at, seq);
        CREATE INDEX calls_run_id ON {_CALLS} (run_id);
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
    # A call answered by the response cache (llmkit/cache) rather than by its handler.
    ("003_calls_cache_hit", f"ALTER TABLE {_CALLS} ADD COLUMN cache_hit BOOLEAN"),
    (
        "004_create_response_cache",
        f"""
        CREATE TABLE {SCHEMA}.response_cache (
            key TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            model TEXT NOT NULL,
            value TEXT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL
        );
        CREATE INDEX response_cache_model ON {SCHEMA}.response_cache (model);
        """,
    ),
    (
        # who made each call (the proxy's key name; "user" is a reserved word here), and where a
        # handler's own bug was raised
        "005_calls_user_and_error_traceback",
        f"""
        ALTER TABLE {_CALLS} ADD COLUMN "user" TEXT;
        ALTER TABLE {_CALLS} ADD COLUMN error_traceback TEXT;
        CREATE INDEX calls_user ON {_CALLS} ("user");
        """,
    ),
    (
        "006_calls_session_and_conversation",
        f"""
        ALTER TABLE {_CALLS} ADD COLUMN session_id TEXT;
        ALTER TABLE {_CALLS} ADD COLUMN conversation_id TEXT;
        CREATE INDEX calls_session_id ON {_CALLS} (session_id, started_at, seq);
        CREATE INDEX calls_conversation_id ON {_CALLS} (conversation_id, started_at, seq)
            WHERE conversation_id IS NOT NULL;
        """,
    ),
    (
        # One index per filter, ending in (started_at, seq): a filtered read walks it from its newest
        # end and stops after the rows it returns. 001 made those of model, status and source already.
        "007_filter_indexes",
        f"""
        DROP INDEX {SCHEMA}.calls_run_id;
        DROP INDEX {SCHEMA}.calls_user;
        CREATE INDEX calls_provider_started ON {_CALLS} (provider, started_at, seq);
        CREATE INDEX calls_kind_started ON {_CALLS} (kind, started_at, seq);
        CREATE INDEX calls_run_id_started ON {_CALLS} (run_id, started_at, seq);
        CREATE INDEX calls_user_started ON {_CALLS} ("user", started_at, seq);
        """,
    ),
    (
        # Full-text search (calls.search): the words of each call's prompt and response, in a GIN index
        # over an expression, so nothing is stored twice. A chat's prompt is not stored (it is its last
        # user message): call_prompt derives it as record.prompt_of does in Python (in PL/pgSQL, which
        # costs a fifth of the same in SQL on every insert). Only the first
        # 60,000 characters of each are searched, which keeps an index entry within PostgreSQL's limit
        # (1 MB) however long a text is; positions are stripped (no phrase search, a smaller index).
        SEARCH_MIGRATION,
        f"""
        CREATE FUNCTION {SCHEMA}.call_prompt(prompt text, messages text) RETURNS text
        LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
        DECLARE
            listed jsonb;
            message jsonb;
        BEGIN
            IF prompt IS NOT NULL OR messages IS NULL THEN
                RETURN prompt;
            END IF;
            listed := messages::jsonb;
            IF jsonb_typeof(listed) <> 'array' THEN
                RETURN NULL;
            END IF;
            FOR n IN REVERSE jsonb_array_length(listed) - 1 .. 0 LOOP
                message := listed -> n;
                CONTINUE WHEN coalesce(nullif(message ->> 'role', ''), 'user') <> 'user';
                IF jsonb_typeof(message -> 'content') = 'array' THEN
                    RETURN nullif((
                        SELECT string_agg(part ->> 'text', ' ' ORDER BY i)
                        FROM jsonb_array_elements(message -> 'content') WITH ORDINALITY AS parts (part, i)
                        WHERE jsonb_typeof(part) = 'object' AND part ? 'text'), '');
                END IF;
                RETURN nullif(message ->> 'content', '');
            END LOOP;
            RETURN NULL;
        END
        $$;
        CREATE FUNCTION {SCHEMA}.call_words(prompt text, messages text, response text) RETURNS tsvector
        LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
            SELECT strip(to_tsvector('simple'::regconfig,
                left(coalesce({SCHEMA}.call_prompt(prompt, messages), ''), 60000) || ' '
                || left(coalesce(response, ''), 60000)))
        $$;
        CREATE INDEX calls_words ON {_CALLS} USING gin ({SCHEMA}.call_words(prompt, messages, response));
        """,
    ),
]

_COLUMN_LIST = ", ".join(map(POSTGRES.name, COLUMNS))
_COPY = f"COPY {_CALLS} ({_COLUMN_LIST}) FROM STDIN"
# When a batch holds a call_id already there (a batch retried after a commit whose acknowledgement
# was lost, a spill file imported twice), its rows go through a temporary table and only new ones
# are inserted.
_INCOMING = (
    f"CREATE TEMP TABLE IF NOT EXISTS llmkit_incoming ON COMMIT DELETE ROWS AS"
    f" SELECT {_COLUMN_LIST} FROM {_CALLS} WITH NO DATA"
)
_COPY_INCOMING = f"COPY llmkit_incoming ({_COLUMN_LIST}) FROM STDIN"
_MOVE = (
    f"INSERT INTO {_CALLS} ({_COLUMN_LIST}) SELECT {_COLUMN_LIST} FROM llmkit_incoming ON CONFLICT (call_id) DO NOTHING"
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
_SELECT_ANNOTATIONS = f"SELECT {', '.join(ANNOTATION_COLUMNS)} FROM {SCHEMA}.annotations"
_SELECT_ANNOTATIONS_OF = f"{_SELECT_ANNOTATIONS} WHERE call_id = ANY(%s) ORDER BY seq"
_SEARCH = (
    f"SELECT {_COLUMN_LIST} FROM {_CALLS}"
    f" WHERE {SCHEMA}.call_words(prompt, messages, response) @@ plainto_tsquery('simple'::regconfig, %s)"
    " ORDER BY seq DESC LIMIT %s"
)
# Rows per page of a full read: the memory a read needs beyond its result stays bounded by a page.
_PAGE = 100_000
_COUNT_UP_TO = (
    f"SELECT count(*) FILTER (WHERE seq <= %s), count(*), (SELECT call_id FROM {_CALLS} WHERE seq = %s) FROM {_CALLS}"
)
_ROWS_AFTER = f"SELECT seq, {_COLUMN_LIST} FROM {_CALLS} WHERE seq > %s ORDER BY started_at, seq"
_SEQS_BETWEEN = f"SELECT seq FROM {_CALLS} WHERE seq > %s AND seq <= %s"
_ROWS_WITH_SEQS = f"SELECT seq, {_COLUMN_LIST} FROM {_CALLS} WHERE seq = ANY(%s)"
_ONE_SNAPSHOT = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"
_LATE_WINDOW = 10_000  # the copy's newest rows, among which rows committed late are looked for first
_COPIES = "log-copies"  # the folder of the copies of PostgreSQL logs, in llmkit's data folder
_COPIES_KEPT = 4
_STARTED = COLUMNS.index("started_at")
_JSON_INDEXES = tuple(COLUMNS.index(name) for name in JSON_COLUMNS)
_SUMMARY_WORK_MEM = "256MB"  # percentiles sort a column per group; in memory, not on disk


def insert_rows(conn: Any, rows: Sequence[Sequence[Any]]) -> int:
    """Insert rows (``database_row``) in one transaction; returns how many were new."""
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
        return int(cursor.rowcount)


def _copy(cursor: Any, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    with cursor.copy(sql) as copy:
        for row in rows:
            copy.write_row(row)


def database_row(record: dict[str, Any]) -> list[Any]:
    """``store.encode_row``, with JSON texts PostgreSQL reads as ``jsonb`` (tags, search): a NUL
    character, which ``jsonb`` cannot hold, written as U+FFFD."""
    row = encode_row(record)
    for index in _JSON_INDEXES:
        text = row[index]
        if text is not None and "\\u0000" in text:
            row[index] = strict_json(text)
    return row


def strict_json(text: str) -> str:
    """JSON text as this store keeps it: strict (no NaN), with no NUL character and no lone surrogate;
    a text that is no JSON at all is kept as a JSON string."""
    try:
        value = json.loads(text)
    except ValueError:
        value = text
    return encode_json(cleaned_value(value)) or "null"


class PostgresStore:
    """The call log in PostgreSQL at ``url`` (``postgresql://user:password@host:port/database``).

    ``buffer_size`` records wait in memory while the database is unreachable; older ones go to a
    SQLite file in ``spill_dir`` (the folder of ``LLMKIT_LOG_PATH`` by default), named in a warning.
    ``read_cache_rows`` is the largest log whose copy is kept for repeated unfiltered reads, in memory
    and, from ``readcache.DISK_MIN_ROWS`` calls, in ``spill_dir``'s ``log-copies`` folder; 0 for none.
    """

    def __init__(
        self,
        url: str,
        *,
        buffer_size: int = BUFFER_SIZE,
        spill_dir: str | Path | None = None,
        read_cache_rows: int = 1_000_000,
    ) -> None:
        self.database = Database(url, MIGRATIONS)
        if spill_dir is None:
            from llmkit.calllog.config import default_path

            spill_dir = default_path().parent
        self._copies = Path(spill_dir).expanduser() / _COPIES
        self._cache = ReadCache(read_cache_rows, disk=self._copies / _copy_name(self.database.url.url))
        self._read_lock = threading.Lock()
        self._writer = Writer(
            self.database.connect,
            _insert_records,
            describe=f"PostgreSQL at {self.database.url}",
            scrub=self.database.url.scrub,
            spill_dir=Path(spill_dir).expanduser(),
            buffer_size=buffer_size,
        )
        self._response_cache: Any = None  # the response cache's store, once asked for

    def __str__(self) -> str:
        return str(self.database.url)

    def __repr__(self) -> str:
        return f"PostgresStore({self.database.url})"

    # -- writing --------------------------------------------------------------------------------------
    def write(self, records: list[dict[str, Any]]) -> None:
        if records:
            self._writer.submit(records)

    def insert_rows(self, rows: Sequence[Sequence[Any]]) -> int:
        """Insert rows now (``llmkit logs import``); returns how many were not there yet."""
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
                return int(cursor.rowcount)

    def clear(self) -> None:
        self._written()
        with self.database.connection() as conn:
            conn.execute(f"TRUNCATE {_CALLS}, {SCHEMA}.annotations")
        with self._read_lock:
            self._cache.clear()

    def close(self) -> None:
        self._writer.close()
        if self._response_cache is not None:
            self._response_cache.close()  # answers on their way are written first
        self.database.close()

    # -- reading --------------------------------------------------------------------------------------
    def read(self, filters: Filters, last: int | None = None) -> dict[str, list]:
        self._written()
        if not filters and last is None:
            with self._read_lock, collector_paused():  # the read cache is one thread's at a time
                kept = self._read_kept()
                if kept is not None:
                    return kept
        with self.database.connection() as conn, collector_paused():
            cursor = conn.cursor(binary=True)
            if last is not None:
                rows = cursor.execute(*query.select_calls(filters, last, POSTGRES)).fetchall()
                return _as_columns(list(zip(*rows, strict=False)))
            with conn.transaction():
                conn.execute(_ONE_SNAPSHOT)
                return _as_columns(_pages(cursor, filters)[1:])

    def _read_kept(self) -> dict[str, Any] | None:
        """The whole log from the read cache, or None when it keeps no copy of it."""
        with self.database.connection() as conn:
            with conn.transaction():
                conn.execute(_ONE_SNAPSHOT)
                snapshot = _Snapshot(conn.cursor(binary=True))
                kept = self._cache.read(snapshot.count_up_to, snapshot.rows_after, snapshot.rows_missing)
        if kept is not None:  # the copy is written once the snapshot has ended and the connection is back
            if self._cache.save():
                _keep_newest(self._copies, _COPIES_KEPT)
        return kept

    def count(self, filters: Filters) -> int:
        self._written()
        with self.database.connection() as conn:
            return int(conn.execute(*query.count_calls(filters, POSTGRES)).fetchone()[0])

    def summary(self, filters: Filters, by: str = "model") -> dict[str, list]:
        """Columns ``by`` and ``query.SUMMARY_COLUMNS``, computed by the database; or, when the read
        cache holds the log's columns, from them (``colsummary``), as the SQLite store does: the copy
        in memory serves filtered summaries too (all filters but ``tags``), the one on disk unfiltered ones."""
        self._written()
        query.check_group(by)
        if colsummary.filterable(filters):
            columns = self._columns_for_summary(colsummary.needed(by, filters), from_disk=not filters)
            if columns is not None:
                return colsummary.table(by, columns, filters)
        sql, args = query.summary(by, filters, POSTGRES)
        with self.database.connection() as conn:
            with conn.transaction():
                conn.execute(f"SET LOCAL work_mem = '{_SUMMARY_WORK_MEM}'")
                rows = conn.execute(sql, args).fetchall()
        names = (by, *query.SUMMARY_COLUMNS)
        if not rows:
            return {name: [] for name in names}
        return {name: list(values) for name, values in zip(names, zip(*rows, strict=True), strict=True)}

    def _columns_for_summary(self, names: set[str], from_disk: bool) -> dict[str, Any] | None:
        with self._read_lock, collector_paused(), self.database.connection() as conn:
            with conn.transaction():
                conn.execute(_ONE_SNAPSHOT)
                snapshot = _Snapshot(conn.cursor(binary=True))
                return self._cache.columns(
                    names,
                    snapshot.count_up_to,
                    snapshot.rows_after,
                    snapshot.columns_after,
                    from_disk=from_disk,
                    rows_missing=snapshot.rows_missing,
                )

    def search(self, text: str, limit: int) -> list[dict[str, Any]]:
        """The newest ``limit`` calls whose prompt or response has every word of ``text``, newest first."""
        self._written()
        with self.database.connection() as conn, collector_paused():
            rows = conn.cursor(binary=True).execute(_SEARCH, (text, limit)).fetchall()
        return records_of(_as_columns(list(zip(*rows, strict=False))))

    def read_annotations(self) -> list[tuple]:
        self._written()
        with self.database.connection() as conn:
            return list(conn.execute(f"{_SELECT_ANNOTATIONS} ORDER BY seq"))

    def annotations_for(self, call_ids: Sequence[str]) -> list[tuple]:
        self._written()
        with self.database.connection() as conn:
            return list(conn.execute(_SELECT_ANNOTATIONS_OF, (list(call_ids),)))

    def _written(self) -> None:
        """Readers see every call made before they read: write what waits, or say why it cannot be."""
        if self._writer.waiting and not self._writer.flush():
            raise LogStoreError(
                f"{self._writer.waiting} calls wait to be written: {self._writer.down}; they are written"
                " when the database is back"
            )

    # -- what shares this database --------------------------------------------------------------------
    def for_workers(self) -> WorkerOpener:
        """How a Ray worker opens this log to write its records itself (``backends/ray.py``)."""
        return WorkerOpener(self.database.url.url)

    def response_cache(self) -> Any:
        """The response cache's store, in this database, on this store's connections (``cache/backend.py``)."""
        from llmkit.cache.postgres import PostgresCacheStore

        if self._response_cache is None:
            self._response_cache = PostgresCacheStore(self.database)
        return self._response_cache


class WorkerOpener:
    """Opens the same PostgreSQL log in another process: pickled with its URL, which it shows, in a
    ``repr`` or a ``str``, only with the password masked."""

    def __init__(self, url: str) -> None:
        self._url = url

    def __call__(self) -> PostgresStore:
        return PostgresStore(self._url)

    def __repr__(self) -> str:
        return f"WorkerOpener({RedactedURL(self._url)})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:  # the same database: a warm worker keeps its store open
        return isinstance(other, WorkerOpener) and other._url == self._url

    def __hash__(self) -> int:
        return hash(self._url)


class _Snapshot:
    """What the read cache asks the database (``ReadCache.read``), on one cursor in one snapshot."""

    def __init__(self, cursor: Any) -> None:
        self.cursor = cursor

    def count_up_to(self, seq: int) -> tuple[int, int, str | None]:
        counts: tuple[int, int, str | None] = self.cursor.execute(_COUNT_UP_TO, (seq, seq)).fetchone()
        return counts

    def rows_after(self, seq: int) -> list:
        columns: Sequence[Sequence[Any]]
        if seq:
            columns = list(zip(*self.cursor.execute(_ROWS_AFTER, (seq,)).fetchall(), strict=False))
        else:  # the whole log, in pages, in start order (which spares the cache a sort)
            columns = _pages(self.cursor, Filters())
        return [list(columns[0]), *decode_columns(columns[1:])] if columns and columns[0] else []

    def columns_after(self, seq: int, names: list[str]) -> list:
        """The columns ``names`` (none of them JSON) of the rows after ``seq``, ``seq`` first."""
        sql = f"SELECT seq, {', '.join(map(POSTGRES.name, names))} FROM {_CALLS} WHERE seq > %s"
        return [list(column) for column in zip(*self.cursor.execute(sql, (seq,)).fetchall(), strict=False)]

    def rows_missing(self, seq: int, seqs: array) -> list:
        """The rows up to ``seq`` not among ``seqs``: those committed after rows with higher seqs were
        read. Nearly always among the newest, so those are compared first, then all."""
        floor = min(seqs[-_LATE_WINDOW:], default=0) if len(seqs) > _LATE_WINDOW else 0
        known = {value for value in seqs if value > floor} if floor else set(seqs)
        there = self.cursor.execute(_SEQS_BETWEEN, (floor, seq)).fetchall()
        missing = [value for (value,) in there if value not in known]
        if not missing and floor:
            there = self.cursor.execute(_SEQS_BETWEEN, (0, seq)).fetchall()
            known = set(seqs)
            missing = [value for (value,) in there if value not in known]
        if not missing:
            return []
        columns = list(zip(*self.cursor.execute(_ROWS_WITH_SEQS, (missing,)).fetchall(), strict=False))
        return [list(columns[0]), *decode_columns(columns[1:])]


def _pages(cursor: Any, filters: Filters) -> list[list]:
    """The calls matching ``filters`` in start order, as columns, ``seq`` first, then ``COLUMNS``
    (encoded), read a page at a time."""
    columns: list[list] = [[] for _ in range(1 + len(COLUMNS))]
    after = None
    while True:
        rows = cursor.execute(*page(filters, after, _PAGE)).fetchall()
        if rows:
            for column, values in zip(columns, zip(*rows, strict=True), strict=True):
                column.extend(values)
        if len(rows) < _PAGE:
            return columns
        after = (rows[-1][1 + _STARTED], rows[-1][0])


def _copy_name(url: str) -> str:
    """The file name of a database's copy: the same for every URL that reaches it as the same user,
    and no part of the URL in clear (nor its password in any form)."""
    parts = psycopg.conninfo.conninfo_to_dict(url)
    where = "\n".join(str(parts.get(key, "")) for key in ("host", "port", "dbname", "user"))
    return hashlib.sha256(where.encode()).hexdigest()[:32] + ".columns"


def _keep_newest(folder: Path, count: int) -> None:
    """Remove all but the ``count`` most recently written copies in ``folder``: a copy of a database
    no longer read does not stay on disk for ever."""
    try:
        copies = sorted(folder.glob("*.columns"), key=lambda path: path.stat().st_mtime, reverse=True)
    except OSError:
        return
    for stale in copies[count:]:
        diskcopy.remove(stale)


def _insert_records(conn: Any, records: list[dict[str, Any]]) -> None:
    insert_rows(conn, [database_row(record) for record in records])


def _as_columns(columns: list) -> dict[str, list]:
    if not columns or not columns[0]:
        return empty_columns()
    return dict(zip(COLUMNS, decode_columns(columns), strict=True))
