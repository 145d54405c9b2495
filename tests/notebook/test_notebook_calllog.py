"""The notebook surfaces and the call log: every %%llm and widget call is logged once with its source,
%llm log / summary read it, votes are annotations, and the Leaderboard follows it."""

import os
import signal
import threading
import time

import pytest
from notebook_support import SlowStream, cell

import llmkit
from llmkit.calllog import configure_log, recorder
from llmkit.notebook.tables import LOG_COLUMNS
from llmkit.widgets import CompareWidget, Leaderboard


def wait_until(predicate, limit=10.0):
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.01)


def rows(log, *columns):
    df = log.to_dataframe()
    assert df["call_id"].is_unique
    return sorted(tuple(row) for row in df[list(columns)].astype(object).itertuples(index=False))


def interrupt_soon(seconds=0.4):
    timer = threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    return timer


def two_slow_providers():
    first, second = SlowStream(words=1000, delay=0.01), SlowStream(words=1000, delay=0.01)
    llmkit.custom_provider_map = [
        {"provider": "a", "custom_handler": first},
        {"provider": "b", "custom_handler": second},
    ]


# -- %%llm -------------------------------------------------------------------------------------------
def test_every_magic_call_is_logged_once_with_source_magic(shell, log):
    cell(shell, "demo/echo demo/fail demo/image -p n=2", "logged")
    cell(shell, "demo/echo --no-stream", "whole")
    assert rows(log, "model", "kind", "source", "status") == [
        ("demo/echo", "chat", "magic", "ok"),
        ("demo/echo", "stream", "magic", "ok"),
        ("demo/fail", "stream", "magic", "error"),
        ("demo/image", "image", "magic", "ok"),
    ]
    df = log.to_dataframe()
    assert set(df.loc[df["model"] == "demo/echo", "response"]) == {"logged", "whole"}
    assert df.loc[(df["kind"] == "stream") & (df["status"] == "ok"), "ttft_ms"].notna().all()
    assert df.loc[df["model"] == "demo/fail", "error_type"].item() == "InternalServerError"
    assert df.loc[df["model"] == "demo/image", "prompt"].item() == "logged"


def test_an_interrupted_cell_logs_its_streams_as_cancelled(shell, log):
    two_slow_providers()
    timer = interrupt_soon()
    result = shell.run_cell("%%llm a/m b/m\ngo")
    timer.join()
    assert isinstance(result.error_in_exec, KeyboardInterrupt)
    assert rows(log, "model", "source", "status") == [("a/m", "magic", "cancelled"), ("b/m", "magic", "cancelled")]
    assert all(text.startswith("w0 w1 ") for text in log.to_dataframe()["response"])


def test_dry_runs_and_mistakes_log_nothing(shell, log):
    cell(shell, "demo/echo --dry-run")
    cell(shell, "demo/echo --bogus")
    cell(shell, "nowhere/x")
    assert len(log) == 0


# -- %llm log / summary ----------------------------------------------------------------------------------
def test_llm_log_shows_the_last_calls_as_a_dataframe(shell, log):
    for i in range(12):
        llmkit.completion(model="demo/echo", messages=[{"role": "user", "content": f"call {i}"}])
    shown = shell.run_cell("%llm log").result
    assert list(shown.columns) == list(LOG_COLUMNS)
    assert list(shown["prompt"]) == [f"call {i}" for i in range(2, 12)]  # the default 10, oldest first
    last_two = shell.run_cell("%llm log 2").result
    assert list(last_two["response"]) == ["call 10", "call 11"]
    assert last_two["latency_ms"].dtype == float and str(last_two["started_at"].dt.tz) == "UTC"


def test_llm_log_shows_votes(shell, log):
    w = CompareWidget(["demo/echo", "demo/lorem"], "which?", tokens_per_second=0)
    w.run()
    w.vote("tie")
    shown = shell.run_cell("%llm log").result
    assert [a["vote"] for a in shown["annotations"]] == ["tie", "tie"]


def test_llm_summary_is_the_logs_summary(shell, log):
    cell(shell, "demo/echo demo/fail")
    cell(shell, "demo/echo")
    shown = shell.run_cell("%llm summary").result
    assert shown.equals(log.summary())
    assert shown.loc["demo/echo", "calls"] == 2 and shown.loc["demo/fail", "error_rate"] == 1.0


