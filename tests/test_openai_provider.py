"""The openai/<model> provider against a real OpenAI-compatible server on a loopback port."""

import asyncio
import subprocess
import sys

import pytest
from fake_servers import FakeServer, openai_app

import llmkit
from llmkit import _aiotransport, _http_errors, _transport
from llmkit.providers.openai_compat import OpenAICompatLLM

MESSAGES = [{"role": "user", "content": "hello from the test"}]


def last_body(server):
    return server.requests[-1].json


# -- chat -------------------------------------------------------------------------------------------
def test_completion_returns_the_servers_answer_and_usage(base):
    resp = llmkit.completion("openai/echo", MESSAGES, api_base=base)
    assert resp.choices[0].message.content == "hello from the test"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage.total_tokens == 8


def test_acompletion_matches_completion(base):
    sync = llmkit.completion("openai/echo", MESSAGES, api_base=base)
    async_ = asyncio.run(llmkit.acompletion("openai/echo", MESSAGES, api_base=base))
    assert async_.choices[0].message.content == sync.choices[0].message.content
    assert async_.usage == sync.usage


def test_optional_params_extra_body_and_headers_reach_the_server(server, base):
    llmkit.completion(
        "openai/echo",
        MESSAGES,
        api_base=base,
        api_key="sk-test",
        temperature=0.2,
        top_k=5,  # not an OpenAI parameter: a server extension, passed through
        extra_body={"guided_choice": ["a", "b"]},
        extra_headers={"X-Team": "research"},
    )
    body, headers = last_body(server), server.requests[-1].headers
    assert body["model"] == "echo" and body["messages"] == MESSAGES
    assert body["temperature"] == 0.2 and body["top_k"] == 5 and body["guided_choice"] == ["a", "b"]
    assert "extra_body" not in body and "stream" not in body
    llmkit.completion("openai/echo", MESSAGES, api_base=server.url + "/v1", stream_options={"include_usage": True})
    assert "stream_options" not in last_body(server)  # OpenAI rejects it on a call that does not stream
    assert headers["authorization"] == "Bearer sk-test"
    assert headers["x-team"] == "research"


