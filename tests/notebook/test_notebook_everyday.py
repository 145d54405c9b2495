"""Errors explained, answers that display themselves, attachments, math, the cached footer, and views
that start from this session's calls — through a real IPython shell."""

import base64

import pytest
from cache_support import counting
from notebook_support import SlowStream, cell

import llmkit
from llmkit.notebook.attachments import MAX_BYTES


def final(messages):
    return messages[-1][2]


def register(handler, name="slow"):
    llmkit.custom_provider_map = [{"provider": name, "custom_handler": handler}]
    return handler


# -- errors explained -----------------------------------------------------------------------------------
def test_explain_sends_the_failing_cell_and_its_traceback_and_proposes_a_cell(shell):
    handler = register(SlowStream(words=1, delay=0))
    result = shell.run_cell("def half(x):\n    return x / 0\nhalf(4)", store_history=True)
    number = result.execution_count
    assert isinstance(result.error_in_exec, ZeroDivisionError)
    assert "ZeroDivisionError: division by zero" in shell.user_ns["Err"][number]
    assert "line 2, in half" in shell.user_ns["Err"][number]
    assert "interactiveshell.py" not in shell.user_ns["Err"][number]  # IPython's own frames are left out

    cell(shell, "slow/m --explain", "Is it the zero?")
    system, user = handler.calls[-1]["messages"]
    assert system["role"] == "system" and "fenced ```python code block" in system["content"]
    assert (
        f"This notebook cell [{number}] failed:\n\n```python\ndef half(x):\n    return x / 0\nhalf(4)\n```"
        in (user["content"])
    )
    assert "ZeroDivisionError: division by zero" in user["content"] and user["content"].endswith("Is it the zero?")
    assert shell.rl_next_input == "w0"  # the code format: the answer's code, proposed as the next cell


def test_fix_and_err_references(shell, capfd):
    shell.run_cell("undefined_name + 1", store_history=True)
    number = shell.execution_count - 1
    shell.run_line_magic("llm", "default demo/echo")
    capfd.readouterr()
    start = len(shell.display_pub.messages)
    shell.run_line_magic("llm", "fix")
    answer = final(shell.display_pub.messages[start:])["text/markdown"]
    assert "NameError: name 'undefined_name' is not defined" in answer and "What is the cause" in answer
    assert shell.rl_next_input.startswith("undefined_name + 1")  # echo's answer: the first fenced block

    done = final(cell(shell, "demo/echo", f"Why: {{Err[{number}]}}"))
    assert "NameError: name 'undefined_name' is not defined" in done["text/markdown"]


def test_explain_without_an_error_says_so(shell, capfd):
    magics = shell.magics_manager.registry["LLMMagics"]
    magics.errors.last = None
    import sys

    for name in ("last_exc", "last_value"):
        if hasattr(sys, name):
            delattr(sys, name)
    assert cell(shell, "demo/echo --explain") == []
    assert "no cell has raised an error yet" in capfd.readouterr().err


# -- reprs ----------------------------------------------------------------------------------------------
def shown(shell, value):
    data, _ = shell.display_formatter.format(value)
    return data


def test_a_response_shows_as_markdown_with_its_footer(shell):
    response = llmkit.completion("demo/echo", [{"role": "user", "content": "**bold** answer"}])
    data = shown(shell, response)
    assert data["text/markdown"].startswith("**bold** answer\n\n*echo · ")  # the model the handler named
    assert data["text/markdown"].endswith(" tokens*")
    assert data["text/plain"].startswith("**bold** answer\n\necho · ")
    assert repr(response).startswith("ModelResponse(id='chatcmpl-")  # repr() stays pydantic's


def test_a_stream_kept_with_out_shows_itself(shell):
    cell(shell, "demo/lorem --max-tokens 4 -p tokens_per_second=0 -o kept", "x")
    data = shown(shell, shell.user_ns["kept"])
    assert data["text/markdown"].count(" ") >= 3 and data["text/markdown"].endswith("4 tokens*")


