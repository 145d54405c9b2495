"""Reads run in the database: filters in WHERE over indexes, last= as ORDER BY ... LIMIT, summary as
GROUP BY; the results are those the in-memory store gives for the same calls, on SQLite and on a real
PostgreSQL (the session's throwaway server) alike."""

import datetime as dt
import sqlite3
import threading
import time
import uuid

import pandas as pd
import pytest

import llmkit
from llmkit.calllog import configure_log, frame, query
from llmkit.calllog.sqlite import SQLiteStore
from llmkit.calllog.store import Filters, MemoryStore, records_of

NOW = time.time()
METADATA = [
    None,
    {"tags": ["eval", "nightly"], "user": "ann"},
    {"tags": ["eval"], "user": "bob", "team": 7},
    {"user": "ann", "flag": True, "ratio": 0.5},
    {"tags": "eval", "note": None},  # a string, not a list: "eval" is no tag of it
    {"nested": {"a": 1}, "list": [1, 2]},
    "just text",
]


def calls(n=60):
    """Records of every shape the filters look at: models, providers, kinds, statuses, tags, times."""
    models = ["acme/small", "acme/large", "other/fast"]
    out = []
    for i in range(n):
        ok = i % 7 != 3
        out.append(
            {
                "call_id": f"{i:032x}",
                "started_at": NOW - 3600 + i * 60,
                "model": models[i % 3],
                "provider": models[i % 3].split("/")[0],
                "handler_model": models[i % 3].split("/")[1],
                "kind": ("chat", "stream", "image")[i % 3],
                "source": ("python", "proxy")[i % 2],
                "messages": [{"role": "user", "content": f"q{i}"}] if i % 3 != 2 else None,
                "prompt": f"a picture {i}" if i % 3 == 2 else None,
                "params": {"temperature": 0.1 * (i % 4)},
                "response": f"answer {i}" if ok else None,
                "status": "ok" if ok else "error",
                "status_code": None if ok else 429,
                "latency_ms": 100.0 + (i * 37) % 250,
                "ttft_ms": 10.0 + i % 9 if i % 3 == 1 else None,
                "completion_tokens": 10 + i % 5 if ok else None,
                "prompt_tokens": 5 if ok else None,
                "total_tokens": 15 + i % 5 if ok else None,
                "tokens_per_s": 50.0 + i % 11 if ok else None,
                "cost_usd": 0.001 * i if i % 2 else None,
                "metadata": METADATA[i % len(METADATA)],
                "run_id": "run-a" if i < 20 else None,
                "cache_hit": i % 5 == 0,  # answered by the response cache: counted apart in a summary
                "user": ("ann", "bob", None)[i % 3],
                "session_id": f"session-{i % 2}",
            }
        )
    return out


def cache_only(n=3):
    """Calls of a model only ever answered from the response cache."""
    return [
        {**record, "call_id": f"c{i:031x}", "model": "cache/only", "provider": "cache", "cache_hit": True}
        for i, record in enumerate(calls()[:n])
    ]


SHUFFLED = calls()[1::2] + calls()[0::2]  # written out of start order, as concurrent calls finish


def postgres_store(server):
    from llmkit.calllog.postgres import PostgresStore

    return PostgresStore(server.create_database(f"q_{uuid.uuid4().hex[:12]}"))


@pytest.fixture(scope="module")
def written_postgres(postgres_server):
    """The calls in a PostgreSQL store, written once for the tests that only read them."""
    store = postgres_store(postgres_server)
    store.write(SHUFFLED)
    yield store
    store.close()


def sql_store(request, tmp_path, fresh=False):
    if request.param == "sqlite":
        store = SQLiteStore(tmp_path / "calls.db")
    elif not fresh:
        return request.getfixturevalue("written_postgres")
    else:
        store = postgres_store(request.getfixturevalue("postgres_server"))
    request.addfinalizer(store.close)
    store.write(SHUFFLED)
    return store


@pytest.fixture(params=["sqlite", "postgres"])
def stores(request, tmp_path):
    """The same calls in a SQL store (SQLite, PostgreSQL) and in a memory store, in one shuffled order."""
    memory_store = MemoryStore()
    memory_store.write(SHUFFLED)
    return sql_store(request, tmp_path), memory_store


@pytest.fixture(params=["sqlite", "postgres"])
def fresh_stores(request, tmp_path):
    """As ``stores``, in a database of this test's own, which it may write to."""
    memory_store = MemoryStore()
    memory_store.write(SHUFFLED)
    return sql_store(request, tmp_path, fresh=True), memory_store


@pytest.fixture(params=["sqlite", "postgres"])
def any_log(request, log):
    """llmkit.calls on a fresh SQLite file, or on a fresh PostgreSQL database."""
    if request.param == "postgres":
        server = request.getfixturevalue("postgres_server")
        configure_log(url=server.create_database(f"q_{uuid.uuid4().hex[:12]}"))
    return log


