"""Usage and model agree everywhere: the response, the stream's chunks and usage chunk, and the call log."""

import asyncio

from calllog_support import USER, NoUsage, use
from helpers import register

import llmkit
from llmkit.types.utils import ModelResponse

TOKENS = ("prompt_tokens", "completion_tokens", "total_tokens")


def counts(usage):
    return tuple(usage[name] for name in TOKENS)


def test_a_handler_without_usage_gets_the_same_flagged_estimate_everywhere(log):
    use("quiet", NoUsage())
    response = llmkit.completion(model="quiet/m", messages=USER)
    stream = llmkit.completion(model="quiet/m", messages=USER, stream=True, stream_options={"include_usage": True})
    usage_chunk = list(stream)[-1]
    whole = stream.response()
    answer = asyncio.run(llmkit.acompletion(model="quiet/m", messages=USER))
    for usage in (response.usage, usage_chunk.usage, whole.usage, answer.usage):
        assert usage.estimated is True
        assert counts(usage) == counts(response.usage) and usage.total_tokens > 0
    assert response.usage.model_dump()["estimated"] is True  # flagged on the wire too
    for record in log.records():
        assert record["tokens_estimated"] is True
        assert (record["prompt_tokens"], record["completion_tokens"], record["total_tokens"]) == counts(response.usage)


def test_reported_usage_is_kept_and_not_flagged(log):
    response = llmkit.completion(model="demo/echo", messages=USER)
    assert response.usage.estimated is False and "estimated" not in response.usage.model_dump()
    assert log.records()[0]["tokens_estimated"] is False


class Unnamed(llmkit.CustomLLM):
    """Answers without naming a model, and streams plain chunks."""

    def completion(self, model, messages, **kwargs):
        return ModelResponse(choices=[{"message": {"content": "no model named"}}])

    def streaming(self, model, messages, **kwargs):
        yield {"text": "no model named", "is_finished": True, "finish_reason": "stop", "usage": None}


class Upstream(llmkit.CustomLLM):
    """Like a server that answers as a more precise model than the one asked for, in both shapes."""

    def completion(self, model, messages, **kwargs):
        return ModelResponse(model=f"{model}-2025-01-01", choices=[{"message": {"content": "hi"}}])

    def streaming(self, model, messages, **kwargs):
        base = {"id": "x", "object": "chat.completion.chunk", "created": 1, "model": f"{model}-2025-01-01"}
        yield {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "hi"}}]}
        yield {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}


def test_stream_chunks_carry_the_model_of_the_whole_answer():
    for handler, expected in ((Unnamed(), "m"), (Upstream(), "m-2025-01-01")):
        register(handler)
        whole = llmkit.completion(model="p/m", messages=USER)
        stream = llmkit.completion(model="p/m", messages=USER, stream=True, stream_options={"include_usage": True})
        chunks = list(stream)
        assert whole.model == expected
        assert {chunk.model for chunk in chunks} == {expected}
        assert stream.model == expected and stream.response().model == expected


class CompletionOnly(llmkit.CustomLLM):
    def completion(self, model, messages, **kwargs):
        return ModelResponse(model=model, choices=[{"message": {"content": "four words of answer"}}])


def test_a_completion_only_handler_streamed_keeps_the_estimate_flagged(log):
    register(CompletionOnly())
    whole = llmkit.completion(model="p/m", messages=USER)
    chunks = list(llmkit.completion(model="p/m", messages=USER, stream=True, stream_options={"include_usage": True}))
    assert chunks[-1].usage.estimated and counts(chunks[-1].usage) == counts(whole.usage)
    assert [record["tokens_estimated"] for record in log.records()] == [True, True]
