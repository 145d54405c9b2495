"""The read cache's copy on disk: a new process's first unfiltered read of a large SQLite log loads it
and fetches only the rows written since, and reads exactly what the database holds whatever happened
to the log or to the file meanwhile. ``DISK_MIN_ROWS`` is lowered so that small logs are "large"."""

import sqlite3
import subprocess
import sys
import textwrap

import pandas as pd
import pytest
from test_calllog_query import NOW, SHUFFLED, cache_only, calls

from llmkit.calllog import diskcopy, frame, query, readcache
from llmkit.calllog.sqlite import SQLiteStore
from llmkit.calllog.store import Filters, records_of


@pytest.fixture(autouse=True)
def small_logs_are_large(monkeypatch):
    monkeypatch.setattr(readcache, "DISK_MIN_ROWS", 20)


def written(path, records):
    store = SQLiteStore(path)
    store.write(records)
    return store


def asked_after(store):
    """The seqs the store's reads ask the database for the rows after: 0 for every row, the copy's
    last row's when it took the copy."""
    asked = []
    rows_after = store._rows_after
    store._rows_after = lambda seq: asked.append(seq) or rows_after(seq)
    return asked


def read_twice(store):
    store.read(Filters())
    return store.read(Filters())


def database(path):
    """What the log holds, read without any copy."""
    store = SQLiteStore(path, read_cache_rows=0)
    try:
        return records_of(store.read(Filters()))
    finally:
        store.close()


def database_call_ids(path):
    with sqlite3.connect(path) as db:
        return [row[0] for row in db.execute("SELECT call_id FROM calls ORDER BY started_at, seq")]


def test_a_new_store_takes_the_copy_another_wrote_and_reads_the_rows_written_since(tmp_path):
    path = tmp_path / "calls.db"
    records = calls(60)
    first = written(path, records[:40])
    read_twice(first)  # the second read keeps a copy, and writes it beside the log
    copy = diskcopy.path_for(path)
    assert copy.name == "calls.db-columns" and copy.exists()
    late = dict(records[40], started_at=NOW - 7200)  # written after the copy, started before every call in it
    first.write([late, *records[41:]])
    first.close()

    second = SQLiteStore(path)
    asked = asked_after(second)
    got = second.read(Filters())
    assert asked == [40]  # the first read took the copy, and read back only the 20 rows written since
    assert records_of(got) == database(path)
    assert got["call_id"][0] == late["call_id"]
    second.close()


def test_the_copy_gives_the_frame_the_database_gives(tmp_path):
    path = tmp_path / "calls.db"
    odd = dict(calls(1)[0], call_id="f" * 32, response='ünïcode ✓ "quoted"\n', metadata={"k": [1, 2.5, None]})
    store = written(path, [*calls(40), odd])
    read_twice(store)
    store.close()
    fresh = SQLiteStore(path)
    asked = asked_after(fresh)
    from_copy = frame.to_dataframe(fresh.read(Filters()), [])
    assert asked == [41]
    without = SQLiteStore(path, read_cache_rows=0)
    pd.testing.assert_frame_equal(from_copy, frame.to_dataframe(without.read(Filters()), []))
    fresh.close()
    without.close()


def test_a_new_process_reads_the_copy(tmp_path):
    path = tmp_path / "calls.db"
    store = written(path, calls(60))
    read_twice(store)
    store.close()
    script = textwrap.dedent(
        """
        import sys
        from llmkit.calllog import readcache
        from llmkit.calllog.sqlite import SQLiteStore
        from llmkit.calllog.store import Filters
        readcache.DISK_MIN_ROWS = 20
        store = SQLiteStore(sys.argv[1])
        asked, rows_after = [], store._rows_after
        store._rows_after = lambda seq: asked.append(seq) or rows_after(seq)
        columns = store.read(Filters())
        print(asked, len(columns["call_id"]), columns["call_id"][-1])
        """
    )
    out = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["[60]", "60", calls(60)[-1]["call_id"]]


def test_one_read_of_a_large_log_writes_the_copy_and_keeps_none_in_memory_the_next_read_loads_it(tmp_path):
    path = tmp_path / "calls.db"
    store = written(path, calls(40))
    asked = asked_after(store)
    first = store.read(Filters())
    assert asked == [0] and diskcopy.path_for(path).exists() and len(store._cache) == 0
    second = store.read(Filters())
    assert asked == [0, 40] and len(store._cache) == 40  # from the second read on, kept in memory
    assert records_of(first) == records_of(second) == database(path)
    store.close()


