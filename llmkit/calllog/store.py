"""Where records go: the interface every store implements, and the in-memory store.

Stores write records (dicts) and read them back as *columns*: a dict from each name in
``record.COLUMNS`` to a list of plain Python values, oldest call first, with the list and dict
columns (``record.JSON_COLUMNS``) decoded. Columns are what a DataFrame is built from, and keeping
them saves transposing a million rows on every read. The SQLite store lives in ``sqlite.py``, the
PostgreSQL one in ``postgres.py`` (which also computes ``summary`` itself); ``config.py`` chooses;
the dispatcher never sees a store.
"""

from __future__ import annotations

import json
import threading
from array import array
from typing import Any, Iterable, Protocol, Sequence

from pydantic_core import to_json

from llmkit.calllog.record import COLUMNS, JSON_COLUMNS
from llmkit.errors import LLMKitError

__all__ = [
    "ANNOTATION_COLUMNS",
    "Filters",
    "LogStoreError",
    "MemoryStore",
    "Store",
    "Table",
    "decode_columns",
    "decoded_row",
    "encode_json",
    "encode_row",
    "records_of",
]

#: One annotation row: a label put on a call after the fact (a vote, a rating, a tag).
ANNOTATION_COLUMNS = ("call_id", "name", "value", "group_id", "source", "created_at")

_JSON_INDEXES = tuple(COLUMNS.index(name) for name in JSON_COLUMNS)


class LogStoreError(LLMKitError):
    """The call log's database file cannot be used (corrupt, or not an llmkit call log)."""


class Filters(dict):
    """Row filters a store applies: ``model``, ``status``, ``source``, ``kind`` (tuples of allowed
    values), ``run_id`` (one value), ``since`` (epoch seconds, inclusive)."""


class Store(Protocol):
    def write(self, records: list[dict[str, Any]]) -> None: ...

    def read(self, filters: Filters, last: int | None = None) -> dict[str, list]:
        """Columns of the calls matching ``filters`` by start time, oldest first; the newest ``last``."""

    def annotate(self, rows: list[tuple]) -> None:
        """Append annotation rows: tuples in the order of ``ANNOTATION_COLUMNS``, value as JSON text."""

    def read_annotations(self) -> list[tuple]: ...

    def clear(self) -> None: ...

    def close(self) -> None: ...


# -- JSON for the list and dict columns -------------------------------------------------------------
def _json_default(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump):  # objects that look like pydantic models but are not
        return dump()
    return repr(value)


def encode_json(value: Any) -> str | None:
    # pydantic-core's encoder (already a dependency) is about 8x faster than json.dumps here, and it
    # writes pydantic objects in messages (a Message appended from a response) as their fields.
    return None if value is None else to_json(value, fallback=_json_default, bytes_mode="base64").decode()


def encode_row(record: dict[str, Any]) -> tuple:
    """A record as a row tuple in ``COLUMNS`` order, lists and dicts as JSON text."""
    row = [record.get(name) for name in COLUMNS]
    for index in _JSON_INDEXES:
        row[index] = encode_json(row[index])
    return tuple(row)


# -- columns in memory -------------------------------------------------------------------------------
_STARTED = COLUMNS.index("started_at")


class Table:
    """Calls as columns in memory: the memory store's contents, and the SQLite store's read cache.

    Numbers are kept in ``array('d')`` columns (NaN for null), which numpy reads without converting a
    million float objects; repeated short texts (model, status, ...) share one string object. Rows are
    appended as written (roughly as calls finish) and put in order of start time when read. Not
    thread-safe by itself: its owner holds a lock.
    """

    def __init__(self) -> None:
        self.columns: dict[str, Any] = {name: array("d") if name in NUMBERS else [] for name in COLUMNS}
        self._shared: dict[Any, Any] = {}
        self._ordered = True

    def __len__(self) -> int:
        return len(self.columns["call_id"])

    def append(self, rows: list[tuple]) -> None:
        """Append decoded rows (tuples in ``COLUMNS`` order)."""
        if rows:
            self.extend(list(zip(*rows)))  # transposed in C

    def extend(self, columns: list[Sequence[Any]]) -> None:
        """Append decoded columns (sequences in ``COLUMNS`` order, of equal length)."""
        if not columns or not columns[0]:
            return
        started = self.columns["started_at"]
        new = columns[_STARTED]
        if (started and new[0] < started[-1]) or any(a > b for a, b in zip(new, new[1:])):
            self._ordered = False
        share = self._shared.setdefault
        for name, column in zip(COLUMNS, columns):
            values = self.columns[name]
            if name in NUMBERS:
                values.extend([_NAN if v is None else v for v in column])
            elif name in SHARED:
                values.extend([share(v, v) for v in column])
            else:
                values.extend(column)

    def select(self, filters: Filters, last: int | None = None) -> dict[str, Any]:
        """Copies of the columns of matching rows, oldest first; the newest ``last`` of them."""
        self._order()
        index = self._matching(filters)
        if last is not None:
            index = (index if index is not None else range(len(self)))[-last:]
        if index is None:
            return {name: _copy(values) for name, values in self.columns.items()}
        return {name: _copy(values, index) for name, values in self.columns.items()}

    def clear(self) -> None:
        for values in self.columns.values():
            del values[:]
        self._shared.clear()
        self._ordered = True

    def _order(self) -> None:
        if self._ordered:
            return
        started = self.columns["started_at"]
        order = sorted(range(len(started)), key=started.__getitem__)  # stable: ties keep write order
        for name, values in self.columns.items():
            self.columns[name] = _copy(values, order)
        self._ordered = True

    def _matching(self, filters: Filters) -> list[int] | None:
        index: list[int] | None = None
        for name in ("model", "status", "source", "kind", "run_id", "since"):
            wanted = filters.get(name)
            if wanted is None:
                continue
            values = self.columns["started_at" if name == "since" else name]
            candidates = range(len(values)) if index is None else index
            if name == "since":
                index = [i for i in candidates if values[i] >= wanted]
            elif name == "run_id":
                index = [i for i in candidates if values[i] == wanted]
            else:
                allowed = set(wanted)
                index = [i for i in candidates if values[i] in allowed]
        return index


