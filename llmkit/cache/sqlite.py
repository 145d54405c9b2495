"""Answers kept in SQLite: by default in the call log's own file, in the ``response_cache`` table.

The table comes from the log's append-only migrations (``calllog.sqlite.MIGRATIONS``), so a file is
a call log and a cache at once, checked and upgraded the same way. WAL mode lets notebook kernels and
proxy workers read and write it together; each ``put`` is one statement, atomic on its own.

Answers read or written lately are also remembered in memory for ``MEMO_SECONDS``: a call repeated
within that time is answered without asking SQLite, whose every statement lets other threads take
the interpreter (the log's writer, busy building records when calls come fast) and can cost a
hundred microseconds under load. Another process's ``refresh`` or ``clear`` is seen once that
time has passed; this process's own are seen at once.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from llmkit.calllog.sqlite import SQLiteStore
from llmkit.calllog.store import LogStoreError

__all__ = ["MEMO_SECONDS", "SQLiteCacheStore"]

MEMO_SECONDS = 1.0
_MEMO_ENTRIES = 4096


class SQLiteCacheStore:
    def __init__(self, path: str | Path, *, busy_timeout: float = 30.0) -> None:
        self.path = Path(path).expanduser()
        try:
            # Creates the file, or checks it is an llmkit file and brings its tables up to date.
            SQLiteStore(self.path).close()
        except LogStoreError as exc:
            raise LogStoreError(f"cannot keep the response cache there: {exc}") from None
        # A connection of its own, so that lookups never queue behind the log's writer thread.
        self._db = sqlite3.connect(self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._lock = threading.Lock()
        self._memo: dict[str, tuple[str, float]] = {}  # key -> (value, when to ask SQLite again)

    def __str__(self) -> str:
        return str(self.path)

    def get(self, key: str) -> str | None:
        remembered = self._memo.get(key)
        if remembered is not None and remembered[1] > time.monotonic():
            return remembered[0]
        with self._lock:
            row = self._db.execute("SELECT value FROM response_cache WHERE key = ?", (key,)).fetchone()
        if row is None:
            self._memo.pop(key, None)
            return None
        self._remember(key, row[0])
        return row[0]

    def put(self, key: str, kind: str, model: str, value: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO response_cache (key, kind, model, value, created_at) VALUES (?, ?, ?, ?, ?)",
                (key, kind, model, value, time.time()),
            )
        self._remember(key, value)

    def _remember(self, key: str, value: str) -> None:
        memo = self._memo
        if len(memo) >= _MEMO_ENTRIES:
            try:
                del memo[next(iter(memo))]  # the oldest remembered
            except (StopIteration, KeyError, RuntimeError):  # another thread got there first
                pass
        memo[key] = (value, time.monotonic() + MEMO_SECONDS)

    def clear(self, model: str | None = None) -> int:
        self._memo.clear()
        with self._lock:
            if model is None:
                return self._db.execute("DELETE FROM response_cache").rowcount
            return self._db.execute("DELETE FROM response_cache WHERE model = ?", (model,)).rowcount

    def stats(self) -> tuple[int, int]:
        sql = "SELECT count(*), coalesce(sum(length(CAST(key AS BLOB)) + length(CAST(value AS BLOB))), 0) FROM response_cache"
        with self._lock:
            entries, size = self._db.execute(sql).fetchone()
        return entries, size

    def close(self) -> None:
        with self._lock:
            self._db.close()
