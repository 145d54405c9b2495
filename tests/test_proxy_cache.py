"""The proxy's ``litellm_settings: cache: true``, through a real server and the official openai client."""

import openai
import pytest
from cache_support import counting
from proxy_support import running_server, write_config

import llmkit
from llmkit.proxy import ConfigError, load_config

KEY = "sk-proxy-cache-test"
ASK = [{"role": "user", "content": "What is a lighthouse for?"}]


def config(tmp_path, cache):
    return write_config(
        tmp_path,
        f"""
        model_list:
          - model_name: chat
            litellm_params: {{model: count/m}}
          - model_name: embed
            litellm_params: {{model: count/e}}
        litellm_settings: {{cache: {cache}}}
        general_settings: {{master_key: {KEY}}}
        """,
    )


def test_cache_true_answers_repeated_requests_once(tmp_path, log, monkeypatch):
    monkeypatch.delenv("LLMKIT_CACHE", raising=False)
    handler = counting(words=3)
    with running_server(config(tmp_path, "true")) as url:
        assert llmkit.cache.mode() == "use"
        with openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0) as client:
            answers = [client.chat.completions.create(model="chat", messages=ASK) for _ in range(2)]

            def streamed() -> str:
                stream = client.chat.completions.create(model="chat", messages=ASK, stream=True)
                return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

            streams = [streamed() for _ in range(2)]
            vectors = [client.embeddings.create(model="embed", input="beam").data[0].embedding for _ in range(2)]
            other = client.chat.completions.create(model="chat", messages=ASK, temperature=0.3)
    assert handler.calls == {"acompletion": 2, "astreaming": 1, "aembedding": 1}
    assert answers[0].choices[0].message.content == answers[1].choices[0].message.content == "answer 1"
    assert answers[0].id == answers[1].id
    assert streams[0] == streams[1] == "w0.2 w1.2 w2.2 "
    assert vectors[0] == vectors[1] == [3.0, 0.5]
    assert other.choices[0].message.content == "answer 4"  # other parameters: another call
    rows = log.records(source="proxy")
    assert [(r["kind"], r["cache_hit"]) for r in rows] == [
        ("chat", False), ("chat", True), ("stream", False), ("stream", True),
        ("embedding", False), ("embedding", True), ("chat", False),
    ]  # fmt: skip


def test_llmkit_cache_in_the_environment_wins_over_the_config(tmp_path, log, monkeypatch):
    handler = counting()
    monkeypatch.setenv("LLMKIT_CACHE", "replay")
    llmkit.configure_cache()
    with running_server(config(tmp_path, "true")) as url:
        assert llmkit.cache.mode() == "replay"
        with openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0) as client:
            with pytest.raises(openai.NotFoundError) as caught:
                client.chat.completions.create(model="chat", messages=ASK)
    assert "replay mode" in str(caught.value) and handler.total == 0


def test_a_mode_by_name_and_a_bad_value(tmp_path, log, monkeypatch):
    monkeypatch.delenv("LLMKIT_CACHE", raising=False)
    counting()
    load_config(config(tmp_path, "refresh"))
    assert llmkit.cache.mode() == "refresh"
    with pytest.raises(ConfigError, match=r"litellm_settings.cache: cache must be one of 'off', 'use', 'replay'"):
        load_config(config(tmp_path, "sometimes"))
