"""The proxy's HTTP surface, in-process (Starlette's TestClient drives the ASGI app through httpx)."""

from __future__ import annotations

import json

import pytest
from proxy_support import Recorder, register, write_config
from starlette.testclient import TestClient

import llmkit
from llmkit import CustomLLM
from llmkit.proxy import build_app, load_config

CONFIG = """\
model_list:
  - {model_name: echo, litellm_params: {model: demo/echo}}
  - {model_name: lorem, litellm_params: {model: demo/lorem, tokens_per_second: 0}}
  - {model_name: image, litellm_params: {model: demo/image}}
  - {model_name: embed, litellm_params: {model: demo/embed}}
  - {model_name: limited, litellm_params: {model: demo/fail, status_code: 429, message: slow down}}
general_settings: {master_key: test-key, max_request_size_mb: 0.01}
"""
AUTH = {"Authorization": "Bearer test-key"}


@pytest.fixture
def client(tmp_path):
    app = build_app(load_config(write_config(tmp_path, CONFIG)))
    with TestClient(app, headers=AUTH) as client:
        yield client


def chat(client, model="echo", **body):
    body = {"model": model, "messages": [{"role": "user", "content": "hello there"}], **body}
    return client.post("/v1/chat/completions", json=body)


def sse_events(response) -> list:
    lines = [line for line in response.text.split("\n\n") if line]
    assert all(line.startswith("data: ") for line in lines)
    return [line[len("data: ") :] for line in lines]


def test_chat_with_and_without_v1(client):
    for path in ("/v1/chat/completions", "/chat/completions"):
        response = client.post(path, json={"model": "echo", "messages": [{"role": "user", "content": "hi proxy"}]})
        assert response.status_code == 200
        body = response.json()
        assert body["object"] == "chat.completion"
        assert body["choices"][0]["message"] == {
            "content": "hi proxy",
            "role": "assistant",
            "tool_calls": None,
            "function_call": None,
        }
        assert body["system_fingerprint"] is None and body["usage"]["total_tokens"] > 0


def test_streaming_sends_chunks_usage_then_done(client):
    response = chat(client, "lorem", stream=True, max_tokens=12, stream_options={"include_usage": True})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    assert len({chunk["id"] for chunk in chunks}) == 1
    text = "".join(c["choices"][0]["delta"]["content"] or "" for c in chunks if c["choices"])
    assert len(text.split()) == 12
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 12


def test_error_after_stream_started_is_an_sse_event(client):
    response = chat(client, "lorem", stream=True, fail_after=3, status_code=503)
    assert response.status_code == 200
    events = sse_events(response)
    error = json.loads(events[-1])["error"]
    assert "broke its stream after 3 words" in error["message"] and error["code"] == "503"
    assert len(events) == 4 and "[DONE]" not in events  # three words, then the error, then the end


def test_error_before_first_chunk_keeps_its_status(client):
    response = chat(client, "limited", stream=True)
    assert response.status_code == 429
    assert response.json()["error"]["message"] == "slow down"


def test_images_and_embeddings(client):
    image = client.post("/v1/images/generations", json={"model": "image", "prompt": "a sea otter", "size": "8x8"})
    assert image.status_code == 200
    (item,) = image.json()["data"]
    assert item["b64_json"] and "url" not in item  # None fields are left out, as OpenAI does
    embedding = client.post("/embeddings", json={"model": "embed", "input": ["a", "b"], "dimensions": 4})
    assert embedding.status_code == 200
    data = embedding.json()["data"]
    assert [d["index"] for d in data] == [0, 1] and len(data[0]["embedding"]) == 4


def test_models_health_and_openapi(client):
    models = client.get("/v1/models").json()
    assert [m["id"] for m in models["data"]] == ["echo", "lorem", "image", "embed", "limited"]
    assert client.get("/health", headers={"Authorization": ""}).json() == {"status": "healthy"}
    ready = client.get("/health/readiness", headers={"Authorization": ""})
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    document = client.get("/openapi.json").json()
    assert "/v1/chat/completions" in document["paths"]
    assert (
        "messages"
        in document["paths"]["/v1/chat/completions"]["post"]["requestBody"]["content"]["application/json"]["schema"][
            "properties"
        ]
    )


@pytest.mark.parametrize("header", [None, "Bearer wrong-key", "test-key", "Basic test-key", "Bearer "])
@pytest.mark.parametrize("path", ["/v1/models", "/openapi.json", "/chat/completions"])
def test_every_endpoint_but_health_needs_the_key(client, header, path):
    headers = {"Authorization": header} if header is not None else {"Authorization": ""}
    body = {"model": "echo", "messages": [{"role": "user", "content": "x"}]}
    method = "POST" if path == "/chat/completions" else "GET"
    response = client.request(method, path, headers=headers, json=body)
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["type"] == "authentication_error" and error["code"] == "invalid_api_key"
    assert "test-key" not in response.text


def test_handler_status_code_passes_through(client):
    response = chat(client, "limited")
    assert response.status_code == 429
    assert response.json() == {
        "error": {"message": "slow down", "type": "rate_limit_error", "param": None, "code": "429"}
    }


