"""The default store: one SQLite file shared by every process that logs to it.

WAL mode lets a notebook kernel and a proxy server write the same file while others read it; each
batch is one ``BEGIN IMMEDIATE`` transaction, so a crash loses at most the batch being written and
never leaves half of one. Reads run on a connection of their own, so a long read never holds up the
writer, and are built in ``query.py``: filters become ``WHERE`` clauses over the indexes of migration
003, ``last=`` an ``ORDER BY ... LIMIT``, the summary a ``GROUP BY``; repeated unfiltered reads of a
log up to ``read_cache_rows`` calls are served from a bounded copy in memory (``readcache.py``),
which a large log also keeps in a file beside it for the first read of the next process (``diskcopy.py``).
The schema moves by named, append-only migrations (``MIGRATIONS``): a migration, once released, is
never edited; a change is a new one at the end.

A file that is not an llmkit call log is refused before anything is written to it.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from itertools import compress
from operator import is_not
from pathlib import Path
from typing import Any, TypeVar, cast

from llmkit.calllog import colsummary, diskcopy, query
from llmkit.calllog.readcache import ReadCache
from llmkit.calllog.record import COLUMNS, JSON_COLUMNS
from llmkit.calllog.store import (
    ANNOTATION_COLUMNS,
    Filters,
    LogStoreError,
    collector_paused,
    decode_columns,
    empty_columns,
    encode_json,
    encode_json_rows,
    encode_row,
)

__all__ = ["MIGRATIONS", "LogStoreError", "SQLiteStore"]

T = TypeVar("T")

MIGRATIONS: list[tuple[str, str]] = [
    (
        "001_create_calls",
        """
        CREATE TABLE calls (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            call_id TEXT NOT NULL UNIQUE,
            started_at REAL NOT NULL,
            model TEXT, provider TEXT, handler_model TEXT, kind TEXT, source TEXT,
            messages TEXT, prompt TEXT, params TEXT, response TEXT, finish_reason TEXT,
            prompt_tokens INTEGER, completion_tokens INTEGER, total_tokens INTEGER, tokens_estimated INTEGER,
            latency_ms REAL, ttft_ms REAL, tokens_per_s REAL, cost_usd REAL,
            status TEXT, error_type TEXT, status_code INTEGER, error_message TEXT,
            metadata TEXT, run_id TEXT
        );
        CREATE INDEX calls_started_at ON calls (started_at);
        CREATE INDEX calls_model ON calls (model);
        CREATE INDEX calls_run_id ON calls (run_id);
        """,
    ),
    (
        "002_create_annotations",
        """
        CREATE TABLE annotations (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            call_id TEXT NOT NULL,
            name TEXT NOT NULL,
            value TEXT,
            group_id TEXT,
            source TEXT,
            created_at REAL NOT NULL
        );
        CREATE INDEX annotations_call_id ON annotations (call_id);
        """,
    ),
    # A call answered by the response cache (llmkit/cache) rather than by its handler.
    ("003_calls_cache_hit", "ALTER TABLE calls ADD COLUMN cache_hit INTEGER"),
    (
        "004_create_response_cache",
        """
        CREATE TABLE response_cache (
            key TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            model TEXT NOT NULL,
            value TEXT NOT NULL,
            created_at REAL NOT NULL
        );
        CREATE INDEX response_cache_model ON response_cache (model);
        """,
    ),
    (
        # who made each call (the proxy's key name), and where a handler's own bug was raised
        "005_calls_user_and_error_traceback",
        """
        ALTER TABLE calls ADD COLUMN user TEXT;
        ALTER TABLE calls ADD COLUMN error_traceback TEXT;
        CREATE INDEX calls_user ON calls (user);
        """,
    ),
    # The process that made a call, and the conversation it belongs to (a %%llm --chat thread). Few
    # calls have a conversation: the partial index stays small and costs the other writes nothing.
    (
        "006_calls_session_and_conversation",
        """
        ALTER TABLE calls ADD COLUMN session_id TEXT;
        ALTER TABLE calls ADD COLUMN conversation_id TEXT;
        CREATE INDEX calls_session_id ON calls (session_id, started_at);
        CREATE INDEX calls_conversation_id ON calls (conversation_id, started_at) WHERE conversation_id IS NOT NULL
        """,
    ),
    (
        # One index per filter, ending in started_at (and the rowid, seq, which SQLite appends): a
        # filtered read walks it from its newest end and stops after the rows it returns.
        "007_filter_indexes",
        """
        DROP INDEX calls_model;
        DROP INDEX calls_run_id;
        CREATE INDEX calls_model_started ON calls (model, started_at);
        CREATE INDEX calls_provider_started ON calls (provider, started_at);
        CREATE INDEX calls_status_started ON calls (status, started_at);
        CREATE INDEX calls_source_started ON calls (source, started_at);
        CREATE INDEX calls_kind_started ON calls (kind, started_at);
        CREATE INDEX calls_run_id_started ON calls (run_id, started_at);
        DROP INDEX calls_user;
        CREATE INDEX calls_user_started ON calls (user, started_at);
        """,
    ),
]

_MIGRATIONS_TABLE = "llmkit_migrations"
#: Applied by llmkit.calllog.search on the first search, not here (see its docstring).
SEARCH_MIGRATION = "fts_001_calls_prompt_response"
# Rows per multi-row INSERT, within SQLite's limit on bound variables (999 before 3.32). Fewer, larger
# INSERTs hand the GIL to a busy event loop less often (500 rows: 0.84 of the proxy's log-off
# requests/s against 0.80 at 64), but each row count and set of columns is a statement of its own in
# sqlite3's cache, and at 500 rows those held 20-120 MB more per process.
_MAX_VARIABLES = 32766 if sqlite3.sqlite_version_info >= (3, 32) else 999
_ROWS_PER_INSERT = min(64, _MAX_VARIABLES // len(COLUMNS))
# The rows of a batch bound as one JSON text that SQLite takes apart itself (see SQLiteStore._insert).
_INSERT_JSON = "INSERT OR IGNORE INTO calls ({}) SELECT {} FROM json_each(?)".format(
    ", ".join(COLUMNS), ", ".join(f"json_extract(value, '$[{index}]')" for index in range(len(COLUMNS)))
)
_ROWS_PER_JSON = 500


def cores() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


#: Whether batches go in as JSON text (see SQLiteStore._insert): SQLite spends more CPU on them, the
#: writer thread less time holding the GIL, which is worth it where another core can take SQLite's
#: work. A proxy with as many workers as cores writes value by value (proxy/workers.py).
json_batches = cores() > 1
_INSERT_ANNOTATION = (
    f"INSERT INTO annotations ({', '.join(ANNOTATION_COLUMNS)}) VALUES ({', '.join('?' * len(ANNOTATION_COLUMNS))})"
)
_SELECT_ANNOTATIONS = f"SELECT {', '.join(ANNOTATION_COLUMNS)} FROM annotations"
_SELECT_ANNOTATIONS_BY_SEQ = f"SELECT seq, {', '.join(ANNOTATION_COLUMNS)} FROM annotations"
_IDS_PER_QUERY = 500
_FETCH = 4096  # rows transposed at a time: the column lists grow, the row tuples are freed
_NONES = (None,) * len(COLUMNS)
_COUNT_UP_TO = (
    "SELECT (SELECT count(*) FROM calls WHERE seq <= ?), (SELECT count(*) FROM calls),"
    " (SELECT call_id FROM calls WHERE seq = ?)"
)
_ROWS_AFTER = f"SELECT seq, {', '.join(COLUMNS)} FROM calls WHERE seq > ? ORDER BY seq"
# The whole log, for a read cache that holds none of it yet: in start order, so that it need not sort it.
_ALL_ROWS = f"SELECT seq, {', '.join(COLUMNS)} FROM calls ORDER BY started_at, seq"
_BOOLEANS = (COLUMNS.index("tokens_estimated"), COLUMNS.index("cache_hit"))


def _inserts(records: list[dict[str, Any]]) -> list[tuple[str, list[Any]]]:
    """``(sql, arguments)`` that insert ``records``: one multi-row INSERT per set of columns that hold a value.

    A multi-row INSERT takes the GIL back once, where executemany retakes it after every row (under a
    busy event loop each retake can wait a whole switch interval). Leaving a record's nulls out of the
    INSERT, rather than binding None, halves the cost of binding: sqlite3 looks for an adapter for
    None, and a typical call has nine of them.
    """
    groups: dict[tuple[bool, ...], list[Any]] = {}
    for record in records:
        row = encode_row(record)
        for index in _BOOLEANS:
            if row[index] is not None:  # a bool, which sqlite3 would look for an adapter for too
                row[index] = 1 if row[index] else 0
        present = tuple(map(is_not, row, _NONES))
        groups.setdefault(present, []).extend(compress(row, present))
    return [(_insert_sql(present, len(args) // sum(present)), args) for present, args in groups.items()]


def _bindable(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` with every value SQLite cannot hold as it is turned into JSON text."""
    out = dict(record)
    for name, value in record.items():
        if name not in JSON_COLUMNS and not _fits(value):
            out[name] = encode_json(value)
    return out


