"""Async HTTP calls (aiohttp) behave as sync ones (httpx): body, headers, proxies, timeouts, cancellation.

Everything runs against real servers on loopback ports (tests/fake_servers.py); a forward proxy is one
of them, answering proxied requests itself so that nothing leaves the machine.
"""

import asyncio

import httpx
import pytest
from fake_servers import FakeServer, openai_app

import llmkit
from llmkit import _aiotransport
from llmkit.providers.openai_compat import OpenAICompatLLM

MESSAGES = [{"role": "user", "content": "héllo from the test"}]


def forward_proxy_app():
    """A forward proxy that answers chat requests itself, as the server behind it would."""
    chat = openai_app()[("POST", "/v1/chat/completions")]
    return {("POST", "http://"): chat}  # a proxy is sent the whole URL as the request target


@pytest.fixture
def no_proxy_env(monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


def test_sync_and_async_send_the_same_body_and_headers(server, base):
    kwargs = dict(api_base=base, api_key="sk-same", temperature=0.5, extra_headers={"X-Team": "research"})
    llmkit.completion("openai/echo", MESSAGES, **kwargs)
    asyncio.run(llmkit.acompletion("openai/echo", MESSAGES, **kwargs))
    sync, async_ = server.requests[-2:]
    assert async_.body == sync.body  # the same JSON bytes, non-ASCII text included
    assert async_.path == sync.path == "/v1/chat/completions"
    for name in ("authorization", "x-team", "content-type"):
        assert async_.headers[name] == sync.headers[name]
    assert async_.headers["authorization"] == "Bearer sk-same" and async_.headers["content-type"] == "application/json"


def test_a_content_type_of_the_callers_wins(server, base):
    handler = OpenAICompatLLM()
    asyncio.run(
        handler.acompletion(
            model="echo", messages=MESSAGES, api_base=base, headers={"content-type": "application/json; charset=utf-8"}
        )
    )
    assert server.requests[-1].headers["content-type"] == "application/json; charset=utf-8"


def test_query_parameters_are_written_as_httpx_writes_them(server, base):
    from llmkit.http import HTTPLLM, Request

    class WithQuery(HTTPLLM):
        def build_request(self, model, messages, params, stream):
            return Request("/chat/completions", json={"model": model, "messages": messages},
                           params={"verbose": True, "tag": ["a", "b"], "n": 2})  # fmt: skip

        def parse_response(self, data, model):
            return data

    handler = WithQuery(api_base=base)
    handler.completion(model="echo", messages=MESSAGES)
    asyncio.run(handler.acompletion(model="echo", messages=MESSAGES))
    sync, async_ = server.requests[-2:]
    assert async_.path == sync.path == "/v1/chat/completions?verbose=true&tag=a&tag=b&n=2"


def test_proxies_come_from_the_environment_as_for_sync_calls(server, base, no_proxy_env):
    with FakeServer(forward_proxy_app()) as proxy:
        no_proxy_env.setenv("HTTP_PROXY", proxy.url)
        key = "sk-proxied"  # a key of its own: a sync client made before the variable was set stays direct

        async def chat_and_stream():
            answer = await llmkit.acompletion("openai/echo", MESSAGES, api_base=base, api_key=key)
            stream = await llmkit.acompletion("openai/echo", MESSAGES, api_base=base, api_key=key, stream=True)
            return answer.choices[0].message.content, await stream.atext()

        sync = llmkit.completion("openai/echo", MESSAGES, api_base=base, api_key=key).choices[0].message.content
        assert (sync, *asyncio.run(chat_and_stream())) == ("héllo from the test",) * 3
        assert [r.path for r in proxy.requests] == [f"{base}/chat/completions"] * 3  # the whole URL: proxied
        assert server.requests == []

        no_proxy_env.setenv("NO_PROXY", "127.0.0.1")
        asyncio.run(llmkit.acompletion("openai/echo", MESSAGES, api_base=base, api_key=key))
        assert len(proxy.requests) == 3 and len(server.requests) == 1  # NO_PROXY: straight to the server


def test_timeouts_seconds_or_an_httpx_timeout(base):
    async def slow(timeout):
        await llmkit.acompletion("openai/slow", MESSAGES, api_base=base, timeout=timeout, delay=1)

    with pytest.raises(llmkit.Timeout, match="did not answer in time"):
        handler = OpenAICompatLLM()
        asyncio.run(handler.acompletion(model="slow", messages=MESSAGES, api_base=base,
                                        timeout=httpx.Timeout(0.2), optional_params={"delay": 1}))  # fmt: skip
    with pytest.raises(llmkit.Timeout) as info:
        asyncio.run(slow(0.2))
    assert info.value.status_code == 408


def test_an_async_stream_that_stalls_past_the_timeout_is_a_timeout(base):
    received = []

    async def run():
        stream = await llmkit.acompletion(
            "openai/stall-stream", MESSAGES, api_base=base, stream=True, timeout=0.2, delay=1
        )
        async for chunk in stream:
            received.append(chunk)

    with pytest.raises(llmkit.Timeout):
        asyncio.run(run())
    assert received  # what arrived before the stall was delivered


def test_ttft_is_taken_at_the_first_content_not_at_the_end(base, log):
    async def run():
        stream = await llmkit.acompletion("openai/stall-stream", MESSAGES, api_base=base, stream=True, delay=0.4)
        return await stream.atext()

    assert asyncio.run(run()) == "héllo from the test"
    (record,) = log.records()
    assert record["ttft_ms"] < 300 and record["latency_ms"] >= 400


def test_a_cancelled_stream_is_recorded_and_its_connection_closed(server, base, log):
    got = []

    async def consume(arrived):
        stream = await llmkit.acompletion("openai/stall-stream", MESSAGES, api_base=base, stream=True, delay=5)
        async for chunk in stream:
            got.append(chunk)
            arrived.set()

    async def main():
        arrived = asyncio.Event()
        task = asyncio.ensure_future(consume(arrived))
        await arrived.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        session = await _aiotransport.session()
        in_use = len(session.connector._acquired)  # connections taken from the pool and not given back
        # the loop's session still serves calls
        answer = await llmkit.acompletion("openai/echo", MESSAGES, api_base=base)
        return in_use, answer.choices[0].message.content

    in_use, text = asyncio.run(main())
    assert (in_use, text) == (0, "héllo from the test")
    record = next(r for r in log.records() if r["kind"] == "stream")
    assert (record["status"], record["error_type"]) == ("cancelled", "CancelledError")


def test_many_concurrent_streams_on_one_loop_share_its_session(server, base):
    async def many():
        async def one(i):
            stream = await llmkit.acompletion(
                "openai/echo", [{"role": "user", "content": f"s{i}"}], api_base=base, stream=True
            )
            return await stream.atext()

        texts = await asyncio.gather(*(one(i) for i in range(40)))
        return texts, await _aiotransport.session()

    texts, session = asyncio.run(many())
    assert texts == [f"s{i}" for i in range(40)]
    assert session.closed  # asyncio.run closed it with the loop
