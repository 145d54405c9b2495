"""A call a handler has no method for is a 404 naming the model and the method, never retried."""

import asyncio

import httpx
import openai
import pytest
from helpers import register
from proxy_support import register as register_providers
from proxy_support import running_server, write_config

import llmkit
from llmkit.types.utils import ModelResponse


class ChatOnly(llmkit.CustomLLM):
    def __init__(self):
        self.calls = 0

    def completion(self, model, messages, **kwargs):
        self.calls += 1
        return ModelResponse(model=model, choices=[{"message": {"content": "chat only"}}])


class StreamOnly(llmkit.CustomLLM):
    def streaming(self, model, messages, **kwargs):
        yield {"text": "streamed", "is_finished": True, "finish_reason": "stop", "usage": None}


def test_images_and_embeddings_on_a_chat_only_handler(log):
    handler = register(ChatOnly())
    image = {"prompt": "x", "model": "p/chat-1", "num_retries": 4}
    vectors = {"model": "p/chat-1", "input": "x", "num_retries": 4}
    for call, method, what in (
        (lambda: llmkit.image_generation(**image), "image_generation()", "image generation"),
        (lambda: asyncio.run(llmkit.aimage_generation(**image)), "aimage_generation()", "image generation"),
        (lambda: llmkit.embedding(**vectors), "embedding()", "embeddings"),
        (lambda: asyncio.run(llmkit.aembedding(**vectors)), "aembedding()", "embeddings"),
    ):  # fmt: skip
        with pytest.raises(llmkit.NotFoundError) as error:
            call()
        message = error.value.message
        assert message.startswith(f"p/chat-1: ChatOnly, the handler for provider 'p', does not do {what}")
        assert method in message and "(only completion())" in message
        assert error.value.status_code == 404
    assert handler.calls == 0
    assert [r["status_code"] for r in log.records()] == [404] * 4  # one record each: no retries


def test_chat_without_stream_on_a_stream_only_handler_says_to_stream():
    register(StreamOnly())
    with pytest.raises(
        llmkit.NotFoundError,
        match=r"neither completion\(\) nor acompletion\(\) \(only streaming\(\)\); call it with stream=True",
    ):
        llmkit.completion(model="p/m", messages=[], num_retries=3)
    assert llmkit.completion(model="p/m", messages=[], stream=True).text() == "streamed"


CONFIG = """\
model_list:
  - {model_name: chatty, litellm_params: {model: chatonly/chat-1}}
litellm_settings: {num_retries: 3}
general_settings: {master_key: test-key}
"""


def test_through_the_proxy_a_404_naming_model_and_method(tmp_path, log):
    handler = ChatOnly()
    register_providers(chatonly=handler)
    with running_server(write_config(tmp_path, CONFIG)) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="test-key", max_retries=0)
        with pytest.raises(openai.NotFoundError) as error:
            client.images.generate(model="chatty", prompt="an otter")
        assert "chatonly/chat-1" in str(error.value) and "image_generation()" in str(error.value)
        raw = httpx.post(
            url + "/v1/embeddings", json={"model": "chatty", "input": "x"}, headers={"Authorization": "Bearer test-key"}
        )
        assert raw.status_code == 404
        body = raw.json()["error"]
        assert body["type"] == "not_found_error" and "does not do embeddings" in body["message"]
        assert client.chat.completions.create(model="chatty", messages=[{"role": "user", "content": "hi"}])
    assert handler.calls == 1  # only the chat request reached the handler
    kinds = [(r["kind"], r["status_code"]) for r in log.records()]
    assert sorted(kinds, key=str) == sorted([("image", 404), ("embedding", 404), ("chat", None)], key=str)
