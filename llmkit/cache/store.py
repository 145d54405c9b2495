"""Where answers are kept: the interface every cache store implements, and the in-memory store.

A store maps a key (``keys.Request.key``) to an entry: the kind of call, the resolved
``provider/model`` (so that :meth:`CacheStore.clear` can remove one model's answers) and the answer
as JSON text (``values``). The SQLite store is in ``sqlite.py``; a server database is one more class
with these five methods, chosen in ``backend.py``.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

__all__ = ["CacheStore", "MemoryCacheStore"]


class CacheStore(Protocol):
    def get(self, key: str) -> str | None:
        """The answer kept under ``key`` (JSON text), or None."""

    def put(self, key: str, kind: str, model: str, value: str) -> None:
        """Keep ``value`` under ``key``, replacing what was there."""

    def clear(self, model: str | None = None) -> int:
        """Remove every answer, or only those of ``model`` (``provider/model``); how many went."""

    def stats(self) -> tuple[int, int]:
        """``(entries, bytes)``: how many answers are kept and the size of their keys and values."""

    def close(self) -> None: ...


class MemoryCacheStore:
    """Answers kept in this process only (beside a memory call log), gone when it ends."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[str, str, str, float]] = {}
        self._lock = threading.Lock()

    def __str__(self) -> str:
        return "memory"

    def get(self, key: str) -> str | None:
        entry = self._entries.get(key)  # a dict read is atomic: no lock on the hit path
        return None if entry is None else entry[2]

    def put(self, key: str, kind: str, model: str, value: str) -> None:
        with self._lock:
            self._entries[key] = (kind, model, value, time.time())

    def clear(self, model: str | None = None) -> int:
        with self._lock:
            doomed = [key for key, entry in self._entries.items() if model is None or entry[1] == model]
            for key in doomed:
                del self._entries[key]
            return len(doomed)

    def stats(self) -> tuple[int, int]:
        with self._lock:
            return len(self._entries), sum(
                len(key.encode()) + len(entry[2].encode()) for key, entry in self._entries.items()
            )

    def close(self) -> None:
        pass
