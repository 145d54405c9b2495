"""The response cache: modes, keys, every kind of call, streams replayed, the log's cache_hit rows."""

import asyncio
import itertools
import sqlite3
import time
import uuid

import pytest
from cache_support import USER, counting, dumps, text

import llmkit
from llmkit.types.utils import Message


@pytest.fixture
def use(log):
    """The SQLite log in a fresh file, the cache beside it in use mode."""
    llmkit.configure_cache("use")
    return log


@pytest.fixture(params=["sqlite", "postgres"])
def use_any(request, log):
    """The cache in use mode beside the log: a fresh SQLite file, or a fresh PostgreSQL database."""
    if request.param == "postgres":
        server = request.getfixturevalue("postgres_server")
        llmkit.configure_log(url=server.create_database(f"c_{uuid.uuid4().hex[:12]}"))
    llmkit.configure_cache("use")
    return log


# -- modes -------------------------------------------------------------------------------------------
def test_off_by_default_every_call_is_live(log):
    handler = counting()
    assert llmkit.cache.mode() == "off"
    answers = [text(llmkit.completion("count/m", USER)) for _ in range(2)]
    assert answers == ["answer 1", "answer 2"] and handler.total == 2
    assert [r["cache_hit"] for r in log.records()] == [False, False]


def test_use_answers_a_repeated_call_from_the_cache_with_the_same_response(use_any):
    handler = counting()
    first = llmkit.completion("count/m", USER)
    second = llmkit.completion("count/m", USER)
    assert handler.total == 1
    assert second.model_dump() == first.model_dump()  # the same id, created, text and usage
    assert second is not first


def test_replay_answers_only_from_the_cache_and_a_miss_names_the_model_and_prompt(use_any):
    handler = counting()
    recorded = text(llmkit.completion("count/m", USER))
    llmkit.configure_cache("replay")
    assert text(llmkit.completion("count/m", USER)) == recorded
    with pytest.raises(llmkit.CacheMissError) as caught:
        llmkit.completion("count/m", [{"role": "user", "content": "A prompt never asked before, with many more words"}])
    assert handler.total == 1
    message = str(caught.value)
    assert "count/m" in message and "prompt 'A prompt never asked before, with many more'..." in message
    assert "configure_cache('use')" in message and caught.value.status_code == 404
    failed = use_any.last()[0]
    assert failed["status"] == "error" and failed["error_type"] == "CacheMissError" and failed["cache_hit"] is False


def test_refresh_always_calls_and_overwrites_what_was_kept(use_any):
    handler = counting()
    llmkit.completion("count/m", USER)
    llmkit.configure_cache("refresh")
    assert text(llmkit.completion("count/m", USER)) == "answer 2"
    assert text(llmkit.completion("count/m", USER)) == "answer 3"
    llmkit.configure_cache("use")
    assert text(llmkit.completion("count/m", USER)) == "answer 3" and handler.total == 3


def test_the_per_call_cache_parameter_overrides_the_process_mode(use_any):
    handler = counting()
    llmkit.completion("count/m", USER)
    assert text(llmkit.completion("count/m", USER, cache=False)) == "answer 2"
    assert text(llmkit.completion("count/m", USER, cache="refresh")) == "answer 3"
    llmkit.configure_cache("off")
    assert text(llmkit.completion("count/m", USER)) == "answer 4"
    assert text(llmkit.completion("count/m", USER, cache="use")) == "answer 3"
    assert text(llmkit.completion("count/m", USER, cache="replay")) == "answer 3"
    assert handler.total == 4


def test_the_cache_parameter_never_reaches_the_handler(use):
    seen = []

    class Spy(llmkit.CustomLLM):
        def completion(self, model, messages, optional_params, **kwargs):
            seen.append(optional_params)
            return llmkit.ModelResponse(model=model, choices=[{"message": {"content": "ok"}}])

    llmkit.register_provider("spy", Spy())
    llmkit.completion("spy/m", USER, cache="refresh", sample=2, temperature=0.5)
    assert seen == [{"temperature": 0.5}]


