"""Answers kept in SQLite: by default in the call log's own file, in the ``response_cache`` table.

The table comes from the log's append-only migrations (``calllog.sqlite.MIGRATIONS``), so a file is
a call log and a cache at once, checked and upgraded the same way. WAL mode lets notebook kernels and
proxy workers read and write it together; each ``put`` is one statement, atomic on its own.

Answers are written by a thread of their own, so that a call never waits for the file (another
process may hold its write lock for a while): the answer is remembered in memory at once, and
this process finds it there until it is written. Answers read or written lately are remembered for
``MEMO_SECONDS`` more: a call repeated within that time is answered without asking SQLite, whose
every statement lets other threads take the interpreter (the log's writer, busy building records
when calls come fast) and can cost a hundred microseconds under load. Another process's
``refresh`` or ``clear`` is seen once that time has passed; this process's own are seen at once.
"""

from __future__ import annotations

import concurrent.futures
import math
import sqlite3
import sys
import threading
import time
from pathlib import Path

from llmkit.calllog.recorder import warn_once
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
        self._writer: concurrent.futures.ThreadPoolExecutor | None = None

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
        value: str = row[0]  # the column's one type: values are JSON text
        self._remember(key, value)
        return value

    def put(self, key: str, kind: str, model: str, value: str) -> None:
        self._memo[key] = (value, math.inf)  # found here until it is in the file
        self._writes().submit(self._write, key, kind, model, value)

    def _write(self, key: str, kind: str, model: str, value: str) -> None:
        try:
            with self._lock:
                self._db.execute(
                    "INSERT OR REPLACE INTO response_cache (key, kind, model, value, created_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (key, kind, model, value, time.time()),
                )
        except Exception as exc:  # a full disk, say: the answer stays in memory for this process
            warn_once(("cache-write", type(exc)), f"llmkit could not write to the response cache in {self.path}: {exc}")
            return
        remembered = self._memo.get(key)
        if remembered is not None and remembered[0] is value:
            self._remember(key, value)  # written: from now on it may be forgotten

    def _writes(self) -> concurrent.futures.ThreadPoolExecutor:
        if self._writer is None:
            with self._lock:
                if self._writer is None:
                    self._writer = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="llmkit-cache")
                    mp_util = sys.modules.get("multiprocessing.util")
                    if mp_util is not None:  # its worker processes end with os._exit, skipping the join
                        mp_util.Finalize(self, self.flush, exitpriority=0)
        return self._writer

    def flush(self) -> None:
        """Wait until every answer handed to ``put`` is in the file."""
        writer = self._writer
        if writer is not None:
            try:
                writer.submit(int).result()  # one worker: done when everything before it is
            except RuntimeError:  # shut down (closed, or the interpreter is exiting): it finished its queue
                pass

    def _remember(self, key: str, value: str) -> None:
        memo = self._memo
        if len(memo) >= _MEMO_ENTRIES:
            try:
                del memo[next(iter(memo))]  # the oldest remembered
            except (StopIteration, KeyError, RuntimeError):  # another thread got there first
                pass
        memo[key] = (value, time.monotonic() + MEMO_SECONDS)

    def clear(self, model: str | None = None) -> int:
        self.flush()  # an answer still on its way would come back after the clear
        self._memo.clear()
        with self._lock:
            if model is None:
                return self._db.execute("DELETE FROM response_cache").rowcount
            return self._db.execute("DELETE FROM response_cache WHERE model = ?", (model,)).rowcount

    def stats(self) -> tuple[int, int]:
        sql = (
            "SELECT count(*), coalesce(sum(length(CAST(key AS BLOB)) + length(CAST(value AS BLOB))), 0)"
            " FROM response_cache"
        )
        self.flush()
        with self._lock:
            entries, size = self._db.execute(sql).fetchone()
        return entries, size

    def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.shutdown(wait=True)
        with self._lock:
            self._db.close()
