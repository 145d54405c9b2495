"""%%llm and %llm through a real IPython InteractiveShell."""

import itertools
import os
import re
import signal
import threading
import time

import pytest
from notebook_support import SlowStream, cell

import llmkit
from llmkit.notebook import aliases
from llmkit.notebook.display import UPDATE_INTERVAL


def final(messages):
    assert messages[-1][0] == "update_display_data"
    return messages[-1][2]


def register(handler, name="slow"):
    llmkit.custom_provider_map = [{"provider": name, "custom_handler": handler}]
    return handler


# -- the message sequence ---------------------------------------------------------------------------
def test_a_display_then_progressive_updates_then_the_final_render(shell):
    register(SlowStream(words=40, delay=0.01))
    messages = cell(shell, "slow/m")
    kinds = [kind for kind, _, _ in messages]
    assert kinds[0] == "display_data" and set(kinds[1:]) == {"update_display_data"}
    assert len({display_id for _, display_id, _ in messages}) == 1 and messages[0][1]
    live = [data["text/plain"] for _, _, data in messages[1:-1]]
    assert len(live) >= 2, "the answer should appear progressively"
    assert all(later.startswith(earlier) for earlier, later in itertools.pairwise(live))
    assert len(live[0]) < len(live[-1])
    done = final(messages)
    answer = "".join(f"w{i} " for i in range(40))
    assert done["text/markdown"].startswith(answer)
    footer = done["text/plain"].splitlines()[-1]
    assert footer.startswith("slow/m · ") and "first token" in footer and "40 tokens" in footer and "tokens/s" in footer


def test_updates_stay_within_the_throttle(shell):
    register(SlowStream(words=150, delay=0.002))
    started = time.perf_counter()
    messages = cell(shell, "slow/m")
    elapsed = time.perf_counter() - started
    updates = [m for m in messages if m[0] == "update_display_data"]
    # at most one update per interval, plus the final render
    assert len(updates) <= elapsed / UPDATE_INTERVAL + 2
    assert len(messages) < 150 / 2


def test_a_fast_stream_of_5000_chunks_sends_few_messages(shell):
    started = time.perf_counter()
    messages = cell(shell, "demo/lorem --max-tokens 5000 -p tokens_per_second=0")
    elapsed = time.perf_counter() - started
    assert len(messages) <= elapsed / UPDATE_INTERVAL + 3
    assert "5000 tokens" in final(messages)["text/plain"]


def test_several_models_stream_side_by_side_and_a_failure_stays_in_its_column(shell):
    messages = cell(shell, "demo/echo demo/fail demo/lorem -p tokens_per_second=400", "compare me")
    done = final(messages)
    html = done["text/html"]
    assert html.startswith('<div style="display:flex') and html.count("flex:1 1 0") == 3
    assert "compare me" in html
    assert "InternalServerError" in html and "demo/fail failed" in html
    plain = done["text/plain"]
    assert "== demo/lorem ==" in plain and "48 tokens" in plain
    # while streaming, the columns were HTML too
    assert all("text/html" in data for _, _, data in messages[:-1])


def test_models_stream_concurrently(shell):
    first, second = SlowStream(words=30, delay=0.02), SlowStream(words=30, delay=0.02)
    llmkit.custom_provider_map = [
        {"provider": "a", "custom_handler": first},
        {"provider": "b", "custom_handler": second},
    ]
    cell(shell, "a/m b/m")
    # each stream sent words while the other was still sending: they overlapped in time
    assert first.sent_at[0] < second.sent_at[-1] and second.sent_at[0] < first.sent_at[-1]
    assert len(first.sent_at) == len(second.sent_at) == 30


# -- options -----------------------------------------------------------------------------------------
def test_options_reach_the_handler(shell):
    handler = register(SlowStream(words=2, delay=0))
    line = '-s "Be brief." slow/m -t 0.3 --max-tokens 50 -p top_p=0.9 -p \'stop=["x"]\' -p tag=plain -p flag=true'
    cell(shell, line, "Q")
    call = handler.calls[-1]
    assert call["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q"}]
    params = call["optional_params"]
    assert {k: params[k] for k in ("temperature", "max_tokens", "top_p", "stop", "tag", "flag")} == {
        "temperature": 0.3,
        "max_tokens": 50,
        "top_p": 0.9,
        "stop": ["x"],
        "tag": "plain",
        "flag": True,
    }
    assert "source" not in params  # a control parameter: it never reaches the handler


