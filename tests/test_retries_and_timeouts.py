"""timeout= and num_retries=: only retryable failures are retried."""

import asyncio
import threading
import time

import pytest
from helpers import chunk, register

import llmkit
from llmkit import retries
from llmkit.types.utils import ModelResponse


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    monkeypatch.setattr(retries, "BASE_DELAY", 0.001)


class Flaky(llmkit.CustomLLM):
    """Fails with ``status`` for the first ``failures`` calls, then answers."""

    def __init__(self, failures, status):
        self.failures = failures
        self.status = status
        self.calls = 0

    def _next(self):
        self.calls += 1
        if self.calls <= self.failures:
            raise llmkit.CustomLLMError(self.status, f"failure {self.calls}")
        return ModelResponse(choices=[{"message": {"content": f"answer after {self.calls} calls"}}])

    def completion(self, **kwargs):
        return self._next()

    async def acompletion(self, **kwargs):
        return self._next()

    def streaming(self, **kwargs):
        self._next()
        yield chunk("streamed")


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503])
def test_retryable_failures_are_retried(status):
    handler = register(Flaky(2, status))
    response = llmkit.completion(model="p/m", messages=[], num_retries=2)
    assert response.choices[0].message.content == "answer after 3 calls"
    handler.calls = 0
    assert (
        asyncio.run(llmkit.acompletion(model="p/m", messages=[], num_retries=3))
        .choices[0]
        .message.content.endswith("3 calls")
    )


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_client_errors_are_not_retried(status):
    handler = register(Flaky(1, status))
    with pytest.raises(llmkit.APIError):
        llmkit.completion(model="p/m", messages=[], num_retries=3)
    assert handler.calls == 1


def test_retries_give_up_with_the_last_error():
    handler = register(Flaky(10, 503))
    with pytest.raises(llmkit.ServiceUnavailableError, match="failure 3"):
        llmkit.completion(model="p/m", messages=[], num_retries=2)
    assert handler.calls == 3


def test_a_stream_that_fails_before_its_first_chunk_is_retried():
    register(Flaky(1, 429))
    assert llmkit.completion(model="p/m", messages=[], stream=True, num_retries=1).text() == "streamed"


def test_backoff_grows_with_jitter_and_honours_retry_after():
    delays = [retries.backoff(attempt) for attempt in range(4)]
    assert all(0.5 * 0.001 * 2**i <= d <= 0.001 * 2**i for i, d in enumerate(delays))
    assert retries.backoff(0, llmkit.RateLimitError("x", retry_after=1.5)) == 1.5


class Slow(llmkit.CustomLLM):
    def completion(self, **kwargs):
        time.sleep(1)
        return ModelResponse()

    async def acompletion(self, **kwargs):
        await asyncio.sleep(1)
        return ModelResponse()

    async def astreaming(self, **kwargs):
        yield chunk("first")
        await asyncio.sleep(1)
        yield chunk("never")


def test_timeout_bounds_sync_and_async_calls():
    register(Slow())
    with pytest.raises(llmkit.Timeout, match=r"timeout=0\.05") as error:
        llmkit.completion(model="p/m", messages=[], timeout=0.05)
    assert error.value.status_code == 408
    with pytest.raises(llmkit.Timeout):
        asyncio.run(llmkit.acompletion(model="p/m", messages=[], timeout=0.05))


def test_timeout_bounds_the_wait_for_each_async_chunk():
    register(Slow())

    async def consume(received):
        async for item in await llmkit.acompletion(model="p/m", messages=[], stream=True, timeout=0.05):
            received.append(item.choices[0].delta.content)

    received = []
    with pytest.raises(llmkit.Timeout, match=r"^no answer within timeout=0.05 s; pass a larger timeout="):
        asyncio.run(consume(received))
    assert received == ["first"]


class Ticker(llmkit.CustomLLM):
    """A sync stream at 4 chunks a second, 10 s in all; says when its generator was closed."""

    def __init__(self, first_delay=0.25):
        self.first_delay = first_delay
        self.opened = 0
        self.closed = threading.Event()

    def streaming(self, **kwargs):
        self.opened += 1
        try:
            time.sleep(self.first_delay if self.opened == 1 else 0)
            yield chunk("first ")
            for i in range(40):
                time.sleep(0.25)
                yield chunk(f"t{i} ")
        finally:
            self.closed.set()


def test_timeout_bounds_the_wait_for_each_sync_chunk(log):
    handler = register(Ticker(first_delay=0))
    stream = llmkit.completion(model="p/m", messages=[], stream=True, timeout=0.1)
    received = []
    with pytest.raises(llmkit.Timeout, match=r"^no answer within timeout=0.1 s; pass a larger timeout=") as error:
        for item in stream:
            received.append(item.choices[0].delta.content)
    assert error.value.status_code == 408
    assert received == ["first "]  # the stream ended at the first late chunk, not after 10 s
    assert handler.closed.wait(5)  # the generator was closed once its late chunk came
    record = log.records()[0]
    assert (record["status"], record["error_type"], record["response"]) == ("error", "Timeout", "first ")


def test_a_sync_stream_late_with_its_first_chunk_is_retried_when_asked():
    handler = register(Ticker(first_delay=1))
    stream = llmkit.completion(model="p/m", messages=[], stream=True, timeout=0.1, num_retries=1)
    assert next(iter(stream)).choices[0].delta.content == "first "
    assert handler.opened == 2
    stream.close()


def test_timeouts_are_retried_when_asked():
    calls = []

    class SlowOnce(llmkit.CustomLLM):
        async def acompletion(self, **kwargs):
            calls.append(1)
            if len(calls) == 1:
                await asyncio.sleep(1)
            return ModelResponse(choices=[{"message": {"content": "second try"}}])

    register(SlowOnce())
    response = asyncio.run(llmkit.acompletion(model="p/m", messages=[], timeout=0.05, num_retries=1))
    assert response.choices[0].message.content == "second try" and len(calls) == 2