def test_images_show_as_images_and_embeddings_as_a_summary(shell):
    one = llmkit.ImageResponse(data=[{"b64_json": base64.b64encode(PNG).decode()}])
    assert base64.b64decode(shown(shell, one)["image/png"]) == PNG
    two = llmkit.image_generation("two", "demo/image", n=2, size="8x8")
    assert shown(shell, two)["text/html"].count("<img ") == 2
    assert "[image 1: inline PNG]" in shown(shell, two)["text/plain"]
    vectors = llmkit.embedding("demo/embed", ["a", "b", "c"])
    data = shown(shell, vectors)
    assert data["text/plain"].startswith("3 embeddings of ") and "\n[0]: [" in data["text/plain"]
    assert len(data["text/plain"]) < 200


# -- attachments -----------------------------------------------------------------------------------------
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def test_attach_adds_image_parts(shell, tmp_path):
    handler = register(SlowStream(words=1, delay=0))
    (tmp_path / "dot.png").write_bytes(PNG)
    cell(shell, f"slow/m --attach {tmp_path / 'dot.png'} --attach https://images.example/cat.jpg", "What is this?")
    content = handler.calls[-1]["messages"][-1]["content"]
    assert content == [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(PNG).decode()}},
        {"type": "image_url", "image_url": {"url": "https://images.example/cat.jpg"}},
    ]
    plan = final(cell(shell, f"slow/m --dry-run --attach {tmp_path / 'dot.png'}", "and this?"))["text/plain"]
    assert "[image: data:image/png;base64, 118 characters]" in plan


@pytest.mark.parametrize(
    "name, content, says",
    [
        ("missing.png", None, "no such file"),
        ("notes.txt", b"text", "not an image by its name (text/plain)"),
        ("huge.png", b"0" * (MAX_BYTES + 1), "is over the 20 MiB"),
    ],
)
def test_bad_attachments_are_refused_before_any_call(shell, tmp_path, capfd, name, content, says):
    handler = register(SlowStream(words=1, delay=0))
    if content is not None:
        (tmp_path / name).write_bytes(content)
    assert cell(shell, f"slow/m --attach {tmp_path / name}", "x") == []
    assert says in capfd.readouterr().err and handler.calls == []


# -- math, the cached footer ---------------------------------------------------------------------------
def test_math_format_renders_latex(shell):
    body = r"Euler: \(e^{i\pi} + 1 = 0\) and \[x_1^2\] for $5 and $6"
    done = final(cell(shell, "demo/echo -f math --no-interpolate", body))
    assert done["text/markdown"].startswith("Euler: $e^{i\\pi} + 1 = 0$ and $$x_1^2$$ for $5 and $6")
    columns = final(cell(shell, "demo/echo demo/echo -f math --no-interpolate", r"see $a_b$ and *c*"))
    assert "see $a_b$ and <em>c</em>" in columns["text/html"]  # math kept whole, Markdown rendered


def test_a_cached_answer_says_cached_in_the_footer(shell, log):
    counting(words=3)
    llmkit.configure_cache("use")
    first = final(cell(shell, "count/m", "same"))["text/plain"].splitlines()[-1]
    again = final(cell(shell, "count/m", "same"))["text/plain"].splitlines()[-1]
    assert "cached" not in first and "tokens/s" in first
    assert again == "count/m · cached · 3 tokens"


# -- this session's calls -------------------------------------------------------------------------------
def test_log_and_summary_start_from_this_session(shell, log):
    from llmkit.calllog import sqlite

    llmkit.completion("demo/echo", [{"role": "user", "content": "mine"}])
    llmkit.calls.flush()
    other = {"call_id": "other-process", "started_at": 2e9, "model": "demo/lorem", "status": "ok"}
    sqlite.SQLiteStore(log._store().path).write([{**other, "session_id": "another-kernel"}])
    mine = shell.run_line_magic("llm", "log")
    assert list(mine["model"]) == ["demo/echo"]
    assert list(shell.run_line_magic("llm", "log --all")["call_id"])[-1] == "other-process"
    assert list(shell.run_line_magic("llm", "summary").index) == ["demo/echo"]
    assert set(shell.run_line_magic("llm", "summary --all").index) == {"demo/echo", "demo/lorem"}

    from llmkit.widgets import Leaderboard

    boards = [Leaderboard(), Leaderboard(all=True)]
    try:
        assert [row["model"] for row in boards[0].rows] == ["demo/echo"]
        assert {row["model"] for row in boards[1].rows} == {"demo/echo", "demo/lorem"}
    finally:
        for board in boards:
            board.close()
