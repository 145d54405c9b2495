"""What goes wrong between the openai provider and a real server is in the call log, with its class."""

import pytest
from fake_servers import FakeServer, openai_app

import llmkit

MESSAGES = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def base():
    with FakeServer(openai_app()) as server:
        yield server.url + "/v1"


@pytest.mark.parametrize(
    "model, stream, kwargs, error_type, status",
    [
        ("status-429", False, {}, "RateLimitError", 429),
        ("status-503", False, {}, "ServiceUnavailableError", 503),
        ("bad-json", False, {}, "BadGatewayError", 502),
        ("slow", False, {"timeout": 0.2, "delay": 1}, "Timeout", 408),
        ("broken-stream", True, {}, "APIConnectionError", 500),
        ("bad-sse", True, {}, "BadGatewayError", 502),
        ("stream-error", True, {}, "InternalServerError", 500),
    ],
)
def test_each_failure_is_recorded_with_its_class_and_status(base, log, model, stream, kwargs, error_type, status):
    with pytest.raises(llmkit.APIError):
        result = llmkit.completion(f"openai/{model}", MESSAGES, api_base=base, stream=stream, **kwargs)
        list(result)
    (record,) = log.records()
    assert (record["model"], record["kind"], record["status"]) == (
        f"openai/{model}",
        "stream" if stream else "chat",
        "error",
    )
    assert (record["error_type"], record["status_code"]) == (error_type, status)
    assert record["error_message"]


def test_a_stream_broken_midway_keeps_what_arrived(base, log):
    received = []
    with pytest.raises(llmkit.InternalServerError):
        for chunk in llmkit.completion("openai/stream-error", MESSAGES, api_base=base, stream=True):
            received.append(chunk.choices[0].delta.content if chunk.choices else None)
    (record,) = log.records()
    text = "".join(piece for piece in received if piece)
    assert text and record["response"] == text
