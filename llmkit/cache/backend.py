"""Which store the cache uses, opened on first use: next to the call log unless given a file.

With the SQLite log, the cache is a table in the same file (and follows the log when it is
reconfigured); with the PostgreSQL log, a table in the same database (a log store offering
``response_cache()`` gives the cache's store itself); with the memory log, or no log, it is in memory;
``configure_cache(path=...)`` puts it in a SQLite file of its own. A log store of another kind
(``configure_log(MyStore())``) gets an in-memory cache unless it offers ``response_cache()``.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from llmkit.cache import settings
from llmkit.cache.store import MemoryCacheStore
from llmkit.calllog import config as log_config
from llmkit.calllog import recorder

__all__ = ["close", "counts", "current_store"]

_lock = threading.Lock()
_store: Any = None
_where: Any = None  # what _store was opened for: (the cache's own path or None, the log's store)
#: Since the store was opened: calls answered from it (or by an identical call in flight), and calls
#: that found nothing (and were made, or failed in replay mode).
counts = {"hits": 0, "misses": 0}


def current_store() -> Any:
    """The store for the cache as configured now: opened on first use, and again where the log moved.

    Called on every call through the cache, so the usual case is two identity checks.
    """
    global _store, _where
    log_store = log_config.current_store()
    where = _where
    if where is None or where[0] is not settings.cache_path or where[1] is not log_store:
        with _lock:
            if _where is None or _where[0] is not settings.cache_path or _where[1] is not log_store:
                _close()
                _store = _open(settings.cache_path, log_store)
                _where = (settings.cache_path, log_store)
                counts.update(hits=0, misses=0)  # figures of this store, from now on
    return _store


def _log_file(log_store: Any) -> Path | None:
    from llmkit.calllog.sqlite import SQLiteStore

    return log_store.path if isinstance(log_store, SQLiteStore) else None


def _open(path: Path | None, log_store: Any) -> Any:
    """A SQLite store at ``path`` (the cache's own file), else the log store's own (PostgreSQL's), else
    one in the SQLite log's file, else a memory one."""
    own = getattr(type(log_store), "response_cache", None)  # the class's: a spill file opens on any lookup
    if path is None and own is not None:
        try:
            return own(log_store)
        except Exception as exc:
            recorder.warn_once(
                ("cache", str(log_store)),
                f"llmkit cannot keep its response cache beside the call log in {log_store} ({type(exc).__name__}:"
                f" {exc}); keeping answers in memory for this session",
            )
            return MemoryCacheStore()
    where = path or _log_file(log_store)
    if where is None:
        return MemoryCacheStore()
    from llmkit.cache.sqlite import SQLiteCacheStore

    try:
        return SQLiteCacheStore(where)
    except Exception as exc:  # unwritable, corrupt or foreign: calls go on, answers kept in memory
        recorder.warn_once(
            ("cache", str(where)),
            f"llmkit cannot keep its response cache in {where} ({type(exc).__name__}: {exc}); keeping answers"
            " in memory for this session. Pass another file: llmkit.configure_cache(mode, path=...)",
        )
        return MemoryCacheStore()


def _close() -> None:
    global _store, _where
    if _store is not None:
        _store.close()
    _store, _where = None, None


def close() -> None:
    """Close the store: the next call opens the one configured then."""
    with _lock:
        _close()


def _after_fork() -> None:
    # A SQLite connection must not be used on both sides of a fork: the child opens its own.
    global _store, _where, _lock
    _lock = threading.Lock()
    if not isinstance(_store, MemoryCacheStore):
        _store, _where = None, None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
