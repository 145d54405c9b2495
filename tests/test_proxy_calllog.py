"""Every proxy request is in the call log: source "proxy", the model_name asked for, the deployment."""

import json
import threading
import time

import httpx
import pytest
from calllog_support import watch_builds
from proxy_support import running_server, write_config

import llmkit

KEY = "sk-proxy-log-test"
SECRET = "sk-upstream-SECRET-789"


@pytest.fixture
def url(tmp_path, log):
    config = write_config(
        tmp_path,
        f"""
        model_list:
          - model_name: chat
            litellm_params:
              {{model: demo/echo, api_key: {SECRET}, input_cost_per_token: 0.001, output_cost_per_token: 0.002}}
            model_info: {{id: echo-a}}
          - model_name: paint
            litellm_params: {{model: demo/image}}
          - model_name: broken
            litellm_params: {{model: demo/fail, status_code: 429}}
        general_settings: {{master_key: {KEY}}}
        """,
    )
    with running_server(config) as server_url:
        yield server_url


def post(url, path, body):
    return httpx.post(url + path, json=body, headers={"Authorization": f"Bearer {KEY}"}, timeout=10)


def test_chat_stream_image_and_error_requests_are_each_recorded_once(url, log):
    ask = {"messages": [{"role": "user", "content": "hi there"}]}
    assert post(url, "/v1/chat/completions", {"model": "chat", **ask}).status_code == 200
    streamed = post(url, "/chat/completions", {"model": "chat", "stream": True, **ask})
    assert streamed.text.rstrip().endswith("data: [DONE]")
    assert post(url, "/v1/images/generations", {"model": "paint", "prompt": "otter"}).status_code == 200
    assert post(url, "/v1/chat/completions", {"model": "broken", **ask}).status_code == 429

    records = log.records(source="proxy")
    assert [(r["kind"], r["model"], r["status"]) for r in records] == [
        ("chat", "demo/echo", "ok"),
        ("stream", "demo/echo", "ok"),
        ("image", "demo/image", "ok"),
        ("chat", "demo/fail", "error"),
    ]
    chat, stream, image, error = records
    assert chat["metadata"] == {"model_name": "chat", "deployment": "echo-a", "user": "master"}
    assert {r["user"] for r in records} == {"master"}  # the master key's name, never the key
    assert image["metadata"]["model_name"] == "paint"
    assert chat["response"] == stream["response"] == "hi there"
    assert stream["ttft_ms"] is not None
    assert (error["status_code"], error["error_type"]) == (429, "RateLimitError")
    # Prices from the config give a cost; the deployment's key is nowhere in the log.
    expected = chat["prompt_tokens"] * 0.001 + chat["completion_tokens"] * 0.002
    assert chat["cost_usd"] == pytest.approx(expected)
    assert SECRET not in json.dumps(records, default=str) and KEY not in json.dumps(records, default=str)


def test_records_are_built_on_the_servers_event_loop_not_by_the_writer(tmp_path, monkeypatch):
    from llmkit.calllog import configure_log, recorder

    configure_log("sqlite", path=tmp_path / "own.db", flush_interval=3600)  # the writer stays asleep
    built_on = watch_builds(monkeypatch)
    config = write_config(tmp_path, f"model_list: [{{model_name: chat, litellm_params: {{model: demo/echo}}}}]\n"
                          f"general_settings: {{master_key: {KEY}}}\n")  # fmt: skip
    try:
        with running_server(config) as server_url:
            for i in range(3):
                assert post(server_url, "/v1/chat/completions", {"model": "chat", "messages": [
                    {"role": "user", "content": f"hi {i}"}]}).status_code == 200  # fmt: skip
            for _ in range(500):
                if len(built_on) == 3:
                    break
                time.sleep(0.01)
            assert recorder._to_build is not None
        # all three on the thread serving the requests: neither this one nor the log's writer
        assert len(built_on) == 3 and len(set(built_on)) == 1
        assert built_on[0] is not threading.main_thread() and built_on[0].name != "llmkit-calllog"
        assert recorder._to_build is None  # the server stopped its builder
        assert sorted(r["prompt"] for r in llmkit.calls.records()) == ["hi 0", "hi 1", "hi 2"]
    finally:
        configure_log()
