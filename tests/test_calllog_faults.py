"""A log that cannot be written: bounded memory, calls spilled to a file named in a warning (never
dropped silently), the real error shown, another application's file left untouched, and a server
that refuses to start on such a log."""

import hashlib
import os
import sqlite3
import subprocess
import sys
import threading
import time
import warnings

import pytest

import llmkit
from llmkit.calllog import LogStoreError, configure_log, recorder, spill
from llmkit.calllog.sqlite import SQLiteStore


def spilled_path(messages):
    """The spill file a warning names."""
    for message in messages:
        for word in message.split():
            if "-spill-" in word:
                return word.rstrip(",.;")
    raise AssertionError(f"no warning names a spill file: {messages}")


def rows_in(path):
    db = sqlite3.connect(path)
    try:
        return [row[0] for row in db.execute("SELECT response FROM calls ORDER BY seq")]
    finally:
        db.close()


@pytest.fixture
def fresh_spill(monkeypatch):
    """Each test makes its own spill file (the process keeps one)."""
    monkeypatch.setattr(spill, "_spill", None)
    recorder._warned.clear()
    yield
    if spill._spill is not None:
        spill._spill.close()
    recorder._warned.clear()


def foreign_database(path):
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE invoices (id INTEGER, total REAL)")
    db.execute("INSERT INTO invoices VALUES (1, 9.5)")
    db.commit()
    db.close()
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- another application's file ---------------------------------------------------------------------
def test_refusing_a_foreign_database_leaves_it_untouched(tmp_path, fresh_spill):
    path = tmp_path / "app.db"
    digest = foreign_database(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(LogStoreError, match=r"not an llmkit call log.*left untouched"):
            configure_log("sqlite", path=path)
        configure_log()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert not (tmp_path / "app.db-wal").exists() and not (tmp_path / "app.db-shm").exists()
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "delete"


def test_calls_meant_for_a_foreign_file_go_to_a_spill_file_named_in_a_warning(tmp_path, fresh_spill):
    path = tmp_path / "app.db"
    digest = foreign_database(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(LogStoreError):
            configure_log("sqlite", path=path)
        for word in ("one", "two", "three"):
            llmkit.completion(model="demo/echo", messages=[{"role": "user", "content": word}])
        recorder.drain()
    try:
        messages = [str(w.message) for w in caught]
        warning = next(m for m in messages if str(path) in m)
        assert "not an llmkit call log" in warning and "LLMKIT_LOG_PATH" in warning
        assert rows_in(spilled_path(messages)) == ["one", "two", "three"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    finally:
        configure_log()


# -- bounded memory ---------------------------------------------------------------------------------
@pytest.fixture
def locked_log(tmp_path, monkeypatch, fresh_spill):
    """A real SQLite log whose file another connection holds locked, so that every write fails."""
    monkeypatch.setattr(recorder, "MAX_UNWRITTEN", 40)
    path = tmp_path / "calls.db"
    store = SQLiteStore(path, busy_timeout=0.01)
    configure_log(store, flush_interval=0.02)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    yield path, blocker
    configure_log()
    store.close()


def test_records_the_store_refuses_are_bounded_and_the_rest_spilled(locked_log):
    path, blocker = locked_log
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i in range(100):
            llmkit.completion(model="demo/echo", messages=[{"role": "user", "content": f"call {i}"}])
        recorder.drain()
        assert len(recorder._unwritten) <= recorder.MAX_UNWRITTEN
        blocker.execute("ROLLBACK")  # the file is free again: what was kept is written
        recorder.drain()
    messages = [str(w.message) for w in caught]
    assert any("database is locked" in m for m in messages)
    spilled = rows_in(spilled_path(messages))
    written = rows_in(path)
    assert len(spilled) >= 100 - recorder.MAX_UNWRITTEN
    assert sorted(spilled + written) == sorted(f"call {i}" for i in range(100))  # each call once, none lost


def test_a_stuck_writer_never_lets_the_queue_grow_without_bound(tmp_path, monkeypatch, fresh_spill):
    """The writer waits on a lock another process holds; callers spill the oldest calls themselves."""
    monkeypatch.setattr(recorder, "MAX_PENDING", 50)
    path = tmp_path / "calls.db"
    store = SQLiteStore(path, busy_timeout=3)
    configure_log(store, flush_interval=0.01)
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            llmkit.completion(model="demo/echo", messages=[{"role": "user", "content": "first"}])
            time.sleep(0.2)  # the writer is now waiting in the store for the lock
            longest = 0
            for i in range(400):
                llmkit.completion(model="demo/echo", messages=[{"role": "user", "content": f"call {i}"}])
                longest = max(longest, len(recorder._pending))
            threading.Timer(0.1, blocker.execute, ("ROLLBACK",)).start()
            time.sleep(0.3)
            recorder.drain()
        assert longest <= recorder.MAX_PENDING + 1
        messages = [str(w.message) for w in caught]
        everything = rows_in(path) + rows_in(spilled_path(messages))
        assert sorted(everything) == sorted(["first", *(f"call {i}" for i in range(400))])
    finally:
        configure_log()
        store.close()


class SlowStore(SQLiteStore):
    """A store that takes its time with each batch but always finishes it."""

    def write(self, records):
        time.sleep(0.02)
        super().write(records)


def test_calls_made_faster_than_the_store_writes_wait_and_stay_in_the_log(tmp_path, monkeypatch, fresh_spill):
    """A slow but working store is not a stuck one: callers wait for the writer, nothing is spilled."""
    monkeypatch.setattr(recorder, "MAX_PENDING", 50)
    path = tmp_path / "calls.db"
    store = SlowStore(path)
    configure_log(store, flush_interval=0.001)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            longest = 0
            for i in range(2_000):
                llmkit.completion(model="demo/echo", messages=[{"role": "user", "content": f"call {i}"}])
                longest = max(longest, len(recorder._pending))
            recorder.drain()
        assert [str(w.message) for w in caught] == []
        assert longest <= recorder.MAX_PENDING + 1
        assert sorted(rows_in(path)) == sorted(f"call {i}" for i in range(2_000))
    finally:
        configure_log()
        store.close()


# -- the real error -------------------------------------------------------------------------------
def write_until_full(store, path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        configure_log(store)
        big = "x" * 20_000
        for i in range(200):
            llmkit.completion(model="demo/echo", messages=[{"role": "user", "content": f"{i} {big}"}])
            if i % 10 == 9:
                recorder.drain()
        recorder.drain()
    return [str(w.message) for w in caught]


def test_a_full_database_reports_the_full_disk_not_a_rollback_error(tmp_path, fresh_spill):
    path = tmp_path / "calls.db"
    store = SQLiteStore(path)
    store._db.execute("PRAGMA max_page_count = 120")  # SQLite's own limit: an equivalent of a full disk
    try:
        messages = write_until_full(store, path)
    finally:
        configure_log()
        store.close()
    refused = [m for m in messages if "could not write to" in m]
    assert refused and "database or disk is full" in refused[0]
    assert not any("cannot rollback" in m for m in messages)


def test_a_full_tmpfs_reports_the_full_disk(tmp_path, fresh_spill):
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs here ({done.stderr.decode().strip() or 'not root'}); max_page_count covers it"
        )
    try:
        store = SQLiteStore(mount / "calls.db")
        try:
            messages = write_until_full(store, mount / "calls.db")
        finally:
            configure_log()
            store.close()
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
    refused = [m for m in messages if "could not write to" in m]
    assert refused and "database or disk is full" in refused[0]
    assert not any("cannot rollback" in m for m in messages)


# -- the server -------------------------------------------------------------------------------------
CONFIG = """\
model_list:
  - model_name: echo
    litellm_params: {model: demo/echo}
"""


@pytest.mark.parametrize("kind", ["foreign", "corrupt", "unwritable"])
def test_serve_refuses_to_start_on_a_log_it_cannot_write(tmp_path, kind):
    (tmp_path / "config.yaml").write_text(CONFIG)
    if kind == "foreign":
        log = tmp_path / "app.db"
        digest = foreign_database(log)
    elif kind == "corrupt":
        log = tmp_path / "calls.db"
        log.write_bytes(b"not a database" * 300)
        digest = hashlib.sha256(log.read_bytes()).hexdigest()
    else:
        (tmp_path / "a-file").write_text("in the way")
        log = tmp_path / "a-file" / "calls.db"
    env = {**os.environ, "LLMKIT_LOG_PATH": str(log)}
    command = [sys.executable, "-m", "llmkit.cli", "serve", "--config", str(tmp_path / "config.yaml"), "--port", "1"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert str(log) in done.stderr and "LLMKIT_LOG_PATH" in done.stderr
    assert "not starting" in done.stderr and "serving" not in done.stderr
    if kind != "unwritable":
        assert hashlib.sha256(log.read_bytes()).hexdigest() == digest
    assert not list(tmp_path.glob("*-spill-*"))  # a server that does not start writes nowhere
