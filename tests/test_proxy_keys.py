"""Named keys: each person's key answers, and the call log says whose calls they were, never the key."""

from __future__ import annotations

import httpx
import pytest
from proxy_support import Recorder, register, running_server, write_config

from llmkit.proxy import ConfigError, load_config
from llmkit.proxy.server import risk_warnings

ALICE, BOB, MASTER = "sk-alice-7f3a9c1e5b", "sk-bob-0d2e4f6a8c", "sk-master-91b3c5d7e9"
CONFIG = """\
model_list:
  - {model_name: chat, litellm_params: {model: demo/echo}}
general_settings:
  master_key: os.environ/TEST_MASTER_KEY
  keys:
    - {name: alice, key: os.environ/TEST_ALICE_KEY}
    - {name: bob, key: BOB_KEY}
""".replace("BOB_KEY", BOB)


@pytest.fixture
def config(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_MASTER_KEY", MASTER)
    monkeypatch.setenv("TEST_ALICE_KEY", ALICE)
    return write_config(tmp_path, CONFIG)


def test_each_key_answers_and_its_name_is_the_calls_user(config, log, tmp_path):
    recorder = Recorder()
    register(rec=recorder)
    config.write_text(config.read_text().replace("demo/echo", "rec/m"))
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "user": "end-user-7"}
    with running_server(config) as url:
        for key in (ALICE, BOB, ALICE, MASTER):
            response = httpx.post(url + "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"})
            assert response.status_code == 200
        for wrong in ("sk-alice-7f3a9c1e5", ALICE + "x", "-", BOB.upper()):
            response = httpx.post(url + "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {wrong}"})
            assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"
    records = log.records(source="proxy")
    assert [record["user"] for record in records] == ["alice", "bob", "alice", "master"]
    # OpenAI's body field "user" stays a model parameter for the handler, apart from the key's name
    assert {call["optional_params"]["user"] for call in recorder.calls} == {"end-user-7"}
    assert {record["params"]["user"] for record in records} == {"end-user-7"}
    by_user = log.summary(by="user", source="proxy")  # usage per person, computed by the database
    assert by_user["calls"].to_dict() == {"alice": 2, "bob": 1, "master": 1}
    assert len(log.to_dataframe(user="alice", source="proxy")) == 2
    log.flush()
    stored = b"".join(path.read_bytes() for path in tmp_path.glob("calls.db*"))
    assert b"alice" in stored and not any(key.encode() in stored for key in (ALICE, BOB, MASTER))


def test_key_names_and_values_must_be_unique(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_ALICE_KEY", ALICE)
    twice = CONFIG.replace("name: bob", "name: alice").replace("master_key: os.environ/TEST_MASTER_KEY", "")
    with pytest.raises(ConfigError, match=r"keys\[1\]\.name 'alice' is used twice"):
        load_config(write_config(tmp_path, twice))
    same = CONFIG.replace(BOB, "os.environ/TEST_ALICE_KEY").replace("master_key: os.environ/TEST_MASTER_KEY", "")
    with pytest.raises(ConfigError, match=r"keys\[1\]\.key is the same key as another"):
        load_config(write_config(tmp_path, same))
    unset = CONFIG.replace("master_key: os.environ/TEST_MASTER_KEY", "")
    monkeypatch.delenv("TEST_ALICE_KEY")
    with pytest.raises(ConfigError, match=r"keys\[0\]\.key reads the environment variable TEST_ALICE_KEY"):
        load_config(write_config(tmp_path, unset))


def test_a_well_known_named_key_is_warned_about_beyond_loopback(config, tmp_path):
    guessable = load_config(write_config(tmp_path, CONFIG.replace(BOB, "sk-1234"), name="weak.yaml"))
    (warning,) = risk_warnings(guessable, "0.0.0.0")
    assert "bob" in warning and "well-known" in warning and "sk-1234" not in warning
    assert risk_warnings(guessable, "127.0.0.1") == []
    assert risk_warnings(load_config(config), "0.0.0.0") == []
