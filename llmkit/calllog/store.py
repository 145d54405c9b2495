"""Where records go: the interface every store implements, what the log's rows look like, and the
in-memory store.

Stores write records (dicts) and read them back as *columns*: a dict from each name in
``record.COLUMNS`` to a list of plain Python values (None for null), oldest call first, with the
list and dict columns (``record.JSON_COLUMNS``) decoded; a numeric column may instead be an
``array('d')`` with NaN for null (``readcache.NUMBERS``), which ``records_of`` turns back. Columns
are what a DataFrame is built from, and keeping them saves transposing a million rows on every read.
The SQLite store lives in ``sqlite.py``, the PostgreSQL one in ``postgres.py``; both build their SQL
in ``query.py``; ``config.py`` picks the store; the dispatcher never sees one.

A chat's prompt is its last user message, so a row with messages keeps no copy of it: ``encode_row``
leaves it out and ``decode_columns`` derives it again when the row is read.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import json
import operator
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from pydantic_core import to_json

from llmkit.calllog import readcache, secrets
from llmkit.calllog.query import EXACT_FILTERS, LIST_FILTERS
from llmkit.calllog.record import COLUMNS, JSON_COLUMNS, prompt_of
from llmkit.calllog.secrets import scrub
from llmkit.errors import LLMKitError

__all__ = [
    "ANNOTATION_COLUMNS",
    "Filters",
    "LogStoreError",
    "MemoryStore",
    "Store",
    "collector_paused",
    "decode_columns",
    "encode_json",
    "encode_row",
    "matching",
    "records_of",
    "split_tags",
    "tag_matcher",
]

#: One annotation row: a label put on a call after the fact (a vote, a rating, a tag).
ANNOTATION_COLUMNS = ("call_id", "name", "value", "group_id", "source", "created_at")

_JSON_INDEXES = tuple(COLUMNS.index(name) for name in JSON_COLUMNS)
_MESSAGES = COLUMNS.index("messages")
_PARAMS = COLUMNS.index("params")
_METADATA = COLUMNS.index("metadata")
_PROMPT = COLUMNS.index("prompt")
_FLAGS = (COLUMNS.index("tokens_estimated"), COLUMNS.index("cache_hit"))  # booleans, 0/1 in SQLite
_STARTED = COLUMNS.index("started_at")
# Where a secret value could travel: parameters, metadata, messages, a handler's answer or error.
_TEXT_INDEXES = tuple(
    COLUMNS.index(name)
    for name in ("messages", "prompt", "params", "response", "error_message", "error_traceback", "metadata")
)


class LogStoreError(LLMKitError):
    """The call log's database file cannot be used (corrupt, or not an llmkit call log)."""


class Filters(dict):
    """Row filters a store applies, every one of them: ``model``, ``provider``, ``status``, ``source``,
    ``kind`` (tuples of allowed values), ``run_id``, ``session_id``, ``conversation_id`` (one value each),
    ``since`` (epoch seconds, inclusive),
    ``until`` (epoch seconds, exclusive), ``tags`` (a dict of ``metadata`` items, or a tuple of names
    that are metadata keys or entries of ``metadata["tags"]``; see :func:`tag_matcher`)."""


class Store(Protocol):
    """What the log needs of a store. The first six methods are required; the last three are optional
    and let a database do the work (without them the log computes the same from :meth:`read`).

    Other parts look for three more, each optional: ``search(text, limit)`` (``calllog.search``: the
    database's own full-text search), ``for_workers()`` (``backends.ray``: a picklable opener, for
    workers that write a shared log themselves) and ``response_cache()`` (``cache.backend``: the
    response cache's store beside the log). The PostgreSQL store (``postgres.py``) has all three."""

    def write(self, records: list[dict[str, Any]]) -> None:
        """Append records, all or none of them (raise, and the caller keeps them to try again)."""

    def read(self, filters: Filters, last: int | None = None) -> dict[str, list]:
        """Columns of the calls matching ``filters`` by start time, oldest first; the newest ``last``."""

    def annotate(self, rows: list[tuple]) -> None:
        """Append annotation rows: tuples in the order of ``ANNOTATION_COLUMNS``, value as JSON text."""

    def read_annotations(self) -> list[tuple]:
        """Every annotation row, oldest first."""

    def clear(self) -> None: ...

    def close(self) -> None: ...

    # -- optional ----------------------------------------------------------------------------------
    def count(self, filters: Filters) -> int:
        """How many calls match ``filters``."""

    def summary(self, filters: Filters, by: str = "model") -> dict[str, list]:
        """Columns ``by`` and ``query.SUMMARY_COLUMNS``: one row per value of ``by`` that is not null."""

    def annotations_for(self, call_ids: Sequence[str]) -> list[tuple]:
        """The annotation rows of these calls, oldest first."""


