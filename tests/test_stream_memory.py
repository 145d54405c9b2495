"""A long stream runs in bounded memory: chunks are kept for a replay only up to a limit."""

import asyncio
import gc
import tracemalloc

import pytest
from helpers import chunk, register

import llmkit


class Long(llmkit.CustomLLM):
    """Streams ``optional_params["n"]`` one-word chunks, then a tool call, then the finish."""

    def streaming(self, model, messages, optional_params, **kwargs):
        for _ in range(optional_params["n"]):
            yield chunk("tok ")
        tool = {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": 1}'}, "index": 0}
        yield chunk(tool_use=tool)
        yield chunk(finished=True, finish_reason="stop")

    async def astreaming(self, model, messages, optional_params, **kwargs):
        for item in self.streaming(model, messages, optional_params):
            yield item


def test_a_long_stream_keeps_no_chunks_and_still_answers_in_full():
    register(Long())
    n = 20_000
    gc.collect()
    tracemalloc.start()
    try:
        stream = llmkit.completion(model="p/m", messages=[{"role": "user", "content": "go"}], stream=True, n=n)
        stream.replay_limit = 1_000  # the default is 10,000: the same mechanism, at a tenth of the time
        delivered = sum(1 for _ in stream)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert delivered == n + 2 and stream.chunk_count == n + 2
    assert stream.chunks == []  # past the replay limit none are kept
    # Keeping every chunk takes ~2 KB each, 40 MB here; what is held at once stays near the limit's 2 MB.
    assert peak < 8_000_000, peak
    answer = stream.response()
    assert answer.choices[0].message.content == "tok " * n
    assert answer.choices[0].message.tool_calls[0].function.arguments == '{"q": 1}'
    assert stream.text() == "tok " * n
    assert len(stream.converter.texts) < n / 100  # the text is held in a few long strings
    with pytest.raises(llmkit.LLMKitError, match=f"delivered {n + 2} chunks, more than its replay_limit of 1000"):
        list(stream)


def test_streams_keep_at_most_ten_thousand_chunks_for_a_replay_by_default():
    assert llmkit.CustomStreamWrapper.replay_limit == 10_000


def test_the_limit_can_be_lowered_to_keep_nothing_and_async_streams_obey_it():
    register(Long())

    async def run():
        stream = await llmkit.acompletion(model="p/m", messages=[], stream=True, n=5)
        stream.replay_limit = 0
        text = await stream.atext()
        with pytest.raises(llmkit.LLMKitError, match="replay_limit of 0"):
            async for _ in stream:
                pass
        return stream, text

    stream, text = asyncio.run(run())
    assert text == "tok " * 5 and stream.chunks == []


def test_a_stream_within_the_limit_replays_every_chunk():
    register(Long())
    stream = llmkit.completion(model="p/m", messages=[], stream=True, n=3)
    first = list(stream)
    assert list(stream) == first and len(first) == 5 and stream.chunks == first
    assert stream.response().choices[0].message.content == "tok tok tok "