def test_unknown_modes_are_clear_errors_listing_the_modes(use, monkeypatch):
    counting()
    with pytest.raises(ValueError, match="'off', 'use', 'replay', 'refresh'"):
        llmkit.configure_cache("sometimes")
    with pytest.raises(llmkit.BadRequestError, match="cache= must be one of 'off', 'use', 'replay', 'refresh'"):
        llmkit.completion("count/m", USER, cache="always")
    assert use.last()[0]["error_type"] == "BadRequestError"  # recorded, like any failed call
    monkeypatch.setenv("LLMKIT_CACHE", "replya")
    with pytest.raises(ValueError, match="LLMKIT_CACHE='replya' is not a cache mode"):
        llmkit.configure_cache()


def test_llmkit_cache_in_the_environment_sets_the_mode(use, monkeypatch):
    handler = counting()
    monkeypatch.setenv("LLMKIT_CACHE", "use")
    llmkit.configure_cache()  # reads the environment again, as a fresh process does at import
    assert llmkit.cache.mode() == "use"
    llmkit.completion("count/m", USER)
    llmkit.completion("count/m", USER)
    assert handler.total == 1
    monkeypatch.setenv("LLMKIT_CACHE", "replay")
    llmkit.configure_cache()
    with pytest.raises(llmkit.CacheMissError):
        llmkit.completion("count/m", [{"role": "user", "content": "new"}])


def test_a_bad_llmkit_cache_at_import_fails_every_call_with_the_fix(tmp_path):
    import subprocess
    import sys

    code = (
        "import llmkit\n"
        "try:\n    llmkit.completion('demo/echo', [{'role': 'user', 'content': 'hi'}])\n"
        "except llmkit.BadRequestError as e:\n    print(e.message)\n"
    )
    env = {"LLMKIT_CACHE": "yes please", "LLMKIT_LOG": "memory", "PATH": ""}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert "LLMKIT_CACHE='yes please' is not a cache mode; set it to one of 'off', 'use', 'replay', 'refresh'" in out


def test_a_call_the_cache_cannot_key_gets_the_dispatchers_own_error(use):
    with pytest.raises(llmkit.BadRequestError, match="image_generation needs model='provider/model'"):
        llmkit.image_generation("an otter")
    with pytest.raises(llmkit.BadRequestError, match="names no provider"):
        llmkit.completion("gpt-4o", USER)
    assert [r["status"] for r in use.records()] == ["error", "error"]


def test_mocked_and_failed_calls_are_never_kept(use):
    handler = counting(fail=[500])
    assert text(llmkit.completion("count/m", USER, mock_response="mocked")) == "mocked"
    with pytest.raises(llmkit.InternalServerError):
        llmkit.completion("count/m", USER)
    assert text(llmkit.completion("count/m", USER)) == "answer 2"  # live: neither the mock nor the error was kept
    assert text(llmkit.completion("count/m", USER, mock_response="mocked again")) == "mocked again"
    assert handler.total == 2


# -- keys ----------------------------------------------------------------------------------------------
def test_equal_calls_meet_whatever_their_spelling(use):
    handler = counting()
    llmkit.completion("count/m", [{"role": "user", "content": "hi"}], temperature=0, stop=None, top_p=1.0)
    variants = [
        dict(model="count/m", messages=[{"content": "hi", "role": "user"}], top_p=1, temperature=0.0),
        dict(model="m", custom_llm_provider="count", messages=[{"role": "user", "content": "hi", "name": None}],
             temperature=0, top_p=1),
        dict(model="count/m", messages=[Message(role="user", content="hi")], temperature=0, top_p=1, sample=0),
        # control parameters are not part of the call's identity
        dict(model="count/m", messages=[{"role": "user", "content": "hi"}], temperature=0, top_p=1, timeout=30,
             num_retries=2, metadata={"run": "x"}, source="batch", api_key="sk-other", headers={"X-A": "b"}),
    ]  # fmt: skip
    for variant in variants:
        assert text(llmkit.completion(**variant)) == "answer 1", variant
    assert handler.total == 1


