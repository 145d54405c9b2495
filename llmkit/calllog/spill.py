"""Where calls go when the log cannot take them: a fresh SQLite call log beside the unusable one, or
in the temporary directory when its folder cannot be written.

One file per process, named when first needed (so that a warning can name it) and made when the first
call is written to it, so that no call is dropped silently and memory stays bounded while the
configured log is unusable. The file is an llmkit call log like any other: read it with
``llmkit.configure_log(path=...)``.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["SpillFile", "is_spill", "spill_store"]

_spill: SpillFile | None = None
_lock = threading.Lock()


class SpillFile:
    """A store that makes its SQLite file on first use and then hands every call to it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._store: Any = None
        self._lock = threading.Lock()

    def __str__(self) -> str:
        return str(self.path)

    def _opened(self) -> Any:
        with self._lock:
            if self._store is None:
                from llmkit.calllog.sqlite import SQLiteStore

                self._store = SQLiteStore(self.path)
            return self._store

    def write(self, records: list[dict[str, Any]]) -> None:
        self._opened().write(records)

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None

    def __getattr__(self, name: str) -> Any:  # reading, annotating: the SQLite store's own methods
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._opened(), name)


def spill_store(beside: Path | None = None) -> SpillFile:
    """This process's spill file: beside ``beside`` when its folder can be written, else in the
    temporary directory. Named now, made on the first write."""
    global _spill
    with _lock:
        if _spill is None:
            folder = beside.parent if beside is not None and _writable(beside.parent) else Path(tempfile.gettempdir())
            stem = beside.stem if beside is not None else "calls"
            _spill = SpillFile(_fresh_name(folder, stem))
        return _spill


def is_spill(store: Any) -> bool:
    return store is not None and store is _spill


def _writable(folder: Path) -> bool:
    return folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)


def _fresh_name(folder: Path, stem: str) -> Path:
    base = f"{stem}-spill-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    path, count = folder / f"{base}.db", 1
    while path.exists():
        count += 1
        path = folder / f"{base}-{count}.db"
    return path


def _after_fork() -> None:
    global _spill, _lock
    _spill, _lock = None, threading.Lock()  # the parent's file and connection are the parent's


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
