"""A throwaway PostgreSQL server for the tests and benchmarks, from Debian's ``postgresql`` package.

``initdb`` refuses to run as root, so as root the server runs as the package's ``postgres`` user, in
a ``mkdtemp`` folder given to that user (pytest's ``tmp_path`` is not reachable for it). Durability
is switched off (``--no-sync``, ``fsync=off``): the folder is deleted afterwards anyway. ``.ci/run``
sets ``LLMKIT_TEST_PG_ROOT`` to a folder it stops every server in when it exits, however it exits.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from ports import free_port

__all__ = ["PostgresServer", "PostgresUnavailable", "find_binaries"]

USER = "llmkit"
PASSWORD = "s3cret-Pa55word"  # exercised for real: connections over TCP need it


class PostgresUnavailable(RuntimeError):
    """This machine cannot run a throwaway PostgreSQL; the message says why and how to fix it."""


def find_binaries() -> Path:
    """The folder holding initdb and pg_ctl: on PATH, else Debian's /usr/lib/postgresql/<version>/bin."""
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(on_path).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    if versions:
        return Path(versions[-1]).parent
    raise PostgresUnavailable(
        "PostgreSQL's initdb and pg_ctl were not found; install them (apt-get install -y postgresql)"
    )


def _run_as() -> list[str]:
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise PostgresUnavailable("running as root and there is no 'postgres' user for initdb to run as") from None
    return ["runuser", "-u", "postgres", "--"]


class PostgresServer:
    """``start()``, ``url(database)``, ``create_database(name)``, ``stop()``, ``restart()``, ``remove()``."""

    def __init__(self) -> None:
        self.bin = find_binaries()
        self.prefix = _run_as()
        self.folder = Path(tempfile.mkdtemp(prefix="llmkit-pg-", dir=os.environ.get("LLMKIT_TEST_PG_ROOT")))
        self.data = self.folder / "data"
        self.port = 0
        try:
            self._initdb()
        except BaseException:
            shutil.rmtree(self.folder, ignore_errors=True)
            raise

    def _initdb(self) -> None:
        pwfile = self.folder / "pwfile"
        pwfile.write_text(PASSWORD + "\n")
        if self.prefix:
            entry = pwd.getpwnam("postgres")
            for path in (self.folder, pwfile):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        # Password authentication over TCP (the tests' URLs carry one); trust on the private socket.
        self._run(
            "initdb", "-D", str(self.data), "-U", USER, "--pwfile", str(pwfile),
            "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip

    def _run(self, program: str, *args: str) -> None:
        command = [*self.prefix, str(self.bin / program), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            log = self.folder / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise PostgresUnavailable(f"{program} failed ({done.returncode}): {done.stderr.strip()}\n{tail}")

    def start(self) -> None:
        self.port = self.port or free_port()
        options = (
            f"-c port={self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.folder}"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.folder / "server.log"),
            "-o",
            options,
            "-w",
            "-t",
            "30",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop")

    def restart(self, down_for: float = 0.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()

    def remove(self) -> None:
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def url(self, database: str = "postgres", password: str = PASSWORD, user: str = USER) -> str:
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new empty database; returns its URL."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)