def test_different_calls_never_meet(use):
    handler = counting()
    counting("other")
    base = dict(model="count/m", messages=[{"role": "user", "content": "hi"}], temperature=0)
    llmkit.completion(**base)
    different = [
        {**base, "temperature": 0.7},
        {**base, "top_p": 0.5},
        {**base, "sample": 1},
        {**base, "sample": 2},
        {**base, "model": "count/m2"},
        {**base, "messages": [{"role": "user", "content": "hi!"}]},
        {**base, "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]},
    ]
    answers = [text(llmkit.completion(**call)) for call in different]
    assert answers == [f"answer {n}" for n in range(2, 2 + len(different))]
    assert text(llmkit.completion(**{**base, "model": "other/m"})) == "answer 1"  # its own handler's first call
    llmkit.completion(**base, stream=True).text()  # a stream is another kind of call
    assert handler.calls["streaming"] == 1
    assert text(llmkit.completion(**base, sample=1)) == "answer 4"  # each sample its own entry, kept


def test_a_sample_must_be_a_whole_number(use):
    counting()
    for bad in (-1, 1.5, "2", True):
        with pytest.raises(llmkit.BadRequestError, match="sample= is which repeated sample"):
            llmkit.completion("count/m", USER, sample=bad)


def test_secrets_and_control_parameters_are_never_stored(use, tmp_path):
    handler = counting()
    llmkit.completion(
        "count/m",
        USER,
        api_key="sk-secret-AAA",
        headers={"Authorization": "Bearer sk-secret-BBB"},
        aws_secret_access_key="sk-secret-CCC",
        metadata={"marker": "meta-XYZ"},
        source="src-XYZ",
        timeout=41,
    )
    # The same call with other secrets meets it: secrets are not part of the key, not even hashed.
    llmkit.completion("count/m", USER, api_key="sk-other", aws_secret_access_key="sk-secret-DDD", source="src-XYZ")
    assert handler.total == 1
    use.flush()
    llmkit.cache.stats()  # waits for the cache's writer
    database = tmp_path / "calls.db"
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("calls.db"))
    assert b"sk-secret" not in stored and b"sk-other" not in stored
    with sqlite3.connect(database) as db:
        rows = db.execute("SELECT key, kind, model, value FROM response_cache").fetchall()
    assert len(rows) == 1 and rows[0][1:3] == ("chat", "count/m")
    assert all(marker not in str(rows) for marker in ("meta-XYZ", "src-XYZ", "41.75", "Authorization"))


# -- every kind of call ----------------------------------------------------------------------------
def test_images_and_embeddings_are_cached_sync_and_async(use_any):
    handler = counting()
    first_image = llmkit.image_generation("an otter", model="count/painter", size="256x256")
    assert llmkit.image_generation("an otter", model="count/painter", size="256x256") == first_image
    first_vectors = llmkit.embedding("count/embedder", ["one", "two"])
    assert llmkit.embedding("count/embedder", ["one", "two"]) == first_vectors

    async def again():
        image = await llmkit.aimage_generation("an otter", model="count/painter", size="256x256")
        vectors = await llmkit.aembedding("count/embedder", ["one", "two"])
        return image, vectors

    assert asyncio.run(again()) == (first_image, first_vectors)
    assert handler.calls == {"image_generation": 1, "embedding": 1}
    assert llmkit.image_generation("an otter", model="count/painter", size="512x512").data[0].url == "https://img/3.png"
    kinds = [(r["kind"], r["cache_hit"]) for r in use_any.records()]
    assert kinds == [("image", False), ("image", True), ("embedding", False), ("embedding", True),
                     ("image", True), ("embedding", True), ("image", False)]  # fmt: skip


def test_async_chat_is_cached_and_shares_entries_with_sync_calls(use):
    handler = counting()

    async def twice():
        return [await llmkit.acompletion("count/m", USER) for _ in range(2)]

    first, second = asyncio.run(twice())
    assert first.model_dump() == second.model_dump() and handler.total == 1
    assert llmkit.completion("count/m", USER).model_dump() == first.model_dump()


