"""``llmkit.calls``: reading the call log, and hooking into it."""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from llmkit.calllog import config, recorder
from llmkit.calllog.query import EXACT_FILTERS, GROUP_COLUMNS, LIST_FILTERS
from llmkit.calllog.session import SESSION_ID
from llmkit.calllog.store import Filters, Store, collector_paused, empty_columns, encode_json, records_of, split_tags

__all__ = ["CallLog"]


class CallLog:
    """Every call made through llmkit, oldest first. ``llmkit.calls`` is the one instance.

    Read it as a DataFrame (:meth:`to_dataframe`, :meth:`summary`), as records (:meth:`last`,
    :meth:`records`), or write it out (:meth:`export`). Filters, wherever they are accepted:
    ``model``, ``provider``, ``status``, ``source``, ``kind``, ``user`` (a value or a list of them),
    ``since`` and ``until`` (a datetime, an ISO string, epoch seconds, or a timedelta meaning "this long
    ago"; ``since`` inclusive, ``until`` exclusive), ``run_id``, ``session_id`` (``calls.session_id`` is
    this process's), ``conversation_id``, and ``tags`` (a dict of ``metadata`` items that must match, or
    names that must be metadata keys or among ``metadata["tags"]``). The store applies them (in SQL for
    the SQLite store), so a filtered read costs what it returns.
    """

    #: This process's session id: the ``session_id`` of every call it logs (see ``calllog.session``).
    session_id = SESSION_ID

    def __repr__(self) -> str:
        return f"<llmkit call log: {config.log_mode()}, {config.current_store() or 'not recording'}>"

    # -- reading -----------------------------------------------------------------------------------
    def flush(self) -> None:
        """Write finished calls now (reading does this by itself)."""
        recorder.drain()

    def records(self, **filters: Any) -> list[dict[str, Any]]:
        """Matching records as dicts, oldest first, with JSON columns decoded."""
        return records_of(self._read(filters))

    def last(self, n: int = 1, **filters: Any) -> list[dict[str, Any]]:
        """The newest ``n`` matching records, oldest first; the database reads only those."""
        return records_of(self._read(filters, last=_count_of(n)))

    def __len__(self) -> int:
        store = self._store()
        if store is None:
            return 0
        count = getattr(store, "count", None)
        return count(Filters()) if count is not None else len(store.read(Filters())["call_id"])

    def to_dataframe(self, last: int | None = None, **filters: Any) -> Any:
        """The log as a pandas DataFrame, one row per call (columns: ``llmkit.calllog.COLUMNS``).

        ``last=n`` keeps the newest ``n`` matching calls, and reads only those from the store.
        """
        from llmkit.calllog import frame

        # The columns are lists of a million values for a large log: built, turned into the frame and
        # freed before the collector runs again, it never walks them (0.3-0.4 s for a million calls).
        with collector_paused():
            columns = self._read(filters, last=None if last is None else _count_of(last))
            whole = not filters and last is None
            df = frame.to_dataframe(columns, self._annotations_of(columns["call_id"], whole))
            del columns
        return df

    def summary(self, by: str = "model", **filters: Any) -> Any:
        """One row per model (or per value of another column, ``by="provider"``...): calls, error rate,
        latency and time-to-first-token percentiles, median tokens/s, tokens and cost of the live calls,
        and ``cache_hits``, the answers the response cache gave. The database computes it where the
        store can. By model, it adds pass rates and the spread across samples when compare() checked
        or sampled (``llmkit.evals``)."""
        from llmkit.calllog import frame
        from llmkit.evals.stats import evaluation_columns, has_evaluations

        if by not in GROUP_COLUMNS:
            raise ValueError(f"cannot summarize by {by!r}; group by one of {', '.join(GROUP_COLUMNS)}")
        pushed, rest = _filters(filters)
        store = self._store()
        calls = None
        if store is not None and rest is None and callable(getattr(store, "summary", None)):
            table = frame.summary_table(store.summary(pushed, by), by)
        else:
            calls = self.to_dataframe(**filters)
            table = frame.summary(calls, by)
        if by != "model" or not has_evaluations(self._annotations()):  # most logs: nothing more to read
            return table
        return table.join(evaluation_columns(calls if calls is not None else self.to_dataframe(**filters)))

    def search(self, text: str, n: int = 20) -> list[dict[str, Any]]:
        """The newest ``n`` calls whose prompt or response has every word of ``text``, newest first
        (full-text search: SQLite's FTS5 index, made on the first search; see ``calllog.search``)."""
        from llmkit.calllog.search import search

        return search(text, n)

    def export(self, path: str | Path, **filters: Any) -> Path:
        """Write matching calls to ``path``: ``.csv``, ``.jsonl`` or ``.parquet``, by its extension."""
        from llmkit.calllog import frame

        path = Path(path)
        writer = frame.writer_for(path)  # checks the extension before reading anything
        writer(self.to_dataframe(**filters), path)
        return path

    @staticmethod
    def read_export(path: str | Path) -> Any:
        """A file written by :meth:`export` back as the DataFrame it was made from."""
        from llmkit.calllog import frame

        return frame.read_export(Path(path))

    def clear(self) -> None:
        """Delete every call and annotation from the log (the store's file stays)."""
        recorder.drain()
        store = config.current_store(for_reading=True)
        if store is not None:
            store.clear()

    # -- annotations ---------------------------------------------------------------------------------
    def annotate(
        self,
        call_ids: str | Iterable[str],
        name: str,
        value: Any = True,
        *,
        group_id: str | None = None,
        source: str = "python",
    ) -> None:
        """Label calls after the fact: ``calls.annotate(call_id, "vote", "best")``.

        Each call id gets one annotation row (``name``, ``value`` of any JSON type, ``group_id`` tying
        labels given together, e.g. one comparison, and ``source``). Rows are appended, never
        replaced: :meth:`annotations` lists them all; ``to_dataframe()`` shows each call's latest value
        per name in its ``annotations`` column.
        """
        ids = [call_ids] if isinstance(call_ids, str) else list(call_ids)
        if not ids or not all(isinstance(i, str) and i for i in ids):
            raise ValueError(f"call_ids must be a call_id string or a list of them, got {call_ids!r}")
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty string such as 'vote', got {name!r}")
        store = self._store()
        if store is None:
            raise RuntimeError("the call log is off (LLMKIT_LOG=off); turn it on with llmkit.configure_log('sqlite')")
        now = time.time()
        store.annotate([(call_id, name, encode_json(value), group_id, source, now) for call_id in ids])

    def annotate_many(
        self, items: Iterable[tuple[str, str, Any, str | None]], *, source: str = "python", encoded: bool = False
    ) -> None:
        """Many labels in one write: ``(call_id, name, value, group_id)`` items (check results, ...);
        ``encoded=True`` when the values are JSON text already."""
        store = self._store()
        if store is None:
            raise RuntimeError("the call log is off (LLMKIT_LOG=off); turn it on with llmkit.configure_log('sqlite')")
        now = time.time()
        encode = str if encoded else encode_json
        store.annotate(
            [(call_id, name, encode(value), group_id, source, now) for call_id, name, value, group_id in items]
        )

    def annotations(self) -> Any:
        """Every annotation as a DataFrame: call_id, name, value, group_id, source, created_at."""
        from llmkit.calllog import frame

        return frame.annotations_frame(self._annotations())

    # -- callbacks -----------------------------------------------------------------------------------
    def on_success(self, callback: Callable[[dict], Any]) -> Callable[[dict], Any]:
        """Call ``callback(record)`` (a function or an async function) after each successful call.

        Callbacks run off the calling path (on the log's writer thread, or in whatever thread reads
        the log first) once the record is written, so a callback may read the log; one that raises
        is reported once as a warning and never affects a call. Usable as a decorator.
        """
        return self._add_callback("success", callback)

    def on_failure(self, callback: Callable[[dict], Any]) -> Callable[[dict], Any]:
        """Call ``callback(record)`` after each failed or cancelled call; see :meth:`on_success`."""
        return self._add_callback("failure", callback)

    def remove_callback(self, callback: Callable[[dict], Any]) -> None:
        recorder.callbacks[:] = [(on, fn) for on, fn in recorder.callbacks if fn is not callback]
        config.sync_off()

    def _add_callback(self, on: str, callback: Callable[[dict], Any]) -> Callable[[dict], Any]:
        if not callable(callback):
            raise TypeError(f"a callback must be a function taking the record, got {callback!r}")
        recorder.callbacks.append((on, callback))
        config.sync_off()
        return callback

    def capture(self, run_id: str | None = None) -> Any:
        """``with llmkit.calls.capture() as run:`` collects the calls made inside (``run.records``).

        With ``run_id``, those calls are logged under it, as ``compare()`` does for its runs.
        """
        return recorder.capture(run_id)

    # -- plumbing ------------------------------------------------------------------------------------
    def _store(self) -> Store | None:
        recorder.drain()
        return config.current_store(for_reading=True)

    def _read(self, given: dict[str, Any], last: int | None = None) -> dict[str, list]:
        filters, rest = _filters(given)
        store = self._store()
        if store is None:
            return empty_columns()
        if rest is None:
            return store.read(filters, last=last)
        columns = store.read(filters)  # tags the store cannot test: checked here, then the newest kept
        keep = [i for i, meta in enumerate(columns["metadata"]) if rest(meta)]
        keep = keep if last is None else keep[-last:]
        return {name: [values[i] for i in keep] for name, values in columns.items()}

    def _annotations_of(self, call_ids: list[str], whole: bool) -> list[tuple]:
        """The annotations of these calls (those of others may come too: they are ignored)."""
        store = self._store()
        if store is None:
            return []
        annotations_for = getattr(store, "annotations_for", None)
        if whole or annotations_for is None or len(call_ids) > _FEW_CALLS:
            return store.read_annotations()
        return annotations_for(call_ids) if call_ids else []

    def _annotations(self) -> list[tuple]:
        store = self._store()
        return store.read_annotations() if store is not None else []


