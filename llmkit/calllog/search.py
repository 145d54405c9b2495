"""Full-text search over the log's prompts and responses (``llmkit logs search``, ``calls.search``).

On SQLite it uses an FTS5 index, made on the first search rather than with the log: a log that is
never searched pays nothing on its writes (an indexed one writes at about 0.4x the rows per second,
``python bench/search.py``; still thousands a second, off the calling path). The index is a
contentless FTS5 table (the text is not stored twice) over each call's response and its prompt (a
chat's derived from its messages, in SQL, as the log derives it), filled from the rows already there
when it is made, then kept in step by triggers on insert and delete, whichever process writes. It
is one more named migration (:data:`MIGRATION`), applied only here;
``sqlite.py`` knows its name so that a log that has it still opens. Where Python's SQLite was built
without FTS5 the search scans the rows with ``LIKE`` instead, and says so once.

A store with a ``search(text, limit)`` method of its own (a server database's full-text search)
is asked directly; any other store (memory) is scanned.
"""

from __future__ import annotations

import re
import sqlite3
import time
from typing import Any

from llmkit.calllog import config, recorder
from llmkit.calllog.record import COLUMNS
from llmkit.calllog.store import decode_columns, records_of

__all__ = ["MIGRATION", "search"]

# Words as FTS5's unicode61 tokenizer cuts them (letters and digits), so that each is one token: the
# index keeps no positions (detail=none, a fraction of the write cost), which allows no phrases.
_WORD = re.compile(r"[^\W_]+")

# A chat's prompt is not stored (it is derived from its messages when read, see record.prompt_of):
# the index derives it the same way, in SQL, from the row's messages: the text of the last user
# message (its text parts when its content is a list). Only JSON objects are looked into, so that no
# row can make the trigger, and with it the log's write, fail.
_PROMPT = """coalesce({row}.prompt, CASE WHEN json_valid({row}.messages) THEN (
    SELECT CASE json_type(m.value, '$.content')
        WHEN 'text' THEN json_extract(m.value, '$.content')
        WHEN 'array' THEN (
            SELECT group_concat(json_extract(part.value, '$.text'), ' ') FROM json_each(m.value, '$.content') AS part
            WHERE part.type = 'object' AND json_type(part.value, '$.text') = 'text')
    END
    FROM json_each({row}.messages) AS m
    WHERE m.type = 'object' AND coalesce(json_extract(m.value, '$.role'), 'user') = 'user'
    ORDER BY m.key DESC LIMIT 1) END)"""

MIGRATION = (
    "fts_001_calls_prompt_response",
    (
        # contentless: the derived prompt is in no column an external-content table could read back
        "CREATE VIRTUAL TABLE calls_fts USING fts5(prompt, response, content='', detail=none)",
        f"""CREATE TRIGGER calls_fts_insert AFTER INSERT ON calls BEGIN
            INSERT INTO calls_fts (rowid, prompt, response) VALUES (new.seq, {_PROMPT.format(row="new")}, new.response);
        END""",
        f"""CREATE TRIGGER calls_fts_delete AFTER DELETE ON calls BEGIN
            INSERT INTO calls_fts (calls_fts, rowid, prompt, response)
            VALUES ('delete', old.seq, {_PROMPT.format(row="old")}, old.response);
        END""",
        # the rows written before the index
        (
            "INSERT INTO calls_fts (rowid, prompt, response)"
            f" SELECT seq, {_PROMPT.format(row='calls')}, response FROM calls"
        ),
    ),
)


def search(text: str, limit: int = 20) -> list[dict[str, Any]]:
    """The newest ``limit`` calls whose prompt or response has every word of ``text``, newest first."""
    if not isinstance(text, str) or not text.split():
        raise ValueError(f"search for some words, got {text!r}")
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise ValueError(f"limit must be a whole number >= 1, got {limit!r}")
    recorder.drain()
    store = config.current_store(for_reading=True)
    if store is None:
        raise RuntimeError("the call log is off; turn it on with `llmkit logs on` or llmkit.configure_log('sqlite')")
    own = getattr(store, "search", None)
    if callable(own):  # the seam for a server database's full-text search
        found: list[dict[str, Any]] = own(text, limit)
        return found
    path = getattr(store, "path", None)
    words = _WORD.findall(text) or text.split()
    if path is not None:
        return _sqlite(path, words, limit)
    return _scan(store, words, limit)


def _sqlite(path: Any, words: list[str], limit: int) -> list[dict[str, Any]]:
    db = sqlite3.connect(path, timeout=30.0, isolation_level=None)
    try:
        columns = ", ".join(f"c.{name}" for name in COLUMNS)
        if _ensure_index(db):
            query = " ".join('"' + word.replace('"', '""') + '"' for word in words)  # words, never FTS syntax
            sql = f"SELECT {columns} FROM calls_fts f JOIN calls c ON c.seq = f.rowid WHERE calls_fts MATCH ?"
            # Newest first, as the log reads: FTS5 walks its rowids backwards and stops at the limit,
            # where ranking would score every match first (seconds for a common word on a large log).
            rows = db.execute(sql + " ORDER BY f.rowid DESC LIMIT ?", (query, limit)).fetchall()
        else:
            prompt = _PROMPT.format(row="c")
            like = " AND ".join(f"({prompt} LIKE ? ESCAPE '\\' OR c.response LIKE ? ESCAPE '\\')" for _ in words)
            args = [pattern for word in words for pattern in [_like(word)] * 2]
            sql = f"SELECT {columns} FROM calls c WHERE {like} ORDER BY c.seq DESC LIMIT ?"
            rows = db.execute(sql, [*args, limit]).fetchall()
    finally:
        db.close()
    return _records(rows)


def _ensure_index(db: sqlite3.Connection) -> bool:
    """Make the FTS5 index if it is not there yet; False where this SQLite has no FTS5."""
    name = MIGRATION[0]
    if db.execute("SELECT 1 FROM llmkit_migrations WHERE name = ?", (name,)).fetchone():
        return True
    try:
        db.execute("CREATE VIRTUAL TABLE temp.llmkit_fts_probe USING fts5(x)")
        db.execute("DROP TABLE temp.llmkit_fts_probe")
    except sqlite3.OperationalError:  # "no such module: fts5"
        recorder.warn_once(
            "no-fts5",
            f"this Python's SQLite ({sqlite3.sqlite_version}) was built without FTS5, so llmkit searches the"
            " log row by row (slower on a large log); a Python whose sqlite3 has FTS5 (most do) searches an index",
        )
        return False
    db.execute("BEGIN IMMEDIATE")
    try:
        if not db.execute("SELECT 1 FROM llmkit_migrations WHERE name = ?", (name,)).fetchone():
            for statement in MIGRATION[1]:
                db.execute(statement)
            db.execute("INSERT INTO llmkit_migrations VALUES (?, ?)", (name, time.time()))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return True


def _like(word: str) -> str:
    escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _records(rows: list[tuple]) -> list[dict[str, Any]]:
    if not rows:
        return []
    return records_of(dict(zip(COLUMNS, decode_columns(list(zip(*rows, strict=True))), strict=True)))


def _scan(store: Any, words: list[str], limit: int) -> list[dict[str, Any]]:
    from llmkit.calllog.store import Filters

    lowered = [word.lower() for word in words]
    found = []
    for record in reversed(records_of(store.read(Filters()))):
        text = f"{record['prompt'] or ''}\n{record['response'] or ''}".lower()
        if all(word in text for word in lowered):
            found.append(record)
            if len(found) == limit:
                break
    return found
