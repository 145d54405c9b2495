"""Unfiltered reads of a PostgreSQL log keep a copy, as the SQLite store's do (test_calllog_diskcopy):
in memory from the second read, and for a large log on disk, where a new store or a new process takes
it and fetches only the rows written since. A row that a transaction commits after rows with higher
seqs were read is added to the copy, never lost. ``DISK_MIN_ROWS`` is lowered so that small logs are
"large"."""

import subprocess
import sys
import textwrap
import uuid

import pandas as pd
import psycopg
import pytest
from test_calllog_query import NOW, cache_only, calls

from llmkit.calllog import diskcopy, frame, query, readcache
from llmkit.calllog.store import Filters, records_of


@pytest.fixture(autouse=True)
def small_logs_are_large(monkeypatch):
    monkeypatch.setattr(readcache, "DISK_MIN_ROWS", 20)


@pytest.fixture
def pg_url(postgres_server):
    return postgres_server.create_database(f"r_{uuid.uuid4().hex[:12]}")


def open_store(url, folder, **options):
    from llmkit.calllog.postgres import PostgresStore

    return PostgresStore(url, spill_dir=folder, **options)


def database(url, folder):
    """What the log holds, read without any copy."""
    store = open_store(url, folder, read_cache_rows=0)
    try:
        return records_of(store.read(Filters()))
    finally:
        store.close()


def copies(folder):
    return sorted((folder / "log-copies").glob("*.columns"))


@pytest.fixture
def watched(monkeypatch):
    """watched() -> the list of what stores' unfiltered reads ask of the database from now on:
    ("after", seq) for the rows after a seq (0: all of them), ("missing", seq) for the rows up to a
    seq that the copy lacks."""
    from llmkit.calllog import postgres

    def watch():
        log = []
        after, missing = postgres._Snapshot.rows_after, postgres._Snapshot.rows_missing

        def rows_after(snapshot, seq):
            log.append(("after", seq))
            return after(snapshot, seq)

        def rows_missing(snapshot, seq, seqs):
            log.append(("missing", seq))
            return missing(snapshot, seq, seqs)

        monkeypatch.setattr(postgres._Snapshot, "rows_after", rows_after)
        monkeypatch.setattr(postgres._Snapshot, "rows_missing", rows_missing)
        return log

    return watch


def seqs_of(url, call_ids):
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT call_id, seq FROM llmkit.calls WHERE call_id = ANY(%s)", (call_ids,)).fetchall()
    return dict(rows)


def test_a_second_read_comes_from_memory_with_the_rows_another_store_wrote_since(pg_url, tmp_path, watched):
    records = calls(60)
    reader, writer = open_store(pg_url, tmp_path), open_store(pg_url, tmp_path)
    reader.write(records[:30])
    reader.read(Filters())
    reader.read(Filters())  # kept in memory from here on
    writer.write(records[30:])
    writer.close()
    log = watched()
    got = reader.read(Filters())
    assert records_of(got) == database(pg_url, tmp_path)
    newest = max(seqs_of(pg_url, [r["call_id"] for r in records[:30]]).values())
    assert log == [("after", newest)]  # only the 30 rows written since were read
    assert len(got["call_id"]) == 60
    reader.close()


def test_a_large_logs_first_read_writes_a_copy_that_a_new_store_takes(pg_url, tmp_path, watched):
    records = calls(60)
    first = open_store(pg_url, tmp_path)
    first.write(records[:40])
    first.read(Filters())
    (copy,) = copies(tmp_path)
    assert len(first._cache) == 0  # one read keeps nothing in memory, only the file
    assert "secret" not in copy.name and pg_url.split("@")[1].split("/")[0] not in copy.name
    late = dict(records[40], started_at=NOW - 7200)  # started before every call in the copy
    first.write([late, *records[41:]])
    first.close()

    second = open_store(pg_url, tmp_path)
    log = watched()
    got = second.read(Filters())
    newest = max(seqs_of(pg_url, [r["call_id"] for r in records[:40]]).values())
    assert log == [("after", newest)]
    assert records_of(got) == database(pg_url, tmp_path)
    assert got["call_id"][0] == late["call_id"]
    second.close()


