"""Answers kept in PostgreSQL, beside the team's call log: the ``llmkit.response_cache`` table.

The table comes from the log's migrations (``calllog.postgres.MIGRATIONS``, ``004_create_response_cache``,
the twin of SQLite's), and the store borrows the log store's connections (``pgdb.Database``): one
pool, the same clear errors, never a password shown. Every process and proxy worker on the database
shares the answers.

Answers are written by a thread of their own, so that a call never waits for the network: this
process finds an answer it kept in memory until it is written. A lookup that cannot reach the
database within a second is a miss (said once in a warning), and for the next ``RETRY_SECONDS``
lookups do not try again, so that calls go on at full speed while the database is away; a call never
fails because the cache could not be read.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from typing import Any

from llmkit.calllog.pgsql import SCHEMA
from llmkit.calllog.recorder import warn_once
from llmkit.calllog.store import LogStoreError

__all__ = ["RETRY_SECONDS", "PostgresCacheStore"]

RETRY_SECONDS = 5.0
_LOOKUP_TIMEOUT = 1.0  # seconds a lookup waits for a connection: a call must not wait long on the cache
_TABLE = f"{SCHEMA}.response_cache"
_GET = f"SELECT value FROM {_TABLE} WHERE key = %s"
_PUT = (
    f"INSERT INTO {_TABLE} (key, kind, model, value, created_at) VALUES (%s, %s, %s, %s, %s)"
    " ON CONFLICT (key) DO UPDATE SET kind = excluded.kind, model = excluded.model, value = excluded.value,"
    " created_at = excluded.created_at"
)
_STATS = f"SELECT count(*), coalesce(sum(octet_length(key) + octet_length(value)), 0) FROM {_TABLE}"


class PostgresCacheStore:
    """The response cache in the database of ``database`` (the log store's ``pgdb.Database``)."""

    def __init__(self, database: Any) -> None:
        self.database = database
        self._unwritten: dict[str, str] = {}  # answers handed to put and not written yet
        self._writer: concurrent.futures.ThreadPoolExecutor | None = None  # started on the first put
        self._writer_lock = threading.Lock()
        self._away_until = 0.0  # lookups are misses until then: the database could not be reached
        try:  # connect now, with the usual patience: a lookup waits a second at most, a first connection may not
            with database.connection():
                pass
        except LogStoreError:
            self._away_until = time.monotonic() + RETRY_SECONDS

    def __str__(self) -> str:
        return str(self.database.url)

    def get(self, key: str) -> str | None:
        unwritten = self._unwritten.get(key)
        if unwritten is not None:
            return unwritten
        if time.monotonic() < self._away_until:
            return None
        try:
            with self.database.connection(_LOOKUP_TIMEOUT) as conn:
                row = conn.execute(_GET, (key,)).fetchone()
        except LogStoreError as exc:
            self._away_until = time.monotonic() + RETRY_SECONDS
            warn_once(("cache-away", str(self)), f"llmkit's response cache cannot be read, so calls are made: {exc}")
            return None
        return None if row is None else row[0]

    def put(self, key: str, kind: str, model: str, value: str) -> None:
        self._unwritten[key] = value
        self._writes().submit(self._write, key, kind, model, value)

    def _writes(self) -> concurrent.futures.ThreadPoolExecutor:
        with self._writer_lock:
            if self._writer is None:
                self._writer = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="llmkit-cache")
            return self._writer

    def _write(self, key: str, kind: str, model: str, value: str) -> None:
        try:
            with self.database.connection() as conn:
                conn.execute(_PUT, (key, kind, model, value, time.time()))
        except Exception as exc:  # the database away: this process keeps the answer in memory
            warn_once(("cache-write", str(self)), f"llmkit could not write to the response cache: {exc}")
            return
        if self._unwritten.get(key) is value:
            del self._unwritten[key]

    def flush(self) -> None:
        """Wait until every answer handed to ``put`` is written (or could not be)."""
        writer = self._writer
        if writer is not None:
            try:
                writer.submit(int).result()  # one worker: done when everything before it is
            except RuntimeError:  # shut down: it finished its queue
                pass

    def clear(self, model: str | None = None) -> int:
        self.flush()  # an answer still on its way would come back after the clear
        self._unwritten.clear()
        with self.database.connection() as conn:
            if model is None:
                return int(conn.execute(f"DELETE FROM {_TABLE}").rowcount)
            return int(conn.execute(f"DELETE FROM {_TABLE} WHERE model = %s", (model,)).rowcount)

    def stats(self) -> tuple[int, int]:
        self.flush()
        with self.database.connection() as conn:
            entries, size = conn.execute(_STATS).fetchone()
        return int(entries), int(size)

    def close(self) -> None:
        """Write what waits; the connections are the log store's, and stay open."""
        with self._writer_lock:
            writer, self._writer = self._writer, None
        if writer is not None:
            writer.shutdown(wait=True)
