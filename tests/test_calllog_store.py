"""Persistence: the SQLite file, several writers, new processes, migrations and bad files."""

import functools
import os
import sqlite3
import subprocess
import sys
import threading
import warnings

import pytest
from calllog_support import USER

import llmkit
from llmkit.calllog import LogStoreError, configure_log, recorder
from llmkit.calllog.sqlite import MIGRATIONS

WRITER = """
import sys, llmkit
for i in range(int(sys.argv[2])):
    llmkit.completion(model="demo/echo", messages=[{"role": "user", "content": f"{sys.argv[1]}-{i}"}], source="proxy")
"""


def run_python(code, *args, env=None):
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, args)], env=env, capture_output=True, text=True, timeout=60, check=True
    )


def test_a_new_process_sees_earlier_calls(tmp_path):
    path = tmp_path / "shared.db"
    env = {**os.environ, "LLMKIT_LOG_PATH": str(path)}
    run_python(WRITER, "first", 3, env=env)  # flushed at exit
    out = run_python("import llmkit; print(sorted(r['prompt'] for r in llmkit.calls.records()))", env=env)
    assert out.stdout.strip() == "['first-0', 'first-1', 'first-2']"


def test_processes_and_threads_write_one_file_without_losing_or_duplicating(log, tmp_path):
    path = tmp_path / "calls.db"
    env = {**os.environ, "LLMKIT_LOG_PATH": str(path)}
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, f"p{n}", "40"], env=env, stderr=subprocess.PIPE)
        for n in range(3)
    ]

    def thread_calls(n):
        for i in range(40):
            llmkit.completion(model="demo/echo", messages=[{"role": "user", "content": f"t{n}-{i}"}])

    threads = [threading.Thread(target=thread_calls, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for proc in procs:
        assert proc.wait(timeout=60) == 0, proc.stderr.read()
    records = log.records()
    prompts = [r["prompt"] for r in records]
    expected = {f"p{n}-{i}" for n in range(3) for i in range(40)} | {f"t{n}-{i}" for n in range(4) for i in range(40)}
    assert len(prompts) == len(expected) == 280
    assert set(prompts) == expected
    assert len({r["call_id"] for r in records}) == 280
    assert {r["source"] for r in records} == {"proxy", "python"}


def test_wal_mode_and_named_migrations_applied_once(log, tmp_path):
    llmkit.completion(model="demo/echo", messages=USER)
    log.flush()
    configure_log("sqlite", path=tmp_path / "calls.db")  # reopening migrates nothing again
    db = sqlite3.connect(tmp_path / "calls.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    names = [row[0] for row in db.execute("SELECT name FROM llmkit_migrations ORDER BY name")]
    assert names == [name for name, _ in MIGRATIONS]
    assert db.execute("SELECT count(*) FROM calls").fetchone()[0] == 1


def test_writes_happen_off_the_calling_path_in_batches(log):
    configure_log("sqlite", path=log._store().path, flush_interval=3600)
    llmkit.completion(model="demo/echo", messages=USER)
    llmkit.completion(model="demo/echo", messages=USER)
    assert len(recorder._pending) == 2  # queued, not yet written
    assert len(log) == 2  # reading flushes first
    assert not recorder._pending


def test_clear_empties_the_log(log):
    llmkit.completion(model="demo/echo", messages=USER)
    log.annotate(log.last()[0]["call_id"], "vote", "best")
    log.clear()
    assert len(log) == 0 and log.annotations().empty


def test_memory_mode_keeps_calls_in_this_process_only(tmp_path):
    configure_log("memory")
    try:
        llmkit.completion(model="demo/echo", messages=USER)
        assert [r["response"] for r in llmkit.calls.records()] == ["hello there"]
        assert "memory" in repr(llmkit.calls)
    finally:
        configure_log()


def test_env_switches_the_log_off(tmp_path):
    env = {**os.environ, "LLMKIT_LOG": "off", "LLMKIT_LOG_PATH": str(tmp_path / "never.db")}
    out = run_python(
        "import llmkit; llmkit.completion(model='demo/echo', messages=[]); print(len(llmkit.calls))", env=env
    )
    assert out.stdout.strip() == "0"
    assert not (tmp_path / "never.db").exists()


def test_default_path_is_under_the_user_data_dir(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "LLMKIT_LOG_PATH"}
    env.update(HOME=str(tmp_path), XDG_DATA_HOME=str(tmp_path / "data"))
    out = run_python("from llmkit.calllog.config import default_path; print(default_path())", env=env)
    assert out.stdout.strip() == str(tmp_path / "data" / "llmkit" / "calls.db")


# -- bad files and paths --------------------------------------------------------------------------
def test_unwritable_path_warns_once_and_falls_back_to_memory(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    recorder._warned.clear()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            configure_log("sqlite", path=blocker / "calls.db")
            llmkit.completion(model="demo/echo", messages=USER)
            llmkit.completion(model="demo/echo", messages=USER)
            assert len(llmkit.calls) == 2  # kept in memory
        messages = [str(w.message) for w in caught]
        assert len(messages) == 1
        assert str(blocker / "calls.db") in messages[0] and "LLMKIT_LOG_PATH" in messages[0]
    finally:
        configure_log()


def test_corrupt_file_is_an_error_naming_it(tmp_path):
    path = tmp_path / "calls.db"
    path.write_bytes(b"this is not a database at all" * 100)
    try:
        with pytest.raises(LogStoreError, match=str(path)):
            configure_log("sqlite", path=path)
        llmkit.completion(model="demo/echo", messages=USER)  # calls keep working meanwhile
        with pytest.raises(LogStoreError, match="not a usable llmkit call log"):
            llmkit.calls.records()
    finally:
        configure_log()
        recorder._warned.clear()


def test_foreign_database_is_an_error_naming_it(tmp_path):
    path = tmp_path / "other.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE invoices (id INTEGER)")
    db.commit()
    db.close()
    try:
        with pytest.raises(LogStoreError, match=rf"{path}.*not an llmkit call log.*invoices"):
            configure_log("sqlite", path=path)
    finally:
        configure_log()
    assert sqlite3.connect(path).execute("SELECT name FROM sqlite_master").fetchall() == [("invoices",)]


def test_log_from_a_newer_llmkit_is_refused(log, tmp_path):
    llmkit.completion(model="demo/echo", messages=USER)
    log.flush()
    db = sqlite3.connect(tmp_path / "calls.db")
    db.execute("INSERT INTO llmkit_migrations VALUES ('999_from_the_future', 0)")
    db.commit()
    with pytest.raises(LogStoreError, match="newer llmkit"):
        configure_log("sqlite", path=tmp_path / "calls.db")


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"store": "postgres"}, ValueError),
        ({"store": object()}, TypeError),
        ({"flush_interval": 0}, ValueError),
        ({"store": "memory", "path": "x.db"}, ValueError),
    ],
)
def test_bad_configuration_is_refused(kwargs, error):
    with pytest.raises(error):
        configure_log(**kwargs)


