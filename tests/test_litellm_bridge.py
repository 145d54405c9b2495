"""litellm/<model>: LiteLLM's providers through llmkit, against a real OpenAI-compatible server on loopback.

LiteLLM takes seconds to import: this is the one test module that imports it (through the bridge, on
its first call). Its price table is the bundled copy, never fetched (LITELLM_LOCAL_MODEL_COST_MAP).
"""

import asyncio
import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import pytest
from fake_servers import FakeServer, openai_app

import llmkit
from llmkit.providers import litellm_bridge

# LiteLLM's own types warn about themselves under newer pydantic; nothing of llmkit's.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Item .* is using the `ReadOnly` qualifier:UserWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:litellm.*"),
]

MESSAGES = [{"role": "user", "content": "hello from litellm"}]  # three words: three tokens to the fake server

needs_litellm = pytest.mark.skipif(
    importlib.util.find_spec("litellm") is None, reason="LiteLLM is not installed: pip install 'llmkit[litellm]'"
)


@pytest.fixture(scope="module")
def server():
    with FakeServer(openai_app(api_key="sk-bridge")) as srv:
        yield srv


def call(model="litellm/openai/echo", **kwargs):
    kwargs.setdefault("api_key", "sk-bridge")
    return llmkit.completion(model, MESSAGES, **kwargs)


# -- without the extra -------------------------------------------------------------------------------
def test_without_litellm_the_error_names_the_extra_to_install(monkeypatch):
    monkeypatch.setattr(litellm_bridge, "_litellm", None)
    monkeypatch.setitem(sys.modules, "litellm", None)  # what an environment without LiteLLM gives: ImportError
    with pytest.raises(llmkit.BadRequestError) as info:
        call(api_base="http://127.0.0.1:9/v1")
    assert "pip install 'llmkit[litellm]'" in str(info.value)
    with pytest.raises(llmkit.BadRequestError, match=r"llmkit\[litellm\]"):
        llmkit.embedding("litellm/openai/e", "x")


def test_an_unknown_provider_points_at_litellms_providers():
    with pytest.raises(llmkit.BadRequestError, match="for one of LiteLLM's providers, write litellm/anthropic/<model>"):
        llmkit.completion("anthropic/claude-x", MESSAGES)


# -- chat, streams, embeddings, images ---------------------------------------------------------------
@needs_litellm
def test_chat_goes_through_litellm_and_comes_back_as_llmkits_types(server, base, log):
    response = call(api_base=base, temperature=0.2, max_tokens=2, seed=7, extra_headers={"X-Team": "research"})
    assert type(response) is llmkit.ModelResponse
    assert response.choices[0].message.content == "word word"  # the fake server's answer to max_tokens=2
    assert response.usage.prompt_tokens == 3 and response.usage.completion_tokens == 2
    body = server.requests[-1].json
    assert body["model"] == "echo" and body["messages"] == MESSAGES
    assert (body["temperature"], body["max_tokens"], body["seed"]) == (0.2, 2, 7)
    assert server.requests[-1].headers["x-team"] == "research"
    row = log.to_dataframe(last=1).iloc[0]
    assert (row["model"], row["provider"], row["handler_model"]) == ("litellm/openai/echo", "litellm", "openai/echo")
    assert (row["status"], row["prompt_tokens"], row["completion_tokens"]) == ("ok", 3, 2)


@needs_litellm
def test_a_stream_arrives_as_llmkit_chunks_and_is_logged_with_the_servers_usage(base, log):
    stream = call(api_base=base, stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert all(type(chunk) is llmkit.ModelResponseStream for chunk in chunks)
    assert stream.text() == "hello from litellm"
    assert chunks[-1].usage.prompt_tokens == 3 and chunks[-1].usage.completion_tokens == 3
    row = log.to_dataframe(last=1).iloc[0]
    assert (row["kind"], row["status"], row["response"], row["tokens_estimated"]) == (
        "stream",
        "ok",
        "hello from litellm",
        False,
    )
    assert row["ttft_ms"] > 0


@needs_litellm
def test_async_chat_and_stream(base):
    async def both():
        response = await llmkit.acompletion("litellm/openai/echo", MESSAGES, api_base=base, api_key="sk-bridge")
        stream = await llmkit.acompletion(
            "litellm/openai/echo", MESSAGES, api_base=base, api_key="sk-bridge", stream=True
        )
        return response.choices[0].message.content, [chunk async for chunk in stream], stream

    text, chunks, stream = asyncio.run(both())
    assert text == "hello from litellm"
    assert all(type(chunk) is llmkit.ModelResponseStream for chunk in chunks)
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices) == text


