"""The call log in a real PostgreSQL (a throwaway server): records, filters, summary, errors, config."""

import json
import os
import sqlite3
import subprocess
import sys
import uuid
import warnings

import pandas as pd
import pytest
from postgres_server import PASSWORD, free_port

import llmkit
from llmkit.calllog import LogStoreError, configure_log, frame, recorder
from llmkit.calllog.config import log_mode
from llmkit.calllog.record import COLUMNS
from llmkit.calllog.store import Filters, records_of

USER_MESSAGE = [{"role": "user", "content": "hello there"}]


@pytest.fixture
def pg_url(postgres_server):
    """A fresh, empty database on the session's server."""
    return postgres_server.create_database(f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def pg_log(pg_url):
    """llmkit.calls writing to a fresh PostgreSQL database."""
    configure_log(url=pg_url)
    yield llmkit.calls
    configure_log()
    recorder._warned.clear()


def open_store(url, **options):
    from llmkit.calllog.postgres import PostgresStore

    return PostgresStore(url, **options)


def query(url, sql, *args):
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute(sql, args).fetchall()


def varied_records():
    """Records of every kind of call: chat, stream, failure, image, embedding, with metadata and a run."""
    configure_log("memory")
    try:
        llmkit.completion(model="demo/echo", messages=USER_MESSAGE, metadata={"tags": ["eval"], "team": "a"})
        for _ in llmkit.completion(model="demo/lorem", messages=USER_MESSAGE, stream=True, tokens_per_second=0):
            pass
        with pytest.raises(llmkit.APIError):
            llmkit.completion(model="demo/fail", messages=USER_MESSAGE, status_code=429)
        llmkit.image_generation(model="demo/image", prompt="a cat", source="widget")
        llmkit.embedding(model="demo/embed", input=["a", "b"])
        with llmkit.calls.capture(run_id="run-7"):
            llmkit.completion(model="demo/echo", messages=USER_MESSAGE, temperature=0.5, mock_response="mocked")
        return llmkit.calls.records()
    finally:
        configure_log()


# -- the same records as SQLite ---------------------------------------------------------------------------
FILTERS = [
    Filters(),
    Filters(model=("demo/echo",)),
    Filters(model=("demo/echo", "demo/image")),
    Filters(status=("error",)),
    Filters(source=("widget",)),
    Filters(kind=("stream", "embedding")),
    Filters(run_id="run-7"),
]


def test_records_read_back_exactly_as_the_sqlite_store_gives_them(pg_url, tmp_path):
    from llmkit.calllog.sqlite import SQLiteStore

    records = varied_records()
    assert len(records) == 6
    sqlite, postgres = SQLiteStore(tmp_path / "calls.db"), open_store(pg_url)
    try:
        for store in (sqlite, postgres):
            store.write(records)
        since = Filters(since=records[3]["started_at"])
        for filters in [*FILTERS, since]:
            expected = records_of(sqlite.read(filters))
            assert records_of(postgres.read(filters)) == expected, filters
            for last in (1, 2, 10):
                assert records_of(postgres.read(filters, last=last)) == expected[-last:], (filters, last)
        got = records_of(postgres.read(Filters()))
        assert got == records and list(got[0]) == list(COLUMNS)
        assert isinstance(got[0]["tokens_estimated"], bool) and got[0]["metadata"] == {"tags": ["eval"], "team": "a"}
    finally:
        sqlite.close()
        postgres.close()


def test_a_full_read_in_many_pages_matches_sqlite_across_ties_and_filters(pg_url, tmp_path, monkeypatch):
    from llmkit.calllog import postgres
    from llmkit.calllog.sqlite import SQLiteStore

    monkeypatch.setattr(postgres, "_PAGE", 7)
    records = [
        {
            "call_id": uuid.uuid4().hex,
            "started_at": 1e9 + i // 3,
            "model": f"m{i % 2}",
            "status": "ok",
            "prompt": str(i),
        }
        for i in range(60)
    ]  # three calls share each start time, so pages end inside groups of ties
    sqlite, store = SQLiteStore(tmp_path / "calls.db"), open_store(pg_url)
    try:
        for target in (sqlite, store):
            target.write(records)
        for filters in (Filters(), Filters(model=("m1",)), Filters(since=1e9 + 5)):
            expected = records_of(sqlite.read(filters))
            assert records_of(store.read(filters)) == expected and len(expected) > 7
    finally:
        sqlite.close()
        store.close()


def test_migrations_have_the_sqlite_names_and_the_tables_its_columns(pg_url, tmp_path):
    from llmkit.calllog import postgres, sqlite

    names = [name for name, _ in postgres.MIGRATIONS]
    # the search index, which SQLite makes on a first search, is one more migration here, after them
    assert [name for name in names if name != sqlite.SEARCH_MIGRATION] == [name for name, _ in sqlite.MIGRATIONS]
    assert names.index(sqlite.SEARCH_MIGRATION) == len(sqlite.MIGRATIONS)
    open_store(pg_url).close()
    lite = sqlite.SQLiteStore(tmp_path / "calls.db")
    same_type = {"TEXT": "text", "REAL": "double precision", "INTEGER": "integer"}
    booleans = {"tokens_estimated", "cache_hit"}  # 0/1 in SQLite
    for table in ("calls", "annotations", "response_cache"):
        expected = [(name, same_type[kind]) for _, name, kind, *_ in lite._db.execute(f"PRAGMA table_info({table})")]
        columns = query(
            pg_url,
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'llmkit'"
            " AND table_name = %s ORDER BY ordinal_position",
            table,
        )
        expected = [(n, "bigint" if n == "seq" else "boolean" if n in booleans else t) for n, t in expected]
        assert columns == expected, table
    lite.close()
    assert query(pg_url, "SELECT name FROM llmkit.migrations ORDER BY name") == [(n,) for n in sorted(names)]


# -- through llmkit.calls ---------------------------------------------------------------------------------------
def test_calls_land_in_postgres_and_read_back_as_a_dataframe(pg_log, pg_url):
    llmkit.completion(model="demo/echo", messages=USER_MESSAGE, metadata={"tags": ["eval"]})
    list(llmkit.completion(model="demo/lorem", messages=USER_MESSAGE, stream=True, tokens_per_second=0))
    with pytest.raises(llmkit.APIError):
        llmkit.completion(model="demo/fail", messages=USER_MESSAGE)
    df = pg_log.to_dataframe()
    assert list(df["model"]) == ["demo/echo", "demo/lorem", "demo/fail"]
    assert list(df["status"]) == ["ok", "ok", "error"] and df["kind"].tolist() == ["chat", "stream", "chat"]
    assert query(pg_url, "SELECT count(*) FROM llmkit.calls") == [(3,)]
    assert list(pg_log.to_dataframe(tags="eval")["model"]) == ["demo/echo"]
    assert [r["model"] for r in pg_log.last(2)] == ["demo/lorem", "demo/fail"]
    assert list(pg_log.to_dataframe(status="error", last=5)["model"]) == ["demo/fail"]

    pg_log.annotate(df["call_id"][0], "vote", "good")
    pg_log.annotate(df["call_id"][0], "vote", "best", group_id="g1", source="widget")
    assert pg_log.to_dataframe()["annotations"][0] == {"vote": "best"}
    assert pg_log.annotations()["value"].tolist() == ["good", "best"]

    pg_log.clear()
    assert len(pg_log.to_dataframe()) == 0 and len(pg_log.annotations()) == 0


def test_summary_is_computed_by_the_database_and_equals_pandas(pg_log, monkeypatch):
    models = ("acme/small", "acme/large", "zeta/x", "Acme/upper")
    records = []
    for i in range(400):
        ok = i % 7 != 0
        records.append({
            "call_id": uuid.uuid4().hex, "started_at": 1_700_000_000.0 + i, "model": models[i % 4], "kind": "chat",
            "source": "python", "status": "ok" if ok else "error", "latency_ms": float((i * 37) % 500) + 0.25,
            "ttft_ms": float(i % 50) if i % 3 else None, "tokens_per_s": 10.0 + i % 13 if ok else None,
            "total_tokens": i if i % 4 != 2 else None, "cost_usd": 1e-4 * i if i % 4 == 0 else None,
        })  # fmt: skip
    store = llmkit.calls._store()
    store.write(records)
    expected = frame.summary(pg_log.to_dataframe())
    with monkeypatch.context() as patch:
        patch.setattr(store, "read", None)  # the summary must not read the rows into Python
        got = pg_log.summary()
        got_filtered = pg_log.summary(status="ok", model=["acme/small", "zeta/x"])
    pd.testing.assert_frame_equal(got, expected, rtol=1e-12)
    assert list(got.index) == ["Acme/upper", "acme/large", "acme/small", "zeta/x"]  # pandas' order
    assert pd.isna(got.loc["acme/large", "cost_usd"]) and pd.isna(got.loc["zeta/x", "total_tokens"])
    pd.testing.assert_frame_equal(
        got_filtered, frame.summary(pg_log.to_dataframe(status="ok", model=["acme/small", "zeta/x"])), rtol=1e-12
    )


def test_text_postgresql_cannot_hold_is_stored_cleaned_not_lost(pg_log):
    llmkit.completion(model="demo/echo", messages=[{"role": "user", "content": "nul\x00here"}])
    llmkit.completion(model="demo/echo", messages=[{"role": "user", "content": "lone \ud800 surrogate"}])
    llmkit.completion(model="demo/echo", messages=USER_MESSAGE)
    prompts = [r["prompt"] for r in pg_log.records()]
    assert prompts == ["nul\ufffdhere", "lone ? surrogate", "hello there"]


def test_a_batch_larger_than_the_buffer_is_written_whole_while_the_database_is_up(pg_url, tmp_path):
    store = open_store(pg_url, buffer_size=10, spill_dir=tmp_path)
    records = [{"call_id": uuid.uuid4().hex, "started_at": 1e9 + i, "model": "m", "status": "ok"} for i in range(100)]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            store.write(records)
            store.write(records[50:] + [{**records[0], "call_id": "new"}])  # as a batch retried after a lost ack
        assert query(pg_url, "SELECT count(*), count(DISTINCT call_id) FROM llmkit.calls") == [(101, 101)]
        assert list(tmp_path.iterdir()) == []
    finally:
        store.close()


# -- configuration ---------------------------------------------------------------------------------------------
def test_the_url_wins_over_the_sqlite_path(pg_url, monkeypatch, tmp_path):
    path = tmp_path / "calls.db"
    monkeypatch.setenv("LLMKIT_LOG_PATH", str(path))
    monkeypatch.setenv("LLMKIT_LOG_URL", pg_url)
    configure_log()
    try:
        assert log_mode() == "postgres"
        llmkit.completion(model="demo/echo", messages=USER_MESSAGE)
        assert len(llmkit.calls.records()) == 1
        assert query(pg_url, "SELECT model FROM llmkit.calls") == [("demo/echo",)]
        assert not path.exists()
        configure_log(path=path)  # an explicit SQLite path still means SQLite
        assert log_mode() == "sqlite" and llmkit.calls.records() == []
    finally:
        monkeypatch.undo()
        configure_log()


def test_the_password_is_never_shown(pg_log, pg_url):
    shown = [repr(llmkit.calls), str(llmkit.calls._store()), repr(llmkit.calls._store())]
    assert all("***" in text and PASSWORD not in text for text in shown), shown
    llmkit.completion(model="demo/echo", messages=USER_MESSAGE, api_key=PASSWORD, extra_body={"password": PASSWORD})
    llmkit.calls.flush()
    rows = query(pg_url, "SELECT row_to_json(c)::text FROM llmkit.calls c")
    assert len(rows) == 1 and PASSWORD not in rows[0][0]


def bad_urls(server):
    port = free_port()  # nothing listens there
    return {
        "wrong password": (server.url(password="Wr0ng-pass"), "password authentication failed", "Wr0ng-pass"),
        "missing database": (server.url("no_such_db"), 'database "no_such_db" does not exist', PASSWORD),
        "nothing listening": (f"postgresql://llmkit:{PASSWORD}@127.0.0.1:{port}/x", "is the server running", PASSWORD),
        "bad percent escape": (
            f"postgresql://llmkit:pa%zzss@127.0.0.1:{server.port}/x",
            "write the URL as postgresql://",
            "pa%zzss",
        ),
        "bad port": ("postgresql://llmkit:hunter22@127.0.0.1:port/x", "write the URL as postgresql://", "hunter22"),
        "not postgres": ("mysql://llmkit:hunter22@127.0.0.1/x", "is not a PostgreSQL URL", "hunter22"),
    }


@pytest.mark.parametrize(
    "case",
    ["wrong password", "missing database", "nothing listening", "bad percent escape", "bad port", "not postgres"],
)
def test_bad_urls_give_one_clear_error_with_the_password_masked(postgres_server, case):
    url, expected, secret = bad_urls(postgres_server)[case]
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with pytest.raises(LogStoreError) as info:
                configure_log(url=url)
        message = str(info.value)
        assert expected in message and secret not in message, message
        assert "***" in message or "@" not in url
        error = info.value  # one error, not a chain of them
        assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)
        (warning,) = [str(w.message) for w in caught]  # one warning: where calls go meanwhile
        assert warning.startswith(message) and "calls-spill-" in warning and secret not in warning
        with pytest.raises(LogStoreError) as again:  # readers get the same error
            llmkit.calls.records()
        assert str(again.value) == message
    finally:
        configure_log()
        recorder._warned.clear()


