"""A real ipykernel restarted between two cells: the default model, an alias and a --chat conversation
outlive the kernel (settings file and call log), and the new kernel is a new session."""

import json
import os

import pytest
from jupyter_client.manager import start_new_kernel
from test_notebook_kernel import displays, printed, run


@pytest.fixture
def kernel(tmp_path):
    env = {**os.environ, "LLMKIT_CONFIG_DIR": str(tmp_path / "config"), "LLMKIT_LOG_PATH": str(tmp_path / "calls.db")}
    manager, client = start_new_kernel(kernel_name="python3", startup_timeout=60, env=env)
    yield manager, client
    client.stop_channels()
    manager.shutdown_kernel(now=True)


def last_answer(messages):
    return displays(messages)[-1]["content"]["data"]["text/markdown"]


def test_settings_and_a_chat_survive_a_kernel_restart(kernel, tmp_path):
    manager, client = kernel
    run(client, "%load_ext llmkit")
    _, reply = run(client, "%llm default demo/echo\n%llm alias trip-model demo/echo")
    assert reply["status"] == "ok"
    messages, _ = run(client, '%%llm --chat trip -s "You plan trips."\nTwo days in Lisbon?')
    assert last_answer(messages).startswith("Two days in Lisbon?")
    first_session = printed(run(client, "import llmkit; print(llmkit.calls.session_id)")[0])

    manager.restart_kernel()  # as the front-ends do: a shutdown request, so the kernel exits (and flushes) normally
    client.wait_for_ready(timeout=60)

    run(client, "%load_ext llmkit")
    assert printed(run(client, "%llm default")[0]).startswith("default model: demo/echo (settings file ")
    messages, _ = run(client, "%%llm trip-model --chat trip\nAnd a third day?")
    assert "demo/echo" in displays(messages)[-1]["content"]["data"]["text/plain"].splitlines()[-1]
    code = (
        "import json, llmkit\n"
        "calls = llmkit.calls.records(conversation_id='trip')\n"
        "print(json.dumps([[m['content'] for m in calls[-1]['messages']], [c['session_id'] for c in calls],"
        " llmkit.calls.session_id]))"
    )
    out = printed(run(client, code)[0])
    sent, sessions, second_session = json.loads(out)
    assert sent == ["You plan trips.", "Two days in Lisbon?", "Two days in Lisbon?", "And a third day?"]
    assert sessions == [first_session, second_session] and first_session != second_session
    messages, _ = run(client, "%llm log")
    html = messages[-1]["content"]["data"]["text/html"]
    assert "And a third day?" in html and "Two days in Lisbon?" not in html  # this session's calls only
