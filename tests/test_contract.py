"""The handler contract: routing, the keyword arguments handlers get, optional_params, results."""

import asyncio
import re

import pytest
from helpers import Recorder, register

import llmkit
from llmkit.types.utils import EmbeddingResponse, ImageResponse, ModelResponse

CHAT_KWARGS = {
    "model",
    "messages",
    "api_base",
    "api_key",
    "custom_prompt_dict",
    "model_response",
    "print_verbose",
    "encoding",
    "logging_obj",
    "optional_params",
    "acompletion",
    "litellm_params",
    "logger_fn",
    "headers",
    "timeout",
    "client",
}
IMAGE_KWARGS = {
    "model",
    "prompt",
    "api_key",
    "api_base",
    "model_response",
    "optional_params",
    "logging_obj",
    "timeout",
    "client",
}
EMBEDDING_KWARGS = {
    "model",
    "input",
    "model_response",
    "print_verbose",
    "logging_obj",
    "optional_params",
    "api_key",
    "api_base",
    "timeout",
    "litellm_params",
}


def test_the_text_before_the_first_slash_picks_the_provider():
    handler = register(Recorder(), "my-custom-llm")
    llmkit.completion(model="my-custom-llm/org/model-7b", messages=[])
    assert handler.calls[0][1]["model"] == "org/model-7b"


def test_get_llm_provider_matches_litellm():
    register(Recorder(), "my-custom-llm")
    assert llmkit.get_llm_provider("my-custom-llm/my-model") == ("my-model", "my-custom-llm", None, None)
    assert llmkit.get_llm_provider("my-custom-llm/org/m") == ("org/m", "my-custom-llm", None, None)
    assert llmkit.get_llm_provider("m", custom_llm_provider="my-custom-llm") == ("m", "my-custom-llm", None, None)
    with pytest.raises(llmkit.BadRequestError, match="unknown provider 'nope'"):
        llmkit.get_llm_provider("nope/m")


@pytest.mark.parametrize("bad", ["", "   ", None, 42, "/model", "provider/", " p/m"])
def test_malformed_model_strings_say_what_a_model_string_looks_like(bad):
    with pytest.raises(llmkit.BadRequestError, match="provider/model-name") as error:
        llmkit.completion(model=bad, messages=[])
    assert error.value.status_code == 400


def test_unknown_provider_names_it_and_lists_the_registered_ones():
    register(Recorder(), "mine")
    with pytest.raises(llmkit.BadRequestError) as error:
        llmkit.completion(model="theirs/m", messages=[])
    message = error.value.message
    assert "'theirs'" in message and "demo" in message and "mine" in message
    assert "custom_provider_map" in message and "register_provider" in message


def test_a_bare_model_name_asks_for_a_provider():
    with pytest.raises(llmkit.BadRequestError, match="names no provider"):
        llmkit.completion(model="gpt-4o", messages=[])


def test_chat_handlers_get_exactly_litellms_keyword_arguments():
    handler = register(Recorder())
    llmkit.completion(model="p/m", messages=[{"role": "user", "content": "hi"}])
    asyncio.run(llmkit.acompletion(model="p/m", messages=[]))
    list(llmkit.completion(model="p/m", messages=[], stream=True))
    (sync_name, sync), (async_name, asynchronous), (stream_name, stream) = handler.calls
    assert (sync_name, async_name, stream_name) == ("completion", "acompletion", "streaming")
    for kwargs in (sync, asynchronous, stream):
        assert set(kwargs) == CHAT_KWARGS
    assert sync["acompletion"] is False and asynchronous["acompletion"] is True
    assert sync["messages"] == [{"role": "user", "content": "hi"}]
    assert sync["api_key"] is None and sync["api_base"] is None and sync["client"] is None
    assert sync["timeout"] == 600.0 and sync["headers"] == {} and sync["custom_prompt_dict"] == {}
    assert isinstance(sync["model_response"], ModelResponse)
    assert sync["litellm_params"]["custom_llm_provider"] == "p"
    assert sync["encoding"].encode("hello world") and callable(sync["print_verbose"])


def test_image_and_embedding_handlers_get_their_keyword_arguments():
    handler = register(Recorder())
    llmkit.image_generation(model="p/painter", prompt="an otter", size="256x256")
    llmkit.embedding(model="p/embedder", input=["a", "b"], foo="bar")
    (image_name, image), (embedding_name, embed) = handler.calls
    assert image_name == "image_generation" and set(image) == IMAGE_KWARGS
    assert image["prompt"] == "an otter" and image["optional_params"] == {"size": "256x256"}
    assert isinstance(image["model_response"], ImageResponse)
    assert embedding_name == "embedding" and set(embed) == EMBEDDING_KWARGS
    assert embed["input"] == ["a", "b"] and embed["optional_params"] == {"foo": "bar"}
    assert isinstance(embed["model_response"], EmbeddingResponse)


