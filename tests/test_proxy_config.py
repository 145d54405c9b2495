"""config.yaml: what loads, and the messages for what does not."""

from __future__ import annotations

import os

import pytest
from proxy_support import write_config

import llmkit
from llmkit.cli import main
from llmkit.proxy import ConfigError, load_config
from llmkit.proxy.server import risk_warnings

HANDLER = """\
from llmkit import CustomLLM, ModelResponse

class Handler(CustomLLM):
    async def acompletion(self, model, messages, optional_params, **kwargs):
        return ModelResponse(model=model, choices=[{"message": {"content": "ok"}}])

handler = Handler()
"""


def config_error(tmp_path, text: str) -> str:
    path = write_config(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message  # every message names the file
    return message


def test_custom_handler_is_imported_from_the_config_folder_and_registered(tmp_path):
    (tmp_path / "handlers.py").write_text(HANDLER)
    path = write_config(
        tmp_path,
        """
        model_list:
          - model_name: mine
            litellm_params: {model: "my-llm/some-model"}
        litellm_settings:
          custom_provider_map:
            - {provider: my-llm, custom_handler: handlers.handler}
        """,
    )
    config = load_config(path)
    assert config.model_names == ["mine"]
    assert "my-llm" in llmkit.provider_names()
    assert llmkit.completion(model="my-llm/x", messages=[]).choices[0].message.content == "ok"


def test_llmkit_settings_is_a_synonym_of_litellm_settings(tmp_path):
    (tmp_path / "handlers.py").write_text(HANDLER)
    path = write_config(
        tmp_path,
        """
        model_list:
          - {model_name: mine, litellm_params: {model: "other-llm/m"}}
        llmkit_settings:
          custom_provider_map: [{provider: other-llm, custom_handler: handlers.handler}]
          num_retries: 3
        """,
    )
    assert load_config(path).num_retries == 3
    assert "other-llm" in llmkit.provider_names()


def test_params_environment_values_and_costs(tmp_path, monkeypatch):
    monkeypatch.setenv("UPSTREAM_KEY", "secret-from-env")
    monkeypatch.setenv("PROXY_KEY", "master-from-env")
    path = write_config(
        tmp_path,
        """
        model_list:
          - model_name: echo
            litellm_params:
              model: demo/echo
              api_key: os.environ/UPSTREAM_KEY
              api_base: http://127.0.0.1:9/v1
              timeout: 12
              my_custom_param: my-custom-param
              input_cost_per_token: 0.000001
              rpm: 100
            model_info: {id: echo-1, output_cost_per_token: 0.000002}
        general_settings: {master_key: os.environ/PROXY_KEY}
        environment_variables: {PROXY_KEY: not-used-when-set, FROM_CONFIG: set-by-config}
        """,
    )
    monkeypatch.setenv("FROM_CONFIG", "placeholder")
    monkeypatch.delenv("FROM_CONFIG")  # unset now, and unset again after the test
    config = load_config(path)
    assert os.environ["FROM_CONFIG"] == "set-by-config"  # monkeypatch removes it again afterwards
    (deployment,) = config.deployments["echo"]
    assert config.master_key == "master-from-env"
    assert deployment.id == "echo-1"
    assert deployment.timeout == 12
    assert deployment.params == {
        "api_key": "secret-from-env",
        "api_base": "http://127.0.0.1:9/v1",
        "my_custom_param": "my-custom-param",
    }
    assert (deployment.input_cost_per_token, deployment.output_cost_per_token) == (1e-06, 2e-06)
    assert "secret-from-env" not in repr(deployment)


def test_deployments_fallbacks_and_router_settings(tmp_path):
    path = write_config(
        tmp_path,
        """
        model_list:
          - {model_name: chat, litellm_params: {model: demo/echo}}
          - {model_name: chat, litellm_params: {model: demo/echo}}
          - {model_name: backup, litellm_params: {model: demo/lorem}}
        router_settings:
          routing_strategy: least-busy
          timeout: 5
          fallbacks: [{chat: [backup]}]
        litellm_settings: {num_retries: 2}
        """,
    )
    config = load_config(path)
    assert [d.id for d in config.deployments["chat"]] == ["demo/echo", "demo/echo#2"]
    assert (config.routing_strategy, config.timeout, config.num_retries) == ("least-busy", 5, 2)
    assert config.fallbacks == {"chat": ["backup"]}


ONE_MODEL = "model_list:\n  - {model_name: a, litellm_params: {model: demo/echo}}\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("model_list: []", ["model_list: List should have at least 1 item", "give at least one entry"]),
        ("litellm_settings: {}", ["model_list: Field required", "add this key"]),
        (
            "model_list:\n  - {model_name: a, litellm_params: {api_base: x}}",
            ["model_list[0].litellm_params.model: Field required"],
        ),
        (
            "model_list:\n  - {model_name: a, litellm_params: {model: gpt-4}}",
            ["model_list[0].litellm_params.model", "'gpt-4' names no provider", "provider/gpt-4"],
        ),
        ("model_lst: []", ["model_lst: unknown key; did you mean model_list?"]),
        (
            ONE_MODEL + "litelm_settings: {num_retries: 1}",
            ["litelm_settings: unknown key; did you mean litellm_settings?"],
        ),
        (
            "model_list:\n  - {model_name: a, litelm_params: {model: demo/echo}}",
            ["model_list[0].litelm_params: unknown key; did you mean litellm_params?"],
        ),
        (
            ONE_MODEL + "litellm_settings: {custom_provider_map: [{provider: p, custom_handlr: m.h}]}",
            ["litellm_settings.custom_provider_map[0].custom_handlr: unknown key; did you mean custom_handler?"],
        ),
        ("zzz_unrelated: 1\nmodel_list: []", ["zzz_unrelated: unknown key; remove it, or check its spelling"]),
        (
            ONE_MODEL + "router_settings: {routing_strategy: fastest}",
            ["router_settings.routing_strategy", "'round-robin', 'simple-shuffle' or 'least-busy'"],
        ),
        (
            ONE_MODEL + "litellm_settings: {custom_provider_map: [{provider: p, custom_handler: nodots}]}",
            ["litellm_settings.custom_provider_map[0].custom_handler", "module.attribute"],
        ),
        (
            "model_list:\n  - {model_name: a, litellm_params: {model: demo/echo, input_cost_per_token: cheap}}",
            ["model_list[0].litellm_params.input_cost_per_token: Input should be a valid number"],
        ),
        ("- just a list", ["must be a YAML mapping with a model_list key"]),
        ("model_list: [unclosed", ["not valid YAML", "line"]),
    ],
)
def test_bad_configs_say_where_and_how_to_fix(tmp_path, text, expected):
    message = config_error(tmp_path, text)
    for part in expected:
        assert part in message