FILTERS = [
    {},
    {"model": ("acme/small",)},
    {"model": ("acme/small", "other/fast"), "status": ("ok",)},
    {"provider": ("acme",)},
    {"kind": ("stream",), "source": ("proxy",)},
    {"status": ("error",)},
    {"run_id": "run-a"},
    {"since": NOW - 1800},
    {"since": NOW - 3000, "until": NOW - 1200},
    {"tags": ("eval",)},
    {"tags": ("user", "eval")},
    {"tags": {"user": "ann"}},
    {"tags": {"team": 7, "user": "bob"}},
    {"tags": {"flag": 1}},  # True == 1, as Python compares them
    {"tags": {"note": None}},
    {"tags": {"ratio": 0.5}, "model": ("acme/small", "acme/large", "other/fast")},
    {"model": ("nothing",)},
]


@pytest.mark.parametrize("filters", FILTERS, ids=str)
@pytest.mark.parametrize("last", [None, 1, 4])
def test_sql_filters_return_what_memory_returns(stores, filters, last):
    sql_store, memory_store = stores
    got = sql_store.read(Filters(filters), last=last)
    expected = memory_store.read(Filters(filters), last=last)
    assert got["call_id"] == expected["call_id"]
    assert got == expected
    assert sql_store.count(Filters(filters)) == memory_store.count(Filters(filters))


def test_rows_come_oldest_first_and_last_keeps_the_newest(stores):
    sql_store, _ = stores
    started = list(sql_store.read(Filters())["started_at"])  # an array("d") when read from the read cache
    assert started == sorted(started) and len(started) == 60
    assert sql_store.read(Filters(), last=3)["started_at"] == started[-3:]


def test_a_filtered_read_walks_the_index_of_its_filter(tmp_path):
    SQLiteStore(tmp_path / "calls.db").write(SHUFFLED)
    db = sqlite3.connect(tmp_path / "calls.db")
    for column in ("model", "provider", "status", "source", "kind", "run_id"):
        value = "x" if column != "run_id" else "run-a"
        sql, args = query.select_calls(Filters({column: (value,)} if column != "run_id" else {column: value}), last=10)
        plan = " ".join(row[-1] for row in db.execute("EXPLAIN QUERY PLAN " + sql, args))
        assert f"USING INDEX calls_{column}_started" in plan, plan
        assert "TEMP B-TREE" not in plan.split("newest")[0]  # no sort of the matching rows: the index is in order
    sql, args = query.select_calls(Filters({"since": NOW}), last=10)
    assert "USING INDEX calls_started_at" in " ".join(row[-1] for row in db.execute("EXPLAIN QUERY PLAN " + sql, args))


def test_a_filtered_read_walks_the_index_of_its_filter_on_postgres(written_postgres):
    from llmkit.calllog.pgsql import POSTGRES

    with written_postgres.database.connection() as conn, conn.transaction():
        conn.execute("SET LOCAL enable_seqscan = off")  # 60 rows: the planner would rather read them all
        for column in ("model", "provider", "status", "source", "kind", "run_id", "user", "session_id"):
            one = Filters({column: "x"} if column in query.EXACT_FILTERS else {column: ("x",)})
            sql, args = query.select_calls(one, last=10, dialect=POSTGRES)
            plan = "\n".join(row[0] for row in conn.execute("EXPLAIN " + sql, args))
            newest = plan.split("Limit", 1)[1]  # the newest rows, before they are put oldest first
            assert f"Index Scan Backward using calls_{column}" in newest and "Sort" not in newest, plan


def test_a_filtered_read_touches_only_the_rows_it_returns(tmp_path):
    """SQLite's VM counts rows stepped through; a model= last= read over 20,000 calls visits a handful."""
    store = SQLiteStore(tmp_path / "big.db")
    records = [dict(record, call_id=f"{i:032x}", started_at=NOW + i) for i, record in enumerate(calls(60) * 334)]
    store.write(records)
    db = sqlite3.connect(tmp_path / "big.db")
    sql, args = query.select_calls(Filters({"model": ("acme/small",)}), last=5)
    steps = []
    db.set_progress_handler(lambda: steps.append(1), 100)  # called every 100 VM instructions
    assert len(db.execute(sql, args).fetchall()) == 5
    small = len(steps)
    steps.clear()
    db.execute("SELECT count(*) FROM calls WHERE latency_ms > 0").fetchall()  # every row, for scale
    assert small * 100 < len(steps)


def test_the_migration_adds_the_filter_indexes(tmp_path):
    SQLiteStore(tmp_path / "calls.db").close()
    db = sqlite3.connect(tmp_path / "calls.db")
    indexes = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {f"calls_{c}_started" for c in ("model", "provider", "status", "source", "kind", "run_id")} <= indexes
    assert "calls_model" not in indexes and "calls_run_id" not in indexes  # replaced, not doubled