@pytest.mark.parametrize(
    ("body", "message", "param"),
    [
        (b'{"model": "echo", "messages": [', "not valid JSON", None),
        (b"[1, 2]", "must be a JSON object", None),
        (b'{"messages": [{"role": "user", "content": "x"}]}', "model is missing", "model"),
        (b'{"model": "echo"}', "messages is missing", "messages"),
        (b'{"model": "echo", "messages": "hello"}', "messages: Input should be a valid array", "messages"),
        (b'{"model": "echo", "messages": [{"content": "x"}]}', "messages[0].role is missing", "messages[0].role"),
        (b'{"model": 3, "messages": [{"role": "user"}]}', "model: Input should be a valid string", "model"),
        (
            b'{"model": "echo", "messages": [{"role": "user"}], "stream": "often"}',
            "stream must be a JSON boolean",
            "stream",
        ),
        # OpenAI answers 400 to a string or a number for stream; pydantic alone would take them as true
        (
            b'{"model": "echo", "messages": [{"role": "user"}], "stream": "true"}',
            "stream must be a JSON boolean",
            "stream",
        ),
        (b'{"model": "echo", "messages": [{"role": "user"}], "stream": 1}', "stream must be a JSON boolean", "stream"),
        (b'{"model": "echo", "messages": [{"role": "user"}], "temperature": NaN}', "NaN and Infinity", None),
        (
            b'{"model": "echo", "messages": [{"role": "user", "content": "NaN"}], "top_p": -Infinity}',
            "NaN and Infinity",
            None,
        ),
    ],
)
def test_bad_bodies_are_400_naming_the_field(client, body, message, param):
    response = client.post("/v1/chat/completions", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert message in error["message"] and error["param"] == param and error["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/embeddings", {"model": "embed", "input": 3}, "input"),
        ("/v1/embeddings", {"model": "embed"}, "input"),
        ("/v1/images/generations", {"model": "image"}, "prompt"),
        ("/v1/images/generations", {"model": "image", "prompt": ""}, "prompt"),
    ],
)
def test_bad_image_and_embedding_bodies(client, path, body, param):
    response = client.post(path, json=body)
    assert response.status_code == 400 and response.json()["error"]["param"] == param


def test_unknown_model_is_404_listing_the_models(client):
    response = chat(client, "gpt-5")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "model_not_found" and "echo, lorem, image, embed, limited" in error["message"]
    assert client.post("/v1/embeddings", json={"model": "nope", "input": "x"}).status_code == 404


def test_oversized_body_is_413(client):
    response = chat(client, messages=[{"role": "user", "content": "x" * 20_000}])
    assert response.status_code == 413
    assert "max_request_size_mb" in response.json()["error"]["message"]


def test_unknown_route_and_method_have_openai_error_bodies(client):
    missing = client.get("/v1/nothing-here")
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found_error"
    wrong = client.get("/v1/chat/completions")
    assert wrong.status_code == 405 and "error" in wrong.json()


def test_a_broken_handler_is_a_json_500_not_an_error_page(tmp_path):
    class Broken(CustomLLM):
        async def acompletion(self, **kwargs):
            raise RuntimeError("database on fire")

    register(broken=Broken())
    app = build_app(
        load_config(write_config(tmp_path, "model_list:\n  - {model_name: b, litellm_params: {model: broken/m}}"))
    )
    with TestClient(app) as client:
        response = chat(client, "b")
    assert response.status_code == 500
    assert response.json()["error"]["message"] == "RuntimeError: database on fire"


def test_params_reach_the_handler_and_control_params_do_not(tmp_path, monkeypatch):
    recorder = Recorder()
    register(rec=recorder)
    config = """\
    model_list:
      - model_name: mine
        litellm_params: {model: rec/m1, api_key: upstream-key, my_custom_param: from-config, temperature: 0.1,
                         input_cost_per_token: 0.5}
    """
    seen = []
    real = llmkit.acompletion

    async def spy(**kwargs):
        seen.append(kwargs)
        return await real(**kwargs)

    monkeypatch.setattr(llmkit, "acompletion", spy)
    app = build_app(load_config(write_config(tmp_path, config)))
    with TestClient(app) as client:
        body = {
            "model": "mine",
            "messages": [{"role": "user", "content": "x"}],
            "temperature": 0.7,
            "user": "u1",
            "mock_response": "never",
            "api_base": "http://127.0.0.1:1",
            "metadata": {"a": 1},
        }
        response = client.post("/chat/completions", json=body)
    assert response.json()["choices"][0]["message"]["content"] == "from recorder"
    (call,) = recorder.calls
    assert call["optional_params"] == {"my_custom_param": "from-config", "temperature": 0.7, "user": "u1"}
    assert call["api_key"] == "upstream-key" and call["api_base"] is None
    assert call["litellm_params"]["metadata"] == {"model_name": "mine", "deployment": "rec/m1"}
    assert seen[0]["source"] == "proxy" and seen[0]["metadata"] == {"model_name": "mine", "deployment": "rec/m1"}
