"""%llm cache through a real IPython InteractiveShell: modes, stats, clearing, and errors."""

import pytest
from cache_support import counting
from notebook_support import cell

import llmkit


def final_text(messages):
    return messages[-1][2]["text/plain"]


def test_a_cell_run_again_is_answered_from_the_cache(shell, log, capsys):
    handler = counting(words=3)
    shell.run_cell("%llm cache use")
    assert capsys.readouterr().out == "response cache: use\n" and llmkit.cache.mode() == "use"
    first = final_text(cell(shell, "count/m", "Tell me a story"))
    again = final_text(cell(shell, "count/m", "Tell me a story"))
    assert handler.calls == {"astreaming": 1}
    assert first.startswith("w0.1 w1.1 w2.1 ") and again.startswith("w0.1 w1.1 w2.1 ")
    rows = log.records(source="magic")
    assert [r["cache_hit"] for r in rows] == [False, True]

    shell.run_cell("%llm cache stats")
    stats = capsys.readouterr().out
    assert f"response cache: use, kept in {log._store()}" in stats
    assert "1 answer(s)" in stats and "1 hits, 1 misses, hit rate 50%" in stats

    shell.run_cell("%llm cache replay")
    missed = final_text(cell(shell, "count/m", "Something never asked"))
    assert "CacheMissError" in missed and "count/m" in missed and "'Something never asked'" in missed
    assert handler.calls == {"astreaming": 1}

    shell.run_cell("%llm cache clear count/m")
    assert "removed 1 cached answer(s)" in capsys.readouterr().out
    shell.run_cell("%llm cache off")
    assert llmkit.cache.mode() == "off"


@pytest.mark.parametrize(
    "line, says",
    [
        ("cache sometimes", "unknown %llm cache command 'sometimes'; usage: %llm cache use|replay|refresh|off"),
        ("cache use now", "unknown %llm cache command 'use now'"),
        ("cache clear echo", "clear(model=...) takes a 'provider/model' string"),
    ],
)
def test_bad_cache_commands_give_one_readable_line(shell, log, capfd, line, says):
    result = shell.run_cell(f"%llm {line}")
    err = capfd.readouterr().err
    assert result.error_in_exec is None and err.startswith("llmkit: ") and says in err and err.count("\n") == 1
    assert llmkit.cache.mode() == "off"


def test_help_lists_the_cache_commands(shell, capsys):
    shell.run_cell("%llm help")
    assert "%llm cache MODE" in capsys.readouterr().out


def test_the_leaderboard_counts_cache_hits_apart(log):
    from llmkit.widgets import Leaderboard

    handler = counting()
    llmkit.configure_cache("use")
    for _ in range(3):
        llmkit.completion("count/m", [{"role": "user", "content": "hi"}])
    board = Leaderboard()
    try:
        (row,) = board.rows
        assert (row["model"], row["calls"], row["cache_hits"]) == ("count/m", 1, 2) and handler.total == 1
    finally:
        board.close()
