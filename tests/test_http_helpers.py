"""HTTPLLM: a handler for a custom-format API in a dozen lines, against a torch-serve style server."""

import asyncio

import pytest
from fake_servers import FakeServer, openai_app, torchserve_app

import llmkit
from llmkit.http import HTTPLLM, Request, last_user_text
from llmkit.providers.invoke import implements
from llmkit.sse import JSONLinesDecoder, SSEDecoder, decoder_for

MESSAGES = [{"role": "user", "content": "hi there"}]


class TorchServe(HTTPLLM):
    """The example of docs/custom-http.md: everything a user writes for their API."""

    stream_format = "jsonl"

    def build_request(self, model, messages, params, stream):
        return Request(f"/predictions/{model}", json={"prompt": last_user_text(messages), "stream": stream, **params})

    def parse_response(self, data, model):
        return data["generated_text"]

    def parse_chunk(self, data, model):
        if data.get("finished"):
            return {"text": "", "is_finished": True, "finish_reason": "stop", "usage": None}
        return data["token"]


@pytest.fixture(scope="module")
def torchserve():
    with FakeServer(torchserve_app()) as srv:
        yield srv


@pytest.fixture
def provider(torchserve):
    llmkit.custom_provider_map = [{"provider": "ts", "custom_handler": TorchServe(api_base=torchserve.url)}]
    return "ts"


def test_completion_maps_the_request_and_the_answer(torchserve, provider):
    resp = llmkit.completion("ts/gpt-tiny", MESSAGES, temperature=0.5)
    assert resp.choices[0].message.content == "you said: hi there"
    assert torchserve.requests[-1].json == {"prompt": "hi there", "stream": False, "temperature": 0.5}
    assert torchserve.requests[-1].path == "/predictions/gpt-tiny"


def test_streaming_from_json_lines_sync_and_async(provider):
    stream = llmkit.completion("ts/gpt-tiny", MESSAGES, stream=True)
    chunks = list(stream)
    assert stream.text() == "you said: hi there "
    assert len(chunks) >= 4 and chunks[-1].choices[0].finish_reason == "stop"

    async def run():
        stream = await llmkit.acompletion("ts/gpt-tiny", MESSAGES, stream=True)
        return await stream.atext()

    assert asyncio.run(run()) == "you said: hi there "


def test_the_servers_error_message_reaches_the_caller(provider):
    with pytest.raises(llmkit.NotFoundError, match="Model not found: no-such") as info:
        llmkit.completion("ts/no-such", MESSAGES)
    assert info.value.status_code == 404
    with pytest.raises(llmkit.NotFoundError, match="Model not found: no-such"):
        asyncio.run(llmkit.acompletion("ts/no-such", MESSAGES, stream=True))


def test_a_parse_hook_that_does_not_match_the_answer_shows_the_answer(torchserve):
    class WrongKey(TorchServe):
        def parse_response(self, data, model):
            return data["text"]

    llmkit.custom_provider_map = [{"provider": "wrong", "custom_handler": WrongKey(api_base=torchserve.url)}]
    with pytest.raises(llmkit.BadGatewayError) as info:
        llmkit.completion("wrong/gpt-tiny", MESSAGES)
    assert "WrongKey.parse_response() failed on the server's answer (KeyError: 'text')" in str(info.value)
    assert '{"generated_text": "you said: hi there"}' in str(info.value)


def test_a_stream_in_another_format_than_declared_is_named(torchserve):
    class SaysSSE(TorchServe):
        stream_format = "sse"

    llmkit.custom_provider_map = [{"provider": "sse", "custom_handler": SaysSSE(api_base=torchserve.url)}]
    with pytest.raises(
        llmkit.BadGatewayError, match=r"no stream events \(content-type 'application/jsonl', expected sse\)"
    ):
        llmkit.completion("sse/gpt-tiny", MESSAGES, stream=True).text()


def test_methods_without_hooks_stay_unimplemented():
    handler = TorchServe(api_base="http://127.0.0.1:9")
    for method in ("completion", "acompletion", "streaming", "astreaming"):
        assert implements(handler, method)
    for method in ("embedding", "aembedding", "image_generation", "aimage_generation"):
        assert not implements(handler, method)
    llmkit.custom_provider_map = [{"provider": "ts", "custom_handler": handler}]
    with pytest.raises(llmkit.NotFoundError, match=r"ts/gpt-tiny: TorchServe.*does not do embeddings"):
        llmkit.embedding("ts/gpt-tiny", "x")


def test_a_handler_without_parse_chunk_still_streams_its_whole_answer(torchserve):
    class WholeOnly(HTTPLLM):
        api_base = torchserve.url

        def build_request(self, model, messages, params, stream):
            return Request(f"/predictions/{model}", json={"prompt": last_user_text(messages)})

        def parse_response(self, data, model):
            return data["generated_text"]

    assert not implements(WholeOnly(), "streaming")
    llmkit.custom_provider_map = [{"provider": "whole", "custom_handler": WholeOnly()}]
    assert llmkit.completion("whole/gpt-tiny", MESSAGES, stream=True).text() == "you said: hi there"


