"""%%llm in a real ipykernel, seen from a real client (jupyter_client): the messages a front-end gets."""

import time

import pytest
from jupyter_client.manager import start_new_kernel

TIMEOUT = 30


@pytest.fixture(scope="module")
def kernel():
    manager, client = start_new_kernel(kernel_name="python3", startup_timeout=60)
    run(client, "%load_ext llmkit")
    yield manager, client
    client.stop_channels()
    manager.shutdown_kernel(now=True)


def run(client, code, on_message=None):
    """Execute ``code``; return (its iopub messages, its execute_reply content).

    ``on_message`` sees every iopub message meanwhile, whichever request it belongs to.
    """
    msg_id = client.execute(code)
    messages = []
    while True:
        msg = client.get_iopub_msg(timeout=TIMEOUT)
        if on_message is not None:
            on_message(msg)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
        messages.append(msg)
    while True:
        reply = client.get_shell_msg(timeout=TIMEOUT)
        if reply["parent_header"].get("msg_id") == msg_id:
            return messages, reply["content"]


def displays(messages):
    return [m for m in messages if m["msg_type"] in ("display_data", "update_display_data")]


def test_a_display_then_updates_within_the_throttle_then_the_final_render(kernel):
    _, client = kernel
    started = time.perf_counter()
    messages, reply = run(client, "%%llm demo/lorem -p tokens_per_second=100 --max-tokens 60\nhello")
    elapsed = time.perf_counter() - started
    assert reply["status"] == "ok"
    shown = displays(messages)
    assert shown[0]["msg_type"] == "display_data" and all(m["msg_type"] == "update_display_data" for m in shown[1:])
    display_id = shown[0]["content"]["transient"]["display_id"]
    assert all(m["content"]["transient"]["display_id"] == display_id for m in shown)
    assert len(shown) - 2 >= 2, "progressive updates while the answer streams"
    assert len(shown) - 1 <= elapsed / 0.05 + 2
    final = shown[-1]["content"]["data"]
    assert final["text/markdown"].endswith("tokens/s*") and "60 tokens" in final["text/markdown"]
    assert not [m for m in messages if m["msg_type"] == "error"]


def test_images_and_the_code_cell_payload(kernel):
    _, client = kernel
    messages, _ = run(client, "%%llm demo/image\na kernel picture")
    assert '<img src="data:image/png;base64,' in displays(messages)[-1]["content"]["data"]["text/html"]
    _, reply = run(client, "%%llm demo/echo -f code\n```python\nx = {'k': 1}\n```")
    assert [p["text"] for p in reply["payload"] if p["source"] == "set_next_input"] == ["x = {'k': 1}"]


def test_interrupt_stops_the_streams(kernel):
    manager, client = kernel
    updates = []

    def interrupt_after_two_updates(msg):
        if msg["msg_type"] == "update_display_data":
            updates.append(msg)
            if len(updates) == 2:
                manager.interrupt_kernel()

    code = "%%llm demo/lorem demo/lorem -p tokens_per_second=50 --max-tokens 2000 -o partial\nlong"
    messages, reply = run(client, code, interrupt_after_two_updates)
    assert reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt"
    final = displays(messages)[-1]["content"]["data"]["text/plain"]
    assert final.count("cancelled") == 2
    _, reply = run(client, "print(partial)")
    assert reply["status"] == "ok"
    followup, _ = run(client, "%%llm demo/echo\nstill alive")
    assert "still alive" in displays(followup)[-1]["content"]["data"]["text/markdown"]


def printed(messages):
    return "".join(m["content"]["text"] for m in messages if m["msg_type"] == "stream").strip()


def test_the_run_button_works_from_a_front_end(kernel):
    """A click arrives as a comm message; the panes fill from llmkit's loop thread while the kernel
    stays free to run cells, and their state reaches the front-end as comm messages."""
    _, client = kernel
    code = (
        "from llmkit.widgets import CompareWidget\n"
        "w = CompareWidget(['demo/echo', 'demo/lorem'], 'clicked', tokens_per_second=100)\n"
        "print(w._run_button.comm.comm_id)"
    )
    comm_id = printed(run(client, code)[0])
    click = {"comm_id": comm_id, "data": {"method": "custom", "content": {"event": "click"}}}
    client.session.send(client.shell_channel.socket, client.session.msg("comm_msg", click))
    seen = []
    deadline = time.monotonic() + TIMEOUT
    while printed(run(client, "print(w.figures.get('demo/lorem', {}).get('status'))", seen.append)[0]) != "done":
        assert time.monotonic() < deadline, "the comparison did not finish"
        time.sleep(0.05)
    assert (
        printed(run(client, "print(len(w.results['demo/lorem'].split()), w.results['demo/echo'])")[0]) == "48 clicked"
    )
    while True:  # drain what the loop thread sent meanwhile, whatever its parent message
        try:
            seen.append(client.get_iopub_msg(timeout=0.5))
        except Exception:
            break
    html_updates = [m for m in seen if m["msg_type"] == "comm_msg" and "value" in m["content"]["data"].get("state", {})]
    assert html_updates, "pane updates should reach the front-end"


def test_a_leaderboard_updates_the_front_end_after_a_call(kernel):
    """The refresh runs on a timer thread after the call log's callback; its new table must still
    reach the front-end as a comm message."""
    _, client = kernel
    code = (
        "import time\n"
        "from llmkit.widgets import Leaderboard\n"
        "board = Leaderboard(interval=0.05, since=time.time())\n"
        "print(board._table.comm.comm_id)"
    )
    comm_id = printed(run(client, code)[0])
    seen = []
    run(client, "%%llm demo/echo\nrank me", seen.append)
    deadline = time.monotonic() + TIMEOUT
    while not any(
        m["msg_type"] == "comm_msg"
        and m["content"]["comm_id"] == comm_id
        and "<th>demo/echo</th>" in m["content"]["data"].get("state", {}).get("value", "")
        for m in seen
    ):
        assert time.monotonic() < deadline, "the leaderboard's new table never reached the front-end"
        seen.append(client.get_iopub_msg(timeout=TIMEOUT))
    _, reply = run(client, "board.close()")
    assert reply["status"] == "ok"
