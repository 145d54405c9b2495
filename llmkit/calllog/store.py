"""Where records go: the interface every store implements, and the in-memory store.

A store keeps rows: tuples in the order of ``record.COLUMNS``, with the list and dict columns
(``record.JSON_COLUMNS``) as JSON text. The SQLite store lives in ``sqlite.py``; a server database
would be one more class with these six methods, chosen in ``config.py``; the dispatcher never sees it.
"""

from __future__ import annotations

import json
import threading
from typing import Any, Iterable, Protocol

from llmkit.calllog.record import COLUMNS, JSON_COLUMNS

__all__ = ["ANNOTATION_COLUMNS", "Filters", "MemoryStore", "Store", "decode_json", "encode_json", "encode_row", "matches"]

#: One annotation row: a label put on a call after the fact (a vote, a rating, a tag).
ANNOTATION_COLUMNS = ("call_id", "name", "value", "group_id", "source", "created_at")

_JSON_INDEXES = tuple(COLUMNS.index(name) for name in JSON_COLUMNS)


class Filters(dict):
    """Row filters a store applies: ``model``, ``status``, ``source``, ``kind`` (tuples of allowed
    values), ``run_id`` (one value), ``since`` (epoch seconds, inclusive)."""


class Store(Protocol):
    def write(self, records: list[dict[str, Any]]) -> None: ...

    def read(self, filters: Filters, last: int | None = None) -> list[tuple]:
        """Rows matching ``filters`` by start time, oldest first; only the newest ``last`` when given."""

    def annotate(self, rows: list[tuple]) -> None: ...

    def read_annotations(self) -> list[tuple]: ...

    def clear(self) -> None: ...

    def close(self) -> None: ...


def _json_default(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump):  # pydantic objects in messages (a Message appended from a response)
        return dump()
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return repr(value)


def encode_json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, default=_json_default, ensure_ascii=False)


def decode_json(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def encode_row(record: dict[str, Any]) -> tuple:
    row = [record.get(name) for name in COLUMNS]
    for index in _JSON_INDEXES:
        row[index] = encode_json(row[index])
    return tuple(row)


_INDEX = {name: COLUMNS.index(name) for name in ("model", "status", "source", "kind", "run_id", "started_at")}


def matches(row: tuple, filters: Filters) -> bool:
    for name in ("model", "status", "source", "kind"):
        allowed = filters.get(name)
        if allowed is not None and row[_INDEX[name]] not in allowed:
            return False
    run_id = filters.get("run_id")
    if run_id is not None and row[_INDEX["run_id"]] != run_id:
        return False
    since = filters.get("since")
    return since is None or row[_INDEX["started_at"]] >= since


def _started_at(row: tuple) -> float:
    return row[_INDEX["started_at"]]


class MemoryStore:
    """Rows in a list, gone when the process ends (``LLMKIT_LOG=memory``)."""

    def __init__(self) -> None:
        self._rows: list[tuple] = []
        self._annotations: list[tuple] = []
        self._lock = threading.Lock()

    def __str__(self) -> str:
        return "memory"

    def write(self, records: Iterable[dict[str, Any]]) -> None:
        rows = [encode_row(record) for record in records]
        with self._lock:
            self._rows.extend(rows)

    def read(self, filters: Filters, last: int | None = None) -> list[tuple]:
        with self._lock:
            rows = list(self._rows)
        if filters:
            rows = [row for row in rows if matches(row, filters)]
        rows.sort(key=_started_at)  # stable: calls started at the same time keep their order
        return rows[-last:] if last is not None else rows

    def annotate(self, rows: list[tuple]) -> None:
        with self._lock:
            self._annotations.extend(rows)

    def read_annotations(self) -> list[tuple]:
        with self._lock:
            return list(self._annotations)

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()
            self._annotations.clear()

    def close(self) -> None:
        pass
