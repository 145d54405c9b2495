"""Streams: GenericStreamingChunk in, chat.completion.chunk out, sync and async alike."""

import asyncio

import pytest
from helpers import chunk, register

import llmkit
from llmkit.types.utils import ModelResponseStream


class Streamer(llmkit.CustomLLM):
    """Yields the chunks it was given, from both streaming methods; optionally fails after them."""

    def __init__(self, chunks, error=None):
        self.chunks = chunks
        self.error = error
        self.closed = False

    def streaming(self, **kwargs):
        try:
            yield from self.chunks
            if self.error:
                raise self.error
        finally:
            self.closed = True

    async def astreaming(self, **kwargs):
        try:
            for item in self.chunks:
                yield item
            if self.error:
                raise self.error
        finally:
            self.closed = True


def collect(stream_kwargs=None, *, is_async=False, **kwargs):
    arguments = dict(model="p/m", messages=[{"role": "user", "content": "hello there"}], stream=True, **kwargs)
    if not is_async:
        return list(llmkit.completion(**arguments))

    async def consume():
        return [item async for item in await llmkit.acompletion(**arguments)]

    return asyncio.run(consume())


both = pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])


@both
def test_chunks_share_one_id_the_first_has_the_role_and_a_final_chunk_finishes(is_async):
    register(Streamer([chunk("Hel"), chunk("lo"), chunk("!", finished=True, finish_reason="stop")]))
    chunks = collect(is_async=is_async)
    assert all(isinstance(c, ModelResponseStream) and c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1 and chunks[0].id.startswith("chatcmpl-")
    assert [c.choices[0].delta.content for c in chunks] == ["Hel", "lo", "!", None]
    assert [c.choices[0].delta.role for c in chunks] == ["assistant", None, None, None]
    assert [c.choices[0].finish_reason for c in chunks] == [None, None, None, "stop"]
    assert {c.model for c in chunks} == {"m"}


@both
def test_include_usage_adds_a_usage_chunk_with_the_handlers_usage(is_async):
    usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    register(Streamer([chunk("a"), chunk("b", finished=True, finish_reason="length", usage=usage)]))
    chunks = collect(is_async=is_async, stream_options={"include_usage": True})
    assert chunks[-2].choices[0].finish_reason == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage.model_dump() == usage


def test_usage_is_estimated_when_the_handler_reports_none():
    register(Streamer([chunk("one two three four", finished=True)]))
    chunks = collect(stream_options={"include_usage": True})
    assert chunks[-1].usage.completion_tokens >= 4 and chunks[-1].usage.prompt_tokens > 0


@both
def test_tool_use_becomes_delta_tool_calls_and_the_builder_merges_them(is_async):
    calls = [
        {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": '}, "index": 0},
        {"id": None, "type": "function", "function": {"name": None, "arguments": '"otters"}'}, "index": 0},
    ]
    register(Streamer([chunk(tool_use=calls[0]), chunk(tool_use=calls[1], finished=True, finish_reason="tool_calls")]))
    chunks = collect(is_async=is_async)
    assert chunks[0].choices[0].delta.tool_calls[0].function.name == "lookup"
    response = llmkit.stream_chunk_builder(chunks)
    (call,) = response.choices[0].message.tool_calls
    assert (call.id, call.function.name, call.function.arguments) == ("call_1", "lookup", '{"q": "otters"}')
    assert response.choices[0].finish_reason == "tool_calls" and response.choices[0].message.content is None


def test_handlers_may_yield_model_response_stream_objects_and_openai_dicts():
    yielded = [
        ModelResponseStream(choices=[{"delta": {"content": "from object"}}]),
        {"id": "x", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": " and dict"}}]},
        ModelResponseStream(choices=[{"delta": {}, "finish_reason": "eos"}]),
    ]
    register(Streamer(yielded))
    chunks = collect()
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    # The handler sent its own finish chunk: no second one, and "eos" reads as OpenAI's "stop".
    assert [c.choices[0].finish_reason for c in chunks] == [None, None, "stop"]
    assert llmkit.stream_chunk_builder(chunks).choices[0].message.content == "from object and dict"


@both
def test_thousands_of_identical_chunks_stream_faithfully(is_async):
    register(Streamer([chunk("same")] * 5000))
    chunks = collect(is_async=is_async)
    assert len(chunks) == 5001
    assert llmkit.stream_chunk_builder(chunks).choices[0].message.content == "same" * 5000


@both
def test_an_error_midway_arrives_after_the_delivered_chunks_with_its_status(is_async):
    handler = register(Streamer([chunk("partial ")], error=llmkit.CustomLLMError(429, "slow down")))
    received = []

    async def consume_async():
        async for item in await llmkit.acompletion(model="p/m", messages=[], stream=True):
            received.append(item)

    with pytest.raises(llmkit.RateLimitError) as error:
        if is_async:
            asyncio.run(consume_async())
        else:
            for item in llmkit.completion(model="p/m", messages=[], stream=True):
                received.append(item)
    assert [c.choices[0].delta.content for c in received] == ["partial "]
    assert error.value.status_code == 429 and error.value.message == "slow down"
    assert handler.closed


def test_an_error_when_streaming_is_called_comes_out_of_completion_itself():
    class Refuses(llmkit.CustomLLM):
        def streaming(self, **kwargs):
            raise llmkit.CustomLLMError(401, "bad key")

    register(Refuses())
    with pytest.raises(llmkit.AuthenticationError, match="bad key"):
        llmkit.completion(model="p/m", messages=[], stream=True)


def test_closing_a_stream_early_stops_the_handlers_generator():
    handler = register(Streamer([chunk(str(i)) for i in range(100)]))
    with llmkit.completion(model="p/m", messages=[], stream=True) as stream:
        first = next(stream)
    assert first.choices[0].delta.content == "0" and handler.closed


def test_closing_an_async_stream_early_stops_the_handlers_generator():
    handler = register(Streamer([chunk(str(i)) for i in range(100)]))

    async def consume():
        async with await llmkit.acompletion(model="p/m", messages=[], stream=True) as stream:
            async for _ in stream:
                break

    asyncio.run(consume())
    assert handler.closed


def test_a_finished_stream_replays_and_drains_to_text_or_a_response():
    register(Streamer([chunk("a "), chunk("b", finished=True)]))
    stream = llmkit.completion(model="p/m", messages=[], stream=True)
    assert stream.text() == "a b"
    assert [c.choices[0].delta.content for c in stream] == ["a ", "b", None]
    assert stream.response().choices[0].message.content == "a b"


def test_iterating_with_the_wrong_kind_of_loop_says_which_to_use():
    register(Streamer([chunk("x")]))
    with pytest.raises(TypeError, match="async for"):
        asyncio.run(_iterate_sync_over_async())
    with pytest.raises(TypeError, match="with 'for'"):
        llmkit.completion(model="p/m", messages=[], stream=True).__aiter__()


async def _iterate_sync_over_async():
    list(await llmkit.acompletion(model="p/m", messages=[], stream=True))


def test_a_sync_only_streaming_handler_serves_async_streams_from_a_thread():
    class SyncStream(llmkit.CustomLLM):
        def streaming(self, **kwargs):
            import time

            for i in range(3):
                time.sleep(0.01)  # blocking work must not stall the event loop
                yield chunk(str(i))

    register(SyncStream())

    async def consume():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.002)
                ticks += 1

        task = asyncio.create_task(ticker())
        texts = [
            c.choices[0].delta.content async for c in await llmkit.acompletion(model="p/m", messages=[], stream=True)
        ]
        task.cancel()
        return texts, ticks

    texts, ticks = asyncio.run(consume())
    assert texts == ["0", "1", "2", None]
    assert ticks > 3  # the loop kept running while the handler slept


def test_an_async_only_streaming_handler_serves_sync_streams():
    class AsyncStream(llmkit.CustomLLM):
        async def astreaming(self, **kwargs):
            for i in range(3):
                await asyncio.sleep(0)
                yield chunk(str(i))

    register(AsyncStream())
    texts = [c.choices[0].delta.content for c in llmkit.completion(model="p/m", messages=[], stream=True)]
    assert texts == ["0", "1", "2", None]


@both
def test_a_handler_without_streaming_methods_streams_its_whole_answer(is_async):
    class Whole(llmkit.CustomLLM):
        def completion(self, model, **kwargs):
            return llmkit.ModelResponse(model=model, choices=[{"message": {"content": "all at once"}}])

    register(Whole())
    chunks = collect(is_async=is_async)
    assert llmkit.stream_chunk_builder(chunks).choices[0].message.content == "all at once"
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_bare_string_chunks_are_text():
    class Strings(llmkit.CustomLLM):
        def streaming(self, **kwargs):
            yield from ["a", "b"]

    register(Strings())
    assert llmkit.completion(model="p/m", messages=[], stream=True).text() == "ab"


def test_a_chunk_of_the_wrong_type_gets_a_clear_error():
    register(Streamer([42]))
    with pytest.raises(llmkit.APIConnectionError, match=r"GenericStreamingChunk dict.*got int"):
        collect()


def test_stream_chunk_builder_of_nothing_is_none():
    assert llmkit.stream_chunk_builder([]) is None


def test_demo_lorem_streams_with_usage():
    stream = llmkit.completion(
        model="demo/lorem",
        messages=[{"role": "user", "content": "x"}],
        stream=True,
        max_tokens=20,
        tokens_per_second=0,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[-1].usage.completion_tokens == 20
    assert len(stream.text().split()) == 20