def test_a_process_started_with_a_bad_url_warns_once_and_readers_get_the_error(postgres_server):
    code = """
import llmkit
for _ in range(3):
    llmkit.completion(model="demo/echo", messages=[{"role": "user", "content": "hi"}])
llmkit.calls.flush()
try:
    llmkit.calls.records()
except llmkit.calllog.LogStoreError as exc:
    print("reader:", exc)
"""
    env = {**os.environ, "LLMKIT_LOG_URL": postgres_server.url(password="Wr0ng-pass")}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("RuntimeWarning") == 1 and "Meanwhile calls are written to" in done.stderr
    assert "llmkit logs import" in done.stderr
    assert "reader: cannot use the call log's PostgreSQL database postgresql://llmkit:***@" in done.stdout
    assert "check the user and password" in done.stdout
    assert "Wr0ng-pass" not in done.stdout + done.stderr


def test_an_analyst_role_reads_and_adds_but_may_not_clear_the_log(pg_log, pg_url, postgres_server):
    """The roles docs/team.md suggests: SELECT and INSERT on the llmkit schema's tables."""
    import psycopg

    llmkit.completion(model="demo/echo", messages=USER_MESSAGE, source="proxy")
    llmkit.calls.flush()
    name = f"analyst_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {name} LOGIN PASSWORD 'an4lyst-pw'")
        conn.execute(f"GRANT USAGE ON SCHEMA llmkit TO {name}")
        conn.execute(f"GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA llmkit TO {name}")
    configure_log(url=pg_url.replace(f"llmkit:{PASSWORD}@", f"{name}:an4lyst-pw@"))
    llmkit.completion(model="demo/echo", messages=USER_MESSAGE)
    records = llmkit.calls.records()
    assert [r["source"] for r in records] == ["proxy", "python"]
    llmkit.calls.annotate(records[0]["call_id"], "vote", "best")
    with pytest.raises(LogStoreError, match="permission denied for table calls; this user may not do that"):
        llmkit.calls.clear()
    assert len(llmkit.calls.records()) == 2