def test_a_custom_store_receives_the_records():
    class ListStore:
        def __init__(self):
            self.written = []

        def write(self, records):
            self.written.extend(records)

        def read(self, filters, last=None):
            return []

        def annotate(self, rows):
            pass

        def read_annotations(self):
            return []

        def clear(self):
            pass

        def close(self):
            pass

    store = ListStore()
    configure_log(store)
    try:
        llmkit.completion(model="demo/echo", messages=USER, source="widget")
        llmkit.calls.flush()
        assert [(r["model"], r["source"]) for r in store.written] == [("demo/echo", "widget")]
    finally:
        configure_log()


def test_import_llmkit_loads_neither_pandas_nor_sqlite():
    out = run_python("import sys, llmkit; print([m for m in ('pandas', 'sqlite3', 'tqdm') if m in sys.modules])")
    assert out.stdout.strip() == "[]"


def test_reads_pick_up_other_processes_writes_and_clears(log, tmp_path):
    env = {**os.environ, "LLMKIT_LOG_PATH": str(tmp_path / "calls.db")}
    llmkit.completion(model="demo/echo", messages=USER)
    assert len(log.to_dataframe()) == 1  # now cached in this process
    run_python(WRITER, "other", 2, env=env)
    assert sorted(log.to_dataframe()["prompt"]) == ["hello there", "other-0", "other-1"]
    # cleared elsewhere, then as many calls as this process has cached: still read afresh
    run_python("import llmkit; llmkit.calls.clear()\n" + WRITER, "after", 3, env=env)
    assert log.to_dataframe()["prompt"].tolist() == ["after-0", "after-1", "after-2"]


