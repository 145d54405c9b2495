"""Writing records to PostgreSQL without losing one when the database goes away.

The log's writer thread hands each batch to :meth:`Writer.submit`, which writes it at once on the
writer's own connection. When the database cannot be reached (restarted, network down), records
wait in a bounded buffer while a background thread reconnects with exponential backoff and writes
them when the database is back. When the buffer is full, the oldest records go to a local SQLite file
named in one warning (``llmkit logs import PATH`` loads it into PostgreSQL later). Rows the database
refuses (a NUL character in a text, a dropped table, a read-only user) are retried once cleaned of
what PostgreSQL cannot store, and saved to that file if still refused. Nothing is dropped silently.
"""

from __future__ import annotations

import atexit
import collections
import os
import random
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from llmkit.calllog import recorder
from llmkit.calllog.store import LogStoreError

__all__ = ["BUFFER_SIZE", "Writer", "cleaned_record", "cleaned_value"]

#: Records kept in memory while the database is unreachable, before the oldest go to the spill file.
BUFFER_SIZE = 20_000
_BATCH = 5_000  # records per transaction when catching up
_FIRST_DELAY, _MAX_DELAY = 0.1, 5.0  # seconds between reconnection attempts: doubling, with jitter


class _Unreachable(Exception):
    pass