#: Columns kept as floats, NaN for null.
NUMBERS = frozenset(
    ("started_at", "prompt_tokens", "completion_tokens", "total_tokens", "latency_ms", "ttft_ms",
     "tokens_per_s", "cost_usd", "status_code")
)  # fmt: skip
_INTEGERS = ("prompt_tokens", "completion_tokens", "total_tokens", "status_code")
#: Short texts that repeat from row to row.
SHARED = frozenset(
    ("model", "provider", "handler_model", "kind", "source", "finish_reason", "status", "error_type", "run_id")
)
_NAN = float("nan")


def _copy(values: Any, index: Any = None) -> Any:
    if isinstance(values, array):
        return array("d", values) if index is None else array("d", [values[i] for i in index])
    return list(values) if index is None else [values[i] for i in index]


def records_of(columns: dict[str, Any]) -> list[dict[str, Any]]:
    """Records (dicts of plain values, None for null) from columns a store returned."""
    plain = dict(columns)
    for name in NUMBERS & plain.keys():
        plain[name] = [None if v != v else v for v in plain[name]]
    for name in _INTEGERS:
        if name in plain:
            plain[name] = [None if v is None else int(v) for v in plain[name]]
    names = list(plain)
    return [dict(zip(names, values)) for values in zip(*plain.values())]


def decoded_row(record: dict[str, Any]) -> tuple:
    """A record as a row of plain values, lists and dicts copied through JSON as a store returns them."""
    row = list(encode_row(record))
    for index in _JSON_INDEXES:
        row[index] = None if row[index] is None else json.loads(row[index])
    return tuple(row)


def decode_columns(columns: list[Sequence[Any]]) -> list[Sequence[Any]]:
    """Columns as a database returns them (JSON text, 0/1 booleans) as columns of plain values.

    Identical JSON texts (the same params, the same prompt sent to several models) are decoded once
    and share one object, which saves most of the time and memory on a large log.
    """
    if not columns:
        return columns
    columns = list(columns)
    for index in _JSON_INDEXES:
        cache: dict[str, Any] = {}
        decoded = []
        for text in columns[index]:
            if text is None:
                decoded.append(None)
                continue
            value = cache.get(text, _MISSING)
            if value is _MISSING:
                value = cache[text] = json.loads(text)
            decoded.append(value)
        columns[index] = decoded
    columns[_ESTIMATED] = [None if v is None else bool(v) for v in columns[_ESTIMATED]]
    return columns


_MISSING = object()
_ESTIMATED = COLUMNS.index("tokens_estimated")


class MemoryStore:
    """Calls kept in this process only (``LLMKIT_LOG=memory``), gone when it ends."""

    def __init__(self) -> None:
        self._table = Table()
        self._annotations: list[tuple] = []
        self._lock = threading.Lock()

    def __str__(self) -> str:
        return "memory"

    def write(self, records: Iterable[dict[str, Any]]) -> None:
        rows = [decoded_row(record) for record in records]
        with self._lock:
            self._table.append(rows)

    def read(self, filters: Filters, last: int | None = None) -> dict[str, list]:
        with self._lock:
            return self._table.select(filters, last)

    def annotate(self, rows: list[tuple]) -> None:
        with self._lock:
            self._annotations.extend(rows)

    def read_annotations(self) -> list[tuple]:
        with self._lock:
            return list(self._annotations)

    def clear(self) -> None:
        with self._lock:
            self._table.clear()
            self._annotations.clear()

    def close(self) -> None:
        pass