def test_no_stream_calls_acompletion_and_shows_one_render(shell):
    handler = register(SlowStream())
    messages = cell(shell, "slow/m --no-stream")
    done = final(messages)
    assert "whole answer" in done["text/markdown"]
    assert len(handler.calls) == 1 and len(messages) == 2
    assert " tokens" in done["text/plain"].splitlines()[-1]  # estimated: this handler reports no usage


def test_out_stores_the_response_or_a_dict_of_them(shell):
    cell(shell, "demo/echo -o answer", "store me")
    assert isinstance(shell.user_ns["answer"], llmkit.ModelResponse)
    assert shell.user_ns["answer"].choices[0].message.content == "store me"
    assert shell.user_ns["answer"].usage.completion_tokens > 0
    cell(shell, "demo/echo demo/fail --out both", "two")
    both = shell.user_ns["both"]
    assert both["demo/echo"].choices[0].message.content == "two"
    assert isinstance(both["demo/fail"], llmkit.InternalServerError)


@pytest.mark.parametrize(
    "fmt, mime, expected",
    [
        ("text", "text/plain", "hello world"),
        ("html", "text/html", "<b>hello world</b>"),
        ("markdown", "text/markdown", "**hello world**"),
    ],
)
def test_formats(shell, fmt, mime, expected):
    body = {"text": "hello world", "html": "<b>hello world</b>", "markdown": "**hello world**"}[fmt]
    done = final(cell(shell, f"demo/echo -f {fmt}", body))
    assert done[mime].startswith(expected)
    assert "text/markdown" not in done or fmt == "markdown"


def test_json_format_parses_the_answer(shell):
    done = final(cell(shell, "demo/echo --format json", '```json\n{"a": [1, 2], "b": null}\n```'))
    assert done["application/json"] == {"a": [1, 2], "b": None}
    bad = final(cell(shell, "demo/echo -f json", "not json at all"))
    assert "not valid JSON" in bad["text/plain"]


def test_code_format_puts_the_code_into_the_next_cell(shell):
    body = "Here:\n```python\nprint('hi')\n```\nand\n```\nx = {'a': 1}\n```"
    done = final(cell(shell, "demo/echo -f code --no-interpolate", body))
    assert shell.rl_next_input == "print('hi')\n\nx = {'a': 1}"  # what set_next_input does in a plain shell
    assert done["text/markdown"].startswith(body)
    cell(shell, "demo/echo demo/echo -f code", "no fence")
    assert shell.rl_next_input == "# demo/echo\nno fence\n\n# demo/echo\nno fence"


def test_chat_keeps_the_conversation(shell):
    handler = register(SlowStream(words=1, delay=0))
    cell(shell, "slow/m --chat trip -s sys", "first")
    cell(shell, "slow/m --chat trip", "second")
    cell(shell, "slow/m", "alone")
    second, alone = handler.calls[1]["messages"], handler.calls[2]["messages"]
    assert [m["role"] for m in second] == ["system", "user", "assistant", "user"]
    assert second[1]["content"] == "first" and second[2]["content"] == "w0 " and second[3]["content"] == "second"
    assert alone == [{"role": "user", "content": "alone"}]


def test_dry_run_shows_the_messages_as_a_table_and_calls_nothing(shell):
    handler = register(SlowStream())
    shell.user_ns["who"] = "world"
    messages = cell(shell, "slow/m demo/image --dry-run -s S -p k=1 -t 0.5", "hi <{who}>")
    assert handler.calls == [] and len(messages) == 1
    data = messages[0][2]
    assert set(data) == {"text/html", "text/plain"}  # no JSON tree
    html = data["text/html"]
    assert "<b>slow/m</b> · completion, streamed · dry run, nothing sent" in html
    assert "<th" in html and ">role</th>" in html and ">content</th>" in html
    rows = re.findall(r"<tr><td[^>]*><b>(\w+)</b></td><td[^>]*>(.*?)</td></tr>", html)
    assert rows[:2] == [("system", "S"), ("user", "hi &lt;world&gt;")]
    assert "<code>k=1</code>, <code>temperature=0.5</code>" in html
    assert "<b>demo/image</b> · image generation" in html and rows[2] == ("prompt", "hi &lt;world&gt;")
    plain = data["text/plain"].splitlines()
    assert plain[:4] == [
        "slow/m · completion, streamed · dry run, nothing sent",
        "  system  S",
        "  user    hi <world>",
        "  parameters: k=1, temperature=0.5",
    ]