def test_a_user_who_may_not_create_the_schema_is_told_the_fix(pg_url):
    import psycopg

    name = f"plain_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {name} LOGIN PASSWORD 'pl4in-pw'")
    try:
        with pytest.raises(LogStoreError) as info, pytest.warns(RuntimeWarning, match="Meanwhile calls are written"):
            configure_log(url=pg_url.replace(f"llmkit:{PASSWORD}@", f"{name}:pl4in-pw@"))
    finally:
        configure_log()
    message = str(info.value)
    assert "permission denied for database" in message and "CREATE SCHEMA llmkit AUTHORIZATION" in message
    assert "pl4in-pw" not in message


def test_import_llmkit_loads_no_psycopg():
    code = "import sys, llmkit; print([m for m in ('psycopg', 'psycopg_pool') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# -- the proxy's config -------------------------------------------------------------------------------------------
def test_the_proxy_config_log_url_sends_proxy_calls_to_postgres(pg_url, tmp_path, monkeypatch):
    import httpx
    from proxy_support import running_server, write_config

    monkeypatch.setenv("TEAM_LOG_URL", pg_url)
    config = write_config(tmp_path, """
        model_list:
          - model_name: echo
            litellm_params: {model: demo/echo}
        llmkit_settings:
          log_url: os.environ/TEAM_LOG_URL
    """)  # fmt: skip
    try:
        with running_server(config) as url:
            for i in range(5):
                reply = httpx.post(f"{url}/v1/chat/completions", json={"model": "echo", "messages": [
                    {"role": "user", "content": f"q{i}"}]})  # fmt: skip
                assert reply.status_code == 200
        assert log_mode() == "postgres"
        llmkit.calls.flush()
        # a chat's prompt is not stored: llmkit.call_prompt derives it in SQL, for a team's own queries
        rows = query(
            pg_url, "SELECT source, llmkit.call_prompt(prompt, messages) FROM llmkit.calls ORDER BY started_at"
        )
        assert rows == [("proxy", f"q{i}") for i in range(5)]
    finally:
        configure_log()


