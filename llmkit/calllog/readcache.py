"""A bounded in-process copy of the whole log, for repeated unfiltered reads of a SQL store.

Filtered reads go to the database, which returns only their rows. An unfiltered read returns every
row, and reading a million rows back from SQLite costs seconds each time: a notebook that reads the
whole log again and again (a board refreshed after each call) keeps a copy instead, from the second
such read on, in a compact form (numbers in ``array('d')``, NaN for null, which numpy takes without
converting a float object per value; repeated short texts sharing one string; JSON decoded once).
Later unfiltered reads fetch only the rows written since, by any process. The copy is bounded: a log
of more than ``max_rows`` calls is not kept, and its reads go to the database each time.

A log of at least ``DISK_MIN_ROWS`` calls is also copied to a file beside it (``diskcopy``) from the
first unfiltered read on, again each time it has grown by a quarter: the next unfiltered read, in this
process or a new one, loads the file and fetches only the rows written since, instead of reading every
row back from the database; unfiltered summaries read the columns they need from it (``colsummary``).

In PostgreSQL a row can become visible after rows with a higher ``seq`` (its transaction took its seq
first and committed later): a store that says so (``rows_missing``) has such late rows added to the
copy, found by the seqs the copy keeps of its rows; any other change to rows the copy holds makes it
read the log again whole.
"""

from __future__ import annotations

import itertools
import operator
from array import array
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from llmkit.calllog import diskcopy
from llmkit.calllog.record import COLUMNS, JSON_COLUMNS

__all__ = ["NUMBERS", "ReadCache", "RowsMissing", "plain"]

#: ``rows_missing(seq, seqs)``: the rows up to ``seq`` that are not among ``seqs`` (see ReadCache.read).
RowsMissing = Callable[[int, "array[int]"], list]

#: Columns kept as floats, NaN for null.
NUMBERS = frozenset(
    ("started_at", "prompt_tokens", "completion_tokens", "total_tokens", "latency_ms", "ttft_ms",
     "tokens_per_s", "cost_usd", "status_code")
)  # fmt: skip
#: Short texts that repeat from row to row.
SHARED = frozenset(
    ("model", "provider", "handler_model", "kind", "source", "finish_reason", "status", "error_type", "run_id")
)
#: The smallest copy written to disk: a smaller log reads back from SQLite in a fraction of a second.
DISK_MIN_ROWS = 50_000
_STARTED = COLUMNS.index("started_at")
_CALL_ID = COLUMNS.index("call_id")