@needs_litellm
def test_embeddings_and_images(base, log):
    embedded = llmkit.embedding("litellm/openai/embed", ["one two", "three"], api_base=base, api_key="sk-bridge")
    assert type(embedded) is llmkit.EmbeddingResponse
    assert [len(item.embedding) for item in embedded.data] == [4, 4] and embedded.usage.prompt_tokens == 3
    images = asyncio.run(
        llmkit.aimage_generation("a red fox", model="litellm/openai/draw", n=2, api_base=base, api_key="sk-bridge")
    )
    assert type(images) is llmkit.ImageResponse
    assert [image.url for image in images.data] == [
        "http://127.0.0.1/a-red-fox-0.png",
        "http://127.0.0.1/a-red-fox-1.png",
    ]
    rows = log.to_dataframe(last=2)
    assert sorted(rows["kind"]) == ["embedding", "image"] and set(rows["status"]) == {"ok"}


# -- errors ------------------------------------------------------------------------------------------
@needs_litellm
@pytest.mark.parametrize(
    "model, error, status",
    [
        ("status-429", llmkit.RateLimitError, 429),
        ("status-400", llmkit.BadRequestError, 400),
        ("status-503", llmkit.ServiceUnavailableError, 503),
    ],
)
def test_litellms_errors_become_llmkits_by_status_code(server, base, log, model, error, status):
    with pytest.raises(error) as info:
        call(f"litellm/openai/{model}", api_base=base)
    assert info.value.status_code == status and info.value.llm_provider == "litellm"
    assert f"fake failure {status}" in info.value.message
    assert type(info.value.__cause__).__module__.startswith("litellm")  # raised from LiteLLM's own exception
    assert len(server.requests) == 1  # LiteLLM's client did not retry behind llmkit's back
    row = log.to_dataframe(last=1).iloc[0]
    assert (row["status"], row["error_type"], row["status_code"]) == ("error", error.__name__, status)


@needs_litellm
def test_a_wrong_key_is_an_authentication_error_and_retry_after_is_kept(base):
    with pytest.raises(llmkit.AuthenticationError) as info:
        call(api_base=base, api_key="sk-wrong")
    assert info.value.status_code == 401 and "Incorrect API key" in info.value.message
    with pytest.raises(llmkit.RateLimitError) as info:
        call("litellm/openai/status-429", api_base=base)
    assert info.value.retry_after == 7.0  # the server's Retry-After, for llmkit's retries


@needs_litellm
def test_llmkit_retries_a_litellm_call(server, base):
    response = call(
        "litellm/openai/flaky", api_base=base, num_retries=2, extra_body={"flaky_id": "bridge", "fail_first": 1}
    )
    assert response.choices[0].message.content == "hello from litellm"
    assert len(server.requests) == 2


@needs_litellm
def test_a_stream_that_fails_to_open_raises_llmkits_error(base):
    with pytest.raises(llmkit.RateLimitError):
        list(call("litellm/openai/status-429", api_base=base, stream=True))


# -- prices from LiteLLM's bundled table -------------------------------------------------------------
@needs_litellm
def test_calls_are_priced_from_litellms_bundled_table(base, log):
    spec = importlib.util.find_spec("litellm")
    table = json.loads(
        open(os.path.join(spec.submodule_search_locations[0], "model_prices_and_context_window_backup.json")).read()
    )
    price = table["gpt-4o"]
    call("litellm/openai/gpt-4o", api_base=base)
    llmkit.completion("openai/gpt-4o", MESSAGES, api_base=base, api_key="sk-bridge")
    rows = log.to_dataframe(last=2)
    expected = 3 * price["input_cost_per_token"] + 3 * price["output_cost_per_token"]
    assert list(rows["cost_usd"]) == pytest.approx([expected, expected])
    info = llmkit.model_info("openai/gpt-4o")
    assert info["max_input_tokens"] == price["max_input_tokens"] and info["mode"] == "chat"
    assert info["source"].endswith("model_prices_and_context_window_backup.json")


@needs_litellm
def test_nothing_but_a_litellm_call_imports_litellm():
    code = textwrap.dedent(
        """
        import sys, llmkit
        llmkit.completion("demo/echo", [{"role": "user", "content": "x"}])
        llmkit.provider_names()
        info = llmkit.model_info("openai/gpt-4o")  # LiteLLM's bundled table, read without importing LiteLLM
        print("litellm imported:", "litellm" in sys.modules, info["mode"])
        """
    )
    env = {**os.environ, "LLMKIT_LOG": "off"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.splitlines() == ["litellm imported: False chat"]