def test_a_proxy_config_with_a_bad_log_url_is_refused_naming_the_key(postgres_server, tmp_path):
    from proxy_support import write_config

    from llmkit.proxy import ConfigError, load_config

    config = write_config(tmp_path, f"""
        model_list:
          - model_name: echo
            litellm_params: {{model: demo/echo}}
        llmkit_settings:
          log_url: {postgres_server.url(password="Wr0ng-pass")}
    """)  # fmt: skip
    try:
        with pytest.raises(ConfigError) as info:
            load_config(config)
    finally:
        configure_log()
    message = str(info.value)
    assert "llmkit_settings.log_url" in message and "password authentication failed" in message
    assert "Wr0ng-pass" not in message and "***" in message


def test_json_columns_are_json_text_a_team_can_query(pg_log, pg_url):
    llmkit.completion(model="demo/echo", messages=USER_MESSAGE, metadata={"team": "search"}, temperature=0.2)
    llmkit.calls.flush()
    (row,) = query(
        pg_url, "SELECT metadata::jsonb ->> 'team', params::jsonb -> 'temperature', messages FROM llmkit.calls"
    )
    assert row[:2] == ("search", 0.2) and json.loads(row[2]) == USER_MESSAGE


def test_records_written_by_sqlite_import_unchanged(pg_url, tmp_path):
    """The import path (encoded SQLite rows) stores what the writer path stores."""
    from llmkit.calllog.sqlite import SQLiteStore
    from llmkit.calllog.transfer import import_sqlite_log

    records = varied_records()
    lite = SQLiteStore(tmp_path / "calls.db")
    lite.write(records)
    lite.annotate([(records[0]["call_id"], "vote", '"best"', "g", "python", 1.5)])
    lite.close()
    store = open_store(pg_url)
    try:
        result = import_sqlite_log(tmp_path / "calls.db", store)
        assert (result.calls, result.present, result.annotations) == (6, 0, 1)
        assert records_of(store.read(Filters())) == records
        again = import_sqlite_log(tmp_path / "calls.db", store)
        assert (again.calls, again.present, again.annotations) == (0, 6, 0)
        assert store.read_annotations() == [(records[0]["call_id"], "vote", '"best"', "g", "python", 1.5)]
    finally:
        store.close()
    with sqlite3.connect(tmp_path / "calls.db") as db:  # read, never changed
        assert db.execute("SELECT count(*) FROM calls").fetchone() == (6,)