def test_a_log_written_out_of_start_order_is_copied_in_start_order_up_to_its_newest_row(tmp_path):
    path = tmp_path / "calls.db"
    store = written(path, SHUFFLED)  # concurrent calls finish, and are written, out of start order
    first = store.read(Filters())
    assert list(first["started_at"]) == sorted(first["started_at"])
    copy = diskcopy.load(diskcopy.path_for(path))
    with sqlite3.connect(path) as db:
        newest = db.execute("SELECT seq, call_id FROM calls ORDER BY seq DESC LIMIT 1").fetchone()
    assert copy is not None and (copy.seq, copy.last_call_id) == newest == (60, newest[1])
    assert list(copy.columns["started_at"]) == sorted(first["started_at"])
    store.write([dict(r, call_id=f"e{i:031x}", started_at=r["started_at"] - 30) for i, r in enumerate(calls(5))])
    store.close()
    fresh = SQLiteStore(path)
    asked = asked_after(fresh)
    assert records_of(fresh.read(Filters())) == database(path) and asked == [60]
    fresh.close()


def test_a_copy_is_not_written_for_a_small_log_nor_taken_by_a_store_without_a_read_cache(tmp_path, monkeypatch):
    path = tmp_path / "calls.db"
    store = written(path, calls(19))
    read_twice(store)
    assert not diskcopy.path_for(path).exists()  # 19 rows read back faster than a file loads
    store.write([dict(r, call_id=f"e{i:031x}") for i, r in enumerate(calls(5))])
    read_twice(store)
    assert diskcopy.path_for(path).exists()
    without = SQLiteStore(path, read_cache_rows=0)
    read_twice(without)
    assert len(without._cache) == 0 and diskcopy.path_for(path).exists()  # nor removed by it
    store.close()
    without.close()


def test_a_copy_is_rewritten_once_the_log_has_grown_by_a_quarter(tmp_path):
    path = tmp_path / "calls.db"
    store = written(path, calls(40))
    read_twice(store)
    copy = diskcopy.path_for(path)
    rows = lambda: len(diskcopy.load(copy).columns["call_id"])  # noqa: E731
    assert rows() == 40
    more = [dict(r, call_id=f"e{i:031x}") for i, r in enumerate(calls(20))]
    store.write(more[:9])
    store.read(Filters())
    assert rows() == 40  # 49 rows: not yet a quarter more
    store.write(more[9:])
    store.read(Filters())
    assert rows() == 60
    store.close()


def test_a_cleared_log_leaves_no_copy_and_rows_deleted_elsewhere_make_it_ignored(tmp_path):
    path = tmp_path / "calls.db"
    store = written(path, calls(40))
    read_twice(store)
    store.clear()
    assert not diskcopy.path_for(path).exists()
    store.write(calls(40))
    read_twice(store)
    store.close()
    with sqlite3.connect(path) as other:  # another process deletes some calls
        other.execute("DELETE FROM calls WHERE model = 'acme/small'")
    stale = diskcopy.path_for(path).read_bytes()
    fresh = SQLiteStore(path, read_cache_rows=20)  # too small a bound to write a copy of the 27 left
    assert records_of(fresh.read(Filters())) == database(path)
    assert len(fresh._cache) == 0  # the copy's rows are not all in the log any more: not taken,
    assert not diskcopy.path_for(path).exists()  # and removed: deleted calls do not outlive the log on disk
    fresh.close()
    diskcopy.path_for(path).write_bytes(stale)
    again = SQLiteStore(path)
    again.read(Filters())  # the log is large enough: the read replaces the stale copy with its own
    assert diskcopy.load(diskcopy.path_for(path)).columns["call_id"] == database_call_ids(path)
    again.close()


