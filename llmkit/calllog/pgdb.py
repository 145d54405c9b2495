"""A PostgreSQL database for llmkit's tables: the URL, connections, clear errors, migrations.

Everything llmkit keeps in PostgreSQL lives in one schema, ``llmkit`` (``llmkit.calls``,
``llmkit.annotations``, and the tables that come later), so a team can point llmkit at a database
that holds other things too. One list of named migrations (``postgres.MIGRATIONS``, the twin of
``sqlite.MIGRATIONS``) creates every table; another table (the response cache's) is one more
migration at its end, and its owner borrows connections from the log store's :class:`Database`
(``store.database.connection()``): the same pool, the same clear errors, and the same rule that a
password never appears in an error, a warning or a ``repr``.

psycopg is imported here, and this module only when a URL is configured.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

from llmkit.calllog.pgsql import SCHEMA
from llmkit.calllog.store import LogStoreError

try:
    import psycopg
except ImportError:  # pragma: no cover - depends on the environment
    raise ImportError("the PostgreSQL call log needs psycopg: pip install 'llmkit[postgres]'") from None

__all__ = ["SCHEMA", "Database", "RedactedURL"]

# One number for every llmkit process: migrations run under this advisory lock, one process at a time.
_MIGRATION_LOCK = 0x6C6C6D6B6974  # "llmkit"
_APPLIED = f"{SCHEMA}.migrations"  # the names of the migrations applied, as in the SQLite file
_SCHEMES = ("postgresql://", "postgres://")
# Unless the URL says otherwise. A database behind a network that drops packets (rather than refusing
# connections) would hold a write for the operating system's TCP timeout, many minutes: keepalives
# and tcp_user_timeout turn that into an error within seconds, and the writer's retries take over.
_CONNECT_DEFAULTS = {
    "connect_timeout": 10,
    "application_name": "llmkit",
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 20_000,  # milliseconds
}


class RedactedURL:
    """A connection URL that shows itself with its password as ``***`` and scrubs it from any text."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.secrets = _passwords(url)
        self.masked = self.scrub(url)

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def __repr__(self) -> str:
        return self.masked

    __str__ = __repr__


def _passwords(url: str) -> list[str]:
    """The password in ``url`` as written and percent-decoded (in the user part or ``?password=``)."""
    found = []
    rest = url.split("://", 1)[-1]
    at = rest.split("?", 1)[0].rfind("@")
    if at > 0 and ":" in rest[:at]:
        found.append(rest[:at].split(":", 1)[1])
    found += re.findall(r"[?&]password=([^&]*)", url)
    found = [secret for secret in found if secret]
    decoded = [unquote(secret) for secret in found]
    # Longest first, so that a password containing another one's text is replaced whole.
    return sorted({*found, *decoded} - {""}, key=len, reverse=True)