# -- tags ----------------------------------------------------------------------------------------------
def tag_matcher(tags: Any) -> Callable[[Any], bool] | None:
    """A test of a call's metadata: every item of a ``tags`` dict matches, or every name in ``tags``
    is a metadata key or an entry of ``metadata["tags"]``. None when ``tags`` is None."""
    if tags is None:
        return None
    if isinstance(tags, dict):
        return lambda meta: isinstance(meta, dict) and all(k in meta and meta[k] == v for k, v in tags.items())
    names = [tags] if isinstance(tags, str) else list(tags)
    if not all(isinstance(name, str) for name in names):
        raise TypeError(f"tags must be a dict, a name or a list of names, got {tags!r}")

    def has_names(meta: Any) -> bool:
        if not isinstance(meta, dict):
            return False
        listed = meta.get("tags")
        listed = listed if isinstance(listed, (list, tuple)) else ()
        return all(name in meta or name in listed for name in names)

    return has_names


def split_tags(tags: Any) -> tuple[Any, Callable[[Any], bool] | None]:
    """``tags`` as the part every store filters on (names, and dict items whose value is None, a
    string or a number), and a test of metadata for the rest (dict items whose value is a list or a
    dict, which SQL compares differently from Python), or None when nothing is left."""
    if tags is None:
        return None, None
    if not isinstance(tags, dict):
        names = (tags,) if isinstance(tags, str) else tuple(tags)
        if not all(isinstance(name, str) for name in names):
            raise TypeError(f"tags must be a dict, a name or a list of names, got {tags!r}")
        return names, None
    simple = {k: v for k, v in tags.items() if isinstance(k, str) and _plain_scalar(v)}
    rest = {k: v for k, v in tags.items() if k not in simple}
    return simple or None, tag_matcher(rest) if rest else None


def _plain_scalar(value: Any) -> bool:
    if value is None or isinstance(value, str):
        return True
    return isinstance(value, (bool, int, float)) and abs(value) < 2**53  # compared exactly as JSON numbers


# -- rows: JSON for the list and dict columns, the prompt kept once -----------------------------------
def _json_default(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump):  # objects that look like pydantic models but are not
        return dump()
    return repr(value)


def encode_json(value: Any) -> str | None:
    """Strict JSON text (NaN and infinities become null, as no JSON reader takes them).

    pydantic-core's encoder (already a dependency) is about 8x faster than json.dumps here, and it
    writes pydantic objects in messages (a Message appended from a response) as their fields.
    """
    if value is None:
        return None
    if not value and type(value) is dict:
        return "{}"  # most calls' params
    return _to_json(value)


def encode_row(record: dict[str, Any]) -> list[Any]:
    """A record as a row in ``COLUMNS`` order: lists and dicts as JSON text, the prompt only where
    there are no messages to derive it from, and no value registered with ``secrets.hide``."""
    row = list(map(record.get, COLUMNS))
    messages = row[_MESSAGES]
    if messages is not None:
        row[_MESSAGES] = encode_json(messages)
        row[_PROMPT] = None
    row[_PARAMS] = encode_json(row[_PARAMS])
    row[_METADATA] = encode_json(row[_METADATA])
    if secrets.hidden:
        for index in _TEXT_INDEXES:
            row[index] = scrub(row[index])
    return row


