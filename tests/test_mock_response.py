"""mock_response: answers, streams and errors without calling a handler."""

import asyncio

import pytest
from helpers import Recorder, register

import llmkit


@pytest.mark.parametrize("model", ["gpt-3.5-turbo", "test/unixtime", "p/m"])
def test_a_string_gives_a_complete_response_for_any_model_string(model):
    handler = register(Recorder())
    response = llmkit.completion(model=model, messages=[{"role": "user", "content": "hi"}], mock_response="Hi!")
    assert handler.calls == []
    assert response.choices[0].message.content == "Hi!"
    assert response.choices[0].message.role == "assistant" and response.choices[0].finish_reason == "stop"
    assert response.usage.model_dump() == {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30}
    assert response.model == model.partition("/")[2] or response.model == model


def test_messages_may_be_omitted_and_async_works():
    response = asyncio.run(llmkit.acompletion(model="gpt-3.5-turbo", mock_response="async hi"))
    assert response.choices[0].message.content == "async hi" and response.model == "gpt-3.5-turbo"


def test_a_mocked_stream_arrives_in_chunks_and_rebuilds():
    chunks = list(llmkit.completion(model="x/m", messages=[], stream=True, mock_response="one two three"))
    assert len(chunks) == 4 and chunks[-1].choices[0].finish_reason == "stop"
    assert llmkit.stream_chunk_builder(chunks).choices[0].message.content == "one two three"

    async def consume():
        stream = await llmkit.acompletion(
            model="x/m", messages=[], stream=True, mock_response="a b", stream_options={"include_usage": True}
        )
        return [c async for c in stream]

    achunks = asyncio.run(consume())
    assert achunks[-1].usage.total_tokens == 30


@pytest.mark.parametrize(
    "mock, cls, status",
    [
        (llmkit.RateLimitError("mocked"), llmkit.RateLimitError, 429),
        (llmkit.CustomLLMError(503, "down"), llmkit.ServiceUnavailableError, 503),
        (ValueError("boom"), llmkit.InternalServerError, 500),
        ("litellm.RateLimitError", llmkit.RateLimitError, 429),
        ("llmkit.InternalServerError", llmkit.InternalServerError, 500),
    ],
)
def test_an_exception_is_raised_as_the_mapped_error(mock, cls, status):
    with pytest.raises(cls) as error:
        llmkit.completion(model="x/m", messages=[], mock_response=mock)
    assert error.value.status_code == status
    with pytest.raises(cls):
        list(llmkit.completion(model="x/m", messages=[], stream=True, mock_response=mock))


def test_a_model_response_is_returned_as_is_and_a_dict_becomes_one():
    prebuilt = llmkit.ModelResponse(choices=[{"message": {"content": "pre"}}])
    assert llmkit.completion(model="x/m", messages=[], mock_response=prebuilt) is prebuilt
    response = llmkit.completion(model="x/m", messages=[], mock_response={"choices": [{"message": {"content": "d"}}]})
    assert isinstance(response, llmkit.ModelResponse) and response.choices[0].message.content == "d"


def test_an_unusable_mock_says_what_it_accepts():
    with pytest.raises(llmkit.BadRequestError, match="mock_response must be a str"):
        llmkit.completion(model="x/m", messages=[], mock_response=3.5)


def test_a_mock_still_needs_a_well_formed_model_string():
    with pytest.raises(llmkit.BadRequestError, match="non-empty string"):
        llmkit.completion(model="", messages=[], mock_response="hi")
