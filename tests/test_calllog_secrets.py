"""Secrets never reach the log: credentials by name at any depth, values read from os.environ/... in a
proxy config whatever their key, and headers. Checked in the bytes of the database and its WAL."""

import json

import httpx
import pytest
from proxy_support import running_server, write_config

import llmkit
from llmkit.calllog import secrets

KEY = "sk-master-for-secrets-test"


def log_bytes(folder):
    """Every byte llmkit wrote for the log: the database, its WAL and shared memory."""
    files = [path for path in folder.iterdir() if path.name.startswith("calls.db")]
    assert any(path.name.endswith("-wal") for path in files), "the WAL is part of what is checked"
    return b"".join(path.read_bytes() for path in files)


class EchoParams(llmkit.CustomLLM):
    """Answers with the parameters it was given, and fails with them when asked: a handler that leaks."""

    async def acompletion(self, model, messages, optional_params, **kwargs):
        seen = json.dumps({**optional_params, "api_key": kwargs.get("api_key")})
        if optional_params.get("fail"):
            raise llmkit.CustomLLMError(400, f"refused, given {seen}")
        return llmkit.ModelResponse(model=model, choices=[{"message": {"content": seen}}])


@pytest.fixture
def leaky(monkeypatch):
    llmkit.register_provider("leaky", EchoParams())
    monkeypatch.setattr(secrets, "_hidden", {})  # values hidden by earlier tests' configs
    monkeypatch.setattr(secrets, "hidden", False)
    yield


def test_values_read_from_the_environment_in_a_proxy_config_are_never_stored(tmp_path, log, leaky, monkeypatch):
    environment = {
        "LLMKIT_TEST_UPSTREAM_KEY": "sk-upstream-ENV-0001",
        "LLMKIT_TEST_HF": "hf_ENVSECRET0002",
        "LLMKIT_TEST_OPAQUE": "opaque-ENVSECRET-0003",  # under a key that looks like nothing secret
        "LLMKIT_TEST_MASTER": KEY,
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    config = write_config(
        tmp_path,
        """
        model_list:
          - model_name: chat
            litellm_params:
              model: leaky/m
              api_key: os.environ/LLMKIT_TEST_UPSTREAM_KEY
              hf_token: os.environ/LLMKIT_TEST_HF
              region_hint: os.environ/LLMKIT_TEST_OPAQUE
        general_settings: {master_key: os.environ/LLMKIT_TEST_MASTER}
        """,
    )
    body = {
        "model": "chat",
        "messages": [{"role": "user", "content": "hello"}],
        "extra_body": {"nested": [{"password": "pw-BODYSECRET-1"}], "api-key": "k-BODYSECRET-2"},
        "token": "t-BODYSECRET-3",
        "aws_secret_access_key": "aws-BODYSECRET-4",
        "max_tokens": 7,
    }
    headers = {"Authorization": f"Bearer {KEY}", "X-Api-Key": "hdr-SECRET-5", "Cookie": "session=hdr-SECRET-6"}
    with running_server(config) as url:
        ok = httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=10)
        failed = httpx.post(f"{url}/v1/chat/completions", json={**body, "fail": True}, headers=headers, timeout=10)
    assert ok.status_code == 200 and "opaque-ENVSECRET-0003" in ok.text  # the handler did get them
    assert failed.status_code == 400
    log.flush()
    raw = log_bytes(tmp_path)
    assert b'"region_hint"' in raw  # the parameter is logged, not its value
    for value in [*environment.values(), "BODYSECRET", "hdr-SECRET"]:
        assert value.encode() not in raw, value
    chat, error = log.records()
    assert chat["params"]["hf_token"] == chat["params"]["region_hint"] == "<redacted>"
    assert chat["params"]["max_tokens"] == 7
    assert "<redacted>" in chat["response"] and "<redacted>" in error["error_message"]


@pytest.mark.parametrize(
    "params",
    [
        {"token": "SECRET-a"},
        {"hf_token": "SECRET-b"},
        {"api-key": "SECRET-c"},
        {"apiKey": "SECRET-d"},
        {"secret": "SECRET-e"},
        {"password": "SECRET-f"},
        {"aws_secret_access_key": "SECRET-g"},
        {"extra_body": {"deep": [{"inner": {"x-api-key": "SECRET-h"}}]}},
        {"extra_body": {"headers": {"Authorization": "Bearer SECRET-i"}}},
        {"client_secret": "SECRET-j", "private_key": "SECRET-k", "session_token": "SECRET-l"},
    ],
    ids=lambda params: ",".join(params),
)
def test_parameters_named_like_credentials_are_never_stored(log, tmp_path, params):
    llmkit.completion(model="demo/echo", messages=[{"role": "user", "content": "hi"}], max_tokens=5, **params)
    log.flush()
    assert b"SECRET" not in log_bytes(tmp_path)
    stored = log.last()[0]["params"]
    assert stored["max_tokens"] == 5 and "<redacted>" in json.dumps(stored)


def test_ordinary_parameters_are_kept(log):
    kept = {
        "max_tokens": 5,
        "pad_token": "<pad>",
        "max_token_count": 2,
        "keywords": ["a"],
        "top_k": 3,
        "tokenizer": "bpe",
    }
    llmkit.completion(model="demo/echo", messages=[{"role": "user", "content": "hi"}], **kept)
    assert log.last()[0]["params"] == kept


def test_a_hidden_value_is_scrubbed_wherever_it_appears(log, tmp_path, leaky):
    secrets.hide("opaque-LIBSECRET-77")
    with pytest.raises(llmkit.BadRequestError):
        llmkit.completion(
            model="leaky/m", messages=[{"role": "user", "content": "my key is opaque-LIBSECRET-77"}],
            fail=True, note="opaque-LIBSECRET-77", metadata={"why": "opaque-LIBSECRET-77"},
        )  # fmt: skip
    log.flush()
    assert b"LIBSECRET" not in log_bytes(tmp_path)
    record = log.last()[0]
    assert record["params"]["note"] == record["metadata"]["why"] == "<redacted>"
    assert record["prompt"] == "my key is <redacted>"


def test_short_values_are_not_hidden(log, leaky):
    secrets.hide("1")  # an os.environ value such as a port or a flag: hiding it would wreck the log
    llmkit.completion(model="demo/echo", messages=[{"role": "user", "content": "1 + 1"}])
    assert log.last()[0]["response"] == "1 + 1"