# -- streams -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("include_usage", [False, True])
def test_a_cached_stream_replays_the_same_chunks_in_the_same_order(use_any, include_usage):
    handler = counting(words=6)
    options = {"stream_options": {"include_usage": True}} if include_usage else {}
    live_stream = llmkit.completion("count/m", USER, stream=True, **options)
    live = list(live_stream)
    replay_stream = llmkit.completion("count/m", USER, stream=True, **options)
    replayed = list(replay_stream)
    assert handler.calls == {"streaming": 1}
    assert dumps(replayed) == dumps(live) and len(live) == 6 + 1 + include_usage  # words, finish[, usage]
    # The whole answer, usage included (the handler's, which the chunks carry only with include_usage)
    assert replay_stream.response().model_dump() == live_stream.response().model_dump()
    live_row, hit_row = use_any.records()
    assert (live_row["cache_hit"], hit_row["cache_hit"]) == (False, True)
    for name in ("response", "prompt_tokens", "completion_tokens", "tokens_estimated", "finish_reason"):
        assert hit_row[name] == live_row[name], name
    assert hit_row["completion_tokens"] == 6 and hit_row["tokens_estimated"] is False  # the handler's usage


def test_async_streams_replay_chunk_for_chunk(use):
    handler = counting(words=5)

    async def read(n):
        out = []
        for _ in range(n):
            out.append([chunk async for chunk in await llmkit.acompletion("count/m", USER, stream=True)])
        return out

    live, replayed = asyncio.run(read(2))
    assert dumps(replayed) == dumps(live) and handler.calls == {"astreaming": 1}
    assert dumps(llmkit.completion("count/m", USER, stream=True)) == dumps(live)  # sync reads the same entry


def test_a_stream_closed_early_is_not_kept(use):
    handler = counting(words=6)
    stream = llmkit.completion("count/m", USER, stream=True)
    next(iter(stream))
    stream.close()
    assert len(list(llmkit.completion("count/m", USER, stream=True))) == 7 and handler.calls["streaming"] == 2
    assert [r["status"] for r in use.records()] == ["cancelled", "ok"]


def test_replay_pace_keeps_the_recorded_gaps(use):
    counting(words=4, delay=0.15)
    list(llmkit.completion("count/m", USER, stream=True))  # 4 chunks, 0.15 s apart: 0.6 s

    def replay_seconds():
        started = time.perf_counter()
        return [time.perf_counter() - started for _ in llmkit.completion("count/m", USER, stream=True)]

    at_once = replay_seconds()
    assert at_once[-1] < 0.3  # no sleeping: half the time it took live is plenty, even on a busy machine
    llmkit.configure_cache("use", replay_pace=True)
    paced = replay_seconds()
    assert paced[0] >= 0.14 and paced[-1] >= 0.59
    assert all(later - earlier >= 0.14 for earlier, later in itertools.pairwise(paced[:4]))

    async def areplay_seconds():
        started = time.perf_counter()
        return [time.perf_counter() - started async for _ in await llmkit.acompletion("count/m", USER, stream=True)]

    assert asyncio.run(areplay_seconds())[-1] >= 0.59  # async replays keep the gaps too


# -- the call log ----------------------------------------------------------------------------------
def test_every_cached_answer_is_a_log_row_marked_cache_hit_with_no_cost(use_any):
    handler = counting(delay=0.05)
    llmkit.register_model_cost("count/m", input_cost_per_token=1e-3, output_cost_per_token=2e-3)
    for _ in range(3):
        llmkit.completion("count/m", USER)
    assert handler.total == 1
    live, *hits = use_any.records()
    assert live["cache_hit"] is False and live["latency_ms"] >= 50 and live["cost_usd"] == pytest.approx(0.015)
    for hit in hits:
        assert hit["cache_hit"] is True and hit["cost_usd"] == 0.0 and hit["status"] == "ok"
        assert hit["latency_ms"] < live["latency_ms"] and hit["tokens_per_s"] is None
        assert (hit["response"], hit["total_tokens"]) == (live["response"], live["total_tokens"])
    df = use_any.to_dataframe()
    assert df["cache_hit"].dtype == "boolean" and df["cache_hit"].tolist() == [False, True, True]