def encode_json_rows(records: Sequence[dict[str, Any]]) -> str:
    """``records`` as one JSON array of rows, each as :func:`encode_row` would make it, but with the
    lists and dicts of the JSON columns nested rather than turned into text one by one: a reader that
    takes the rows apart (SQLite's ``json_extract``) gives each back as its JSON text. Booleans stay
    JSON booleans (1 and 0 in SQLite). One pydantic-core call for the whole batch. ValueError if a
    value is bytes, which JSON cannot hold as bytes (a database keeps them as a BLOB).
    """
    rows = []
    for record in records:
        row = list(map(record.get, COLUMNS))
        if not _BYTES.isdisjoint(map(type, row)):
            raise ValueError("bytes in a call log record")
        if secrets.hidden:  # values to scrub out of every text: the row as text first
            rows.append(encode_row(record))
            continue
        if row[_MESSAGES] is not None:
            row[_PROMPT] = None
        for index in _JSON_INDEXES:
            value = row[index]
            if value is not None and type(value) is not list and type(value) is not dict:
                row[index] = encode_json(value)  # a string or number there is kept as its JSON text
        rows.append(row)
    return _to_json(rows)


_BYTES = frozenset((bytes, bytearray, memoryview))


def _to_json(value: Any) -> str:
    return to_json(value, fallback=_json_default, bytes_mode="base64", inf_nan_mode="null").decode()


def decode_columns(given: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """Columns as a database returns them (JSON text, 0/1 booleans, no prompt where there are
    messages) as columns of plain values.

    Identical JSON texts (the same params, the same prompt sent to several models) are decoded once
    and share one object, which saves most of the time and memory on a large log; the loops run in C
    (``map`` over a dict's lookup), JSON is parsed only for texts not seen before.
    """
    if not given or not given[0]:
        return [[] for _ in COLUMNS]
    columns = [column if type(column) is list else list(column) for column in given]
    for index in _JSON_INDEXES:
        texts = columns[index]
        decoded = _Decoded()
        columns[index] = list(map(decoded.__getitem__, texts))
        if index == _MESSAGES:
            derived = list(map(_Prompts(decoded).__getitem__, texts))
            stored = columns[_PROMPT]
            if stored.count(None) == len(stored):  # a log written since prompts are derived
                columns[_PROMPT] = derived
            else:
                columns[_PROMPT] = [a if a is not None else b for a, b in zip(stored, derived, strict=True)]
    for index in _FLAGS:
        columns[index] = list(map(_BOOLEANS.get, columns[index]))
    return columns


class _Decoded(dict):
    """JSON text -> its value, parsed on first sight; None -> None."""

    def __init__(self) -> None:
        super().__init__({None: None})

    def __missing__(self, text: str) -> Any:
        value = self[text] = json.loads(text)
        return value


class _Prompts(dict):
    """Messages' JSON text -> the prompt derived from them, using their decoded value."""

    def __init__(self, decoded: _Decoded) -> None:
        super().__init__({None: None})
        self._decoded = decoded

    def __missing__(self, text: str) -> Any:
        prompt = self[text] = prompt_of(self._decoded[text])
        return prompt


_BOOLEANS = {0: False, 1: True}  # True and False are 1 and 0 as keys


def records_of(columns: dict[str, Any]) -> list[dict[str, Any]]:
    """Records (dicts of plain values, None for null) from columns a store returned."""
    columns = readcache.plain(columns)
    names = list(columns)
    return [dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)]


