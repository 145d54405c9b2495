"""Which store the log writes to: from ``LLMKIT_LOG`` / ``LLMKIT_LOG_URL`` / ``LLMKIT_LOG_PATH``, or
:func:`configure_log`. A PostgreSQL URL wins over a SQLite path.

The store opens on first use, not at import. An unwritable path warns once and keeps the calls in
memory; a corrupt or foreign database file is an error naming the file (readers get it; calls keep
working and are kept in memory meanwhile).
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Any

from llmkit.calllog import recorder
from llmkit.calllog.store import LogStoreError, MemoryStore

__all__ = ["configure_log", "current_store", "default_path", "log_mode"]

MODES = ("sqlite", "postgres", "memory", "off")
_ENV_MODES = {
    "off": "off", "0": "off", "false": "off", "no": "off", "none": "off",
    "memory": "memory", "mem": "memory",
    "postgres": "postgres", "postgresql": "postgres",
    "sqlite": "sqlite", "on": "sqlite", "1": "sqlite", "true": "sqlite", "yes": "sqlite", "": "sqlite",
}  # fmt: skip

_lock = threading.RLock()
_mode: str | None = None  # set by configure_log; None means "read LLMKIT_LOG"
_path: Path | None = None
_url: str | None = None
_custom: Any = None  # a Store instance passed to configure_log
_store: Any = None
_error: Exception | None = None  # why the configured file could not be opened
_orphans: list[Any] = []  # connections inherited across fork: never used, never closed, by the child


def default_path() -> Path:
    """``LLMKIT_LOG_PATH``, else ``calls.db`` in llmkit's folder of the user's data directory."""
    configured = os.environ.get("LLMKIT_LOG_PATH")
    if configured:
        return Path(configured).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "llmkit" / "calls.db"


def log_mode() -> str:
    if _custom is not None:
        return "custom"
    if _mode is not None:
        return _mode
    value = os.environ.get("LLMKIT_LOG", "sqlite").strip().lower()
    mode = _ENV_MODES.get(value)
    if mode is None:
        recorder.warn_once(
            ("env", value),
            f"LLMKIT_LOG={value!r} is not one of sqlite, postgres, memory, off; logging to SQLite",
        )
        mode = "sqlite"
    return "postgres" if mode == "sqlite" and os.environ.get("LLMKIT_LOG_URL") else mode


def _open() -> Any:
    global _error
    mode = log_mode()
    if mode == "custom":
        return _custom
    if mode == "off":
        return None
    if mode == "memory":
        return MemoryStore()
    if mode == "postgres":
        return _open_postgres()
    path = _path or default_path()
    from llmkit.calllog.sqlite import SQLiteStore

    try:
        return SQLiteStore(path)
    except LogStoreError as exc:
        _error = exc
    except Exception as exc:  # OSError, sqlite3.OperationalError: the file cannot be created or written
        recorder.warn_once(
            ("unwritable", str(path)),
            f"llmkit cannot write its call log at {path} ({type(exc).__name__}: {exc}); keeping calls in"
            " memory for this session. Set LLMKIT_LOG_PATH to a writable file, or LLMKIT_LOG=memory",
        )
    return MemoryStore()


def _open_postgres() -> Any:
    global _error
    url = _url or os.environ.get("LLMKIT_LOG_URL")
    try:
        if not url:
            raise LogStoreError("the PostgreSQL call log needs a URL: set LLMKIT_LOG_URL=postgresql://...")
        try:
            from llmkit.calllog.postgres import PostgresStore
        except ImportError as exc:
            raise LogStoreError(str(exc)) from None
        return PostgresStore(url)
    except LogStoreError as exc:
        _error = exc
    if _url is None:  # configured by the environment: nobody else is told (configure_log raises it)
        recorder.warn_once(("postgres", str(_error)), f"{_error}; keeping calls in memory for this session")
    return MemoryStore()


def current_store(*, for_reading: bool = False) -> Any:
    """The open store (opening it on first use); None when the log is off."""
    global _store
    if _store is None:
        with _lock:
            if _store is None and log_mode() != "off":
                _store = _open()
    if for_reading and _error is not None:
        raise _error
    return _store


def configure_log(
    store: Any = None,
    *,
    path: str | os.PathLike | None = None,
    url: str | None = None,
    flush_interval: float | None = None,
) -> None:
    """Choose where calls are logged, for this process.

    ``store`` is ``"sqlite"`` (the default: ``path``, else ``LLMKIT_LOG_PATH``, else the user's data
    directory), ``"postgres"`` (``url``, else ``LLMKIT_LOG_URL``: a database shared by a team;
    ``pip install 'llmkit[postgres]'``), ``"memory"`` (this process only), ``"off"``, or an object
    implementing ``llmkit.calllog.store.Store``; None reads ``LLMKIT_LOG`` (or means SQLite when
    ``path`` is given, PostgreSQL when ``url`` is). ``flush_interval`` is how many seconds finished
    calls may wait before they are written (0.05 by default). Calls queued so far are written to the
    previous store first. A store that cannot be opened raises ``LogStoreError`` here.
    """
    global _mode, _path, _url, _custom, _store, _error
    if store is None and path is not None:
        store = "sqlite"
    if store is None and url is not None:
        store = "postgres"
    _check(store, path, url, flush_interval)
    with _lock:
        recorder.stop_writer()  # flushes what is queued to the store it was meant for
        if _store is not None and _store is not _custom:
            _store.close()
        _custom = store if store is not None and not isinstance(store, str) else None
        _mode = store if isinstance(store, str) else None
        _path = Path(path).expanduser() if path is not None else None
        _url = url
        _store, _error = None, None
        if flush_interval is not None:
            recorder.flush_interval = float(flush_interval)
        sync_off()
        current_store(for_reading=True)  # open now, so a bad file is reported here


def _check(store: Any, path: Any, url: Any, flush_interval: Any) -> None:
    if isinstance(store, str) and store not in MODES:
        raise ValueError(f"store must be one of {', '.join(MODES)}, a Store object or None, got {store!r}")
    if store is not None and not isinstance(store, str):
        missing = [name for name in ("write", "read", "annotate", "read_annotations", "clear", "close")
                   if not callable(getattr(store, name, None))]  # fmt: skip
        if missing:
            raise TypeError(f"store {store!r} lacks {', '.join(missing)}; see llmkit.calllog.store.Store")
    if path is not None and store != "sqlite":
        raise ValueError(f"path= is where the SQLite log goes; it means nothing with store={store!r}")
    if url is not None and store != "postgres":
        raise ValueError(f"url= is the PostgreSQL log's database; it means nothing with store={store!r}")
    if store == "postgres" and url is None and not os.environ.get("LLMKIT_LOG_URL"):
        raise ValueError("store='postgres' needs the database: url='postgresql://...' or LLMKIT_LOG_URL")
    if url is not None and not isinstance(url, str):
        raise TypeError(f"url must be a string such as 'postgresql://user:pass@host:5432/db', got {type(url).__name__}")
    if flush_interval is not None and not (isinstance(flush_interval, (int, float)) and flush_interval > 0):
        raise ValueError(f"flush_interval must be a number of seconds > 0, got {flush_interval!r}")


def sync_off() -> None:
    recorder.off = log_mode() == "off" and not recorder.callbacks


def _after_fork() -> None:
    global _store, _lock
    _lock = threading.RLock()
    if _store is not None and _custom is None and not isinstance(_store, MemoryStore):
        _orphans.append(_store)
        _store = None


recorder.store_getter = current_store
sync_off()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
