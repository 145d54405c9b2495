"""%%llm --chat NAME kept in the call log: continued by a new Chats (as after a restart), one thread per
model, --reset that survives a restart, %llm chats and %llm chat NAME --show. The real kernel restart
is in test_notebook_restart.py."""

from notebook_support import SlowStream, cell

import llmkit
from llmkit.notebook.chats import Chats


def magics_of(shell):
    return shell.magics_manager.registry["LLMMagics"]


def restart(shell):
    """What a restart leaves: nothing in memory, only the log."""
    magics_of(shell).chats = Chats()


def sent(handler):
    return [[(m["role"], m["content"]) for m in call["messages"]] for call in handler.calls]


def test_a_chat_is_logged_and_continued_after_a_restart(shell, log):
    handler = SlowStream(words=1, delay=0)
    llmkit.custom_provider_map = [{"provider": "slow", "custom_handler": handler}]
    cell(shell, "slow/m --chat trip -s 'You plan trips.'", "Two days in Lisbon?")
    cell(shell, "slow/m --chat trip", "And a third?")
    rows = log.records(conversation_id="trip")
    assert [r["prompt"] for r in rows] == ["Two days in Lisbon?", "And a third?"]
    assert {r["session_id"] for r in rows} == {llmkit.calls.session_id}
    assert "conversation_id" not in handler.calls[0]["optional_params"]  # a control parameter

    restart(shell)
    cell(shell, "slow/m --chat trip", "A fourth?")
    assert sent(handler)[-1] == [
        ("system", "You plan trips."),
        ("user", "Two days in Lisbon?"),
        ("assistant", "w0 "),
        ("user", "And a third?"),
        ("assistant", "w0 "),
        ("user", "A fourth?"),
    ]


def test_several_models_keep_one_thread_each(shell, log):
    cell(shell, "demo/echo demo/lorem --chat duo --max-tokens 3 -p tokens_per_second=0", "first")
    cell(shell, "demo/echo --chat duo", "second")
    restart(shell)
    cell(shell, "demo/echo demo/lorem --chat duo --max-tokens 3 -p tokens_per_second=0 -o both", "third")
    echo, lorem = (log.last(1, conversation_id="duo", model=m)[0]["messages"] for m in ("demo/echo", "demo/lorem"))
    assert [m["content"] for m in echo] == ["first", "first", "second", "second", "third"]
    assert [m["role"] for m in lorem] == ["user", "assistant", "user"] and lorem[-1]["content"] == "third"


def test_reset_starts_over_and_survives_a_restart(shell, log, capfd):
    cell(shell, "demo/echo --chat r", "one")
    shell.run_line_magic("llm", "chat r --reset")
    assert "chat r starts over for demo/echo" in capfd.readouterr().out
    restart(shell)
    cell(shell, "demo/echo --chat r", "two")
    assert [m["content"] for m in log.last(1, conversation_id="r")[0]["messages"]] == ["two"]
    cell(shell, "demo/echo --chat r --reset -s fresh", "three")  # the cell option does the same
    assert [m["content"] for m in log.last(1, conversation_id="r")[0]["messages"]] == ["fresh", "three"]
    messages = cell(shell, "demo/echo --reset", "x")
    assert messages == [] and "--reset starts a chat over: use it with --chat NAME" in capfd.readouterr().err


def test_chats_lists_them_and_show_prints_the_transcript(shell, log, capfd):
    cell(shell, "demo/echo --chat alpha -s 'Be brief.'", "hello alpha")
    cell(shell, "demo/echo --chat beta", "hello beta")
    cell(shell, "demo/echo --chat beta", "again beta")
    table = shell.run_line_magic("llm", "chats")
    assert list(table.index[:2]) == ["beta", "alpha"]  # newest first
    assert table.loc["beta", "calls"] == 2 and table.loc["beta", "last_prompt"] == "again beta"
    assert table.loc["alpha", "models"] == "demo/echo"
    start = len(shell.display_pub.messages)
    restart(shell)
    shell.run_line_magic("llm", "chat alpha --show")
    shown = shell.display_pub.messages[start][2]["text/markdown"]
    assert shown == ("### demo/echo\n\n**system:** Be brief.\n\n**user:** hello alpha\n\n**assistant:** hello alpha")
    shell.run_line_magic("llm", "chat nobody --show")
    assert "chat nobody has no turns yet" in capfd.readouterr().out


def test_with_the_log_off_a_chat_lasts_the_session(shell, log):
    from llmkit.calllog import configure_log

    configure_log("off")
    handler = SlowStream(words=1, delay=0)
    llmkit.custom_provider_map = [{"provider": "slow", "custom_handler": handler}]
    cell(shell, "slow/m --chat mem", "one")
    cell(shell, "slow/m --chat mem", "two")
    assert sent(handler)[-1] == [("user", "one"), ("assistant", "w0 "), ("user", "two")]
    assert list(shell.run_line_magic("llm", "chats").index) == ["mem"]