class ReadCache:
    """The whole log as compact columns, kept in memory from the second unfiltered read on, and on disk
    from the first for a large log. Not thread-safe by itself: its store calls it under its read lock."""

    def __init__(self, max_rows: int, disk: Path | None = None) -> None:
        self.max_rows = max_rows
        self.disk = disk  # where the copy is written for other processes, None for nowhere
        self._columns: dict[str, Any] | None = None
        self._shared: dict[Any, Any] = {}
        self._seq = 0  # the last row kept
        self._seq_call_id = ""  # its call id (the newest written, not the newest started)
        self._seqs = array("q")  # each kept row's seq, in the columns' order
        self._ordered = True
        self._unfiltered_reads = 0
        self._on_disk = 0  # rows in the copy this process last wrote (or loaded)
        self._keep = False  # whether the last read keeps the copy in memory
        self._unkept: diskcopy.Copy | None = None  # a whole log read for the disk only, until save()

    def __len__(self) -> int:
        return len(self._columns["call_id"]) if self._columns is not None else 0

    def read(
        self,
        count_up_to: Callable[[int], tuple[int, int, str | None]],
        rows_after: Callable[[int], list],
        rows_missing: RowsMissing | None = None,
    ) -> dict[str, Any] | None:
        """The whole log's columns (numbers as NaN-for-null arrays), or None when it is not kept.

        ``count_up_to(seq)`` gives (rows with seq <= it, rows in all, the call id of the row ``seq``);
        ``rows_after(seq)`` the decoded columns of the rows written after it, ``seq`` first, in any
        order (in start order saves sorting them); ``rows_missing(seq, seqs)``, from a store whose
        rows can become visible out of seq order, those with seq <= ``seq`` that are not among
        ``seqs``, as ``rows_after`` gives them; all in one snapshot.
        """
        self._unfiltered_reads += 1
        self._keep = self._unfiltered_reads >= 2  # one read is no reason to keep a copy in memory
        counts = self._load(count_up_to, rows_missing) if self._columns is None else None
        if self._columns is None and not self._keep:
            if not self._worth_writing(counts or count_up_to(0)):
                return None
            return self._as_read(rows_after)
        if not self._refresh(count_up_to, rows_after, rows_missing, counts):
            return None
        if self._columns is None:
            return {name: [] for name in COLUMNS}
        self._order()
        if not self._keep:  # the copy's own columns: save() writes them to disk, then forgets them
            return dict(self._columns)
        return {name: _copy(values) for name, values in self._columns.items()}

    def _as_read(self, rows_after: Callable[[int], list]) -> dict[str, Any] | None:
        """The whole log, read for a copy on disk only: its columns as the database gave them (the
        compact form a kept copy takes costs more than the file), for save() to write; None (read
        it the usual way) when the rows did not come in start order."""
        seqs, *fresh = rows_after(0) or [[]]
        if not seqs:
            return {name: [] for name in COLUMNS}
        if any(a > b for a, b in itertools.pairwise(fresh[_STARTED])):
            return None
        newest = seqs.index(max(seqs))
        columns = dict(zip(COLUMNS, fresh, strict=True))
        self._unkept = diskcopy.Copy(columns, seqs[newest], fresh[_CALL_ID][newest], array("q", seqs))
        return dict(columns)

    def _worth_writing(self, counts: tuple[int, int, str | None]) -> bool:
        """Whether a log of this size is copied to disk, even by a read that keeps no copy in memory."""
        return self.disk is not None and DISK_MIN_ROWS <= counts[1] <= self.max_rows

    def columns(
        self,
        names: set[str],
        count_up_to: Callable[[int], tuple[int, int, str | None]],
        rows_after: Callable[[int], list],
        columns_after: Callable[[int, list[str]], list],
        from_disk: bool = True,
        rows_missing: RowsMissing | None = None,
    ) -> dict[str, Any] | None:
        """The columns ``names`` of the whole log, in no particular order of rows, for a summary: from
        the copy in memory brought up to date, else from the copy on disk (only those columns) and
        the rows written since (``columns_after(seq, names)``, as ``rows_after``); None when neither
        copy is there, or only the one on disk and not ``from_disk``. Reading them does not count as an
        unfiltered read."""
        if self._columns is not None:
            if not self._refresh(count_up_to, rows_after, rows_missing) or self._columns is None:
                return None
            return {name: self._columns[name] for name in names}
        if self.disk is None or not self.max_rows or not from_disk:
            return None
        copy = diskcopy.load(self.disk, only=names)
        if copy is None or set(copy.columns) != names or not _is_the_logs(copy, count_up_to(copy.seq)):
            return None
        ordered = sorted(names)
        seqs, *fresh = columns_after(copy.seq, ordered) or [[]]
        out = dict(copy.columns)
        if seqs:
            for name, values in zip(ordered, fresh, strict=True):
                out[name].extend(diskcopy.doubles(values) if name in NUMBERS else values)
        return out

    def _refresh(
        self,
        count_up_to: Callable[[int], tuple[int, int, str | None]],
        rows_after: Callable[[int], list],
        rows_missing: RowsMissing | None,
        counts: tuple[int, int, str | None] | None = None,
    ) -> bool:
        """Bring the copy up to date with the log (``counts``: ``count_up_to(seq)`` already made for
        the copy's last row); False when the log is too large to keep."""
        counts = counts or count_up_to(self._seq)
        kept, total, _ = counts
        if total > self.max_rows:
            self._forget()
            return False
        if self._columns is not None and not _holds(len(self), self._seq_call_id, counts, rows_missing is not None):
            self._forget()  # rows were deleted (the log cleared, perhaps by another process), or the file replaced
        elif kept > len(self) and rows_missing is not None:
            seqs, *late = rows_missing(self._seq, self._seqs) or [[]]
            if seqs:
                self._extend(seqs, late)
            if len(self) != kept:  # late rows, and rows deleted too: read it all again
                self._forget()
        seqs, *fresh = rows_after(self._seq) or [[]]
        if seqs:
            self._extend(seqs, fresh)
            newest = seqs.index(max(seqs))
            self._seq, self._seq_call_id = seqs[newest], fresh[_CALL_ID][newest]
        return True

    def _load(
        self, count_up_to: Callable[[int], tuple[int, int, str | None]], rows_missing: RowsMissing | None
    ) -> tuple[int, int, str | None] | None:
        """Take the copy on disk if it is this log's and the log still holds all of its rows (and,
        with ``rows_missing``, perhaps rows committed late among them); the counts up to its last row
        when it is taken."""
        if self.disk is None or not self.max_rows:
            return None
        copy = diskcopy.load(self.disk)
        if copy is None or set(copy.columns) != set(COLUMNS):
            return None
        counts = count_up_to(copy.seq)
        if not _holds(len(copy.seqs), copy.last_call_id, counts, rows_missing is not None):
            # Another log's, or holding calls deleted since (which should not outlive them on disk):
            # removed now, written again by this read if the log is large enough. A last row this
            # read cannot see may be one committed after its snapshot, where rows can become visible
            # out of seq order (PostgreSQL); SQLite's snapshot begins at count_up_to, after the
            # copy was read from disk, so there that row was deleted.
            if counts[2] is not None or rows_missing is None:
                diskcopy.remove(self.disk)
            return None
        if counts[1] > self.max_rows:
            return None
        self._columns = {name: copy.columns[name] for name in COLUMNS}
        self._seq, self._seq_call_id, self._seqs, self._ordered = copy.seq, copy.last_call_id, copy.seqs, True
        self._on_disk = len(self)
        return counts

    def save(self) -> bool:
        """After a read that returned columns: write the copy to disk if it is large enough and has
        grown by a quarter since the last time, and forget it if the read keeps none; True when a copy
        was written. Called by the store after the read's snapshot has ended, so that a long write
        holds no transaction open."""
        copy, self._unkept = self._unkept, None
        if copy is None and self._columns is not None and len(self) >= max(DISK_MIN_ROWS, self._on_disk * 5 // 4):
            copy = diskcopy.Copy(self._columns, self._seq, self._seq_call_id, self._seqs)
        written = False
        if copy is not None and self.disk is not None:
            self._on_disk = len(copy.columns["call_id"])  # tried at this size: not again on every read
            try:
                self.disk.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                diskcopy.save(self.disk, copy, by_identity=JSON_COLUMNS, numbers=NUMBERS)
                written = True
            except (OSError, TypeError, ValueError):
                pass  # a folder we may not write, a full disk, a value JSON cannot hold: reads stay as they were
        if not self._keep:
            self._forget()
        return written

    def clear(self) -> None:
        """The log was cleared: forget the copy, and remove the one on disk."""
        self._forget()
        if self.disk is not None:
            diskcopy.remove(self.disk)

    def _forget(self) -> None:
        """Forget the copy in memory. One on disk is left to other processes: each checks it is still
        the log's before it takes it."""
        self._columns, self._seq, self._seq_call_id, self._ordered, self._on_disk = None, 0, "", True, 0
        self._seqs = array("q")
        self._shared.clear()

    def _extend(self, seqs: Sequence[int], columns: list[Sequence[Any]]) -> None:
        if self._columns is None:
            self._columns = {name: array("d") if name in NUMBERS else [] for name in COLUMNS}
        started, new = self._columns["started_at"], columns[_STARTED]
        if started and (new[0], seqs[0]) < (started[-1], self._seqs[-1]) or not _in_order(new, seqs):
            self._ordered = False
        self._seqs.extend(seqs)
        share = self._shared.setdefault
        for name, column in zip(COLUMNS, columns, strict=True):
            values = self._columns[name]
            if name in NUMBERS:
                values.extend(diskcopy.doubles(column))
            elif name in SHARED:
                values.extend(map(share, column, column))
            else:
                values.extend(column)

    def _order(self) -> None:
        if self._ordered or self._columns is None:
            return
        order = _log_order(self._columns["started_at"], self._seqs)
        for name, values in self._columns.items():
            self._columns[name] = _copy(values, order)
        self._seqs = array("q", map(self._seqs.__getitem__, order))
        self._ordered = True


def _in_order(started: Sequence[float], seqs: Sequence[int]) -> bool:
    """Whether rows are in the log's order: by start time, then seq (as the database reads them)."""
    this, following = itertools.tee(zip(started, seqs, strict=True))
    next(following, None)
    return all(map(operator.le, this, following))


def _log_order(started: Sequence[float], seqs: Sequence[int]) -> list[int]:
    """The positions of rows in the log's order: by start time, then seq."""
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy comes with the dataframe extra
        return sorted(range(len(started)), key=lambda i: (started[i], seqs[i]))
    order: list[int] = np.lexsort((np.asarray(seqs), np.asarray(started))).tolist()
    return order


def _is_the_logs(copy: diskcopy.Copy, counts: tuple[int, int, str | None]) -> bool:
    """Whether a copy on disk is this log's, and the log holds its rows and no others up to its last
    one: ``counts`` is ``count_up_to(copy.seq)`` (rows up to its last one, rows in all, that row's call id)."""
    return _holds(len(copy.seqs), copy.last_call_id, counts, late_rows_allowed=False)


def _holds(rows: int, last_call_id: str, counts: tuple[int, int, str | None], late_rows_allowed: bool) -> bool:
    """Whether a copy of ``rows`` rows, the last written ``last_call_id``, is this log's and the log
    still holds each of them: ``counts`` is ``count_up_to`` its last row's seq. More rows up to that
    one than the copy has are late commits, which may be added to it (``late_rows_allowed``)."""
    kept, _, call_id = counts
    return call_id == last_call_id and (kept == rows or (late_rows_allowed and kept > rows))


def plain(columns: dict[str, Any]) -> dict[str, Any]:
    """Columns with the cache's arrays turned back into lists of plain values (None for NaN, whole
    numbers as ints), as records carry them."""
    out = dict(columns)
    for name, values in columns.items():
        if isinstance(values, array):
            whole = name in _INTEGERS
            out[name] = [None if v != v else int(v) if whole else v for v in values]
    return out


_INTEGERS = frozenset(("prompt_tokens", "completion_tokens", "total_tokens", "status_code"))


def _copy(values: Any, index: Any = None) -> Any:
    if isinstance(values, array):
        return array("d", values) if index is None else array("d", list(map(values.__getitem__, index)))
    return list(values) if index is None else list(map(values.__getitem__, index))