# -- full-text search --------------------------------------------------------------------------------------------
def ask(*prompts, answer=None):
    for prompt in prompts:
        content = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
        llmkit.completion(model="demo/echo", messages=content, mock_response=answer or f"re: {prompt}")


def test_search_finds_words_of_prompts_and_responses_newest_first(pg_log, pg_url):
    ask("the quick brown fox", "lazy dogs sleep all day")
    ask("a fox and two dogs", answer="nothing in common")  # the prompt alone holds the words: derived in SQL
    assert [r["prompt"] for r in pg_log.search("fox dogs")] == ["a fox and two dogs"]
    assert [r["prompt"] for r in pg_log.search("fox")] == ["a fox and two dogs", "the quick brown fox"]
    assert [r["prompt"] for r in pg_log.search("COMMON")] == ["a fox and two dogs"]  # and the response's
    ask([{"role": "system", "content": "zebra rules"}, {"role": "user", "content": [
        {"type": "text", "text": "look at"}, {"type": "image_url", "image_url": {"url": "x"}},
        {"type": "text", "text": "this okapi"}]}], answer="ok")  # fmt: skip
    assert [r["prompt"] for r in pg_log.search("okapi look")] == ["look at this okapi"]  # text parts, joined
    assert pg_log.search("zebra") == []  # a system message is not the prompt
    llmkit.image_generation(model="demo/image", prompt="a lighthouse at dusk")
    assert [r["kind"] for r in pg_log.search("lighthouse")] == ["image"]  # a stored prompt
    assert pg_log.search('"unbalanced -quote: AND') == []  # words are words, never query syntax
    ask("it's a fox_den")
    assert [r["prompt"] for r in pg_log.search("it's DEN")] == ["it's a fox_den"]
    assert len(pg_log.search("fox", n=1)) == 1
    pg_log.clear()
    assert pg_log.search("fox") == []