def _switch_to_wal(db: sqlite3.Connection, timeout: float) -> None:
    """WAL mode. Switching a new file takes a lock SQLite does not wait for (its busy timeout does not
    apply): two processes opening a new log at once had one refused with "database is locked"."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.005)


def _has_json(db: sqlite3.Connection) -> bool:
    """Whether this SQLite has its JSON functions (built in since 3.38, an option before)."""
    try:
        return bool(db.execute("SELECT json_extract(value, '$[0]') FROM json_each('[[1]]')").fetchone() == (1,))
    except sqlite3.OperationalError:
        return False


def _fits(value: Any) -> bool:
    if isinstance(value, int):
        return -(2**63) <= value < 2**63
    return value is None or isinstance(value, (str, float, bytes))


@functools.lru_cache(maxsize=256)
def _insert_sql(present: tuple[bool, ...], rows: int) -> str:
    columns = list(compress(COLUMNS, present))
    values = f"({', '.join('?' * len(columns))})"
    return f"INSERT OR IGNORE INTO calls ({', '.join(columns)}) VALUES {', '.join([values] * rows)}"


class SQLiteStore:
    """``read_cache_rows``: the largest log kept in memory for repeated unfiltered reads (see
    ``readcache``; about 1.5 GB of the process's memory for a million calls like bench/calllog.py's),
    0 for none."""

    def __init__(self, path: str | Path, *, busy_timeout: float = 30.0, read_cache_rows: int = 1_000_000) -> None:
        self.path = Path(path).expanduser()
        self._cache = ReadCache(read_cache_rows, disk=diskcopy.path_for(self.path))
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._busy_timeout = busy_timeout
        self._second_reader: sqlite3.Connection | None = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Two connections, each used by one thread at a time under its lock: the writer thread's, and
        # the readers'. In WAL mode a read never waits for a write, nor a write for a read.
        self._db = _connect(self.path, busy_timeout)
        try:
            self._prepare()
            self._reader = _connect(self.path, busy_timeout)
        except BaseException as exc:
            self._db.close()
            if not isinstance(exc, sqlite3.DatabaseError) or _unwritable(exc):
                raise  # LogStoreError already, or a file we may not write: config spills elsewhere
            raise LogStoreError(
                f"{self.path} is not a usable llmkit call log ({exc}); move it away or point"
                " LLMKIT_LOG_PATH at another file"
            ) from exc

    def __str__(self) -> str:
        return str(self.path)

    # -- opening -------------------------------------------------------------------------------------
    def _prepare(self) -> None:
        db = self._db
        # Look before changing anything: WAL mode, once set, stays with the file.
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if tables and _MIGRATIONS_TABLE not in tables:
            raise LogStoreError(
                f"{self.path} is an SQLite database but not an llmkit call log (it has tables"
                f" {', '.join(sorted(tables))}); it was left untouched; point LLMKIT_LOG_PATH at another file"
            )
        _switch_to_wal(db, self._busy_timeout)
        # A crashed process loses nothing committed; a power cut may lose the last commits, and in
        # WAL mode never leaves the file inconsistent.
        db.execute("PRAGMA synchronous=NORMAL")
        self._migrate()
        self._json_insert = _has_json(db)

    def _migrate(self) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")  # one process migrates; the others wait, then find it done
        try:
            db.execute(f"CREATE TABLE IF NOT EXISTS {_MIGRATIONS_TABLE} (name TEXT PRIMARY KEY, applied_at REAL)")
            applied = {row[0] for row in db.execute(f"SELECT name FROM {_MIGRATIONS_TABLE}")}
            known = {name for name, _ in MIGRATIONS} | {SEARCH_MIGRATION}  # the index made on a first search
            if applied - known:
                raise LogStoreError(
                    f"{self.path} was written by a newer llmkit (migrations {', '.join(sorted(applied - known))});"
                    " upgrade llmkit or point LLMKIT_LOG_PATH at another file"
                )
            for name, sql in MIGRATIONS:
                if name not in applied:
                    for statement in sql.split(";"):
                        if statement.strip():
                            db.execute(statement)
                    db.execute(f"INSERT INTO {_MIGRATIONS_TABLE} VALUES (?, ?)", (name, time.time()))
            db.execute("COMMIT")
        except BaseException:
            _rollback(db)
            raise

    # -- writing -------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._write_lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                _rollback(db)
                raise

    def write(self, records: list[dict[str, Any]]) -> None:
        """All of ``records`` in one transaction, a slice at a time (see ``_insert``)."""
        if not records:
            return
        try:
            self._insert(records)
        except (sqlite3.ProgrammingError, sqlite3.InterfaceError, OverflowError):
            # A value sqlite3 cannot bind (a handler's answer that is a list, a huge number): the
            # batch is written again with such values as JSON text, rather than refused for ever.
            self._insert([_bindable(record) for record in records])

    def _insert(self, records: list[dict[str, Any]]) -> None:
        """Written from a background thread (the log's writer) with ``json_batches`` and SQLite's JSON
        functions, the rows go in as one JSON text per slice, which SQLite takes apart without the
        GIL: the thread holds the GIL only to make the text (one pydantic-core call), where encoding
        and binding each value, as the multi-row INSERTs below do, held it for most of the write while
        a busy event loop waited. With the proxy under bench/proxy_log.py's load: 0.88 of its log-off
        requests/s this way, 0.80 that way; SQLite's CPU per call 27 us against 15 (on the other core).
        With two workers on two cores, that CPU comes out of the other worker: 11% fewer requests/s
        (bench/proxy.py), hence ``json_batches``. A write the main thread waits for (an import, a read
        that flushes first) goes the fastest way, value by value: 92,000 rows/s against 40,000."""
        if self._json_insert and json_batches and threading.current_thread() is not threading.main_thread():
            try:
                texts = [
                    encode_json_rows(records[i : i + _ROWS_PER_JSON]) for i in range(0, len(records), _ROWS_PER_JSON)
                ]
            except ValueError:  # bytes, or text JSON cannot hold (a lone surrogate): the rows are bound as they are
                pass
            else:
                with self._transaction() as db:
                    for text in texts:
                        db.execute(_INSERT_JSON, (text,))
                return
        with self._transaction() as db:
            for start in range(0, len(records), _ROWS_PER_INSERT):
                for sql, args in _inserts(records[start : start + _ROWS_PER_INSERT]):
                    db.execute(sql, args)

    def annotate(self, rows: list[tuple]) -> None:
        with self._transaction() as db:
            db.executemany(_INSERT_ANNOTATION, rows)

    def clear(self) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM calls")
            db.execute("DELETE FROM annotations")
        with self._read_lock:
            self._cache.clear()

    # -- reading -------------------------------------------------------------------------------------
    def read(self, filters: Filters, last: int | None = None) -> dict[str, list]:
        with self._read_lock, collector_paused():
            if not filters and last is None:
                db = self._reader
                db.execute("BEGIN")  # one snapshot for the count and the new rows
                try:
                    kept = self._cache.read(self._count_up_to, self._rows_after)
                finally:
                    db.execute("COMMIT")
                if kept is not None:
                    self._cache.save()
                    return kept
            columns = self._fetch(*query.select_calls(filters, last))
            return dict(zip(COLUMNS, decode_columns(columns), strict=True)) if columns[0] else empty_columns()

    def _fetch(self, sql: str, args: Any) -> list[list[Any]]:
        """The rows of a query as columns, transposed a chunk at a time (in C)."""
        cursor = self._reader.execute(sql, args)
        columns: list[list[Any]] = [[] for _ in cursor.description]
        while chunk := cursor.fetchmany(_FETCH):
            for column, values in zip(columns, zip(*chunk, strict=True), strict=True):
                column.extend(values)
        return columns

    def _count_up_to(self, seq: int) -> tuple[int, int, str | None]:
        counts: tuple[int, int, str | None] = self._reader.execute(_COUNT_UP_TO, (seq, seq)).fetchone()
        return counts

    def _rows_after(self, seq: int) -> list[list[Any]]:
        seqs, *columns = self._fetch(_ROWS_AFTER, (seq,)) if seq else self._fetch(_ALL_ROWS, ())
        return [seqs, *decode_columns(columns)] if seqs else []

    def count(self, filters: Filters) -> int:
        sql, args = query.count_calls(filters)
        with self._read_lock:
            count: int = self._reader.execute(sql, args).fetchone()[0]
        return count

    def summary(self, filters: Filters, by: str = "model") -> dict[str, list]:
        """Counts and sums by SQLite's ``GROUP BY``; the percentiles, which SQLite lacks, in Python from
        the three columns they need, read in the order of the groups.

        The ``GROUP BY`` runs in SQLite without the GIL, on a second connection in a thread, while this
        one fetches the percentile columns: for 1,000,000 calls, typically 1.8-1.9 s where one after the
        other took 2.5-3.0 s (alternating runs in one sitting). Both count the calls up to the same
        ``seq``; should a clear() come between them, they run again, one after the other, in one snapshot.

        When the read cache holds the log's columns, the summary is computed from them and the rows
        written since (``colsummary``): a fraction of a second for a million calls. The copy in memory
        serves filtered summaries too (all filters but ``tags``); the one on disk, unfiltered ones.
        """
        query.check_group(by)
        if colsummary.filterable(filters):
            with self._read_lock, collector_paused():
                # Loading columns from disk takes a third of a second: worth it for the whole log, while
                # a filter over the indexes often makes SQL's work small (``status="error"``: 0.15 s).
                columns = self._columns_for_summary(colsummary.needed(by, filters), from_disk=not filters)
            if columns is not None:
                try:
                    return colsummary.table(by, columns, filters)
                except TypeError:  # keys that do not sort (a BLOB among texts): SQLite sorts them
                    pass
        with self._read_lock, collector_paused():
            newest = self._reader.execute("SELECT coalesce(max(seq), 0) FROM calls").fetchone()[0]
            aggregates = query.summary(by, filters, up_to=newest)
            values = query.percentile_values(by, filters, up_to=newest)
            aggregator = self._aggregator()
            groups_of = _in_thread(lambda: aggregator.execute(*aggregates).fetchall())  # execute() runs it
            try:
                rows = self._reader.execute(*values).fetchall()
                groups = groups_of()
            except BaseException:  # Ctrl-C, a failed read: the GROUP BY ends before its connection is reused
                aggregator.interrupt()
                with contextlib.suppress(BaseException):
                    groups_of()
                raise
            if sum(group[1] for group in groups) != len(rows):
                groups, rows = self._summary_queries(aggregates, values)
        return query.summary_columns(by, groups, rows)

    def _columns_for_summary(self, names: set[str], from_disk: bool) -> dict[str, Any] | None:
        db = self._reader
        db.execute("BEGIN")  # one snapshot for the counts and the rows written since the copy
        try:
            return self._cache.columns(
                names, self._count_up_to, self._rows_after, self._columns_after, from_disk=from_disk
            )
        finally:
            db.execute("COMMIT")

    def _columns_after(self, seq: int, names: list[str]) -> list[list[Any]]:
        return self._fetch(f"SELECT seq, {', '.join(names)} FROM calls WHERE seq > ? ORDER BY seq", (seq,))

    def _summary_queries(self, aggregates: query.Query, values: query.Query) -> tuple[list[Any], list[Any]]:
        db = self._reader
        db.execute("BEGIN")  # one snapshot for both queries
        try:
            return db.execute(*aggregates).fetchall(), db.execute(*values).fetchall()
        finally:
            db.execute("COMMIT")

    def _aggregator(self) -> sqlite3.Connection:
        """A second reading connection, for the summary's GROUP BY (used under the read lock)."""
        if self._second_reader is None:
            self._second_reader = _connect(self.path, self._busy_timeout)
        return self._second_reader

    def read_annotations(self) -> list[tuple]:
        with self._read_lock:
            return self._reader.execute(f"{_SELECT_ANNOTATIONS} ORDER BY seq").fetchall()

    def annotations_for(self, call_ids: Sequence[str]) -> list[tuple]:
        ids = list(dict.fromkeys(call_ids))
        rows: list[tuple] = []
        with self._read_lock:
            for start in range(0, len(ids), _IDS_PER_QUERY):
                chunk = ids[start : start + _IDS_PER_QUERY]
                where = f" WHERE call_id IN ({', '.join('?' * len(chunk))})"
                rows.extend(self._reader.execute(_SELECT_ANNOTATIONS_BY_SEQ + where, chunk).fetchall())
        rows.sort()
        return [row[1:] for row in rows]

    def close(self) -> None:
        with self._write_lock, self._read_lock:
            self._db.close()
            self._reader.close()
            if self._second_reader is not None:
                self._second_reader.close()


def _in_thread(function: Callable[[], T]) -> Callable[[], T]:
    """Start ``function()`` in a thread; returns what waits for its result (or raises its error)."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append((True, function()))
        except BaseException as exc:
            outcome.append((False, exc))

    thread = threading.Thread(target=run, name="llmkit-calllog-summary", daemon=True)
    thread.start()

    def result() -> T:
        thread.join()
        ok, value = outcome[0]
        if not ok:
            raise value
        return cast(T, value)

    return result


def _connect(path: Path, busy_timeout: float) -> sqlite3.Connection:
    return sqlite3.connect(path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)


def _rollback(db: sqlite3.Connection) -> None:
    """Roll back what is left of a failed transaction; the error that failed it is the one to report.

    SQLite ends some transactions itself (a full disk, for one), and a ROLLBACK then fails with
    "cannot rollback - no transaction is active", which would hide the real reason.
    """
    if db.in_transaction:
        try:
            db.execute("ROLLBACK")
        except sqlite3.Error:
            pass


def _unwritable(exc: sqlite3.DatabaseError) -> bool:
    text = str(exc).lower()
    return "unable to open" in text or "readonly" in text or "read-only" in text
