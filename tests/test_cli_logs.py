"""The log outside Python: `llmkit logs` (table, filters, --json, --csv), `llmkit logs search` over a
real SQLite file with its FTS5 index, `llmkit logs path`, `llmkit logs off|on`, `llmkit cache stats`,
and the session_id / conversation_id columns they and the notebook filter by."""

import csv
import io
import json
import os
import sqlite3
import subprocess
import sys
import time

import pytest

import llmkit
from llmkit.calllog import search, sqlite
from llmkit.cli import main


def ask(*prompts, model="demo/echo", **kwargs):
    for prompt in prompts:
        llmkit.completion(model, [{"role": "user", "content": prompt}], **kwargs)
    llmkit.calls.flush()


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # the table fits long texts to the terminal's width


def cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# -- the new columns ------------------------------------------------------------------------------------
def test_calls_carry_this_session_and_their_conversation(log):
    ask("alone")
    ask("in a thread", conversation_id="t1")
    records = log.records()
    assert {r["session_id"] for r in records} == {llmkit.calls.session_id}
    assert [r["conversation_id"] for r in records] == [None, "t1"]
    assert [r["prompt"] for r in log.records(conversation_id="t1")] == ["in a thread"]
    assert len(log.records(session_id="someone-else")) == 0
    assert list(log.to_dataframe(last=5, session_id=llmkit.calls.session_id)["prompt"]) == ["alone", "in a thread"]


def test_the_session_id_can_be_given(tmp_path):
    code = "import llmkit; print(llmkit.calls.session_id)"
    env = {**os.environ, "LLMKIT_SESSION_ID": "batch-7", "LLMKIT_LOG": "memory"}
    assert subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).stdout == "batch-7\n"


def test_a_log_from_before_the_new_columns_is_migrated(tmp_path):
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE llmkit_migrations (name TEXT PRIMARY KEY, applied_at REAL)")
    for name, sql in sqlite.MIGRATIONS[:4]:
        db.executescript(sql)
        db.execute("INSERT INTO llmkit_migrations VALUES (?, ?)", (name, 0))
    db.execute("INSERT INTO calls (call_id, started_at, model, status) VALUES ('old', 1, 'demo/echo', 'ok')")
    db.commit()
    db.close()
    store = sqlite.SQLiteStore(path)
    from llmkit.calllog.store import Filters

    columns = store.read(Filters())
    assert columns["call_id"] == ["old"] and columns["session_id"] == [None] and columns["conversation_id"] == [None]
    store.close()


# -- search ----------------------------------------------------------------------------------------------
def test_search_builds_its_index_on_first_use_and_keeps_it_in_step(log):
    ask("the quick brown fox", "lazy dogs sleep all day", "a fox and two dogs")
    path = log._store().path
    tables = {row[0] for row in sqlite3.connect(path).execute("SELECT name FROM sqlite_master")}
    assert "calls_fts" not in tables  # a log never searched has no index
    assert [r["prompt"] for r in log.search("fox dogs")] == ["a fox and two dogs"]
    assert [r["prompt"] for r in log.search("fox")] == ["a fox and two dogs", "the quick brown fox"]  # newest first
    ask("another fox, written after the index")  # the trigger indexes new rows
    assert len(log.search("fox")) == 3 and log.search("written after")[0]["response"].startswith("another fox")
    assert log.search('"unbalanced -quote: AND') == []  # words are words, never FTS syntax errors
    ask("it's a fox_den")
    assert [r["prompt"] for r in log.search("it's DEN")] == ["it's a fox_den"]  # cut as the index cuts them
    assert len(log.search("fox", n=1)) == 1
    log.clear()  # the delete trigger empties the index too
    assert log.search("fox") == []
    assert sqlite.SEARCH_MIGRATION == search.MIGRATION[0]
    sqlite.SQLiteStore(path).close()  # a log with the index still opens


@pytest.mark.parametrize("indexed", [True, False], ids=["fts5", "scan"])
def test_search_finds_words_only_in_a_chat_prompt(log, monkeypatch, indexed):
    """A chat's prompt is derived from its messages, not stored: search derives it the same way."""
    if not indexed:
        monkeypatch.setattr(search, "_ensure_index", lambda db: False)
    answer = {"role": "user", "content": "ignored"}
    llmkit.completion("demo/echo", [{"role": "user", "content": "an albatross"}], mock_response="no bird here")
    llmkit.completion(
        "demo/echo",
        [{"role": "system", "content": "be brief"}, answer, {"role": "assistant", "content": "..."},
         {"role": "user", "content": [{"type": "text", "text": "a pelican"},
                                      {"type": "image_url", "image_url": {"url": "x"}}]}],
        mock_response="still no bird",
    )  # fmt: skip
    with pytest.raises(llmkit.BadRequestError):  # refused, and logged with its odd messages: the trigger copes
        llmkit.completion(
            "demo/echo", ["not a message", 42, {"role": "user", "content": {"odd": 1}}], mock_response="x"
        )
    assert [r["response"] for r in log.search("albatross")] == ["no bird here"]
    assert [r["response"] for r in log.search("pelican")] == ["still no bird"]
    assert log.search("ignored") == []  # an earlier user message is not the prompt
    if indexed:
        log.clear()  # the delete trigger takes the derived prompts out again
        assert log.search("pelican") == [] and log.search("albatross") == []


