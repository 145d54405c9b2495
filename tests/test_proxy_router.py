"""Deployments of one model_name: spreading requests, retrying elsewhere, fallbacks, timeouts."""

from __future__ import annotations

import pytest
from proxy_support import Recorder, register, write_config
from starlette.testclient import TestClient

from llmkit.proxy import build_app, load_config
from llmkit.proxy.router import Router

MESSAGES = [{"role": "user", "content": "hi"}]


def serve(tmp_path, text):
    return TestClient(build_app(load_config(write_config(tmp_path, text))))


def ask(client, model="chat", **body):
    return client.post("/v1/chat/completions", json={"model": model, "messages": MESSAGES, **body})


TWO_DEPLOYMENTS = """\
model_list:
  - {model_name: chat, litellm_params: {model: a/m}}
  - {model_name: chat, litellm_params: {model: b/m}}
router_settings: {num_retries: 1}
"""


def test_round_robin_alternates_deployments(tmp_path):
    a, b = Recorder("a"), Recorder("b")
    register(a=a, b=b)
    with serve(tmp_path, TWO_DEPLOYMENTS) as client:
        answers = [ask(client).json()["choices"][0]["message"]["content"] for _ in range(4)]
    assert answers == ["from a", "from b", "from a", "from b"]
    assert [c["litellm_params"]["metadata"]["deployment"] for c in a.calls] == ["a/m", "a/m"]


def test_retryable_failure_moves_to_the_other_deployment(tmp_path):
    a, b = Recorder("a", fail=[503]), Recorder("b")
    register(a=a, b=b)
    with serve(tmp_path, TWO_DEPLOYMENTS) as client:
        response = ask(client)
    assert response.status_code == 200 and response.json()["choices"][0]["message"]["content"] == "from b"
    assert (len(a.calls), len(b.calls)) == (1, 1)


def test_other_failures_are_not_retried(tmp_path):
    a, b = Recorder("a", fail=[400]), Recorder("b")
    register(a=a, b=b)
    with serve(tmp_path, TWO_DEPLOYMENTS) as client:
        response = ask(client)
    assert response.status_code == 400 and "a failed" in response.json()["error"]["message"]
    assert b.calls == []


def test_retries_are_bounded_then_the_error_is_answered(tmp_path):
    a, b = Recorder("a", fail=[500, 500]), Recorder("b", fail=[502])
    register(a=a, b=b)
    with serve(tmp_path, TWO_DEPLOYMENTS) as client:
        response = ask(client)
    assert response.status_code == 502  # the last failure: a, then b (num_retries: 1)
    assert (len(a.calls), len(b.calls)) == (1, 1)


def test_fallbacks_answer_when_a_model_keeps_failing(tmp_path):
    main, backup = Recorder("main", fail=[429]), Recorder("backup")
    register(main=main, backup=backup)
    config = """\
    model_list:
      - {model_name: chat, litellm_params: {model: main/m}}
      - {model_name: spare, litellm_params: {model: backup/m}}
    litellm_settings: {fallbacks: [{chat: [spare]}]}
    """
    with serve(tmp_path, config) as client:
        response = ask(client)
    assert response.json()["choices"][0]["message"]["content"] == "from backup"
    # the call log sees the model the client asked for, and the deployment that answered
    assert backup.calls[0]["litellm_params"]["metadata"] == {"model_name": "chat", "deployment": "backup/m"}


def test_timeout_gives_408(tmp_path):
    config = """\
    model_list:
      - {model_name: chat, litellm_params: {model: demo/lorem, tokens_per_second: 20, max_tokens: 100}}
    router_settings: {timeout: 0.05}
    """
    with serve(tmp_path, config) as client:
        response = ask(client)
    assert response.status_code == 408 and "timeout" in response.json()["error"]["message"]


@pytest.mark.parametrize("strategy", ["least-busy", "round-robin", "simple-shuffle"])
def test_pick_prefers_untried_and_least_busy(tmp_path, strategy):
    register(a=Recorder("a"), b=Recorder("b"))
    config = load_config(
        write_config(tmp_path, TWO_DEPLOYMENTS.replace("num_retries: 1", f"routing_strategy: {strategy}"))
    )
    router = Router(config)
    first, second = config.deployments["chat"]
    assert router.pick("chat", {id(first)}) is second
    if strategy == "least-busy":
        first.in_flight = 3
        assert {router.pick("chat", set()) for _ in range(4)} == {second}


def test_stream_that_fails_before_its_first_chunk_moves_to_the_other_deployment(tmp_path):
    a, b = Recorder("a", fail=[503]), Recorder("b")
    register(a=a, b=b)
    with serve(tmp_path, TWO_DEPLOYMENTS) as client:
        response = ask(client, stream=True)
    assert response.status_code == 200
    assert '"content":"from b"' in response.text and response.text.endswith("data: [DONE]\n\n")
