"""Which store the log writes to: :func:`configure_log`, else ``LLMKIT_LOG`` / ``LLMKIT_LOG_URL`` /
``LLMKIT_LOG_PATH`` (a PostgreSQL URL wins over a SQLite path), else the settings file's ``log``
(``llmkit logs off`` remembers an opt-out there; see :mod:`llmkit.settings`).

The store opens on first use, not at import. A log that cannot be used (an unwritable path, a
corrupt file, another application's database) warns once, naming the file, and the calls go to a
fresh spill file in the temporary directory, named in the warning, so memory stays bounded. A corrupt
or foreign file is also an error for readers; ``llmkit serve`` refuses to start on any of them
(:func:`problem`).
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Any

from llmkit.calllog import recorder, spill
from llmkit.calllog.store import LogStoreError, MemoryStore, Store

__all__ = ["configure_log", "current_store", "default_path", "log_mode", "problem"]

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
_store: Store | None = None
_error: Exception | None = None  # why the configured file could not be opened
_problem: str | None = None  # why the configured store is not the one in use
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


def log_mode(*, saved: bool = True) -> str:
    """The log's mode; ``saved=False`` leaves the settings file unread (at import, which reads no file)."""
    if _custom is not None:
        return "custom"
    if _mode is not None:
        return _mode
    value = os.environ.get("LLMKIT_LOG")
    if value is None:
        mode = _saved_mode() if saved else "sqlite"
    else:
        mode = _ENV_MODES.get(value.strip().lower()) or _unknown_mode(value)
    return "postgres" if mode == "sqlite" and os.environ.get("LLMKIT_LOG_URL") else mode


def _unknown_mode(value: str) -> str:
    recorder.warn_once(
        ("env", value),
        f"LLMKIT_LOG={value!r} is not one of sqlite, postgres, memory, off; logging to SQLite",
    )
    return "sqlite"


_saved: str | None = None


def _saved_mode() -> str:
    """``off`` when the settings file says ``log = "off"`` (read once per process), else sqlite."""
    global _saved
    if _saved is None:
        from llmkit import settings

        try:
            value = settings.read().get("log", "on")
        except settings.SettingsError as exc:
            recorder.warn_once(("settings", str(exc)), f"{exc}; logging to SQLite meanwhile")
            value = "on"
        _saved = "off" if str(value).strip().lower() in ("off", "false", "0", "no") else "sqlite"
    return _saved


def _open() -> Any:
    global _error, _problem
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
        _problem = str(exc)
    except Exception as exc:  # OSError, sqlite3.OperationalError: the file cannot be created or written
        _problem = (
            f"llmkit cannot write its call log at {path} ({type(exc).__name__}: {exc}); set LLMKIT_LOG_PATH"
            " to a writable file, or LLMKIT_LOG=memory or LLMKIT_LOG=off"
        )
    return _fallback(path, _problem)


def _fallback(path: Path, problem: str, *, importable: bool = False) -> Any:
    """Where calls go while the configured log cannot be used: a spill file, said loudly, once."""
    store = spill.spill_store(beside=path)
    later = f" (load it into PostgreSQL later with: llmkit logs import {store})" if importable else ""
    recorder.warn_once(
        ("unusable", str(path)), f"{problem}. Meanwhile calls are written to {store}, a fresh call log{later}"
    )
    return store


def problem() -> str | None:
    """Why the configured log is not in use (opening it now if need be), or None when it is.

    ``llmkit serve`` refuses to start on such a log rather than serve with calls going elsewhere.
    """
    current_store()
    return _problem


def _open_postgres() -> Any:
    """The PostgreSQL store at ``url=`` or ``LLMKIT_LOG_URL``; one that cannot be used is an error for
    readers and for ``llmkit serve``, and its calls go to a spill file meanwhile (``llmkit logs import``)."""
    global _error, _problem
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
        _problem = str(exc)
    return _fallback(default_path(), _problem, importable=True)


def current_store(*, for_reading: bool = False) -> Store | None:
    """The open store (opening it on first use); None when the log is off."""
    global _store
    if _store is None:
        with _lock:
            if _store is None and log_mode() != "off":
                _store = _open()
            sync_off()  # the settings file may have turned the log off: stop making entries
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
    global _mode, _path, _url, _custom, _store, _error, _saved, _problem
    if store is None and path is not None:
        store = "sqlite"
    if store is None and url is not None:
        store = "postgres"
    _check(store, path, url, flush_interval)
    with _lock:
        recorder.stop_writer()  # flushes what is queued to the store it was meant for
        if _store is not None and _store is not _custom and not spill.is_spill(_store):
            _store.close()
        _custom = store if store is not None and not isinstance(store, str) else None
        _mode = store if isinstance(store, str) else None
        _path = Path(path).expanduser() if path is not None else None
        _url = url
        _store, _error, _saved, _problem = None, None, None, None
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


def sync_off(*, saved: bool = True) -> None:
    recorder.off = log_mode(saved=saved) == "off" and not recorder.callbacks


def _after_fork() -> None:
    global _store, _lock
    _lock = threading.RLock()
    if _store is not None and _custom is None and not isinstance(_store, MemoryStore):
        _orphans.append(_store)
        _store = None


recorder.store_getter = current_store
sync_off(saved=False)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