def test_search_without_fts5_scans_and_says_so(log, monkeypatch):
    ask("needle in a haystack", "just hay")
    monkeypatch.setattr(search, "_ensure_index", lambda db: False)  # as on a SQLite built without FTS5
    assert [r["prompt"] for r in log.search("needle")] == ["needle in a haystack"]
    assert [r["prompt"] for r in log.search("100%")] == []  # LIKE's wildcards are escaped


def test_search_on_the_memory_log_and_bad_searches(log):
    from llmkit.calllog import configure_log

    configure_log("memory")
    ask("in memory only", "other")
    assert [r["prompt"] for r in llmkit.calls.search("MEMORY")] == ["in memory only"]
    with pytest.raises(ValueError, match="search for some words"):
        llmkit.calls.search("  ")
    with pytest.raises(ValueError, match="limit must be a whole number"):
        llmkit.calls.search("x", n=0)


# -- the command -----------------------------------------------------------------------------------------
def test_logs_prints_the_newest_calls_as_a_table(log, capsys):
    ask("first question", "second question")
    with pytest.raises(llmkit.InternalServerError):
        ask("it fails", model="demo/fail")
    code, out, _ = cli(capsys, "logs", "-n", "2")
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:5] == ["time", "(UTC)", "model", "status", "ms"]
    assert len(lines) == 3 and "second question" in lines[1] and "demo/fail" in lines[2]
    assert "demo/fail failed, as it always does" in lines[2]  # a failure shows its error
    _, out, _ = cli(capsys, "logs", "--status", "error")
    assert len(out.splitlines()) == 2
    _, out, _ = cli(capsys, "logs", "--model", "demo/echo", "--json")
    assert [r["prompt"] for r in json.loads(out)] == ["first question", "second question"]
    assert json.loads(out)[0]["session_id"] == llmkit.calls.session_id
    _, out, _ = cli(capsys, "logs", "--csv", "-n", "1")
    (row,) = list(csv.DictReader(io.StringIO(out)))
    assert row["model"] == "demo/fail" and json.loads(row["messages"]) == [{"role": "user", "content": "it fails"}]
    assert row["started_at"].endswith("+00:00")


def test_logs_since(log, capsys):
    ask("recent")
    store = log._store()
    store.write([{"call_id": "ancient", "started_at": time.time() - 3 * 86400, "model": "demo/echo", "status": "ok"}])
    _, out, _ = cli(capsys, "logs", "--since", "1d", "--json")
    assert [r["prompt"] for r in json.loads(out)] == ["recent"]
    _, out, _ = cli(capsys, "logs", "--since", "1w", "--json")
    assert len(json.loads(out)) == 2
    _, out, _ = cli(capsys, "logs", "--since", "2000-01-01", "--json")
    assert len(json.loads(out)) == 2
    code, _, err = cli(capsys, "logs", "--since", "last tuesday")
    assert code == 2 and "--since 'last tuesday' is neither an ISO date/time" in err


def test_logs_search_path_and_cache_stats(log, capsys):
    ask("searching for the lighthouse", "nothing here")
    _, out, _ = cli(capsys, "logs", "search", "lighthouse")
    assert "searching for the lighthouse" in out and "nothing here" not in out
    _, out, _ = cli(capsys, "logs", "search", "lighthouse", "--json")
    assert [r["prompt"] for r in json.loads(out)] == ["searching for the lighthouse"]
    _, out, _ = cli(capsys, "logs", "path")
    assert out.strip() == str(log._store().path)
    _, out, _ = cli(capsys, "cache", "stats")
    assert out.startswith(f"response cache: off, kept in {log._store().path}\n0 answer(s)")


def test_logs_off_and_on_are_remembered_by_a_new_process(tmp_path):
    env = {**os.environ, "LLMKIT_CONFIG_DIR": str(tmp_path / "cfg"), "LLMKIT_LOG_PATH": str(tmp_path / "calls.db")}

    def llmkit_cli(*argv):
        return subprocess.run([sys.executable, "-m", "llmkit.cli", *argv], env=env, capture_output=True, text=True)

    off = llmkit_cli("logs", "off")
    assert off.returncode == 0 and off.stdout == f"call log off (saved in {tmp_path / 'cfg' / 'settings.toml'})\n"
    code = "import llmkit; llmkit.completion('demo/echo', [{'role': 'user', 'content': 'unlogged'}])"
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    listed = llmkit_cli("logs")
    assert listed.returncode == 2 and "the call log is off; `llmkit logs on` turns it back on" in listed.stderr
    assert llmkit_cli("logs", "on").returncode == 0
    subprocess.run([sys.executable, "-c", code.replace("unlogged", "logged")], env=env, check=True)
    assert [r["prompt"] for r in json.loads(llmkit_cli("logs", "--json").stdout)] == ["logged"]