def test_a_new_process_reads_the_copy(pg_url, tmp_path):
    records = calls(50)
    store = open_store(pg_url, tmp_path)
    store.write(records)
    expected = store.read(Filters())["call_id"]
    store.close()
    script = textwrap.dedent(
        f"""
        from llmkit.calllog import postgres, readcache
        from llmkit.calllog.store import Filters
        readcache.DISK_MIN_ROWS = 20
        asked = []
        after = postgres._Snapshot.rows_after
        postgres._Snapshot.rows_after = lambda self, seq: asked.append(seq) or after(self, seq)
        store = postgres.PostgresStore({pg_url!r}, spill_dir={str(tmp_path)!r})
        print(store.read(Filters())["call_id"] == {expected!r}, asked)
        store.close()
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    same, after = out.stdout.split(maxsplit=1)
    assert same == "True"
    assert after.strip() == f"[{seqs_of(pg_url, expected[-1:])[expected[-1]]}]"  # only rows after the copy's last


def test_a_row_committed_after_higher_seqs_were_read_is_added_from_memory_and_from_disk(pg_url, tmp_path, watched):
    """A transaction takes its seq, another commits rows with higher seqs, a read copies those; when the
    first commits, the next read (from the copy in memory, or a new store's from the copy on disk) adds
    its row rather than missing it for ever or reading the whole log again."""
    from llmkit.calllog.postgres import _COLUMN_LIST, database_row

    records = calls(60)
    store = open_store(pg_url, tmp_path)
    store.write(records[:30])
    store.read(Filters())
    slow = psycopg.connect(pg_url)  # a transaction left open, as a writer's COPY in flight is
    placeholders = ", ".join(["%s"] * len(_COLUMN_LIST.split(", ")))
    slow.execute(f"INSERT INTO llmkit.calls ({_COLUMN_LIST}) VALUES ({placeholders})", database_row(records[30]))
    store.write(records[31:])
    store.read(Filters())
    assert records[30]["call_id"] not in store.read(Filters())["call_id"]  # not committed yet
    slow.commit()
    slow.close()
    assert seqs_of(pg_url, [records[30]["call_id"]])[records[30]["call_id"]] < max(
        seqs_of(pg_url, [r["call_id"] for r in records[31:]]).values()
    )

    log = watched()
    got = store.read(Filters())
    assert records_of(got) == database(pg_url, tmp_path)
    assert log[0][0] == "missing" and ("after", 0) not in log

    fresh = open_store(pg_url, tmp_path)  # the copy on disk was written before the late commit
    log = watched()
    got = fresh.read(Filters())
    assert records_of(got) == database(pg_url, tmp_path)
    assert log[0][0] == "missing" and ("after", 0) not in log
    assert copies(tmp_path)  # the copy is still good: not removed
    store.close()
    fresh.close()


def test_a_log_cleared_elsewhere_removes_the_copy_and_reads_what_is_there(pg_url, tmp_path):
    records = calls(60)
    store = open_store(pg_url, tmp_path)
    store.write(records[:40])
    store.read(Filters())
    assert copies(tmp_path)
    other = open_store(pg_url, tmp_path / "elsewhere")
    other.clear()
    other.write(records[40:])
    other.close()
    fresh = open_store(pg_url, tmp_path)
    got = fresh.read(Filters())
    assert got["call_id"] == [r["call_id"] for r in records[40:]]
    (copy,) = copies(
        tmp_path
    )  # the stale one removed (deleted calls do not outlive the log on disk), a new one written
    assert diskcopy.load(copy).columns["call_id"] == got["call_id"]
    store.read(Filters())
    fresh.clear()
    assert not copies(tmp_path) and records_of(fresh.read(Filters())) == []
    store.close()
    fresh.close()


def test_copies_of_four_logs_are_kept_and_none_without_a_read_cache(postgres_server, tmp_path):
    urls = [postgres_server.create_database(f"k_{uuid.uuid4().hex[:12]}") for _ in range(5)]
    for url in urls:
        store = open_store(url, tmp_path)
        store.write(calls(25))
        store.read(Filters())
        store.close()
    assert len(copies(tmp_path)) == 4
    without = open_store(urls[0], tmp_path / "none", read_cache_rows=0)
    without.read(Filters())
    without.read(Filters())
    assert not (tmp_path / "none" / "log-copies").exists() and len(without._cache) == 0
    without.close()


def test_a_copy_holds_no_password(pg_url, tmp_path):
    password = psycopg.conninfo.conninfo_to_dict(pg_url)["password"]
    store = open_store(pg_url, tmp_path)
    store.write(calls(30))
    store.read(Filters())
    store.close()
    (copy,) = copies(tmp_path)
    assert password.encode() not in copy.read_bytes() and password not in copy.name
    assert copy.stat().st_mode & 0o077 == 0  # readable by its owner only


def test_filtered_reads_and_last_go_to_the_database(pg_url, tmp_path, watched):
    records = calls(60)
    store = open_store(pg_url, tmp_path)
    store.write(records)
    store.read(Filters())
    store.read(Filters())
    log = watched()
    model = records_of(store.read(Filters(model=("acme/small",))))
    newest = records_of(store.read(Filters(), last=5))
    assert log == []
    everything = database(pg_url, tmp_path)
    assert model == [r for r in everything if r["model"] == "acme/small"]
    assert newest == everything[-5:]
    store.close()


def summary_in_sql(url, folder, by, filters=None):
    store = open_store(url, folder, read_cache_rows=0)
    try:
        return frame.summary_table(store.summary(Filters(filters or {}), by), by)
    finally:
        store.close()


@pytest.mark.parametrize("by", query.GROUP_COLUMNS)
def test_a_summary_from_the_copy_in_memory_or_on_disk_is_the_one_postgresql_makes(pg_url, tmp_path, monkeypatch, by):
    from llmkit.calllog import colsummary

    made = []
    grouped = colsummary.grouped
    monkeypatch.setattr(colsummary, "grouped", lambda *args: made.append(args[0]) or grouped(*args))
    records = [*calls(60), *cache_only()]
    for i, record in enumerate(records):
        record["finish_reason"] = ("stop", "length", None)[i % 3]
        record["error_type"] = None if record["status"] == "ok" else ("RateLimitError", "Timeout")[i % 2]
    store = open_store(pg_url, tmp_path)
    store.write(records[:45])
    store.read(Filters())
    store.read(Filters())  # a copy in memory, and on disk
    later = [dict(r, call_id=f"d{i:031x}", cache_hit=False, status_code=500) for i, r in enumerate(records[45:])]
    store.write(later)  # rows the copies do not hold yet
    expected = summary_in_sql(pg_url, tmp_path, by)
    assert len(expected) > 0 and made == []
    from_memory = frame.summary_table(store.summary(Filters(), by), by)
    assert made == [by]
    pd.testing.assert_frame_equal(from_memory, expected, check_index_type=False, rtol=1e-12)
    filtered = {"model": ("acme/small", "other/fast"), "since": NOW - 3000}
    pd.testing.assert_frame_equal(
        frame.summary_table(store.summary(Filters(filtered), by), by),
        summary_in_sql(pg_url, tmp_path, by, filtered),
        check_index_type=False,
        rtol=1e-12,
    )
    assert made == [by, by]
    store.close()

    fresh = open_store(pg_url, tmp_path)  # a new process: only the copy on disk, of the first 45 calls
    from_disk = frame.summary_table(fresh.summary(Filters(), by), by)
    assert len(fresh._cache) == 0 and made == [by, by, by]
    pd.testing.assert_frame_equal(from_disk, expected, check_index_type=False, rtol=1e-12)
    fresh.close()


def test_reads_while_two_writers_commit_out_of_seq_order_see_each_call_once(pg_url, tmp_path, watched):
    """Two connections write in turns that make rows visible out of seq order: the first takes its seqs,
    the second commits higher ones, and only then the first commits. Meanwhile readers (one keeping its
    copy, and new stores taking the copy on disk the others rewrite) read the whole log again and again:
    each read holds every call seen before, once, in start order. Every fourth read is made inside such a
    window, so late rows are certain to occur rather than left to the scheduler."""
    import random
    import threading
    import time

    from llmkit.calllog.postgres import _COLUMN_LIST, database_row

    seeded = open_store(pg_url, tmp_path)
    seeded.write(calls(30))
    seeded.read(Filters())
    seeded.close()
    stop = threading.Event()
    read_wanted, window_open, read_made = threading.Event(), threading.Event(), threading.Event()
    placeholders = ", ".join(["%s"] * len(_COLUMN_LIST.split(", ")))
    insert = f"INSERT INTO llmkit.calls ({_COLUMN_LIST}) VALUES ({placeholders})"

    def insert_calls(conn, name, n):
        for i, record in enumerate(calls(3)):
            row = dict(record, call_id=f"{name}{n:09d}{i:021x}", started_at=NOW + n + i)
            conn.execute(insert, database_row(row))

    def write():
        rng = random.Random(7)
        with psycopg.connect(pg_url) as first, psycopg.connect(pg_url, autocommit=True) as second:
            n = 0
            while not stop.is_set():
                with first.transaction():
                    insert_calls(first, "a", n)  # seqs taken, not visible yet
                    insert_calls(second, "b", n)  # higher seqs, visible at once
                    if read_wanted.is_set():
                        read_wanted.clear()
                        window_open.set()
                        read_made.wait(timeout=30)
                        read_made.clear()
                        window_open.clear()
                    else:
                        time.sleep(rng.uniform(0, 0.01))
                n += 1

    writer = threading.Thread(target=write)
    writer.start()
    log = watched()
    keeper = open_store(pg_url, tmp_path)
    seen: set = set()
    try:
        for round_ in range(40):
            store = keeper if round_ % 2 else open_store(pg_url, tmp_path)
            in_window = round_ % 4 == 1
            if in_window:
                read_wanted.set()
                assert window_open.wait(timeout=30)
            columns = store.read(Filters())
            if in_window:
                read_made.set()
            ids = columns["call_id"]
            assert len(ids) == len(set(ids))  # every call once
            assert seen <= set(ids)  # none lost since the last read
            assert list(columns["started_at"]) == sorted(columns["started_at"])
            seen = set(ids)
            if store is not keeper:
                store.close()
            time.sleep(0.005)
    finally:
        stop.set()
        read_made.set()
        writer.join()
    assert records_of(keeper.read(Filters())) == database(pg_url, tmp_path)
    assert sum(kind == "missing" for kind, _ in log) >= 10  # after each read in a window, late rows added
    assert sum(1 for kind, seq in log if kind == "after" and seq > 0) >= 20
    keeper.close()