def test_interpolation_in_a_cell_and_no_interpolate(shell):
    handler = register(SlowStream(words=1, delay=0))
    shell.user_ns["lang"] = "Go"
    body = 'Port to {lang}: d = {"k": 1}; f"{x:.2f}" {{raw}} {undefined}'
    cell(shell, "slow/m", body)
    cell(shell, "slow/m --no-interpolate", body)
    sent = [call["messages"][-1]["content"] for call in handler.calls]
    assert sent[0] == 'Port to Go: d = {"k": 1}; f"{x:.2f}" {{raw}} {undefined}'
    assert sent[1] == body


def test_in_and_out_references(shell):
    handler = register(SlowStream(words=1, delay=0))
    shell.run_cell("6 * 7", store_history=True)
    number = shell.execution_count - 1
    cell(shell, "slow/m", f"explain {{In[{number}]}} = {{Out[{number}]}}")
    assert handler.calls[-1]["messages"][-1]["content"] == "explain 6 * 7 = 42"


# -- aliases and line commands -------------------------------------------------------------------------
def test_alias_works_as_a_model(shell, capsys):
    shell.run_line_magic("llm", "alias fast demo/echo")
    assert "fast -> demo/echo" in capsys.readouterr().out
    done = final(cell(shell, "fast", "via alias"))
    assert done["text/markdown"].startswith("via alias")
    assert "fast (demo/echo)" in done["text/plain"]
    shell.run_line_magic("llm", "models")
    out = capsys.readouterr().out
    assert "demo/echo, demo/lorem; images: demo/image" in out and "fast -> demo/echo" in out


@pytest.mark.parametrize(
    "line, says",
    [
        ("alias fast nowhere/x", "unknown provider 'nowhere'"),
        ("alias fast echo", "an alias must point at 'provider/model'"),
        ("alias a/b demo/echo", "alias name must be a single word"),
        ("alias fast", "usage: %llm alias NAME provider/model"),
    ],
)
def test_bad_aliases_are_refused(shell, capfd, line, says):
    shell.run_line_magic("llm", line)
    assert says in capfd.readouterr().err
    assert aliases.aliases() == {}


def test_help_lists_options_and_commands(shell, capsys):
    shell.run_line_magic("llm", "help")
    out = capsys.readouterr().out
    for text in ("--max-tokens", "--no-interpolate", "--chat", "%llm alias NAME MODEL", "%llm models"):
        assert text in out


# -- errors --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "line, says",
    [
        ("demo/echo --bogus", "unrecognized arguments: --bogus"),
        ("demo/echo -t warm", "invalid float value: 'warm'"),
        ("demo/echo -f yaml", "invalid choice: 'yaml'"),
        ("demo/echo -p novalue", "-p takes KEY=VALUE"),
        ("demo/echo -o 1x", "-o needs a variable name"),
        ("", "name a model, or set a default with %llm default MODEL"),
        ("gpt4", "'gpt4' is neither 'provider/model' nor an alias"),
        ("nowhere/model", "unknown provider 'nowhere'; registered: demo"),
        ('demo/echo -s "unclosed', "could not read %%llm options"),
    ],
)
def test_mistakes_give_one_readable_line(shell, capfd, line, says):
    messages = cell(shell, line)
    err = capfd.readouterr().err
    assert messages == []
    assert err.startswith("llmkit: ") and says in err
    assert "Traceback" not in err and err.count("\n") == 1


def test_unknown_line_command(shell, capfd):
    shell.run_line_magic("llm", "frobnicate")
    assert "unknown %llm command 'frobnicate'" in capfd.readouterr().err