class Database:
    """One PostgreSQL database: checks the URL and the connection at once, then hands out connections.

    ``connect()`` makes a dedicated connection (the log's writer keeps one); ``connection()`` lends
    one from a small pool opened on first use (readers, and other tables' lookups). Connections are
    in autocommit mode; callers open transactions where they need one.
    """

    def __init__(self, url: object, migrations: list[tuple[str, str]], *, pool_size: int = 4) -> None:
        if not isinstance(url, str) or not url.startswith(_SCHEMES):
            shown = RedactedURL(url) if isinstance(url, str) else repr(url)
            raise LogStoreError(
                f"the call log URL {shown} is not a PostgreSQL URL; write it as"
                " postgresql://user:password@host:5432/database"
            )
        self.url = RedactedURL(url)
        self._pool_size = pool_size
        self._pool: Any = None
        self._pool_lock = threading.Lock()
        with self.connect() as conn:
            self._migrate(conn, migrations)

    def __repr__(self) -> str:
        return f"Database({self.url})"

    def connect(self) -> Any:
        """A new connection; a clear :class:`LogStoreError` (password masked) when it cannot be made."""
        try:
            return psycopg.connect(self.url.url, autocommit=True, **self._defaults())
        except psycopg.Error as exc:
            raise LogStoreError(self.explain(exc)) from None

    def _defaults(self) -> dict[str, Any]:
        given = self.url.url.split("?", 1)[1] if "?" in self.url.url else ""
        return {key: value for key, value in _CONNECT_DEFAULTS.items() if f"{key}=" not in given}

    @contextlib.contextmanager
    def connection(self, timeout: float | None = None) -> Iterator[Any]:
        """A pooled connection for a short piece of work, waited for up to ``timeout`` seconds (the
        connect timeout by default); errors become :class:`LogStoreError`."""
        pool = self._pool or self._open_pool()
        try:
            with pool.connection(timeout=_CONNECT_DEFAULTS["connect_timeout"] if timeout is None else timeout) as conn:
                yield conn
        except psycopg.Error as exc:
            raise LogStoreError(self.explain(exc)) from None

    def _open_pool(self) -> Any:
        from psycopg_pool import ConnectionPool

        with self._pool_lock:
            if self._pool is None:
                self._pool = ConnectionPool(
                    self.url.url,
                    min_size=1,
                    max_size=self._pool_size,
                    kwargs={"autocommit": True, **self._defaults()},
                    check=ConnectionPool.check_connection,  # a server restart leaves broken connections
                    name="llmkit",
                    open=True,
                )
            return self._pool

    def close(self) -> None:
        with self._pool_lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None

    def explain(self, exc: BaseException) -> str:
        """What went wrong talking to the database, with a fix where one is known; never the password."""
        reason = " ".join(str(exc).replace("connection failed: ", "").split())
        reason = self.url.scrub(reason)
        hint = next((fix for pattern, fix in _HINTS if re.search(pattern, reason, re.IGNORECASE)), None)
        text = f"cannot use the call log's PostgreSQL database {self.url}: {reason}"
        return f"{text}; {hint}" if hint else text

    # -- migrations ---------------------------------------------------------------------------------
    def _migrate(self, conn: Any, migrations: list[tuple[str, str]]) -> None:
        """Apply the migrations not applied yet, once, even when several processes start together.

        The common case (all applied) takes no lock and needs no privilege beyond reading, so an
        analyst with a read-only role can open the log.
        """
        try:
            if self._pending(conn, migrations):
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
                    if not conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (SCHEMA,)).fetchone():
                        conn.execute(f"CREATE SCHEMA {SCHEMA}")
                    conn.execute(f"CREATE TABLE IF NOT EXISTS {_APPLIED} (name TEXT PRIMARY KEY, applied_at FLOAT8)")
                    for name, sql in self._pending(conn, migrations):  # again, now that the lock is held
                        conn.execute(sql)
                        conn.execute(f"INSERT INTO {_APPLIED} VALUES (%s, %s)", (name, time.time()))
        except psycopg.Error as exc:
            raise LogStoreError(self.explain(exc)) from None

    def _pending(self, conn: Any, migrations: list[tuple[str, str]]) -> list[tuple[str, str]]:
        exists = conn.execute("SELECT to_regclass(%s)", (_APPLIED,)).fetchone()[0]
        applied = {row[0] for row in conn.execute(f"SELECT name FROM {_APPLIED}")} if exists else set()
        unknown = applied - {name for name, _ in migrations}
        if unknown:
            raise LogStoreError(
                f"the call log in {self.url} was written by a newer llmkit (migrations"
                f" {', '.join(sorted(unknown))}); upgrade llmkit, or use another database"
            )
        return [(name, sql) for name, sql in migrations if name not in applied]


_HINTS = [
    (r"password authentication failed|no password supplied", "check the user and password in the URL"),
    (r"database \S+ does not exist", "create it (createdb NAME, or CREATE DATABASE NAME) or fix the name in the URL"),
    (r"role \S+ does not exist", "create the user (CREATE ROLE NAME LOGIN PASSWORD ...) or fix the name in the URL"),
    (r"connection refused|could not connect|timeout expired|no route to host",
     "is the server running and reachable at that host and port?"),
    (r"failed to resolve host|could not translate host name", "check the host name in the URL"),
    (r"permission denied for (database|schema)", (f"ask the database's owner to let this user create the schema"
     f" {SCHEMA} (GRANT CREATE ON DATABASE ...) or to create it (CREATE SCHEMA {SCHEMA} AUTHORIZATION ...)")),
    (r"permission denied", "this user may not do that; ask the database's owner for the privilege (see docs/team.md)"),
    (r"invalid (URI|percent|integer value)|missing \"=\"|connection info string",
     "write the URL as postgresql://user:password@host:5432/database"),
]  # fmt: skip