def test_unregistered_provider_names_the_model_entry(tmp_path):
    message = config_error(
        tmp_path,
        """
        model_list:
          - {model_name: ok, litellm_params: {model: demo/echo}}
          - {model_name: embed, litellm_params: {model: "nowhere/text-embedding"}}
        """,
    )
    assert "model_list[1].litellm_params.model is 'nowhere/text-embedding'" in message
    assert "no provider 'nowhere' is registered" in message
    assert "custom_provider_map" in message


def test_handler_import_errors(tmp_path):
    base = "model_list:\n  - {model_name: a, litellm_params: {model: demo/echo}}\n"
    message = config_error(
        tmp_path, base + "litellm_settings: {custom_provider_map: [{provider: p, custom_handler: missing_mod.h}]}"
    )
    assert "cannot import 'missing_mod'" in message and "next to the config file" in message
    (tmp_path / "needs_dep.py").write_text("import llmkit_test_no_such_dependency\n" + HANDLER)
    message = config_error(
        tmp_path, base + "litellm_settings: {custom_provider_map: [{provider: p, custom_handler: needs_dep.h}]}"
    )
    assert "'needs_dep' was found but cannot be imported: it needs 'llmkit_test_no_such_dependency'" in message
    assert "No module named 'llmkit_test_no_such_dependency'" in message and "next to the config file" not in message
    (tmp_path / "handlers.py").write_text(HANDLER)
    message = config_error(
        tmp_path, base + "litellm_settings: {custom_provider_map: [{provider: p, custom_handler: handlers.nope}]}"
    )
    assert "has no attribute 'nope'" in message
    (tmp_path / "klass.py").write_text(HANDLER + "Klass = Handler\n")
    message = config_error(
        tmp_path, base + "litellm_settings: {custom_provider_map: [{provider: p, custom_handler: klass.Klass}]}"
    )
    assert "pass Handler() instead" in message


def test_missing_environment_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    message = config_error(
        tmp_path,
        "model_list:\n  - {model_name: a, litellm_params: {model: demo/echo, api_key: os.environ/NOT_SET_ANYWHERE}}",
    )
    assert "model_list[0].litellm_params.api_key" in message and "NOT_SET_ANYWHERE" in message


def test_fallback_to_unknown_model(tmp_path):
    message = config_error(
        tmp_path,
        "model_list:\n  - {model_name: a, litellm_params: {model: demo/echo}}\nrouter_settings: {fallbacks: {a: [b]}}",
    )
    assert "'b', which is no model_name" in message


def test_cli_reports_a_bad_config_and_exits_2(tmp_path, capsys):
    path = write_config(tmp_path, "model_list: []")
    assert main(["serve", "--config", str(path)]) == 2
    assert main(["--config", str(path)]) == 2  # the seed's spelling
    err = capsys.readouterr().err
    assert err.count("llmkit serve: config file") == 2 and "model_list" in err


def test_risk_warnings_for_exposed_servers(tmp_path):
    base = "model_list:\n  - {model_name: a, litellm_params: {model: demo/echo}}\n"
    weak = load_config(write_config(tmp_path, base + "general_settings: {master_key: sk-1234}", "weak.yaml"))
    open_ = load_config(write_config(tmp_path, base, "open.yaml"))
    strong = load_config(write_config(tmp_path, base + "general_settings: {master_key: a-long-random-key}", "s.yaml"))
    (warning,) = risk_warnings(weak, "0.0.0.0")
    assert "well-known" in warning and "sk-1234" not in warning  # the key itself is never printed
    assert "no master_key" in risk_warnings(open_, "0.0.0.0")[0]
    assert risk_warnings(weak, "127.0.0.1") == risk_warnings(open_, "localhost") == []
    assert risk_warnings(strong, "0.0.0.0") == []


def test_ignored_keys_that_look_like_known_ones_are_named(tmp_path, caplog):
    base = "model_list:\n  - {model_name: a, litellm_params: {model: demo/echo}}\n"
    with caplog.at_level("WARNING", logger="llmkit.proxy"):
        load_config(write_config(tmp_path, base + "litellm_settings: {num_retires: 2, drop_params: true}"))
    assert "llmkit ignores litellm_settings: drop_params, num_retires (did you mean num_retries?)" in caplog.text