def test_summary_counts_cache_hits_apart_from_live_calls(use_any):
    counting(delay=0.02)
    for _ in range(3):
        llmkit.completion("count/m", USER)
    llmkit.completion("count/other", USER, cache="off")
    summary = use_any.summary()
    assert summary.loc["count/m", "calls"] == 1 and summary.loc["count/m", "cache_hits"] == 2
    assert summary.loc["count/other", "calls"] == 1 and summary.loc["count/other", "cache_hits"] == 0
    assert summary.loc["count/m", "latency_p50_ms"] >= 20  # the live call's latency, not the hits'
    llmkit.configure_cache("replay")
    use_any.clear()
    llmkit.completion("count/m", USER)
    only_hits = use_any.summary()
    assert only_hits.loc["count/m", "calls"] == 0 and only_hits.loc["count/m", "cache_hits"] == 1


def test_a_log_written_before_the_cache_is_upgraded_in_place(tmp_path):
    from llmkit.calllog.sqlite import MIGRATIONS

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:  # a log as the previous release left it
        db.execute("CREATE TABLE llmkit_migrations (name TEXT PRIMARY KEY, applied_at REAL)")
        for name, sql in MIGRATIONS[:2]:
            db.executescript(sql)
            db.execute("INSERT INTO llmkit_migrations VALUES (?, 0)", (name,))
        db.execute("INSERT INTO calls (call_id, started_at, model, status) VALUES ('old', 1.0, 'demo/echo', 'ok')")
    llmkit.configure_log(path=path)
    try:
        llmkit.configure_cache("use")
        handler = counting()
        llmkit.completion("count/m", USER)
        llmkit.completion("count/m", USER)
        assert handler.total == 1
        df = llmkit.calls.to_dataframe()
        assert df["cache_hit"].isna().tolist() == [True, False, False] and df["cache_hit"].tolist()[1:] == [False, True]
    finally:
        llmkit.configure_cache("off")
        llmkit.configure_log()


# -- where answers are kept ------------------------------------------------------------------------
def test_stats_and_clearing_one_model(use_any):
    counting()
    llmkit.completion("count/a", USER)
    llmkit.completion("count/a", USER)
    llmkit.completion("count/b", USER)
    stats = llmkit.cache.stats()
    assert stats["mode"] == "use" and stats["entries"] == 2 and stats["size_bytes"] > 200
    assert (stats["hits"], stats["misses"], stats["hit_rate"]) == (1, 2, pytest.approx(1 / 3))
    assert llmkit.cache.clear(model="count/a") == 1
    assert llmkit.cache.stats()["entries"] == 1
    assert text(llmkit.completion("count/b", USER)) == "answer 2"  # kept
    assert text(llmkit.completion("count/a", USER)) == "answer 3"  # gone: called again
    assert llmkit.cache.clear() == 2 and llmkit.cache.stats()["entries"] == 0
    with pytest.raises(ValueError, match="'provider/model'"):
        llmkit.cache.clear(model="a")


def test_with_the_memory_log_the_cache_is_in_memory_and_path_gives_a_file_of_its_own(tmp_path):
    handler = counting()
    llmkit.configure_log("memory")
    try:
        llmkit.configure_cache("use")
        llmkit.completion("count/m", USER)
        assert llmkit.cache.stats()["store"] == "memory"
        llmkit.configure_cache("use", path=tmp_path / "answers.db")
        llmkit.completion("count/m", USER)  # a new store: called again, kept in the file
        assert handler.total == 2 and llmkit.cache.stats()["store"] == str(tmp_path / "answers.db")
        llmkit.configure_cache("replay", path=tmp_path / "answers.db")
        assert text(llmkit.completion("count/m", USER)) == "answer 2"
    finally:
        llmkit.configure_log()