def test_a_handler_error_shows_in_the_output_not_as_a_traceback(shell, capfd):
    result_messages = cell(shell, "demo/fail -p status_code=429 -p message='slow down'")
    done = final(result_messages)
    assert "RateLimitError: slow down (status 429" in done["text/plain"]
    assert "Traceback" not in capfd.readouterr().err


def test_an_unknown_model_of_a_known_provider_fails_in_its_column(shell):
    done = final(cell(shell, "demo/nope demo/echo"))
    assert "NotFoundError: the demo provider has no chat model 'nope'" in done["text/plain"]
    assert "NotFoundError" in done["text/html"] and "== demo/echo ==\nhello\n" in done["text/plain"]


# -- images --------------------------------------------------------------------------------------------
def test_image_models_show_their_images_inline(shell):
    done = final(cell(shell, "demo/image -p n=2", "a red square"))
    html = done["text/html"]
    assert html.count('<img src="data:image/png;base64,iVBOR') == 2
    assert "a red square (demo rendering 2 of 2)" in html
    url = final(cell(shell, "demo/image --image -p response_format=url", "by url"))
    assert '<img src="data:image/png;base64,' in url["text/html"]


def test_image_flag_sends_the_cell_as_the_prompt(shell):
    seen = {}

    class Painter(llmkit.CustomLLM):
        async def aimage_generation(self, model, prompt, optional_params, **kwargs):
            seen.update(prompt=prompt, params=optional_params)
            return llmkit.ImageResponse(
                data=[{"url": "https://images.example/cat.png", "revised_prompt": "a cat, painted"}]
            )

    llmkit.custom_provider_map = [{"provider": "paint", "custom_handler": Painter()}]
    done = final(cell(shell, "paint/v1 --image -p size=256x256", "a cat"))
    assert seen == {"prompt": "a cat", "params": {"size": "256x256"}}
    assert '<img src="https://images.example/cat.png"' in done["text/html"] and "a cat, painted" in done["text/html"]


# -- interrupt and terminal ----------------------------------------------------------------------------
def test_interrupt_stops_every_stream_of_the_cell(shell):
    first, second = SlowStream(words=1000, delay=0.01), SlowStream(words=1000, delay=0.01)
    llmkit.custom_provider_map = [
        {"provider": "a", "custom_handler": first},
        {"provider": "b", "custom_handler": second},
    ]
    timer = threading.Timer(0.4, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    start = len(shell.display_pub.messages)
    result = shell.run_cell("%%llm a/m b/m -o partial\ngo")
    timer.join()
    assert isinstance(result.error_in_exec, KeyboardInterrupt)
    assert first.closed and second.closed
    partial = shell.user_ns["partial"]["a/m"]  # what arrived before the interrupt
    assert partial.choices[0].message.content.startswith("w0 w1 ")
    done = shell.display_pub.messages[start:][-1][2]
    assert done["text/plain"].count("cancelled") == 2 and "w0 " in done["text/plain"]


def test_a_terminal_prints_tokens_as_they_arrive(terminal_shell, capsys):
    register(SlowStream(words=30, delay=0.005))
    terminal_shell.run_cell("%%llm slow/m demo/echo\nhi")
    out = capsys.readouterr().out
    assert out.startswith("== slow/m ==\nw0 w1 ")
    assert "w29 \n[slow/m · " in out and "== demo/echo ==\nhi\n[demo/echo · " in out


def test_every_call_goes_through_the_public_dispatcher_with_source_magic(shell, monkeypatch):
    seen = []
    for name in ("acompletion", "aimage_generation"):
        original = getattr(llmkit, name)

        async def spy(*args, _original=original, _name=name, **kwargs):
            seen.append((_name, kwargs.get("source"), kwargs.get("stream", False)))
            return await _original(*args, **kwargs)

        monkeypatch.setattr(llmkit, name, spy)
    cell(shell, "demo/echo demo/image")
    cell(shell, "demo/echo --no-stream")
    assert sorted(seen) == [
        ("acompletion", "magic", False),
        ("acompletion", "magic", True),
        ("aimage_generation", "magic", False),
    ]