def test_the_copy_of_another_log_is_ignored(tmp_path):
    ours, theirs = tmp_path / "ours.db", tmp_path / "theirs.db"
    written(ours, calls(40)).close()
    other = written(theirs, [dict(r, call_id=f"b{i:031x}") for i, r in enumerate(calls(40))])
    read_twice(other)
    other.close()
    diskcopy.path_for(theirs).rename(diskcopy.path_for(ours))  # as many rows, other calls
    store = SQLiteStore(ours)
    assert records_of(store.read(Filters())) == database(ours)
    assert len(store._cache) == 0
    store.close()


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "another version"])
def test_a_damaged_copy_is_ignored_and_replaced(tmp_path, damage):
    path = tmp_path / "calls.db"
    store = written(path, calls(40))
    read_twice(store)
    store.close()
    copy = diskcopy.path_for(path)
    data = copy.read_bytes()
    copy.write_bytes(
        {
            "truncated": data[: len(data) - 7],
            "garbage": data[:40] + b"\x00\xff" * 50 + data[140:],
            "empty": b"",
            "another version": data.replace(b"llmkit-read-copy 1", b"llmkit-read-copy 9", 1),
        }[damage]
    )
    fresh = SQLiteStore(path)
    assert records_of(fresh.read(Filters())) == database(path)
    assert records_of(fresh.read(Filters())) == database(path)
    assert diskcopy.load(copy) is not None  # the second read kept a copy and wrote it whole again
    fresh.close()


def test_a_copy_that_cannot_be_written_leaves_nothing_behind(tmp_path):
    path = tmp_path / "calls.db"
    records = calls(40)
    records[5]["response"] = b"\x00 raw bytes"  # a BLOB: JSON has no way to hold it
    store = written(path, records)
    got = read_twice(store)
    assert got["response"][5] == b"\x00 raw bytes"
    assert sorted(p.name for p in tmp_path.iterdir() if "columns" in p.name) == []
    store.close()


def summaries(store, by):
    return frame.summary_table(store.summary(Filters(), by), by)


def in_sql(path, by):
    """The summary SQLite's GROUP BY makes, with no copy anywhere to take it from."""
    store = SQLiteStore(path, read_cache_rows=0)
    try:
        return summaries(store, by)
    finally:
        store.close()


@pytest.mark.parametrize("by", query.GROUP_COLUMNS)
def test_a_summary_from_the_copy_in_memory_or_on_disk_is_the_one_sql_makes(tmp_path, monkeypatch, by):
    from llmkit.calllog import colsummary

    made = []
    grouped = colsummary.grouped
    monkeypatch.setattr(colsummary, "grouped", lambda *args: made.append(args[0]) or grouped(*args))
    path = tmp_path / "calls.db"
    records = [*calls(60), *cache_only()]
    for i, record in enumerate(records):
        record["finish_reason"] = ("stop", "length", None)[i % 3]
        record["error_type"] = None if record["status"] == "ok" else ("RateLimitError", "Timeout")[i % 2]
    records[7]["status"] = None  # no status: an error, as SQL counts it
    store = written(path, records[:45])
    read_twice(store)  # a copy in memory, and on disk
    later = [dict(r, call_id=f"d{i:031x}", cache_hit=False, status_code=500) for i, r in enumerate(records[45:])]
    store.write(later)  # rows the copies do not hold yet
    expected = in_sql(path, by)
    assert len(expected) > 0
    from_memory = summaries(store, by)
    assert len(store._cache) == 63 and made == [by]  # from the copy in memory, brought up to date
    pd.testing.assert_frame_equal(from_memory, expected, check_index_type=False, rtol=1e-12)
    store.close()

    fresh = SQLiteStore(path)  # a new process: only the copy on disk, of the first 45 calls
    from_disk = summaries(fresh, by)
    assert len(fresh._cache) == 0 and made == [by, by]  # from the copy on disk, read for it and not kept
    pd.testing.assert_frame_equal(from_disk, expected, check_index_type=False, rtol=1e-12)
    fresh.close()


def test_a_summary_is_made_in_sql_when_there_is_no_copy_or_it_is_not_the_logs(tmp_path, monkeypatch):
    from llmkit.calllog import colsummary

    path = tmp_path / "calls.db"
    store = written(path, calls(40))
    read_twice(store)
    store.close()
    with sqlite3.connect(path) as other:  # the copy on disk no longer matches the log
        other.execute("DELETE FROM calls WHERE model = 'acme/small'")
    used = []
    monkeypatch.setattr(colsummary, "grouped", lambda *args: used.append(args) or pytest.fail("used the copy"))
    fresh = SQLiteStore(path)
    table = summaries(fresh, "model")
    assert list(table.index) == ["acme/large", "other/fast"] and not used
    tagged = written(path, [])
    read_twice(tagged)
    assert tagged.summary(Filters({"tags": ("eval",)}), "model")["calls"]  # tags look inside JSON: SQL
    fresh.close()
    tagged.close()


