"""One PostgreSQL log shared by processes: concurrent writers, restarts, migrations, spill files, proxies."""

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from postgres_server import PASSWORD, free_port
from proxy_support import llmkit_command, wait_until_serving, write_config

import llmkit
from llmkit.calllog import configure_log, recorder

WRITER = """
import json, sys, threading, llmkit
name, per_thread = sys.argv[1], int(sys.argv[2])
ids = []
def work(thread):
    with llmkit.calls.capture() as run:
        for i in range(per_thread):
            llmkit.completion(model="demo/echo", messages=[{"role": "user", "content": f"{name}-{thread}-{i}"}])
    ids.extend(record["call_id"] for record in run.records)
threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
for thread in threads: thread.start()
for thread in threads: thread.join()
print(json.dumps(ids))
"""


@pytest.fixture
def pg_url(postgres_server):
    return postgres_server.create_database(f"t_{uuid.uuid4().hex[:12]}")


def query(url, sql, *args):
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute(sql, args).fetchall()


def execute(url, sql):
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql)


def env_with(**values):
    return {**os.environ, **{key: str(value) for key, value in values.items()}}


def test_processes_writing_one_log_under_load_lose_and_duplicate_nothing(pg_url):
    env = env_with(LLMKIT_LOG_URL=pg_url)
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, f"w{n}", "500"], env=env, stdout=subprocess.PIPE, text=True)
        for n in range(4)
    ]
    made = []
    for writer in writers:
        out, _ = writer.communicate(timeout=120)
        assert writer.returncode == 0
        made += json.loads(out)
    assert len(made) == len(set(made)) == 4 * 4 * 500
    stored = [row[0] for row in query(pg_url, "SELECT call_id FROM llmkit.calls")]
    assert len(stored) == len(made) and set(stored) == set(made)
    (prompts,) = query(pg_url, "SELECT count(DISTINCT llmkit.call_prompt(prompt, messages)) FROM llmkit.calls")
    assert prompts == (len(made),)


def test_a_database_restarted_during_a_load_loses_nothing(pg_url, postgres_server):
    configure_log(url=pg_url)
    made: list[str] = []
    stop = threading.Event()

    def load() -> None:
        with llmkit.calls.capture() as run:
            i = 0
            while not stop.is_set():
                llmkit.completion(model="demo/echo", messages=[{"role": "user", "content": f"q{i}"}])
                i += 1
                time.sleep(0.0005)
        made.extend(record["call_id"] for record in run.records)

    try:
        with pytest.warns(RuntimeWarning, match="cannot write to PostgreSQL") as caught:
            thread = threading.Thread(target=load)
            thread.start()
            time.sleep(0.7)
            postgres_server.restart(down_for=1.0)  # the server goes away with calls in flight, and comes back
            time.sleep(0.7)
            stop.set()
            thread.join()
            records = llmkit.calls.records()
        assert len(made) > 500
        assert len(records) == len(made) and {r["call_id"] for r in records} == set(made)
        assert query(pg_url, "SELECT count(*), count(DISTINCT call_id) FROM llmkit.calls") == [(len(made), len(made))]
        messages = [str(w.message) for w in caught]
        assert any("keeping up to" in m for m in messages) and not any(PASSWORD in m for m in messages)
        assert not any("calls-not-sent" in m for m in messages)  # the buffer held them all
    finally:
        configure_log()
        recorder._warned.clear()


MIGRATE = """
import sys, time, llmkit
import llmkit.calllog.postgres  # loaded before the start, so that all reach the database together
time.sleep(max(0.0, float(sys.argv[1]) - time.time()))
llmkit.configure_log(url=sys.argv[2])
llmkit.completion(model="demo/echo", messages=[{"role": "user", "content": "hi"}])
print("ready")
"""


