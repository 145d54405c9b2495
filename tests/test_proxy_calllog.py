"""Every proxy request is in the call log: source "proxy", the model_name asked for, the deployment."""

import json

import httpx
import pytest
from proxy_support import running_server, write_config

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