def test_a_method_written_by_hand_wins_over_missing_hooks():
    class Mixed(HTTPLLM):
        def embedding(self, model, input, **kwargs):
            return {"data": [{"embedding": [1.0], "index": 0}]}

    assert implements(Mixed(), "embedding")
    assert not implements(Mixed(), "completion")


def test_no_base_url_says_where_to_give_one(monkeypatch):
    class NoBase(TorchServe):
        api_base_env = ("MY_API_BASE",)

    monkeypatch.delenv("MY_API_BASE", raising=False)
    llmkit.custom_provider_map = [{"provider": "nobase", "custom_handler": NoBase()}]
    with pytest.raises(llmkit.BadRequestError, match=r"NoBase needs a base URL: pass api_base=.*MY_API_BASE"):
        llmkit.completion("nobase/gpt-tiny", MESSAGES)


def test_sse_helpers_with_custom_auth_and_no_done_marker():
    """A custom SSE API: its own auth header, its own event shape, the stream just ends."""

    class Gateway(HTTPLLM):
        api_key_env = ("GATEWAY_KEY",)

        def auth_headers(self, api_key):
            return {"X-Api-Key": api_key} if api_key else {}

        def build_request(self, model, messages, params, stream):
            # The fake OpenAI server stands in for the gateway; only the shapes matter here.
            return Request("/v1/chat/completions", json={"model": model, "messages": messages, "stream": stream})

        def parse_response(self, data, model):
            return data

        def parse_chunk(self, data, model):
            choice = data["choices"][0]
            return {
                "text": choice["delta"].get("content") or "",
                "is_finished": bool(choice["finish_reason"]),
                "finish_reason": choice["finish_reason"],
                "usage": None,
            }

    with FakeServer(openai_app()) as srv:
        handler = Gateway(api_base=srv.url, api_key="k-1")
        llmkit.custom_provider_map = [{"provider": "gw", "custom_handler": handler}]
        assert llmkit.completion("gw/echo", MESSAGES, stream=True).text() == "hi there"
        assert srv.requests[-1].headers["x-api-key"] == "k-1"


# -- the decoders -----------------------------------------------------------------------------------
SSE_BODY = (
    b": keep-alive\r\n\r\n"
    b'data: {"a": 1}\r\n\r\n'
    b"event: error\ndata: line one\ndata: line two\n\n"
    b"data: caf\xc3\xa9\n\n"
    b"id: 7\ndata: [DONE]\n\n"
)
SSE_EVENTS = [("message", '{"a": 1}'), ("error", "line one\nline two"), ("message", "café"), ("message", "[DONE]")]


@pytest.mark.parametrize("size", [1, 2, 3, 7, len(SSE_BODY)])
def test_sse_decoder_gives_the_same_events_however_the_bytes_are_split(size):
    decoder = SSEDecoder()
    events = []
    for start in range(0, len(SSE_BODY), size):
        events += decoder.feed(SSE_BODY[start : start + size])
    events += decoder.close()
    assert events == SSE_EVENTS


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"], ids=["LF", "CRLF", "CR"])
@pytest.mark.parametrize("size", [1, 2, 5, 1000])
def test_sse_decoder_accepts_every_line_ending_the_specification_allows(ending, size):
    body = SSE_BODY.replace(b"\r\n", b"\n").replace(b"\n", ending)
    decoder = SSEDecoder()
    events = []
    for start in range(0, len(body), size):  # size 1 splits every \r\n between two reads
        events += decoder.feed(body[start : start + size])
    assert events == SSE_EVENTS  # each event as soon as its blank line arrived, nothing left for close()
    assert decoder.close() == []


def test_sse_decoder_mixed_endings_and_a_cr_at_the_end_of_a_read():
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\ndata: b\r\r") == [("message", "a\nb")]  # \r then \n: one line end, not two
    assert decoder.feed(b"\n\ndata: c\n\r") == [("message", "c")]  # that \n was the \r's; \n\r ends c
    assert decoder.close() == []


def test_sse_decoder_flushes_a_last_event_without_its_blank_line():
    decoder = SSEDecoder()
    assert decoder.feed(b"data: x\n\ndata: tail") == [("message", "x")]
    assert decoder.close() == [("message", "tail")]


def test_json_lines_decoder_skips_blank_lines_and_keeps_a_last_line():
    decoder = decoder_for("jsonl")
    assert isinstance(decoder, JSONLinesDecoder)
    assert decoder.feed(b'{"a": 1}\n\n{"b"') == [("message", '{"a": 1}')]
    assert decoder.feed(b': 2}\n{"c": 3}') == [("message", '{"b": 2}')]
    assert decoder.close() == [("message", '{"c": 3}')]


def test_unknown_stream_format_is_named():
    with pytest.raises(ValueError, match="stream_format must be 'sse' or 'jsonl', got 'xml'"):
        decoder_for("xml")