_FEW_CALLS = 10_000  # up to this many calls, their annotations are read by call_id


def _filters(given: dict[str, Any]) -> tuple[Filters, Callable[[Any], bool] | None]:
    """Filters for the store, and a test of metadata for tags it cannot apply (or None)."""
    unknown = set(given) - {*LIST_FILTERS, *EXACT_FILTERS, "since", "until", "tags"}
    if unknown:
        raise TypeError(
            f"unknown filter(s) {', '.join(sorted(unknown))}; filter by model, status, source, kind, provider,"
            " user, since, until, run_id, session_id, conversation_id or tags"
        )
    filters = Filters()
    for name in LIST_FILTERS:
        value = given.get(name)
        if value is not None:
            filters[name] = (value,) if isinstance(value, str) else tuple(value)
    for name in EXACT_FILTERS:
        if given.get(name) is not None:
            filters[name] = given[name]
    for name in ("since", "until"):
        if given.get(name) is not None:
            filters[name] = _epoch(given[name], name)
    tags, rest = split_tags(given.get("tags"))
    if tags is not None:
        filters["tags"] = tags
    return filters, rest


def _count_of(n: Any) -> int:
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a whole number >= 1, got {n!r}")
    return n


def _epoch(since: Any, name: str = "since") -> float:
    if isinstance(since, _dt.timedelta):
        return time.time() - since.total_seconds()
    if isinstance(since, (int, float)) and not isinstance(since, bool):
        return float(since)
    if isinstance(since, str):
        try:
            since = _dt.datetime.fromisoformat(since)
        except ValueError:
            raise ValueError(f"{name}={since!r} is not an ISO date or time such as '2026-01-31T12:00'") from None
    if isinstance(since, _dt.date) and not isinstance(since, _dt.datetime):
        since = _dt.datetime(since.year, since.month, since.day)
    if isinstance(since, _dt.datetime):  # pandas Timestamps are datetimes too
        if since.tzinfo is None:
            since = since.replace(tzinfo=_dt.timezone.utc)  # the log is in UTC; so are naive times
        return float(since.timestamp())
    raise TypeError(f"{name} must be a datetime, an ISO string, epoch seconds or a timedelta, got {since!r}")