@pytest.mark.parametrize(
    "line, says",
    [
        ("log ten", "%llm log takes how many calls to show, e.g. %llm log 20; got 'ten'"),
        ("log 0", "got '0'"),
        ("log 5 more", "usage: %llm log [N] [--all]"),
        ("summary demo/echo", "usage: %llm summary [--all]"),
    ],
)
def test_bad_log_commands_give_one_readable_line(shell, log, capfd, line, says):
    result = shell.run_cell(f"%llm {line}")
    err = capfd.readouterr().err
    assert result.result is None and result.error_in_exec is None
    assert err.startswith("llmkit: ") and says in err and err.count("\n") == 1


def test_log_commands_say_when_the_log_is_off(shell, log, capfd):
    configure_log("off")
    for line in ("log", "summary"):
        assert shell.run_cell(f"%llm {line}").result is None
        assert "the call log is off (LLMKIT_LOG=off, or `llmkit logs off`)" in capfd.readouterr().err


def test_help_lists_log_and_summary(shell, capsys):
    shell.run_line_magic("llm", "help")
    out = capsys.readouterr().out
    assert "%llm log [N]" in out and "%llm summary" in out


# -- CompareWidget ------------------------------------------------------------------------------------
def test_every_widget_call_is_logged_once_with_source_widget(log):
    w = CompareWidget(["demo/echo", "demo/fail", "demo/image"], "from the widget")
    w.run()
    assert rows(log, "model", "kind", "source", "status", "run_id") == [
        ("demo/echo", "stream", "widget", "ok", w.comparison_id),
        ("demo/fail", "stream", "widget", "error", w.comparison_id),
        ("demo/image", "image", "widget", "ok", w.comparison_id),
    ]
    first = w.comparison_id
    w.run()
    assert len(log) == 6 and w.comparison_id != first


def test_stopped_panes_are_logged_as_cancelled(log):
    two_slow_providers()
    w = CompareWidget(["a/m", "b/m"], "go")
    w.start()
    wait_until(lambda: w.running and all(w.results.get(m) for m in ("a/m", "b/m")))
    w.stop()
    wait_until(lambda: not w.running)
    assert rows(log, "model", "source", "status") == [("a/m", "widget", "cancelled"), ("b/m", "widget", "cancelled")]
    assert list(w.to_dataframe()["response"].str.startswith("w0 ")) == [True, True]


def test_an_interrupted_run_logs_its_panes_as_cancelled(log):
    two_slow_providers()
    w = CompareWidget(["a/m", "b/m"], "go")
    timer = interrupt_soon()
    with pytest.raises(KeyboardInterrupt):
        w.run()
    timer.join()
    wait_until(lambda: len(log) == 2)  # the panes are cancelled on llmkit's loop, just after
    assert rows(log, "model", "source", "status") == [("a/m", "widget", "cancelled"), ("b/m", "widget", "cancelled")]


def test_votes_are_recorded_in_the_log_as_annotations(log):
    w = CompareWidget(["demo/echo", "demo/lorem"], "which?", tokens_per_second=0)
    w.run()
    w._panes[1].best.click()  # lorem is best
    annotations = log.annotations()
    assert set(annotations["group_id"]) == {w.comparison_id} and set(annotations["source"]) == {"widget"}
    assert set(annotations["name"]) == {"vote"}
    assert sorted(annotations["value"]) == ["best", "not_best"]
    assert list(w.to_dataframe()["vote"]) == ["not_best", "best"]
    w._tie.click()
    assert list(w.to_dataframe()["vote"]) == ["tie", "tie"]  # the latest vote counts
    w._all_bad.click()
    assert list(w.to_dataframe()["vote"]) == ["all_bad", "all_bad"]
    assert len(log.annotations()) == 6  # every vote is kept


def test_votes_wait_for_the_comparison_to_finish(log):
    two_slow_providers()
    w = CompareWidget(["a/m", "b/m"], "go")
    w.start()
    wait_until(lambda: w.running)
    w._tie.click()
    assert "still running" in w.status and w.votes == []
    w.stop()
    wait_until(lambda: not w.running)
    w.vote("all_bad")
    assert list(w.to_dataframe()["vote"]) == ["all_bad", "all_bad"]