def test_processes_starting_together_apply_the_migrations_once(pg_url):
    from llmkit.calllog.postgres import MIGRATIONS

    start_at = time.time() + 2.5
    starters = [
        subprocess.Popen(
            [sys.executable, "-c", MIGRATE, str(start_at), pg_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    for starter in starters:
        out, err = starter.communicate(timeout=60)
        assert starter.returncode == 0 and out.strip() == "ready", err
    rows = query(pg_url, "SELECT name, count(*) FROM llmkit.migrations GROUP BY name ORDER BY name")
    assert rows == [(name, 1) for name, _ in MIGRATIONS]
    assert query(pg_url, "SELECT count(*) FROM llmkit.calls") == [(8,)]


def test_openers_released_together_migrate_once_under_the_advisory_lock(pg_url):
    """Threads released by a barrier, each on its own connection: closer together than processes get."""
    from llmkit.calllog.pgdb import Database
    from llmkit.calllog.postgres import MIGRATIONS

    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def open_database() -> None:
        barrier.wait()
        try:
            Database(pg_url, MIGRATIONS).close()
        except BaseException as exc:
            errors.append(exc)

    for _ in range(3):
        threads = [threading.Thread(target=open_database) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        rows = query(pg_url, "SELECT name, count(*) FROM llmkit.migrations GROUP BY name ORDER BY name")
        assert rows == [(name, 1) for name, _ in MIGRATIONS]
        execute(pg_url, "DROP SCHEMA llmkit CASCADE")  # and again, on an empty database


# -- the buffer, the spill file, and llmkit logs import ---------------------------------------------------
def test_while_the_database_is_down_calls_wait_and_the_oldest_spill_to_a_named_file(pg_url, postgres_server, tmp_path):
    from llmkit.calllog.postgres import PostgresStore
    from llmkit.calllog.sqlite import SQLiteStore
    from llmkit.calllog.store import Filters

    store = PostgresStore(pg_url, buffer_size=40, spill_dir=tmp_path)
    configure_log(store)
    postgres_server.stop()
    try:
        with pytest.warns(RuntimeWarning) as caught:
            for i in range(100):
                llmkit.completion(model="demo/echo", messages=[{"role": "user", "content": f"p{i}"}])
            recorder.drain()
        (spill,) = tmp_path.glob("calls-not-sent-*.db")
        named = [str(w.message) for w in caught if str(spill) in str(w.message)]
        assert len(named) == 1 and f"llmkit logs import {spill}" in named[0]
        assert all(PASSWORD not in str(w.message) for w in caught)
        assert store._writer.waiting == 40
    finally:
        postgres_server.start()
    deadline = time.monotonic() + 15  # the writer reconnects by itself, with backoff
    while query(pg_url, "SELECT count(*) FROM llmkit.calls") != [(40,)]:
        assert time.monotonic() < deadline, "the waiting calls were not written once the database was back"
        time.sleep(0.1)
    assert [
        r[0] for r in query(pg_url, "SELECT llmkit.call_prompt(prompt, messages) FROM llmkit.calls ORDER BY started_at")
    ] == [f"p{i}" for i in range(60, 100)]
    spilled = SQLiteStore(spill)
    assert spilled.read(Filters())["prompt"] == [f"p{i}" for i in range(60)]  # the oldest
    spilled.close()
    configure_log()
    recorder._warned.clear()


EXITS_WHILE_DOWN = """
import sys, llmkit
llmkit.configure_log(url=sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()  # the test stops the database now
for i in range(30):
    llmkit.completion(model="demo/echo", messages=[{"role": "user", "content": f"late-{i}"}])
"""


def test_calls_unsent_at_exit_are_saved_and_llmkit_logs_import_loads_them_once(pg_url, postgres_server, tmp_path):
    env = env_with(LLMKIT_LOG_PATH=tmp_path / "calls.db")
    process = subprocess.Popen(
        [sys.executable, "-c", EXITS_WHILE_DOWN, pg_url],
        env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout.readline().strip() == "ready"
        postgres_server.stop()
        _, err = process.communicate("go\n", timeout=60)
    finally:
        postgres_server.start()
    assert process.returncode == 0, err
    (spill,) = tmp_path.glob("calls-not-sent-*.db")
    assert err.count(str(spill)) == 2 and f"llmkit logs import {spill}" in err and PASSWORD not in err

    command = [*llmkit_command(), "logs", "import", str(spill)]
    first = subprocess.run(command, env=env_with(LLMKIT_LOG_URL=pg_url), capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("imported 30 calls and 0 annotations") and PASSWORD not in first.stdout
    again = subprocess.run([*command, "--url", pg_url], capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "imported 0 calls (30 were there already)" in again.stdout
    prompts = sorted(row[0] for row in query(pg_url, "SELECT llmkit.call_prompt(prompt, messages) FROM llmkit.calls"))
    assert prompts == sorted(f"late-{i}" for i in range(30))


def test_llmkit_logs_import_says_what_is_wrong(pg_url, postgres_server, tmp_path, monkeypatch, capsys):
    import sqlite3

    from llmkit.cli import main

    foreign = tmp_path / "other.db"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE things (x)")
    monkeypatch.delenv("LLMKIT_LOG_URL", raising=False)
    cases = [
        ([str(tmp_path / "missing.db"), "--url", pg_url], "does not exist"),
        ([str(foreign), "--url", pg_url], "not an llmkit call log"),
        ([str(foreign), "--url", postgres_server.url(password="Wr0ng-pass")], "password authentication failed"),
        ([str(foreign)], "name the database: --url postgresql://... or LLMKIT_LOG_URL"),
    ]
    for args, expected in cases:
        status = main(["logs", "import", *args])
        err = capsys.readouterr().err
        assert status in (1, 2) and err.startswith("llmkit logs import: ") and expected in err, (args, err)
        assert "Wr0ng-pass" not in err


# -- several proxies and a notebook ---------------------------------------------------------------------------
def start_proxy(config: Path, env: dict, *args: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [*llmkit_command(), "serve", "--config", str(config), "--host", "127.0.0.1", "--port", str(port), *args]
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    wait_until_serving(process, url)
    return process, url


# proxies that write the team's log, named by an environment variable as a real config would
TEAM_PROXY = """
    model_list:
      - model_name: echo
        litellm_params: {model: demo/echo}
    llmkit_settings:
      log_url: os.environ/TEAM_LOG_URL
"""


NOTEBOOK = """
import llmkit
df = llmkit.calls.to_dataframe()
print(len(df), sorted(set(df["source"])), df["call_id"].nunique(), len(llmkit.calls.to_dataframe(last=10)))
print(llmkit.calls.summary()["calls"].to_dict())
"""


def test_proxies_on_several_ports_share_one_log_that_a_notebook_reads(pg_url, tmp_path):
    config = write_config(tmp_path, TEAM_PROXY)
    env = env_with(TEAM_LOG_URL=pg_url, LLMKIT_LOG_PATH=tmp_path / "unused.db")
    proxies = [start_proxy(config, env) for _ in range(2)]
    client = httpx.Client(timeout=30)  # one client: making one per request costs more than the request
    try:

        def ask(i: int) -> int:
            body = {"model": "echo", "messages": [{"role": "user", "content": f"r{i}"}]}
            return client.post(proxies[i % 2][1] + "/v1/chat/completions", json=body).status_code

        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(ask, range(400))) == {200}
        deadline = time.monotonic() + 20
        while query(pg_url, "SELECT count(*) FROM llmkit.calls") != [(400,)]:
            assert time.monotonic() < deadline, query(pg_url, "SELECT count(*) FROM llmkit.calls")
            time.sleep(0.1)
        notebook = subprocess.run(
            [sys.executable, "-c", NOTEBOOK], env=env_with(LLMKIT_LOG_URL=pg_url), capture_output=True, text=True
        )
        assert notebook.returncode == 0, notebook.stderr
        assert notebook.stdout.split("\n")[:2] == ["400 ['proxy'] 400 10", "{'demo/echo': 400}"]
        assert query(pg_url, "SELECT count(DISTINCT llmkit.call_prompt(prompt, messages)) FROM llmkit.calls") == [
            (400,)
        ]
        assert not (tmp_path / "unused.db").exists()
    finally:
        client.close()
        for process, _ in proxies:
            process.terminate()
            process.wait(timeout=30)


def test_two_proxy_workers_under_load_write_every_call_once(pg_url, tmp_path):
    """``llmkit serve --workers 2``: two processes on one port, one PostgreSQL log (issue 10, section 4)."""
    config = write_config(tmp_path, TEAM_PROXY)
    process, url = start_proxy(config, env_with(TEAM_LOG_URL=pg_url), "--workers", "2")
    answered: list[str] = []
    lock = threading.Lock()

    def load(thread: int, n: int) -> None:
        with httpx.Client(timeout=30) as client:  # a connection of its own: the workers share them out
            for i in range(n):
                prompt = f"t{thread}-{i}"
                body = {"model": "echo", "messages": [{"role": "user", "content": prompt}]}
                assert client.post(url + "/v1/chat/completions", json=body).status_code == 200
                with lock:
                    answered.append(prompt)

    try:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(load, range(8), [150] * 8))
        workers = 0
        for extra in range(200):  # each worker has answered some (its own session_id), on fresh connections
            workers = query(pg_url, "SELECT count(DISTINCT session_id) FROM llmkit.calls")[0][0]
            if workers == 2:
                break
            load(100 + extra, 1)
        process.terminate()  # SIGTERM: both workers drain, and write what they logged
        assert process.wait(timeout=60) == 0, process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
    assert workers == 2
    rows = query(pg_url, "SELECT call_id, llmkit.call_prompt(prompt, messages), source FROM llmkit.calls")
    assert len(rows) == len(answered) >= 1200  # none lost
    assert len({row[0] for row in rows}) == len(rows)  # none twice
    assert sorted(row[1] for row in rows) == sorted(answered) and {row[2] for row in rows} == {"proxy"}
