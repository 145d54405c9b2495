"""The read cache's columns in a file beside the log, so that a new process reads a large log quickly.

Reading a million calls back from SQLite costs seconds of building Python objects row by row; this
file holds the same columns ready to load: numbers as raw doubles, texts and decoded JSON as JSON
arrays (a value repeated from row to row once, with a code per row), all parsed in C. A process that
finds it only reads the rows written since from the database.

It is only a cache: one that is missing, damaged, of another version or of another log is ignored,
and :class:`~llmkit.calllog.readcache.ReadCache` checks that the log still holds its rows before
using it. It is written whole to a temporary file and renamed into place, so a reader never sees
half of one, and holds nothing the log does not (values hidden with ``secrets.hide`` were scrubbed
before the log was written).

Layout: a first line ``llmkit-read-copy <version>``, a second line of JSON (the rows, the log's
last ``seq`` and its call id, and each column's kind and byte lengths), then each row's ``seq`` as
64-bit integers, then each column's bytes.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from array import array
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

__all__ = ["Copy", "doubles", "load", "path_for", "remove", "save"]

_MAGIC = b"llmkit-read-copy 2\n"
_MAX_HEADER = 1 << 20  # a header is a few kilobytes: a longer first line is not one
_SAMPLE = 2000  # rows looked at, spread over a column, to tell whether its texts repeat


class Copy(NamedTuple):
    columns: dict[str, Any]  # array("d") for numbers, lists for the rest, as ReadCache keeps them, in order
    seq: int  # the log's last row in the copy
    last_call_id: str  # that row's call id: a copy of another log with as many rows is not this one's
    seqs: array  # each row's seq (array("q")), in the columns' order: which rows a late commit adds


def path_for(log: Path) -> Path:
    """Where the copy of the log at ``log`` lives (beside it, as SQLite's -wal and -shm files do)."""
    return log.with_name(log.name + "-columns")


def save(path: Path, copy: Copy, by_identity: Iterable[str], numbers: Collection[str] = ()) -> None:
    """Write ``copy`` to ``path``. The columns named in ``by_identity`` hold decoded JSON (lists and
    dicts), which rows share by identity; those in ``numbers`` numbers and None, unless they are
    arrays of doubles already (NaN for null); the others texts, booleans and None. Raises OSError, or
    TypeError/ValueError for a value JSON cannot hold; nothing is left behind."""
    by_identity = set(by_identity)
    header: dict[str, Any] = {
        "rows": len(copy.columns["call_id"]),
        "seq": copy.seq,
        "last_call_id": copy.last_call_id,
        "byteorder": sys.byteorder,
        "columns": [],
    }
    parts: list[bytes] = [array("q", copy.seqs).tobytes()]
    for name, values in copy.columns.items():
        if name in numbers and not isinstance(values, array):
            values = doubles(values)
        column, sections = _encoded(values, name in by_identity)
        header["columns"].append({"name": name, **column, "lengths": [len(s) for s in sections]})
        parts.extend(sections)
    fd, temporary = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(_MAGIC)
            f.write(json.dumps(header).encode() + b"\n")
            for part in parts:
                f.write(part)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _encoded(values: Any, by_identity: bool) -> tuple[dict[str, Any], list[bytes]]:
    """A column's kind and its bytes. Distinct values are written once with a code per row where
    they repeat; texts are told apart by value, decoded JSON by identity (each distinct text was
    decoded into one object), either way in C."""
    if isinstance(values, array):
        return {"kind": "numbers"}, [values.tobytes()]
    if by_identity:
        objects = dict(zip(map(id, values), values, strict=True))  # in order of first sight
        distinct = list(objects.values())
        codes = list(map(dict(zip(objects, range(len(objects)), strict=True)).__getitem__, map(id, values)))
    else:
        sample = values[:: max(1, len(values) // _SAMPLE)]
        if len(dict.fromkeys(sample)) > len(sample) // 2:  # mostly distinct (call ids): as they are
            return {"kind": "values"}, [_json(values)]
        distinct = list(dict.fromkeys(values))  # texts, booleans and None: equal means the same
        codes = list(map(dict(zip(distinct, range(len(distinct)), strict=True)).__getitem__, values))
    if len(distinct) == 1:
        return {"kind": "same"}, [_json(distinct)]
    typecode = "B" if len(distinct) <= 256 else "I"
    return {"kind": "coded", "typecode": typecode}, [array(typecode, codes).tobytes(), _json(distinct)]


def load(path: Path, only: Collection[str] | None = None) -> Copy | None:
    """The copy at ``path`` (only the columns named in ``only``, when given: the others are not
    read), or None when there is none or it cannot be read as one."""
    try:
        with open(path, "rb") as f:
            return _read(f, os.fstat(f.fileno()).st_size, only)
    except OSError:
        return None
    except (ValueError, KeyError, TypeError, IndexError):  # damaged, or written by another llmkit
        return None


def remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def _read(f: BinaryIO, size: int, only: Collection[str] | None) -> Copy | None:
    if f.read(len(_MAGIC)) != _MAGIC:
        return None
    header = json.loads(f.readline(_MAX_HEADER))
    if header["byteorder"] != sys.byteorder:
        return None
    rows = header["rows"]
    seqs = array("q")
    if f.tell() + seqs.itemsize * rows + sum(sum(column["lengths"]) for column in header["columns"]) != size:
        return None  # cut short, or longer than written
    seqs.frombytes(f.read(seqs.itemsize * rows))
    columns: dict[str, Any] = {}
    for column in header["columns"]:
        if only is not None and column["name"] not in only:
            f.seek(sum(column["lengths"]), os.SEEK_CUR)
            continue
        sections = [f.read(length) for length in column["lengths"]]
        kind = column["kind"]
        if kind == "numbers":
            values: Any = array("d")
            values.frombytes(sections[0])
        elif kind == "coded":
            codes = array(column["typecode"])
            codes.frombytes(sections[0])
            values = list(map(json.loads(sections[1]).__getitem__, codes))
        elif kind == "same":
            values = json.loads(sections[0]) * rows
        elif kind == "values":
            values = json.loads(sections[0])
        else:
            return None
        if len(values) != rows:
            return None
        columns[column["name"]] = values
    return Copy(columns, int(header["seq"]), str(header["last_call_id"]), seqs)


def doubles(values: Sequence[Any]) -> array:
    """Numbers and None as an array of doubles, NaN for None (in C with numpy, when it is there)."""
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy comes with the dataframe extra
        return array("d", [_NAN if value is None else value for value in values])
    doubles = array("d")
    doubles.frombytes(np.array(values, dtype=np.float64).tobytes())
    return doubles


_NAN = float("nan")


def _json(values: list[Any]) -> bytes:
    return json.dumps(values, ensure_ascii=False, separators=(",", ":")).encode()