MESSAGES = [
    [{"role": "user", "content": "first"}, {"role": "assistant", "content": "a"}, {"role": "user", "content": "last"}],
    [{"role": "system", "content": "only a system message"}],
    [{"role": "user", "content": "asked"}, {"role": "assistant", "content": "answered last"}],
    [{"content": "no role is a user"}],
    [{"role": "", "content": "an empty role too"}],
    [{"role": "user", "content": [{"type": "text", "text": "one"}, {"type": "image_url"}, {"text": "two"}]}],
    [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}],
    [{"role": "user", "content": ""}, {"role": "user"}],
    [{"role": "user", "content": None}],
    [{"role": "user", "content": "earlier"}, "not a message"],
    [],
    "a string, not a list",
    {"role": "user", "content": "a dict, not a list"},
]


@pytest.fixture(scope="module")
def migrated_url(postgres_server):
    """A database with llmkit's tables and functions, shared by tests that only read."""
    url = postgres_server.create_database(f"t_{uuid.uuid4().hex[:12]}")
    open_store(url).close()
    return url


@pytest.mark.parametrize("messages", MESSAGES, ids=range(len(MESSAGES)))
def test_the_prompt_derived_in_sql_is_the_one_python_derives(migrated_url, messages):
    from llmkit.calllog.record import prompt_of
    from llmkit.calllog.store import encode_json

    pg_url = migrated_url
    (derived,) = query(pg_url, "SELECT llmkit.call_prompt(NULL, %s)", encode_json(messages))[0]
    assert derived == prompt_of(messages)
    assert query(pg_url, "SELECT llmkit.call_prompt('stored', %s)", encode_json(messages)) == [("stored",)]


def test_search_reads_the_index_and_a_huge_answer_is_still_logged(pg_log, pg_url):
    words = " ".join(f"w{i:07d}" for i in range(200_000))  # 1.8 MB of distinct words: past a tsvector's limit
    ask("an enormous answer", answer=words)
    ask("a small one")
    assert [r["prompt"] for r in pg_log.search("enormous")] == ["an enormous answer"]
    assert [r["prompt"] for r in pg_log.search("w0000001")] == ["an enormous answer"]  # its beginning is searched
    with psycopg_connect(pg_url) as conn:
        conn.execute("SET enable_seqscan = off")
        plan = "\n".join(row[0] for row in conn.execute(
            "EXPLAIN SELECT seq FROM llmkit.calls WHERE llmkit.call_words(prompt, messages, response)"
            " @@ plainto_tsquery('simple'::regconfig, 'small') ORDER BY seq DESC LIMIT 20"))  # fmt: skip
    assert "calls_words" in plan, plan


def test_llmkit_logs_search_on_postgres(pg_log, capsys):
    from llmkit.cli import main

    ask("where is the lighthouse", answer="over there")
    ask("nothing here")
    assert main(["logs", "search", "lighthouse", "--json"]) == 0
    assert [r["prompt"] for r in json.loads(capsys.readouterr().out)] == ["where is the lighthouse"]


def psycopg_connect(url):
    import psycopg

    return psycopg.connect(url)