def test_control_parameters_are_acted_on_not_passed_through():
    handler = register(Recorder())
    llmkit.completion(
        model="p/m",
        messages=[],
        api_key="sk-x",
        api_base="http://h",
        timeout=12,
        metadata={"run": 1},
        headers={"A": "1"},
        extra_headers={"B": "2"},
        num_retries=0,
        source="test",
        my_custom_param="x",
    )
    kwargs = handler.calls[0][1]
    assert kwargs["optional_params"] == {"my_custom_param": "x"}
    assert kwargs["api_key"] == "sk-x" and kwargs["api_base"] == "http://h" and kwargs["timeout"] == 12
    assert kwargs["headers"] == {"A": "1", "B": "2"}
    assert kwargs["litellm_params"]["metadata"] == {"run": 1}


def test_openai_parameters_reach_the_handler_unchanged_and_stream_adds_stream_true():
    handler = register(Recorder())
    params = dict(
        temperature=0.2,
        max_tokens=10,
        top_p=0.9,
        stop=["\n"],
        seed=7,
        user="u1",
        tools=[{"type": "function", "function": {"name": "f"}}],
        tool_choice="auto",
        response_format={"type": "json_object"},
    )
    llmkit.completion(model="p/m", messages=[], **params)
    list(llmkit.completion(model="p/m", messages=[], stream=True, stream_options={"include_usage": True}, **params))
    assert handler.calls[0][1]["optional_params"] == params
    assert handler.calls[1][1]["optional_params"] == {
        **params,
        "stream_options": {"include_usage": True},
        "stream": True,
    }


def test_unset_openai_parameters_are_left_out_and_messages_default_to_empty():
    handler = register(Recorder())
    llmkit.completion(model="p/m", temperature=None, max_tokens=None)
    assert handler.calls[0][1]["optional_params"] == {}
    assert handler.calls[0][1]["messages"] == []


def test_prompt_template_keys_become_custom_prompt_dict():
    handler = register(Recorder())
    llmkit.completion(model="p/m", messages=[], roles={"user": {"pre_message": "<u>"}}, bos_token="<s>")
    kwargs = handler.calls[0][1]
    assert kwargs["custom_prompt_dict"] == {"m": {"roles": {"user": {"pre_message": "<u>"}}, "bos_token": "<s>"}}
    assert kwargs["optional_params"] == {}


def test_a_returned_model_response_is_the_same_object_and_a_dict_becomes_one():
    prebuilt = ModelResponse(model="x", choices=[{"message": {"content": "pre"}}])

    class Returns(llmkit.CustomLLM):
        def __init__(self, value):
            self.value = value

        def completion(self, **kwargs):
            return self.value

    register(Returns(prebuilt))
    assert llmkit.completion(model="p/m", messages=[]) is prebuilt
    register(Returns({"id": "chatcmpl-1", "model": "m", "choices": [{"message": {"content": "from a dict"}}]}))
    response = llmkit.completion(model="p/m", messages=[])
    assert isinstance(response, ModelResponse)
    assert response.id == "chatcmpl-1" and response.choices[0].message.content == "from a dict"


def test_a_handler_returning_something_else_gets_a_clear_error():
    class Wrong(llmkit.CustomLLM):
        def completion(self, **kwargs):
            return "just a string"

    register(Wrong())
    with pytest.raises(
        llmkit.APIConnectionError,
        match=r"Wrong.completion\(\) \(provider .p.\) returned str: .just a string.; return a ModelResponse",
    ):
        llmkit.completion(model="p/m", messages=[])


def test_narrow_signatures_get_only_the_arguments_they_name():
    class Narrow(llmkit.CustomLLM):
        def completion(self, model, messages, optional_params):
            return ModelResponse(choices=[{"message": {"content": f"{model}:{len(messages)}:{optional_params}"}}])

        async def aimage_generation(
            self, model, prompt, model_response, optional_params, logging_obj, timeout=None, client=None
        ):
            return ImageResponse(data=[{"url": f"https://img/{prompt}"}])

    register(Narrow())
    assert llmkit.completion(model="p/m", messages=[{"role": "user"}], k=1).choices[0].message.content == "m:1:{'k': 1}"
    assert llmkit.image_generation(model="p/m", prompt="otter").data[0].url == "https://img/otter"