def test_with_the_log_off_votes_stay_in_the_widget(log):
    configure_log("off")
    w = CompareWidget(["demo/echo"], "unlogged")
    w.run()
    w.vote("best", "demo/echo")
    assert len(w.votes) == 1 and "the call log is off" in w.status
    with pytest.raises(RuntimeError, match="the call log is off"):
        w.to_dataframe()


# -- Leaderboard --------------------------------------------------------------------------------------
def test_the_leaderboard_counts_calls_and_votes_per_model(log):
    for verdict in (("best", "demo/echo"), ("best", "demo/echo"), ("best", "demo/lorem"), ("tie",), ("all_bad",)):
        w = CompareWidget(["demo/echo", "demo/lorem"], "rank us", tokens_per_second=0)
        w.run()
        w.vote(*verdict)
    with pytest.raises(llmkit.InternalServerError):
        llmkit.completion(model="demo/fail", messages=[{"role": "user", "content": "x"}])
    board = Leaderboard()
    try:
        table = {row["model"]: row for row in board.rows}
        assert [row["model"] for row in board.rows] == ["demo/echo", "demo/lorem", "demo/fail"]  # most wins first
        assert table["demo/fail"]["error_rate"] == 1.0 and table["demo/fail"]["wins"] == 0
        assert {k: table["demo/echo"][k] for k in ("calls", "wins", "losses", "ties", "all_bad")} == {
            "calls": 5,
            "wins": 2,
            "losses": 1,
            "ties": 1,
            "all_bad": 1,
        }
        assert (table["demo/lorem"]["wins"], table["demo/lorem"]["losses"]) == (1, 2)
        assert table["demo/echo"]["error_rate"] == 0.0 and table["demo/echo"]["cost_usd"] is None
        assert "<th>demo/echo</th>" in board._table.value and "<td>100%</td>" in board._table.value
    finally:
        board.close()


def ask(model):
    return llmkit.completion(model=model, messages=[{"role": "user", "content": "hi"}])


def test_the_leaderboard_refreshes_after_calls_and_votes(log):
    board = Leaderboard(interval=0.05)
    try:
        assert board.rows == [] and "no calls in the log yet" in board._table.value
        ask("demo/echo")
        wait_until(lambda: [row["calls"] for row in board.rows] == [1])
        with pytest.raises(llmkit.InternalServerError):
            ask("demo/fail")
        wait_until(lambda: len(board.rows) == 2)
        assert {row["model"]: row["error_rate"] for row in board.rows} == {"demo/echo": 0.0, "demo/fail": 1.0}
        w = CompareWidget(["demo/echo", "demo/fail"], "vote")
        w.run()
        w.vote("best", "demo/echo")  # a vote makes no call, but refreshes the board too
        wait_until(lambda: board.rows[0]["wins"] == 1 and board.rows[1]["losses"] == 1)
    finally:
        board.close()


def test_the_leaderboard_filters_the_log(log):
    ask("demo/echo")
    CompareWidget(["demo/lorem"], "x", tokens_per_second=0).run()
    board = Leaderboard(source="widget")
    try:
        assert [row["model"] for row in board.rows] == ["demo/lorem"]
        board.filters = {}
        assert [row["model"] for row in board.rows] == ["demo/echo", "demo/lorem"]
    finally:
        board.close()
    with pytest.raises(TypeError, match="unknown filter"):
        Leaderboard(colour="red")


def test_leaderboard_refreshes_are_throttled_and_stop_when_closed(log):
    board = Leaderboard(interval=3600)
    refreshed = []
    board.observe(lambda change: refreshed.append(change["new"]), "rows")
    for _ in range(5):
        ask("demo/echo")
    log.flush()  # the callbacks have run: one refresh is due, an hour after the last one
    assert refreshed == []
    board.refresh()  # asked for, it happens now
    assert [row["calls"] for row in refreshed[-1]] == [5]
    board.close()
    assert all(callback is not board._on_call for _, callback in recorder.callbacks)
    ask("demo/echo")
    log.flush()
    assert board._timer is None and len(refreshed) == 1