def empty_columns() -> dict[str, list]:
    return {name: [] for name in COLUMNS}


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """A large read makes millions of objects, and each full collection would walk them all again;
    none of them can form a cycle, so the cyclic garbage collector waits until the read is done."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# -- the memory store ----------------------------------------------------------------------------------
class MemoryStore:
    """Calls kept in this process only (``LLMKIT_LOG=memory``), gone when it ends.

    A record is encoded when written (``encode_row``: a copy no caller can change afterwards, and all
    the writer thread of a busy server pays), and decoded, in bulk, by the first read after it, into
    columns that reads copy or pick from.
    """

    def __init__(self) -> None:
        self._written: list[list[Any]] = []  # encoded rows not read yet
        self._columns: list[list[Any]] = [[] for _ in COLUMNS]  # decoded, in order of start time
        self._annotations: list[tuple] = []
        self._lock = threading.Lock()

    def __str__(self) -> str:
        return "memory"

    def write(self, records: Iterable[dict[str, Any]]) -> None:
        rows = [encode_row(record) for record in records]
        with self._lock:
            self._written.extend(rows)

    def read(self, filters: Filters, last: int | None = None) -> dict[str, list]:
        with self._lock:
            self._absorb()
            index: Sequence[int] | None = matching(dict(zip(COLUMNS, self._columns, strict=True)), filters)
            if last is not None:
                index = (index if index is not None else range(len(self._columns[0])))[-last:]
            if index is None:
                return {name: list(values) for name, values in zip(COLUMNS, self._columns, strict=True)}
            return {name: [values[i] for i in index] for name, values in zip(COLUMNS, self._columns, strict=True)}

    def count(self, filters: Filters) -> int:
        with self._lock:
            self._absorb()
            index = matching(dict(zip(COLUMNS, self._columns, strict=True)), filters)
            return len(self._columns[0]) if index is None else len(index)

    def summary(self, filters: Filters, by: str = "model") -> dict[str, list]:
        """Computed from the columns with numpy (``colsummary``), as SQL stores compute it."""
        from llmkit.calllog import colsummary, query

        query.check_group(by)
        columns = self.read(filters)
        try:
            return colsummary.table(by, columns)
        except TypeError as exc:  # values of by that Python cannot sort (a list beside texts)
            raise ValueError(f"cannot summarize by {by!r}: its values are of types that do not sort ({exc})") from None

    def _absorb(self) -> None:
        """Decode the rows written since the last read into the columns, kept in order of start time."""
        if not self._written:
            return
        fresh = decode_columns(list(zip(*self._written, strict=True)))
        self._written.clear()
        started, new = self._columns[_STARTED], fresh[_STARTED]
        ordered = not (started and new[0] < started[-1]) and all(a <= b for a, b in zip(new, new[1:], strict=False))
        for column, values in zip(self._columns, fresh, strict=True):
            column.extend(values)
        if not ordered:
            started = self._columns[_STARTED]
            order = sorted(range(len(started)), key=started.__getitem__)  # stable: ties keep the order written
            self._columns = [[column[i] for i in order] for column in self._columns]

    def annotate(self, rows: list[tuple]) -> None:
        with self._lock:
            self._annotations.extend(rows)

    def read_annotations(self) -> list[tuple]:
        with self._lock:
            return list(self._annotations)

    def annotations_for(self, call_ids: Sequence[str]) -> list[tuple]:
        wanted = set(call_ids)
        with self._lock:
            return [row for row in self._annotations if row[0] in wanted]

    def clear(self) -> None:
        with self._lock:
            self._written.clear()
            self._columns = [[] for _ in COLUMNS]
            self._annotations.clear()

    def close(self) -> None:
        pass


def matching(columns: Mapping[str, Sequence[Any]], filters: Filters) -> list[int] | None:
    """The positions of the rows of ``columns`` (by name; those the filters look at are enough) that
    pass every filter, as the SQL stores apply them; None when there are no filters."""
    index: Iterable[int] | None = None

    def narrow(name: str, keep: Callable[[Any], bool]) -> None:
        nonlocal index
        values = columns[name]
        index = [i for i in (range(len(values)) if index is None else index) if keep(values[i])]

    for name in LIST_FILTERS:
        if filters.get(name) is not None:
            narrow(name, frozenset(filters[name]).__contains__)
    for name in EXACT_FILTERS:
        wanted = filters.get(name)
        if wanted is not None:
            narrow(name, functools.partial(operator.eq, wanted))  # not str.__eq__: NotImplemented is true
    since, until = filters.get("since"), filters.get("until")
    if since is not None:
        narrow("started_at", lambda started: started >= since)
    if until is not None:
        narrow("started_at", lambda started: started < until)
    keep = tag_matcher(filters.get("tags"))
    if keep is not None:
        narrow("metadata", keep)
    return None if index is None else list(index)