def test_reassigning_custom_provider_map_takes_effect_on_the_next_call():
    first, second = Recorder("first"), Recorder("second")
    register(first)
    assert llmkit.completion(model="p/m", messages=[]).choices[0].message.content == "first"
    llmkit.custom_provider_map = [{"provider": "p", "custom_handler": second}]
    assert llmkit.completion(model="p/m", messages=[]).choices[0].message.content == "second"
    llmkit.custom_provider_map.append({"provider": "q", "custom_handler": first})
    assert llmkit.completion(model="q/m", messages=[]).choices[0].message.content == "first"
    llmkit.custom_provider_map = []
    with pytest.raises(llmkit.BadRequestError, match="unknown provider 'p'"):
        llmkit.completion(model="p/m", messages=[])


def test_register_provider_and_the_map_override_built_ins():
    llmkit.register_provider("mine", Recorder("registered"))
    assert "mine" in llmkit.provider_names()
    assert llmkit.completion(model="mine/m", messages=[]).choices[0].message.content == "registered"
    register(Recorder("mapped"), "demo")
    assert llmkit.completion(model="demo/echo", messages=[]).choices[0].message.content == "mapped"
    llmkit.unregister_provider("mine")
    assert "mine" not in llmkit.provider_names()


@pytest.mark.parametrize(
    "entries, message",
    [
        ({"provider": "p"}, "must be a list"),
        ([{"name": "p", "handler": Recorder()}], "bad entry"),
        ([{"provider": "p", "custom_handler": Recorder}], r"not an instance; pass Recorder\(\)"),
        ([{"provider": "p", "custom_handler": object()}], "none of the handler methods"),
    ],
)
def test_bad_custom_provider_map_entries_explain_the_expected_shape(entries, message):
    llmkit.custom_provider_map = entries
    with pytest.raises(TypeError, match=message):
        llmkit.completion(model="p/m", messages=[])


@pytest.mark.parametrize("name", ["", "a/b", " p", None])
def test_register_provider_rejects_bad_names(name):
    with pytest.raises(ValueError, match="provider name"):
        llmkit.register_provider(name, Recorder())


def test_only_the_sync_method_serves_async_calls_in_a_worker_thread():
    import threading

    class SyncOnly(llmkit.CustomLLM):
        def completion(self, model, **kwargs):
            return ModelResponse(choices=[{"message": {"content": threading.current_thread().name}}])

    register(SyncOnly())
    name = asyncio.run(llmkit.acompletion(model="p/m", messages=[])).choices[0].message.content
    assert name != threading.main_thread().name


def test_only_the_async_method_serves_sync_calls():
    class AsyncOnly(llmkit.CustomLLM):
        async def acompletion(self, model, **kwargs):
            await asyncio.sleep(0)
            return ModelResponse(choices=[{"message": {"content": "from async"}}])

    register(AsyncOnly())
    assert llmkit.completion(model="p/m", messages=[]).choices[0].message.content == "from async"


def test_a_handler_implementing_nothing_fails_with_a_404_naming_the_method():
    register(llmkit.CustomLLM())
    for call, method in (
        (lambda: llmkit.completion(model="p/m", messages=[]), "completion()"),
        (lambda: asyncio.run(llmkit.acompletion(model="p/m", messages=[])), "acompletion()"),
        (lambda: llmkit.image_generation(model="p/m", prompt="x"), "image_generation()"),
        (lambda: llmkit.embedding(model="p/m", input="x"), "aembedding()"),
        (lambda: list(llmkit.completion(model="p/m", messages=[], stream=True)), "streaming()"),
    ):
        with pytest.raises(llmkit.NotFoundError, match=r"p/m: CustomLLM.*" + re.escape(method)) as error:
            call()
        assert error.value.status_code == 404


def test_embeddings_sync_and_async():
    register(Recorder())
    sync = llmkit.embedding(model="p/e", input="hello")
    asynchronous = asyncio.run(llmkit.aembedding(model="p/e", input="hello"))
    assert sync.data[0].embedding == asynchronous.data[0].embedding == [1.0, 0.0]
    assert sync.object == "list"


def test_responses_read_like_dicts_too():
    response = llmkit.completion(model="demo/echo", messages=[{"role": "user", "content": "hey"}])
    assert response["choices"][0]["message"]["content"] == "hey"
    assert response.get("missing", "default") == "default" and "choices" in response
    assert response.json()["choices"][0]["message"]["content"] == "hey"
