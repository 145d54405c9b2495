"""Loading an llmkit SQLite log into the PostgreSQL log (``llmkit logs import PATH``).

The file is a spill file the PostgreSQL writer saved while the database was away, or any llmkit
SQLite log (a person's own, joining the team's). Calls already in the database (by ``call_id``) and
annotations already there are skipped, so importing a file twice adds nothing the second time.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from llmkit.calllog.record import COLUMNS, JSON_COLUMNS
from llmkit.calllog.store import ANNOTATION_COLUMNS

__all__ = ["ImportResult", "import_sqlite_log"]

_CHUNK = 10_000
_FLAGS = tuple(COLUMNS.index(name) for name in ("tokens_estimated", "cache_hit"))
_JSON = tuple(COLUMNS.index(name) for name in JSON_COLUMNS)


class ImportResult:
    def __init__(self) -> None:
        self.calls = 0  # calls added
        self.present = 0  # calls the database had already
        self.annotations = 0  # annotations added

    def __str__(self) -> str:
        already = f" ({self.present} were there already)" if self.present else ""
        return f"{self.calls} calls{already} and {self.annotations} annotations"


def import_sqlite_log(path: str | Path, store: Any) -> ImportResult:
    """Copy the calls and annotations of the llmkit SQLite log at ``path`` into ``store``
    (a ``PostgresStore``), a chunk of rows per transaction."""
    from llmkit.calllog.sqlite import SQLiteStore

    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; name an llmkit SQLite log, such as the file a warning named")
    SQLiteStore(path).close()  # refuses a file that is not an llmkit log, and brings an older one up to date
    result = ImportResult()
    db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        cursor = db.execute(f"SELECT {', '.join(COLUMNS)} FROM calls ORDER BY seq")
        while rows := cursor.fetchmany(_CHUNK):
            added = store.insert_rows([_row(row) for row in rows])
            result.calls += added
            result.present += len(rows) - added
        cursor = db.execute(f"SELECT {', '.join(ANNOTATION_COLUMNS)} FROM annotations ORDER BY seq")
        while rows := cursor.fetchmany(_CHUNK):
            result.annotations += store.insert_annotations(rows, skip_present=True)
    finally:
        db.close()
    return result


def _row(row: tuple) -> list:
    """A SQLite row as PostgreSQL keeps it: 0/1 flags as booleans, JSON strict (an older log's may hold
    NaN), and no NUL character, which PostgreSQL's text cannot hold."""
    from llmkit.calllog.pgwriter import cleaned_value
    from llmkit.calllog.postgres import strict_json

    out = [cleaned_value(value) if isinstance(value, str) and "\x00" in value else value for value in row]
    for index in _FLAGS:
        if out[index] is not None:
            out[index] = bool(out[index])
    for index in _JSON:
        if out[index] is not None:
            out[index] = strict_json(row[index])
    return out