def test_key_and_base_come_from_the_environment(server, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", server.url + "/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    resp = llmkit.completion("openai/echo", MESSAGES)
    assert resp.choices[0].message.content == "hello from the test"
    assert server.requests[-1].headers["authorization"] == "Bearer sk-env"


def test_openai_api_base_is_read_too(server, monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("OPENAI_API_BASE", server.url + "/v1")
    assert llmkit.completion("openai/echo", MESSAGES).choices[0].message.content == "hello from the test"


def test_a_server_registered_under_its_own_name(server):
    llmkit.register_provider("local", OpenAICompatLLM(api_base=server.url + "/v1", api_key="sk-local"))
    resp = llmkit.completion("local/echo", MESSAGES)
    assert resp.choices[0].message.content == "hello from the test"
    assert server.requests[-1].headers["authorization"] == "Bearer sk-local"


# -- streaming --------------------------------------------------------------------------------------
def test_stream_yields_chunks_then_finish_then_usage(server, base):
    stream = llmkit.completion(
        "openai/echo", MESSAGES, api_base=base, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    texts = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert "".join(texts) == "hello from the test"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 8
    assert last_body(server)["stream"] is True


def test_stream_asks_the_server_for_usage_by_default(server, base):
    stream = llmkit.completion("openai/echo", MESSAGES, api_base=base, stream=True)
    assert stream.text() == "hello from the test"
    assert last_body(server)["stream_options"] == {"include_usage": True}
    assert not stream.converter.usage_estimated  # the server's own usage was kept


def test_async_stream(base):
    async def run():
        stream = await llmkit.acompletion("openai/echo", MESSAGES, api_base=base, stream=True)
        return [c async for c in stream], stream

    chunks, stream = asyncio.run(run())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "hello from the test"
    assert stream.converter.usage["total_tokens"] == 8


@pytest.mark.parametrize("model", ["crlf-lines", "cr-lines"])
def test_streams_with_crlf_or_cr_line_ends(base, model):
    assert llmkit.completion(f"openai/{model}", MESSAGES, api_base=base, stream=True).text() == "hello from the test"

    async def run():
        stream = await llmkit.acompletion(f"openai/{model}", MESSAGES, api_base=base, stream=True)
        return await stream.atext(), stream.converter.usage

    text, usage = asyncio.run(run())
    assert text == "hello from the test" and usage["total_tokens"] == 8  # every event, the last one too


def test_closing_a_stream_early_frees_the_connection(server, base):
    handler = OpenAICompatLLM()
    stream = handler.streaming(model="echo", messages=MESSAGES, api_base=base, optional_params={"max_tokens": 50})
    next(stream)
    stream.close()
    assert stream._events.response.is_closed
    assert list(stream) == []


# -- embeddings and images ------------------------------------------------------------------------------
def test_embeddings_sync_and_async(server, base):
    resp = llmkit.embedding("openai/embed-small", ["a", "bbb"], api_base=base, dimensions=3)
    assert [d.embedding for d in resp.data] == [[1.0, 2.0, 3.0], [3.0, 4.0, 5.0]]
    assert last_body(server) == {"model": "embed-small", "input": ["a", "bbb"], "dimensions": 3}
    again = asyncio.run(llmkit.aembedding("openai/embed-small", ["a", "bbb"], api_base=base, dimensions=3))
    assert again.data == resp.data


def test_image_generation_sync_and_async(server, base):
    resp = llmkit.image_generation("a red cat", model="openai/img-1", api_base=base, n=2)
    assert [d.url for d in resp.data] == ["http://127.0.0.1/a-red-cat-0.png", "http://127.0.0.1/a-red-cat-1.png"]
    assert last_body(server) == {"model": "img-1", "prompt": "a red cat", "n": 2}
    again = asyncio.run(llmkit.aimage_generation("a red cat", model="openai/img-1", api_base=base, n=2))
    assert again.data == resp.data


# -- errors -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "status, cls",
    [
        (400, llmkit.BadRequestError),
        (401, llmkit.AuthenticationError),
        (404, llmkit.NotFoundError),
        (422, llmkit.UnprocessableEntityError),
        (429, llmkit.RateLimitError),
        (500, llmkit.InternalServerError),
        (503, llmkit.ServiceUnavailableError),
    ],
)
def test_http_status_maps_to_its_class_with_the_servers_message(base, status, cls):
    with pytest.raises(cls) as info:
        llmkit.completion(f"openai/status-{status}", MESSAGES, api_base=base)
    assert info.value.status_code == status
    assert f"fake failure {status} for status-{status}" in str(info.value)
    assert info.value.llm_provider == "openai"


def test_retry_after_is_read_on_429_and_503(base):
    with pytest.raises(llmkit.RateLimitError) as info:
        llmkit.completion("openai/status-429", MESSAGES, api_base=base)
    assert info.value.retry_after == 7.0
    with pytest.raises(llmkit.ServiceUnavailableError) as info:
        asyncio.run(llmkit.aembedding("openai/status-503", "x", api_base=base))
    assert info.value.retry_after == 7.0


def test_retry_after_zero_lets_retries_succeed(server, base):
    resp = llmkit.completion("openai/flaky", MESSAGES, api_base=base, num_retries=2, flaky_id="sync", fail_first=2)
    assert resp.choices[0].message.content == "hello from the test"
    assert len(server.requests) == 3
    resp = asyncio.run(llmkit.acompletion("openai/flaky", MESSAGES, api_base=base, num_retries=1, flaky_id="async"))
    assert resp.choices[0].message.content == "hello from the test"


def test_streams_are_retried_before_the_first_chunk(server, base):
    stream = llmkit.completion("openai/flaky", MESSAGES, api_base=base, stream=True, num_retries=1, flaky_id="stream")
    assert stream.text() == "hello from the test"


def test_missing_key_on_401_says_how_to_send_one(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with FakeServer(openai_app(api_key="sk-right")) as srv:
        with pytest.raises(llmkit.AuthenticationError) as info:
            llmkit.completion("openai/echo", MESSAGES, api_base=srv.url + "/v1")
        assert "Incorrect API key provided" in str(info.value)
        assert "OPENAI_API_KEY" in str(info.value)
        ok = llmkit.completion("openai/echo", MESSAGES, api_base=srv.url + "/v1", api_key="sk-right")
        assert ok.choices[0].message.content == "hello from the test"


def test_a_body_that_is_not_json_is_a_bad_gateway(base):
    with pytest.raises(llmkit.BadGatewayError, match="not JSON: '<html>this is not json'"):
        llmkit.completion("openai/bad-json", MESSAGES, api_base=base)


def test_httpx_timeout_becomes_timeout(base):
    handler = OpenAICompatLLM()
    with pytest.raises(llmkit.Timeout, match="did not answer in time"):
        handler.completion(model="slow", messages=MESSAGES, api_base=base, timeout=0.2, optional_params={"delay": 1})
    with pytest.raises(llmkit.Timeout):
        asyncio.run(
            handler.acompletion(
                model="slow", messages=MESSAGES, api_base=base, timeout=0.2, optional_params={"delay": 1}
            )
        )


def test_completion_timeout_is_a_timeout_error(base):
    with pytest.raises(llmkit.Timeout) as info:
        llmkit.completion("openai/slow", MESSAGES, api_base=base, timeout=0.2, delay=1)
    assert info.value.status_code == 408
    # Streams: llmkit's wait for each chunk and the HTTP read timeout run out together; either says so.
    with pytest.raises(llmkit.Timeout):
        llmkit.completion("openai/slow", MESSAGES, api_base=base, timeout=0.2, delay=1, stream=True).text()


def test_a_stream_that_stalls_past_the_timeout_is_a_timeout(base):
    stream = llmkit.completion("openai/stall-stream", MESSAGES, api_base=base, stream=True, timeout=0.2, delay=1)
    with pytest.raises(llmkit.Timeout):
        list(stream)
    assert stream.chunk_count  # what arrived before the stall was delivered
    chunks = OpenAICompatLLM().streaming(
        model="stall-stream", messages=MESSAGES, api_base=base, timeout=0.2, optional_params={"delay": 1}
    )
    with pytest.raises(llmkit.Timeout, match="the stream broke before it finished: the server did not answer in time"):
        list(chunks)


@pytest.mark.parametrize("headers", ["httpx", "aiohttp"])
def test_retry_after_forms(headers):
    import httpx
    from multidict import CIMultiDict  # aiohttp's headers

    make = httpx.Headers if headers == "httpx" else CIMultiDict
    assert _http_errors.retry_after_seconds(make({"Retry-After-Ms": "1500", "retry-after": "9"})) == 1.5
    assert _http_errors.retry_after_seconds(make({"Retry-After": "2.5"})) == 2.5
    assert _http_errors.retry_after_seconds(make({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"})) == 0.0
    assert _http_errors.retry_after_seconds(make({"retry-after": "soon"})) is None
    assert _http_errors.retry_after_seconds(make({})) is None


def test_nothing_listening_is_a_connection_error():
    with FakeServer({}) as srv:
        dead = srv.url  # the port is free again once the server is gone
    with pytest.raises(llmkit.APIConnectionError, match=r"could not connect .* is the server running"):
        llmkit.completion("openai/echo", MESSAGES, api_base=dead + "/v1")


@pytest.mark.parametrize(
    "model, cls, text",
    [
        ("broken-stream", llmkit.APIConnectionError, "the stream broke before it finished"),
        ("bad-sse", llmkit.BadGatewayError, "stream event that is not JSON"),
        ("no-done", llmkit.APIConnectionError, "closed the stream before it finished"),
        ("stream-error", llmkit.InternalServerError, "mid-stream: the model crashed"),
    ],
)
def test_a_stream_that_goes_wrong_raises_a_clear_error(base, model, cls, text):
    stream = llmkit.completion(f"openai/{model}", MESSAGES, api_base=base, stream=True)
    with pytest.raises(cls, match=text):
        list(stream)

    async def run():
        stream = await llmkit.acompletion(f"openai/{model}", MESSAGES, api_base=base, stream=True)
        return [c async for c in stream]

    with pytest.raises(cls, match=text):
        asyncio.run(run())


def test_a_stream_error_status_raises_at_the_call(base):
    with pytest.raises(llmkit.NotFoundError, match="fake failure 404"):
        llmkit.completion("openai/status-404", MESSAGES, api_base=base, stream=True)


def test_concurrent_async_calls_share_the_loops_client(base):
    async def many():
        calls = [
            llmkit.acompletion("openai/echo", [{"role": "user", "content": f"call {i}"}], api_base=base)
            for i in range(20)
        ]
        return [r.choices[0].message.content for r in await asyncio.gather(*calls)]

    assert asyncio.run(many()) == [f"call {i}" for i in range(20)]


def test_concurrent_sync_calls_from_threads(base):
    from concurrent.futures import ThreadPoolExecutor

    def one(i):
        return (
            llmkit.completion("openai/echo", [{"role": "user", "content": f"t{i}"}], api_base=base)
            .choices[0]
            .message.content
        )

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(one, range(16))) == [f"t{i}" for i in range(16)]


# -- the client pools ----------------------------------------------------------------------------------
def test_calls_reuse_one_pooled_connection(server, base):
    for _ in range(3):
        llmkit.completion("openai/echo", MESSAGES, api_base=base)
    llmkit.completion("openai/echo", MESSAGES, api_base=base, stream=True).text()
    assert len({r.client_port for r in server.requests}) == 1
    assert _transport.sync_client(base, None) is _transport.sync_client(base, None)
    assert _transport.sync_client(base, "other-key") is not _transport.sync_client(base, None)


def test_async_sessions_are_per_event_loop_and_close_with_it(server, base):
    async def two_calls():
        await llmkit.acompletion("openai/echo", MESSAGES, api_base=base)
        await llmkit.acompletion("openai/echo", MESSAGES, api_base=base, api_key="another-key")
        return await _aiotransport.session()

    first = asyncio.run(two_calls())
    second = asyncio.run(two_calls())  # a new loop: the old loop's session cannot serve it
    assert first is not second
    assert first.closed and second.closed  # asyncio.run closed each session with its loop
    ports = [r.client_port for r in server.requests]
    assert ports[0] == ports[1] and ports[2] == ports[3] and ports[1] != ports[2]


def test_no_session_is_left_unclosed_whatever_the_loop_did(server, base):
    """asyncio.run, a loop closed by hand without shutting down, llmkit's bridge loop: exit is silent."""
    code = f"""
import asyncio, llmkit
from llmkit import aio
m = [{{"role": "user", "content": "hi"}}]
asyncio.run(llmkit.acompletion("openai/echo", m, api_base="{base}"))
loop = asyncio.new_event_loop()
loop.run_until_complete(llmkit.acompletion("openai/echo", m, api_base="{base}"))
loop.close()
asyncio.run(llmkit.acompletion("openai/echo", m, api_base="{base}"))  # forgets the closed loop's session
print(aio.run_sync(llmkit.acompletion("openai/echo", m, api_base="{base}")).choices[0].message.content)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, "hi\n", "")


def test_close_clients_closes_every_pooled_client(base):
    llmkit.completion("openai/echo", MESSAGES, api_base=base)
    client = _transport.sync_client(base, None)
    _transport.close_clients()
    assert client.is_closed
    assert llmkit.completion("openai/echo", MESSAGES, api_base=base).choices[0].message.content


def test_import_llmkit_loads_no_http_library():
    code = "import sys, llmkit; llmkit.provider_names(); print(sorted({'httpx', 'aiohttp'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