@pytest.mark.parametrize(
    "by", ["model", "provider", "kind", "status", "source", "status_code", "run_id", "user", "session_id"]
)
@pytest.mark.parametrize(
    "filters",
    [{}, {"since": NOW - 2000}, {"model": ("acme/small",)}, {"tags": ("eval",)}, {"user": ("ann",)},
     {"session_id": "session-1"}],
    ids=str,
)  # fmt: skip
def test_summary_in_sql_is_the_summary_of_the_dataframe(stores, by, filters):
    sql_store, memory_store = stores
    in_sql = frame.summary_table(sql_store.summary(Filters(filters), by), by)
    columns = memory_store.read(Filters(filters))
    from_frame = frame.summary(frame.to_dataframe(columns, []), by)
    pd.testing.assert_frame_equal(in_sql, from_frame, check_dtype=True, check_index_type=False, rtol=1e-12)
    in_memory = frame.summary_table(memory_store.summary(Filters(filters), by), by)  # numpy, as colsummary does
    pd.testing.assert_frame_equal(in_memory, from_frame, check_dtype=True, check_index_type=False, rtol=1e-12)
    assert in_sql["cache_hits"].sum() == sum(
        1 for r in memory_store_records(memory_store, filters, by) if r["cache_hit"]
    )
    assert list(in_sql.index) == sorted(in_sql.index, key=lambda v: (len(v), v) if by == "status_code" else v)


def memory_store_records(store, filters, by):
    return [r for r in records_of(store.read(Filters(filters))) if r[by] is not None]


@pytest.mark.parametrize("by", ["model", "provider"])
def test_summary_figures_are_the_live_calls_and_hits_are_counted_apart(fresh_stores, by):
    sql_store, memory_store = fresh_stores
    for store in fresh_stores:
        store.write(cache_only())
    table = frame.summary_table(sql_store.summary(Filters(), by), by)
    from_frame = frame.summary(frame.to_dataframe(memory_store.read(Filters()), []), by)
    pd.testing.assert_frame_equal(table, from_frame, check_dtype=True, check_index_type=False, rtol=1e-12)
    if by != "model":
        return
    only = table.loc["cache/only"]
    assert only["calls"] == 0 and only["cache_hits"] == 3 and pd.isna(only["latency_p50_ms"])
    live = [r for r in calls() if r["model"] == "acme/small" and not r["cache_hit"]]
    assert table.loc["acme/small", "calls"] == len(live)
    assert table.loc["acme/small", "total_tokens"] == sum(r["total_tokens"] or 0 for r in live)


def test_summary_by_an_unknown_column_is_refused(log):
    with pytest.raises(ValueError, match="cannot summarize by 'messages'; group by one of model, provider"):
        log.summary(by="messages")


def test_calls_summary_groups_by_any_column(any_log):
    log = any_log
    llmkit.completion(model="demo/echo", messages=[{"role": "user", "content": "hi"}], source="widget")
    llmkit.completion(model="demo/lorem", messages=[{"role": "user", "content": "hi"}], tokens_per_second=0)
    by_source = log.summary(by="source")
    assert list(by_source.index) == ["python", "widget"] and by_source.index.name == "source"
    assert by_source["calls"].tolist() == [1, 1]
    assert log.summary(by="provider").loc["demo", "calls"] == 2


def test_provider_until_and_tags_filters_through_calls(any_log):
    log = any_log
    llmkit.completion(model="demo/echo", messages=[{"role": "user", "content": "a"}], metadata={"tags": ["x"]})
    middle = dt.datetime.now(dt.timezone.utc)
    time.sleep(0.01)
    llmkit.completion(model="demo/echo", messages=[{"role": "user", "content": "b"}], metadata={"cfg": {"k": [1]}})
    assert [r["prompt"] for r in log.records(until=middle)] == ["a"]
    assert [r["prompt"] for r in log.records(provider="demo", since=middle)] == ["b"]
    assert [r["prompt"] for r in log.last(5, tags={"cfg": {"k": [1]}})] == ["b"]  # a dict value: checked in Python
    assert log.summary(tags={"cfg": {"k": [1]}})["calls"].tolist() == [1]
    assert len(log.to_dataframe(tags="x", last=10)) == 1
    with pytest.raises(ValueError, match="until='soon' is not an ISO date"):
        log.records(until="soon")


def test_memory_and_sqlite_logs_give_the_same_frames(tmp_path):
    records = calls()
    configure_log("memory")
    try:
        llmkit.calls._store().write(records)
        from_memory = llmkit.calls.to_dataframe(model=["acme/small", "other/fast"])
        configure_log("sqlite", path=tmp_path / "calls.db")
        llmkit.calls._store().write(records)
        from_sqlite = llmkit.calls.to_dataframe(model=["acme/small", "other/fast"])
    finally:
        configure_log()
    pd.testing.assert_frame_equal(from_sqlite, from_memory)


