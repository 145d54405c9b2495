"""The default store: one SQLite file shared by every process that logs to it.

WAL mode lets a notebook kernel and a proxy server write the same file while others read it; each
batch is one ``BEGIN IMMEDIATE`` transaction, so a crash loses at most the batch being written and
never leaves half of one. The schema moves by named, append-only migrations (``MIGRATIONS``): a
migration, once released, is never edited; a change is a new one at the end.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from llmkit.calllog.record import COLUMNS
from llmkit.calllog.store import ANNOTATION_COLUMNS, Filters, LogStoreError, Table, decode_columns, encode_row

__all__ = ["MIGRATIONS", "LogStoreError", "SQLiteStore"]

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
]

_MIGRATIONS_TABLE = "llmkit_migrations"
#: Applied by llmkit.calllog.search on the first search, not here (see its docstring).
SEARCH_MIGRATION = "fts_001_calls_prompt_response"
_INSERT_CALLS = f"INSERT OR IGNORE INTO calls ({', '.join(COLUMNS)}) VALUES "
_ROW_PLACEHOLDERS = f"({', '.join('?' * len(COLUMNS))})"
# Rows per multi-row INSERT, within SQLite's limit on bound variables (999 before 3.32). One size
# only, so that SQLite keeps two prepared statements (this and the one-row INSERT), not hundreds.
_ROWS_PER_INSERT = 64 if sqlite3.sqlite_version_info >= (3, 32) else 999 // len(COLUMNS)
_INSERT_MANY = _INSERT_CALLS + ", ".join([_ROW_PLACEHOLDERS] * _ROWS_PER_INSERT)
_INSERT_ONE = _INSERT_CALLS + _ROW_PLACEHOLDERS


def _insert_statements(rows: list[tuple]) -> list[tuple[str, Any, bool]]:
    """``(sql, arguments, many)`` that insert ``rows``, mostly ``_ROWS_PER_INSERT`` at a time.

    executemany releases and retakes the GIL once per row, and under a busy event loop each retake
    can wait for the interpreter's switch interval: a writer thread inserting row by row manages a
    few hundred rows a second and falls ever further behind. A multi-row INSERT retakes it once.
    """
    whole = len(rows) - len(rows) % _ROWS_PER_INSERT
    statements: list[tuple[str, Any, bool]] = [
        (_INSERT_MANY, [value for row in rows[start : start + _ROWS_PER_INSERT] for value in row], False)
        for start in range(0, whole, _ROWS_PER_INSERT)
    ]
    if whole < len(rows):
        statements.append((_INSERT_ONE, rows[whole:], True))
    return statements


_INSERT_ANNOTATION = (
    f"INSERT INTO annotations ({', '.join(ANNOTATION_COLUMNS)}) VALUES ({', '.join('?' * len(ANNOTATION_COLUMNS))})"
)


class SQLiteStore:
    def __init__(self, path: str | Path, *, busy_timeout: float = 30.0) -> None:
        self.path = Path(path).expanduser()
        self._lock = threading.Lock()
        # Rows read so far, decoded, by seq: later reads fetch only rows written since (by any process).
        self._cache = Table()
        self._cached_seq = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One connection, used from the writer thread and readers in turn under the lock.
        self._db = sqlite3.connect(self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
        try:
            self._prepare()
        except BaseException as exc:
            self._db.close()
            if not isinstance(exc, sqlite3.DatabaseError) or _unwritable(exc):
                raise  # LogStoreError already, or a file we may not write: config falls back to memory
            raise LogStoreError(
                f"{self.path} is not a usable llmkit call log ({exc}); move it away or point"
                " LLMKIT_LOG_PATH at another file"
            ) from exc

    def __str__(self) -> str:
        return str(self.path)

    def _prepare(self) -> None:
        db = self._db
        db.execute("PRAGMA journal_mode=WAL")
        # A crashed process loses nothing committed; a power cut may lose the last commits, and in
        # WAL mode never leaves the file inconsistent.
        db.execute("PRAGMA synchronous=NORMAL")
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if tables and _MIGRATIONS_TABLE not in tables:
            raise LogStoreError(
                f"{self.path} is an SQLite database but not an llmkit call log (it has tables"
                f" {', '.join(sorted(tables))}); point LLMKIT_LOG_PATH at another file"
            )
        self._migrate()

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
            db.execute("ROLLBACK")
            raise

    def _transaction(self, statements: list[tuple[str, Any, bool]]) -> None:
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                for sql, args, many in statements:
                    (db.executemany if many else db.execute)(sql, args)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def write(self, records: list[dict[str, Any]]) -> None:
        if records:
            self._transaction(_insert_statements([_sql_row(encode_row(record)) for record in records]))

    def read(self, filters: Filters, last: int | None = None) -> dict[str, list]:
        with self._lock:
            if last is not None:  # a few rows: ask SQLite rather than load the whole log
                return _columns(self._query_last(filters, last))
            self._refresh()
            return self._cache.select(filters)

    def _query_last(self, filters: Filters, last: int) -> list[tuple]:
        where, args = _where(filters)
        columns = ", ".join(COLUMNS)
        sql = (
            f"SELECT {columns} FROM (SELECT seq, {columns} FROM calls{where}"
            " ORDER BY started_at DESC, seq DESC LIMIT ?) ORDER BY started_at, seq"
        )
        return self._db.execute(sql, [*args, last]).fetchall()

    def _refresh(self) -> None:
        """Bring the cache up to date with rows written since the last read, by any process."""
        db = self._db
        db.execute("BEGIN")  # one snapshot for the new rows and the count
        try:
            if db.execute("SELECT count(*) FROM calls WHERE seq <= ?", (self._cached_seq,)).fetchone()[0] != len(
                self._cache
            ):
                self._cache.clear()  # rows were deleted (the log cleared, perhaps by another process)
                self._cached_seq = 0
            sql = f"SELECT seq, {', '.join(COLUMNS)} FROM calls WHERE seq > ? ORDER BY seq"
            fresh = db.execute(sql, (self._cached_seq,)).fetchall()
        finally:
            db.execute("COMMIT")
        if fresh:
            self._cached_seq = fresh[-1][0]
            self._cache.extend(decode_columns(list(zip(*fresh))[1:]))  # transposed in C, seq dropped

    def annotate(self, rows: list[tuple]) -> None:
        self._transaction([(_INSERT_ANNOTATION, rows, True)])

    def read_annotations(self) -> list[tuple]:
        with self._lock:
            return self._db.execute(f"SELECT {', '.join(ANNOTATION_COLUMNS)} FROM annotations ORDER BY seq").fetchall()

    def clear(self) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("DELETE FROM calls")
            self._db.execute("DELETE FROM annotations")
            self._db.execute("COMMIT")
            self._cache.clear()
            self._cached_seq = 0

    def close(self) -> None:
        with self._lock:
            self._db.close()


_ESTIMATED = COLUMNS.index("tokens_estimated")


def _columns(rows: list[tuple]) -> dict[str, list]:
    if not rows:
        return {name: [] for name in COLUMNS}
    return {name: list(values) for name, values in zip(COLUMNS, decode_columns(list(zip(*rows))))}


def _sql_row(row: tuple) -> tuple:
    estimated = row[_ESTIMATED]
    if estimated is None:
        return row
    return row[:_ESTIMATED] + (int(estimated),) + row[_ESTIMATED + 1 :]


def _where(filters: Filters) -> tuple[str, list[Any]]:
    clauses, args = [], []
    for name in ("model", "status", "source", "kind"):
        allowed = filters.get(name)
        if allowed is not None:
            clauses.append(f"{name} IN ({', '.join('?' * len(allowed))})")
            args.extend(allowed)
    for name in ("run_id", "session_id", "conversation_id"):
        if filters.get(name) is not None:
            clauses.append(f"{name} = ?")
            args.append(filters[name])
    if filters.get("since") is not None:
        clauses.append("started_at >= ?")
        args.append(filters["since"])
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), args


def _unwritable(exc: sqlite3.DatabaseError) -> bool:
    text = str(exc).lower()
    return "unable to open" in text or "readonly" in text or "read-only" in text