class Writer:
    """Writes records with ``insert(connection, records)`` on a connection from ``connect()``."""

    def __init__(
        self,
        connect: Callable[[], Any],
        insert: Callable[[Any, list[dict]], Any],
        *,
        describe: str,
        scrub: Callable[[str], str],
        spill_dir: Path,
        buffer_size: int = BUFFER_SIZE,
    ) -> None:
        self._connect = connect
        self._insert = insert
        self._describe = describe  # where the records go, password masked
        self._scrub = scrub  # removes the password from any text shown
        self._spill_dir = spill_dir
        self.buffer_size = buffer_size
        self._waiting: collections.deque[dict] = collections.deque()
        self._lock = threading.Lock()  # guards _waiting, _down, _retrier
        self._io = threading.Lock()  # one batch on the connection at a time
        self._conn: Any = None
        self._down: str | None = None  # why the database is unreachable, while it is
        self._retrier: threading.Thread | None = None
        self._stop = threading.Event()
        self._exiting = False
        self._spill: Any = None  # the SQLiteStore of the spill file, once opened
        self._spill_lock = threading.Lock()
        self._pid = os.getpid()
        atexit.register(self._at_exit)
        mp_util = sys.modules.get("multiprocessing.util")
        if mp_util is not None:  # its workers end with os._exit: run after the recorder's last flush there
            mp_util.Finalize(None, self._at_exit, exitpriority=-1)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @property
    def down(self) -> str | None:
        return self._down

    # -- the writer thread's side ----------------------------------------------------------------------
    def submit(self, records: list[dict]) -> None:
        """Write ``records`` now, or keep them for later when the database cannot be reached."""
        with self._lock:
            self._waiting.extend(records)
            down = self._down
        if down is not None:
            self._trim()
            if not self._exiting:
                return  # the retrier writes them when the database is back
        if not self.flush() and self._exiting:
            self._save_all_locally()

    def _trim(self) -> None:
        """While the database is away, keep the newest ``buffer_size`` records; save older ones locally."""
        with self._lock:
            overflow = [self._waiting.popleft() for _ in range(len(self._waiting) - self.buffer_size)]
        if overflow:
            why = f"PostgreSQL is unreachable ({self._down}) and {self.buffer_size} calls already wait"
            self._save_locally(overflow, why)

    def flush(self) -> bool:
        """Write every waiting record; False when the database cannot be reached (retrying meanwhile)."""
        with self._io:
            while True:
                with self._lock:
                    batch = [self._waiting.popleft() for _ in range(min(_BATCH, len(self._waiting)))]
                if not batch:
                    self._down = None
                    return True
                try:
                    self._write(batch)
                except _Unreachable as exc:
                    with self._lock:
                        self._waiting.extendleft(reversed(batch))
                    self._went_down(str(exc))
                    return False

    def _write(self, batch: list[dict]) -> None:
        try:
            self._insert(self._connection(), batch)
            return
        except _Unreachable:
            raise
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            self._drop_connection()
            raise _Unreachable(self._reason(exc)) from None
        except Exception as exc:  # the rows were refused; a cleaned copy may pass
            first = exc
        if self._conn is not None and self._conn.broken:
            self._drop_connection()
            raise _Unreachable(self._reason(first))
        cleaned = [cleaned_record(record) for record in batch]
        try:
            self._insert(self._connection(), cleaned)
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            self._drop_connection()
            raise _Unreachable(self._reason(exc)) from None
        except Exception as exc:
            self._save_locally(cleaned, f"PostgreSQL refused them: {self._reason(exc)}")

    def _reason(self, exc: BaseException) -> str:
        return self._scrub(" ".join(str(exc).split()) or type(exc).__name__)

    def _connection(self) -> Any:
        if self._conn is None or self._conn.closed:
            try:
                self._conn = self._connect()
            except LogStoreError as exc:
                raise _Unreachable(str(exc)) from None
        return self._conn

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # already broken
                pass

    # -- while the database is away ----------------------------------------------------------------------
    def _went_down(self, reason: str) -> None:
        with self._lock:
            first = self._down is None
            self._down = reason
            if self._retrier is None or not self._retrier.is_alive():
                self._retrier = threading.Thread(target=self._retry, name="llmkit-calllog-reconnect", daemon=True)
                self._retrier.start()
        self._trim()
        if first:
            recorder.warn_once(
                ("postgres-down", self._describe),
                f"llmkit's call log cannot write to {self._describe} ({reason}); keeping up to"
                f" {self.buffer_size} calls in memory and retrying until it is back",
            )

    def _retry(self) -> None:
        delay = _FIRST_DELAY
        while not self._stop.wait(delay * random.uniform(0.75, 1.25)):
            if self.flush():
                return
            delay = min(delay * 2, _MAX_DELAY)

    def _save_all_locally(self) -> None:
        with self._lock:
            records = list(self._waiting)
            self._waiting.clear()
        if records:
            self._save_locally(records, f"PostgreSQL is unreachable ({self._down}) as the process ends")

    def _save_locally(self, records: list[dict], why: str) -> None:
        """Append ``records`` to the spill file, named in one warning, for ``llmkit logs import``."""
        from llmkit.calllog.sqlite import SQLiteStore

        try:
            with self._spill_lock:
                if self._spill is None:
                    stamp = time.strftime("%Y%m%d-%H%M%S")
                    self._spill = SQLiteStore(self._spill_dir / f"calls-not-sent-{stamp}-{os.getpid()}.db")
                self._spill.write([cleaned_record(record) for record in records])
        except Exception as exc:  # a full disk as well: say how many calls are lost, and why
            recorder.warn_once(
                ("postgres-lost", self._describe, type(exc)),
                f"llmkit's call log lost {len(records)} calls: {why}, and saving them to a local file in"
                f" {self._spill_dir} failed ({type(exc).__name__}: {self._reason(exc)})",
            )
            return
        path = self._spill.path
        recorder.warn_once(
            ("postgres-spill", str(path)),
            f"llmkit's call log could not write calls to {self._describe}: {why}. They are being saved"
            f" to {path}; load them into PostgreSQL once it is back with: llmkit logs import {path}",
        )

    # -- ending --------------------------------------------------------------------------------------------
    def close(self) -> None:
        """Write what waits (one last try), save the rest locally, and close the connection."""
        if os.getpid() != self._pid:
            return  # a forked child's copy: the connection is the parent's
        atexit.unregister(self._at_exit)
        self._exiting = True
        self._stop.set()
        if not self.flush():
            self._save_all_locally()
        with self._io:
            self._drop_connection()
        with self._spill_lock:
            if self._spill is not None:
                self._spill.close()
                self._spill = None  # a late record opens a new file rather than fail on a closed one

    def _at_exit(self) -> None:
        # Runs before the recorder's last flush (atexit is last-in, first-out): from now on, records
        # that cannot be written are saved locally at once, since no retry will come.
        if os.getpid() != self._pid:
            return
        self._exiting = True
        self._stop.set()
        if self.waiting and not self.flush():
            self._save_all_locally()


# -- what PostgreSQL cannot store ------------------------------------------------------------------------
def cleaned_record(record: dict) -> dict:
    """``record`` with NUL characters (which PostgreSQL's text cannot hold) and lone surrogates replaced."""
    return {key: cleaned_value(value) for key, value in record.items()}


def cleaned_value(value: Any, depth: int = 0) -> Any:
    """``value`` (a text, or lists and dicts of them) with NUL characters and lone surrogates replaced."""
    if isinstance(value, str):
        if "\x00" in value:
            value = value.replace("\x00", "\ufffd")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            value = value.encode("utf-8", "replace").decode("utf-8")
        return value
    if depth > 20:
        return value
    if isinstance(value, dict):
        return {cleaned_value(key, depth + 1): cleaned_value(item, depth + 1) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [cleaned_value(item, depth + 1) for item in value]
    return value