FILTERS = [
    {"since": NOW - 2000},
    {"until": NOW - 1500, "source": ("proxy",)},
    {"model": ("acme/small", "other/fast")},
    {"model": ("nobody/none",)},
    {"status": ("error",), "kind": ("chat", "stream")},
    {"user": ("ann",)},
    {"provider": ("acme",), "run_id": "run-a"},
    {"session_id": "session-1", "since": NOW - 3000, "until": NOW},
]


@pytest.mark.parametrize("filters", FILTERS, ids=str)
@pytest.mark.parametrize("by", ["model", "status_code", "user"])
def test_a_filtered_summary_from_the_copy_in_memory_is_the_one_sql_makes(tmp_path, monkeypatch, by, filters):
    from llmkit.calllog import colsummary

    made = []
    grouped = colsummary.grouped
    monkeypatch.setattr(colsummary, "grouped", lambda *args: made.append(args[0]) or grouped(*args))
    path = tmp_path / "calls.db"
    store = written(path, [*calls(60), *cache_only()])
    read_twice(store)
    store.write([dict(r, call_id=f"d{i:031x}", started_at=NOW - 100 * i) for i, r in enumerate(calls(9))])
    without = SQLiteStore(path, read_cache_rows=0)
    expected = frame.summary_table(without.summary(Filters(filters), by), by)
    got = frame.summary_table(store.summary(Filters(filters), by), by)
    assert made == [by]  # from the copy, not SQL
    pd.testing.assert_frame_equal(got, expected, check_index_type=False, rtol=1e-12)
    fresh = SQLiteStore(path)  # only the copy on disk: a filtered summary is SQL's
    pd.testing.assert_frame_equal(frame.summary_table(fresh.summary(Filters(filters), by), by), expected,
                                  check_index_type=False, rtol=1e-12)  # fmt: skip
    assert made == [by]
    for opened in (store, without, fresh):
        opened.close()


def test_reads_while_another_process_writes_see_each_call_once_and_in_order(tmp_path):
    """A writer adds calls while readers (one keeping its copy, and new stores as new processes
    would, taking the copy on disk the others keep rewriting) read the whole log again and again."""
    import threading
    import time

    path = tmp_path / "calls.db"
    written(path, calls(30)).close()
    stop = threading.Event()

    def write():
        other = SQLiteStore(path)  # its own connections, as another process has
        n = 0
        while not stop.is_set():
            other.write(
                [dict(r, call_id=f"w{n:09d}{i:022x}", started_at=NOW + n + i % 3) for i, r in enumerate(calls(7))]
            )
            n += 1
            time.sleep(0.002)
        other.close()

    writer = threading.Thread(target=write)
    writer.start()
    keeper = SQLiteStore(path)
    seen = 0
    asked = []  # where each new store's read began: past 0 when it took a copy on disk
    try:
        for round_ in range(40):
            store = keeper if round_ % 2 else SQLiteStore(path)
            if store is not keeper:
                asked.append(asked_after(store))
            columns = store.read(Filters())
            ids = columns["call_id"]
            assert len(ids) == len(set(ids)) >= seen  # every call once, none lost since the last read
            assert list(columns["started_at"]) == sorted(columns["started_at"])
            seen = len(ids)
            if store is not keeper:
                store.close()
    finally:
        stop.set()
        writer.join()
    assert records_of(keeper.read(Filters())) == database(path)
    assert sum(1 for a in asked if a[0] > 0) >= 10  # most new stores started from a copy on disk
    keeper.close()


def test_a_copy_whose_newest_call_was_deleted_elsewhere_is_removed(tmp_path):
    path = tmp_path / "calls.db"
    records = calls(40)
    store = written(path, [r for r in records if r["model"] != "acme/small"])
    store.write([r for r in records if r["model"] == "acme/small"])  # the newest rows of the log
    read_twice(store)  # writes the copy, its last row an acme/small one
    store.close()
    assert diskcopy.path_for(path).exists()
    with sqlite3.connect(path) as other:  # another process deletes those calls
        other.execute("DELETE FROM calls WHERE model = 'acme/small'")
    fresh = SQLiteStore(path, read_cache_rows=20)  # too small a bound to write a copy of the 26 left
    assert records_of(fresh.read(Filters())) == database(path)
    assert not diskcopy.path_for(path).exists()  # the deleted calls are not kept on disk
    fresh.close()
