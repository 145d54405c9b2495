"""``llmkit.calls``: reading the call log, and hooking into it."""

from __future__ import annotations

import datetime as _dt
import time
from pathlib import Path
from typing import Any, Callable, Iterable

from llmkit.calllog import config, recorder
from llmkit.calllog.record import COLUMNS
from llmkit.calllog.store import Filters, encode_json, records_of

__all__ = ["CallLog"]


class CallLog:
    """Every call made through llmkit, oldest first. ``llmkit.calls`` is the one instance.

    Read it as a DataFrame (:meth:`to_dataframe`, :meth:`summary`), as records (:meth:`last`,
    :meth:`records`), or write it out (:meth:`export`). Filters, wherever they are accepted:
    ``model``, ``status``, ``source``, ``kind`` (a value or a list of them), ``since`` (a datetime,
    an ISO string, epoch seconds, or a timedelta meaning "this long ago"), ``run_id``, and ``tags``
    (a dict of ``metadata`` items that must match, or names that must be metadata keys or among
    ``metadata["tags"]``).
    """

    def __repr__(self) -> str:
        return f"<llmkit call log: {config.log_mode()}, {config.current_store() or 'not recording'}>"

    # -- reading -----------------------------------------------------------------------------------
    def flush(self) -> None:
        """Write finished calls now (reading does this by itself)."""
        recorder.drain()

    def records(self, **filters: Any) -> list[dict[str, Any]]:
        """Matching records as dicts, oldest first, with JSON columns decoded."""
        keep = tag_matcher(filters.pop("tags", None))
        records = records_of(self._columns(filters))
        return records if keep is None else [r for r in records if keep(r["metadata"])]

    def last(self, n: int = 1, **filters: Any) -> list[dict[str, Any]]:
        """The newest ``n`` matching records, oldest first; cheap on a large log (unless by tags)."""
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"n must be a whole number >= 1, got {n!r}")
        if filters.get("tags") is not None:
            return self.records(**filters)[-n:]
        return records_of(self._columns(filters, last=n))

    def __len__(self) -> int:
        return len(self._columns({}, last=None)["call_id"])

    def to_dataframe(self, last: int | None = None, **filters: Any) -> Any:
        """The log as a pandas DataFrame, one row per call (columns: ``llmkit.calllog.COLUMNS``).

        ``last=n`` keeps the newest ``n`` matching calls, and reads only those from the store.
        """
        from llmkit.calllog import frame

        if last is not None and filters.get("tags") is None:
            return frame.to_dataframe(_as_columns(self.last(last, **filters)), self._annotations())
        keep = tag_matcher(filters.pop("tags", None))
        df = frame.to_dataframe(self._columns(filters), self._annotations())
        df = df if keep is None else frame.rows_where(df, "metadata", keep)
        return df if last is None else df.tail(last)

    def summary(self, **filters: Any) -> Any:
        """One row per model: calls, error rate, latency and time-to-first-token percentiles, ..."""
        from llmkit.calllog import frame

        store = self._store()
        if hasattr(store, "summary") and filters.get("tags") is None:  # computed by the database
            return frame.summary_table(store.summary(_filters(filters)))
        return frame.summary(self.to_dataframe(**filters))

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
    def _store(self) -> Any:
        recorder.drain()
        return config.current_store(for_reading=True)

    def _columns(self, filters: dict[str, Any], last: int | None = None) -> dict[str, list]:
        filters = _filters(filters)
        store = self._store()
        if store is None:
            return {name: [] for name in COLUMNS}
        return store.read(filters, last=last)

    def _annotations(self) -> list[tuple]:
        store = self._store()
        return store.read_annotations() if store is not None else []


_LIST_FILTERS = ("model", "status", "source", "kind")


def _filters(given: dict[str, Any]) -> Filters:
    unknown = set(given) - {*_LIST_FILTERS, "since", "run_id"}
    if unknown:
        raise TypeError(
            f"unknown filter(s) {', '.join(sorted(unknown))}; filter by model, status, source, kind, since,"
            " run_id or tags"
        )
    filters = Filters()
    for name in _LIST_FILTERS:
        value = given.get(name)
        if value is not None:
            filters[name] = (value,) if isinstance(value, str) else tuple(value)
    if given.get("run_id") is not None:
        filters["run_id"] = given["run_id"]
    if given.get("since") is not None:
        filters["since"] = _epoch(given["since"])
    return filters


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


def _epoch(since: Any) -> float:
    if isinstance(since, _dt.timedelta):
        return time.time() - since.total_seconds()
    if isinstance(since, (int, float)) and not isinstance(since, bool):
        return float(since)
    if isinstance(since, str):
        try:
            since = _dt.datetime.fromisoformat(since)
        except ValueError:
            raise ValueError(f"since={since!r} is not an ISO date or time such as '2026-01-31T12:00'") from None
    if isinstance(since, _dt.date) and not isinstance(since, _dt.datetime):
        since = _dt.datetime(since.year, since.month, since.day)
    if isinstance(since, _dt.datetime):  # pandas Timestamps are datetimes too
        if since.tzinfo is None:
            since = since.replace(tzinfo=_dt.timezone.utc)  # the log is in UTC; so are naive times
        return since.timestamp()
    raise TypeError(f"since must be a datetime, an ISO string, epoch seconds or a timedelta, got {since!r}")


def _as_columns(records: list[dict[str, Any]]) -> dict[str, list]:
    return {name: [record[name] for record in records] for name in COLUMNS}