def test_repeated_unfiltered_reads_come_from_a_bounded_copy(tmp_path):
    store = SQLiteStore(tmp_path / "calls.db", read_cache_rows=100)
    records = calls(60)
    store.write(records[:40])
    first = store.read(Filters())
    assert len(store._cache) == 0  # one read is no reason to keep a copy
    assert records_of(store.read(Filters())) == records_of(first) and len(store._cache) == 40
    late = dict(records[40], started_at=NOW - 7200)  # finished last, started first
    store.write([late, *records[41:]])
    again = store.read(Filters())
    assert list(again["started_at"]) == sorted(again["started_at"]) and again["call_id"][0] == late["call_id"]
    fresh = SQLiteStore(tmp_path / "calls.db", read_cache_rows=0)
    assert records_of(again) == records_of(fresh.read(Filters()))  # the copy reads as the database does
    other = sqlite3.connect(tmp_path / "calls.db")
    other.execute("DELETE FROM calls WHERE model = 'acme/small'")  # another process
    other.commit()
    assert records_of(store.read(Filters())) == records_of(fresh.read(Filters()))
    store.write([dict(record, call_id=f"x{i:031x}") for i, record in enumerate(calls(120))])
    assert len(store.read(Filters())["call_id"]) == 160 and len(store._cache) == 0  # over the bound: not kept
    store.close()
    fresh.close()


def test_a_sqlite_summary_made_while_calls_are_written_keeps_each_groups_figures_its_own(tmp_path):
    """The GROUP BY and the percentile columns are read on two connections at once: both must count
    the same calls, or a model's row would take latencies of the model sorted before it."""
    store = SQLiteStore(tmp_path / "calls.db")
    latency = {"a/many": 1.0, "b/one": 500.0, "c/many": 1000.0}
    per_batch = {"a/many": 50, "b/one": 1, "c/many": 50}
    stop = time.monotonic() + 3

    def batch():
        return [
            {"call_id": uuid.uuid4().hex, "started_at": time.time(), "model": model, "status": "ok",
             "latency_ms": latency[model], "ttft_ms": latency[model], "tokens_per_s": latency[model]}
            for model in latency for _ in range(per_batch[model])
        ]  # fmt: skip

    def write():
        while time.monotonic() < stop:
            store.write(batch())

    store.write(batch())
    writer = threading.Thread(target=write)
    writer.start()
    try:
        summaries = 0
        while time.monotonic() < stop:
            table = frame.summary_table(store.summary(Filters()))
            for model, value in latency.items():
                figures = table.loc[model, ["latency_p50_ms", "latency_p95_ms", "ttft_p50_ms", "tokens_per_s_median"]]
                assert figures.tolist() == [value] * 4, (model, figures.tolist())
            assert table.loc["a/many", "calls"] == table.loc["c/many", "calls"] == 50 * table.loc["b/one", "calls"]
            summaries += 1
        assert summaries > 10
    finally:
        writer.join()
        store.close()


def test_a_log_cleared_between_the_summarys_two_reads_is_summarized_from_one_snapshot(tmp_path, monkeypatch):
    from llmkit.calllog import sqlite as sqlite_store

    path = tmp_path / "calls.db"
    store = SQLiteStore(path)
    store.write(calls(30))
    started = sqlite_store._in_thread

    def then_cleared_elsewhere(function):  # the GROUP BY has read; another process clears the log
        result = started(function)
        result()
        with sqlite3.connect(path) as other:
            other.execute("DELETE FROM calls")
        return result

    monkeypatch.setattr(sqlite_store, "_in_thread", then_cleared_elsewhere)
    try:
        assert store.summary(Filters())["calls"] == []  # not the counts of calls that are gone
    finally:
        store.close()


def test_a_failed_sqlite_summary_stops_its_group_by_and_the_next_one_works(tmp_path, monkeypatch):
    store = SQLiteStore(tmp_path / "calls.db")
    store.write(calls(30))
    broken = query.percentile_values

    def failing(*args, **kwargs):
        sql, values = broken(*args, **kwargs)
        return query.Query(sql.replace("SELECT", "SELECT no_such_column,", 1), values)

    try:
        monkeypatch.setattr(query, "percentile_values", failing)
        with pytest.raises(sqlite3.OperationalError, match="no_such_column"):
            store.summary(Filters())
        assert not [t for t in threading.enumerate() if t.name == "llmkit-calllog-summary"]
        monkeypatch.setattr(query, "percentile_values", broken)
        assert sum(store.summary(Filters())["calls"]) == sum(1 for r in calls(30) if not r["cache_hit"])
    finally:
        store.close()