def test_public_names_are_exported_and_sorted():
    assert llmkit.__all__ == sorted(llmkit.__all__)
    for name in ("calls", "compare", "configure_log", "register_model_cost", "side_by_side"):
        assert name in llmkit.__all__ and getattr(llmkit, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        _ = llmkit.nonsense


def _calls_in_worker(n):
    for i in range(n):
        llmkit.completion(model="demo/echo", messages=[{"role": "user", "content": f"worker-{i}"}])


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_multiprocessing_workers_flush_before_they_exit(log):
    import multiprocessing

    llmkit.completion(model="demo/echo", messages=USER)  # the parent's writer runs before the fork
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_calls_in_worker, args=(5,)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    records = log.records()
    assert sorted(r["prompt"] for r in records).count("worker-0") == 2
    assert len(records) == 11 and len({r["call_id"] for r in records}) == 11


def test_a_stream_still_open_at_exit_is_recorded(tmp_path):
    env = {**os.environ, "LLMKIT_LOG_PATH": str(tmp_path / "calls.db")}
    code = (
        "import llmkit\n"
        "stream = llmkit.completion(model='demo/lorem', messages=[], stream=True, tokens_per_second=0)\n"
        "first = next(stream)\n"
    )
    run_python(code, env=env)
    out = run_python(
        "import llmkit; r = llmkit.calls.last()[0]; print(r['status'], r['error_message'], r['response'])", env=env
    )
    assert out.stdout.startswith("cancelled still open when the process exited ")
    assert len(out.stdout.split()) == 8  # and the first word, which had arrived


def _stored(path):
    """Every row of a log file, values and SQLite's type of each, by call id (seq left out)."""
    db = sqlite3.connect(path)
    columns = [row[1] for row in db.execute("PRAGMA table_info(calls)") if row[1] != "seq"]
    picked = ", ".join(f"{name}, typeof({name})" for name in columns)
    rows = {row[0]: row for row in db.execute(f"SELECT {picked} FROM calls")}
    db.close()
    return rows


def statements(store, write):
    """The SQL text of the statements the store's writing connection ran during ``write()``."""
    ran: list[str] = []
    store._db.set_trace_callback(ran.append)
    try:
        write()
    finally:
        store._db.set_trace_callback(None)
    return " ".join(ran)


def in_a_thread(function, *args):
    thread = threading.Thread(target=function, args=args)
    thread.start()
    thread.join()


def test_only_a_background_thread_writes_json_batches(tmp_path):
    from test_calllog_query import calls

    from llmkit.calllog import sqlite as sqlite_log
    from llmkit.calllog.sqlite import SQLiteStore

    store = SQLiteStore(tmp_path / "calls.db")
    records = calls(20)
    assert sqlite_log.json_batches == (sqlite_log.cores() > 1)
    assert "json_each" not in statements(store, lambda: store.write(records[:10]))  # the main thread waits
    if sqlite_log.json_batches:  # the log's writer thread: the GIL held as little as may be
        assert "json_each" in statements(store, lambda: in_a_thread(store.write, records[10:]))
    assert sqlite3.connect(tmp_path / "calls.db").execute("SELECT count(*) FROM calls").fetchone() == (20,)
    store.close()


def test_rows_written_as_one_json_text_are_the_rows_bound_value_by_value(tmp_path, monkeypatch):
    from test_calllog_query import calls

    from llmkit.calllog import sqlite as sqlite_log
    from llmkit.calllog.sqlite import SQLiteStore
    from llmkit.types.utils import Message

    records = calls(60)
    records[1]["messages"] = [{"role": "user", "content": 'é \n " \\ \u2028 😀'}, Message(content="a model")]
    records[2]["metadata"] = "a string, not a dict"
    records[3]["params"] = {"temperature": 0.7, "stop": ["\n"], "nested": {"n": 10**15, "x": None}}
    records[4].update(response=["a list where text goes"], latency_ms=1e-7, cost_usd=1.0, total_tokens=2**62)
    records[5].update(tokens_estimated=True, cache_hit=False, started_at=1764600000.123456789)
    for name, as_json in (("json", True), ("bound", False)):
        monkeypatch.setattr(sqlite_log, "json_batches", as_json)
        store = SQLiteStore(tmp_path / f"{name}.db")
        assert store._json_insert  # this SQLite has its JSON functions: both ways are taken
        assert statements(store, functools.partial(in_a_thread, store.write, records)).count("json_each") == as_json
        store.close()
    as_json, as_bound = _stored(tmp_path / "json.db"), _stored(tmp_path / "bound.db")
    assert len(as_json) == 60 and as_json == as_bound
    db = sqlite3.connect(tmp_path / "json.db")
    assert [row[0] for row in db.execute("SELECT call_id FROM calls ORDER BY seq")] == [r["call_id"] for r in records]
    db.close()


def test_a_batch_json_cannot_carry_is_bound_value_by_value(tmp_path, monkeypatch):
    from test_calllog_query import calls

    from llmkit.calllog import secrets
    from llmkit.calllog import sqlite as sqlite_log
    from llmkit.calllog.sqlite import SQLiteStore

    monkeypatch.setattr(sqlite_log, "json_batches", True)
    records = calls(10)
    records[3]["response"] = "a lone surrogate: \ud800"
    store = SQLiteStore(tmp_path / "calls.db")
    raised: list[BaseException] = []

    def write() -> None:  # from a thread, as the log's writer does: the way JSON batches are taken
        try:
            store.write(records)
        except Exception as exc:
            raised.append(exc)

    in_a_thread(write)
    assert [type(exc) for exc in raised] == [UnicodeEncodeError]  # as before: neither JSON nor SQLite takes it
    records[3]["response"] = b"\x00 raw bytes"
    assert "json_each" not in statements(store, lambda: in_a_thread(write))
    assert len(raised) == 1
    db = sqlite3.connect(tmp_path / "calls.db")
    assert db.execute("SELECT count(*), sum(typeof(response) = 'blob') FROM calls").fetchone() == (10, 1)
    monkeypatch.setattr(secrets, "_hidden", {})
    monkeypatch.setattr(secrets, "hidden", False)
    secrets.hide("a value registered as secret")  # the rows are then scrubbed as text: bytes stay a BLOB
    for record in records:
        record["call_id"] = "hidden-" + record["call_id"]
    assert "json_each" not in statements(store, lambda: in_a_thread(write))
    assert db.execute("SELECT count(*), sum(typeof(response) = 'blob') FROM calls").fetchone() == (20, 2)
    db.close()
    store.close()


OPENER = """
import sys, time
from llmkit.calllog.sqlite import SQLiteStore
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))  # every process opens at the same moment
SQLiteStore(sys.argv[1]).close()
"""


def test_processes_opening_a_new_log_together_all_get_it(tmp_path):
    import time

    for round_ in range(5):
        path, at = tmp_path / f"new-{round_}.db", time.time() + 1.0
        openers = [
            subprocess.Popen([sys.executable, "-c", OPENER, str(path), str(at)], stderr=subprocess.PIPE, text=True)
            for _ in range(4)
        ]
        errors = [opener.communicate(timeout=60)[1] for opener in openers]
        assert [opener.returncode for opener in openers] == [0] * 4, errors  # none told "database is locked"
        assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone() == ("wal",)