def test_the_cache_follows_the_log_to_another_file(tmp_path, log):
    handler = counting()
    llmkit.configure_cache("use")
    llmkit.completion("count/m", USER)
    llmkit.configure_log(path=tmp_path / "elsewhere.db")
    llmkit.completion("count/m", USER)
    assert handler.total == 2 and llmkit.cache.stats()["store"] == str(tmp_path / "elsewhere.db")
    with sqlite3.connect(tmp_path / "elsewhere.db") as db:
        assert db.execute("SELECT count(*) FROM response_cache").fetchone() == (1,)


def test_an_answer_that_cannot_be_read_is_asked_for_again(use, tmp_path):
    handler = counting()
    llmkit.completion("count/m", USER)
    llmkit.cache.stats()  # written
    with sqlite3.connect(tmp_path / "calls.db") as db:
        db.execute('UPDATE response_cache SET value = \'{"choices": [{"message": 7}]}\'')  # no longer readable
    llmkit.configure_log(path=tmp_path / "calls.db")  # a fresh start: nothing remembered in memory
    with pytest.warns(RuntimeWarning, match="holds an answer it cannot read"):
        assert text(llmkit.completion("count/m", USER)) == "answer 2"
    assert text(llmkit.completion("count/m", USER)) == "answer 2" and handler.total == 2  # kept again


def test_with_the_postgres_log_answers_are_kept_in_its_database_on_its_connections(log, postgres_server):
    import psycopg
    from postgres_server import PASSWORD

    from llmkit.cache import backend

    url = postgres_server.create_database(f"c_{uuid.uuid4().hex[:12]}")
    llmkit.configure_log(url=url)
    llmkit.configure_cache("use")
    handler = counting()
    llmkit.completion("count/m", USER, api_key="sk-secret-AAA", metadata={"marker": "meta-XYZ"})
    log_store = llmkit.calls._store()
    assert backend.current_store().database is log_store.database  # one pool, one set of errors
    stats = llmkit.cache.stats()
    assert stats["entries"] == 1 and stats["store"] == str(log_store) and PASSWORD not in stats["store"]
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT kind, model, value FROM llmkit.response_cache").fetchall()
    assert [row[:2] for row in rows] == [("chat", "count/m")] and "answer 1" in rows[0][2]
    assert "sk-secret" not in str(rows) and "meta-XYZ" not in str(rows)
    llmkit.configure_log(url=url)  # as a new process would start: nothing remembered in memory
    llmkit.configure_cache("replay")
    assert text(llmkit.completion("count/m", USER)) == "answer 1" and handler.total == 1


@pytest.mark.filterwarnings("ignore:llmkit's call log cannot write")  # its calls wait meanwhile
def test_while_the_postgres_database_is_away_lookups_miss_and_calls_go_on(log, postgres_server, monkeypatch):
    from llmkit.cache import postgres

    monkeypatch.setattr(postgres, "RETRY_SECONDS", 2.0)
    llmkit.configure_log(url=postgres_server.create_database(f"c_{uuid.uuid4().hex[:12]}"))
    llmkit.configure_cache("use")
    handler = counting()
    llmkit.completion("count/m", USER)
    assert llmkit.cache.stats()["entries"] == 1  # written
    postgres_server.stop()
    try:
        with pytest.warns(RuntimeWarning, match="response cache cannot be read, so calls are made"):
            started = time.monotonic()
            answers = [text(llmkit.completion("count/m", [{"role": "user", "content": f"q{i}"}])) for i in range(20)]
        assert answers == [f"answer {i}" for i in range(2, 22)]
        assert time.monotonic() - started < postgres.RETRY_SECONDS  # one lookup waited, the others did not
    finally:
        postgres_server.start()
    time.sleep(postgres.RETRY_SECONDS)  # then lookups ask the database again
    assert text(llmkit.completion("count/m", USER)) == "answer 1" and handler.total == 21
    assert len(llmkit.calls.records()) == 22  # the calls made meanwhile waited, and are written
