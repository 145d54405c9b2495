"""The openai provider calling llmkit's own proxy, which calls a custom handler: a full round trip."""

import asyncio

import pytest
from proxy_support import running_server, write_config

import llmkit
from llmkit import CustomLLM, CustomLLMError, ModelResponse

KEY = "sk-roundtrip-test"


class Shouty(CustomLLM):
    def completion(self, model, messages, optional_params, **kwargs):
        if optional_params.get("fail_with"):
            raise CustomLLMError(int(optional_params["fail_with"]), "asked to fail")
        text = messages[-1]["content"].upper() + "!" * int(optional_params.get("excitement", 1))
        return ModelResponse(model=model, choices=[{"message": {"content": text}}])


@pytest.fixture(scope="module")
def proxy_url(tmp_path_factory):
    llmkit.register_provider("shouty", Shouty())
    config = write_config(
        tmp_path_factory.mktemp("roundtrip"),
        f"""
        model_list:
          - model_name: shout
            litellm_params: {{model: shouty/v1}}
          - model_name: embed
            litellm_params: {{model: demo/embed}}
          - model_name: paint
            litellm_params: {{model: demo/image}}
        general_settings: {{master_key: {KEY}}}
        """,
    )
    with running_server(config) as url:
        yield url + "/v1"


@pytest.fixture
def via_proxy(proxy_url):
    llmkit.register_provider("shouty", Shouty())  # the server thread resolves it on every request
    return {"api_base": proxy_url, "api_key": KEY}


def test_chat_sync_async_and_streamed(via_proxy):
    messages = [{"role": "user", "content": "hello"}]
    response = llmkit.completion(model="openai/shout", messages=messages, excitement=3, **via_proxy)
    assert response.choices[0].message.content == "HELLO!!!"
    asynchronous = asyncio.run(llmkit.acompletion(model="openai/shout", messages=messages, **via_proxy))
    assert asynchronous.choices[0].message.content == "HELLO!"
    stream = llmkit.completion(
        model="openai/shout", messages=messages, stream=True, stream_options={"include_usage": True}, **via_proxy
    )
    chunks = list(stream)
    assert stream.text() == "HELLO!"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0


def test_a_handler_status_code_survives_both_hops(via_proxy):
    with pytest.raises(llmkit.RateLimitError, match="asked to fail") as error:
        llmkit.completion(model="openai/shout", messages=[{"role": "user", "content": "x"}], fail_with=429, **via_proxy)
    assert error.value.status_code == 429


def test_a_wrong_key_is_an_authentication_error(via_proxy):
    with pytest.raises(llmkit.AuthenticationError):
        llmkit.completion(model="openai/shout", messages=[], api_base=via_proxy["api_base"], api_key="sk-wrong")


def test_embeddings_and_images(via_proxy):
    vectors = llmkit.embedding(model="openai/embed", input=["a", "b"], **via_proxy)
    assert len(vectors.data) == 2 and len(vectors.data[0].embedding) == 16
    direct = llmkit.embedding(model="demo/embed", input=["a"])
    assert vectors.data[0].embedding == pytest.approx(direct.data[0].embedding)
    image = llmkit.image_generation(model="openai/paint", prompt="an otter", **via_proxy)
    assert image.data[0].b64_json.startswith("iVBORw0KGgo")  # base64 of the PNG signature
