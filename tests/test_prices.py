"""Price tables in LiteLLM's format: the cost column of openai/ calls, model_info, and bad files."""

import json
import warnings

import pandas as pd
import pytest

import llmkit
from llmkit import prices

MESSAGES = [{"role": "user", "content": "three little words"}]  # the fake server counts words as tokens

TABLE = {
    "sample_spec": {"max_tokens": "LiteLLM documents its fields here; not a model"},
    "gpt-test": {
        "input_cost_per_token": 1e-06,
        "output_cost_per_token": 3e-06,
        "max_input_tokens": 128000,
        "max_output_tokens": 4096,
        "mode": "chat",
        "litellm_provider": "openai",
        "supports_vision": True,
    },
    "embed-test": {"input_cost_per_token": 2e-08, "output_cost_per_token": 0.0, "mode": "embedding"},
    "image-test": {"output_cost_per_image": 0.04, "mode": "image_generation"},
    "hd/1024-x-1792/pixels-test": {"input_cost_per_pixel": 1e-07, "output_cost_per_pixel": 0.0},
    "standard/1024-x-1024/pixels-test": {"input_cost_per_pixel": 5e-08, "output_cost_per_pixel": 0.0},
    "claude-test": {"input_cost_per_token": 5e-06, "output_cost_per_token": 2e-05, "litellm_provider": "anthropic"},
}


@pytest.fixture(autouse=True)
def no_loaded_tables(monkeypatch):
    """Each test starts with no table loaded by load_prices (LiteLLM's bundled one, if installed, stays)."""
    monkeypatch.delenv(prices.ENV, raising=False)
    forget_loaded()
    yield
    forget_loaded()


@pytest.fixture
def prices_env(monkeypatch):
    """Set LLMKIT_PRICES for one test; the tables are read again afterwards without it."""

    def set_env(path):
        monkeypatch.setenv(prices.ENV, str(path))
        prices.reset()

    yield set_env
    monkeypatch.delenv(prices.ENV, raising=False)
    prices.reset()


def forget_loaded():
    prices._loaded.clear()
    prices._found = {}


def sources():
    return [table.source for table in prices.tables()]


@pytest.fixture
def table_file(tmp_path):
    path = tmp_path / "prices.json"
    path.write_text(json.dumps(TABLE))
    return path


def last_record(log):
    return log.to_dataframe(last=1).iloc[0]


# -- the cost column ---------------------------------------------------------------------------------
def test_openai_calls_are_priced_by_model_name_from_a_loaded_table(log, server, table_file):
    assert llmkit.load_prices(table_file) == 6  # sample_spec is LiteLLM's documentation, not a model
    llmkit.completion("openai/gpt-test", MESSAGES, api_base=server.url + "/v1")
    row = last_record(log)
    assert (row["prompt_tokens"], row["completion_tokens"]) == (3, 3)
    assert row["cost_usd"] == pytest.approx(3 * 1e-06 + 3 * 3e-06)


def test_a_stream_is_priced_by_its_final_usage(log, server, table_file):
    llmkit.load_prices(table_file)
    stream = llmkit.completion("openai/gpt-test", MESSAGES, api_base=server.url + "/v1", stream=True)
    assert stream.text() == "three little words"
    row = last_record(log)
    assert row["kind"] == "stream" and row["cost_usd"] == pytest.approx(3 * 1e-06 + 3 * 3e-06)


def test_embeddings_are_priced_per_token(log, server, table_file):
    llmkit.load_prices(table_file)
    llmkit.embedding("openai/embed-test", ["one two", "three four five"], api_base=server.url + "/v1")
    row = last_record(log)
    assert row["prompt_tokens"] == 5 and row["cost_usd"] == pytest.approx(5 * 2e-08)


def test_images_are_priced_per_image(log, server, table_file):
    llmkit.load_prices(table_file)
    response = llmkit.image_generation("a red fox", model="openai/image-test", n=3, api_base=server.url + "/v1")
    assert len(response.data) == 3
    assert last_record(log)["cost_usd"] == pytest.approx(3 * 0.04)


@pytest.mark.parametrize(
    "params, expected",
    [
        ({"size": "1024x1792", "quality": "hd"}, 1024 * 1792 * 1e-07),
        ({}, 1024 * 1024 * 5e-08),  # OpenAI's defaults: standard quality, 1024x1024
    ],
)
def test_images_are_priced_per_pixel_of_the_size_and_quality_asked_for(log, server, table_file, params, expected):
    llmkit.load_prices(table_file)
    llmkit.image_generation("a red fox", model="openai/pixels-test", api_base=server.url + "/v1", **params)
    assert last_record(log)["cost_usd"] == pytest.approx(expected)


def test_a_registered_price_comes_before_the_table(log, server, table_file):
    llmkit.load_prices(table_file)
    llmkit.register_model_cost("openai/gpt-test", input_cost_per_token=0.5, output_cost_per_token=0.25)
    llmkit.completion("openai/gpt-test", MESSAGES, api_base=server.url + "/v1")
    assert last_record(log)["cost_usd"] == pytest.approx(3 * 0.5 + 3 * 0.25)


def test_models_of_other_providers_are_not_priced_from_the_table(log, table_file):
    class Mine(llmkit.CustomLLM):
        def completion(self, model, messages, **kwargs):
            usage = {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
            return llmkit.ModelResponse(model=model, choices=[{"message": {"content": "hi"}}], usage=usage)

    llmkit.load_prices(table_file)
    llmkit.register_provider("mine", Mine())
    llmkit.completion("mine/gpt-test", MESSAGES)  # a custom model that happens to share a name
    assert pd.isna(last_record(log)["cost_usd"])


def test_unpriced_models_keep_a_null_cost(log, server, table_file):
    llmkit.load_prices(table_file)
    llmkit.completion("openai/not-in-the-table", MESSAGES, api_base=server.url + "/v1")
    assert pd.isna(last_record(log)["cost_usd"])


def test_llmkit_prices_names_a_table_file(log, server, table_file, prices_env):
    prices_env(table_file)
    llmkit.completion("openai/gpt-test", MESSAGES, api_base=server.url + "/v1")
    assert last_record(log)["cost_usd"] == pytest.approx(3 * 1e-06 + 3 * 3e-06)
    assert llmkit.model_info("openai/gpt-test")["source"] == str(table_file)


def test_a_later_table_comes_first(tmp_path, table_file):
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps({"gpt-test": {"input_cost_per_token": 9e-06}}))
    llmkit.load_prices(table_file)
    llmkit.load_prices(newer)
    assert llmkit.model_info("openai/gpt-test")["input_cost_per_token"] == 9e-06
    assert llmkit.model_info("openai/embed-test")["source"] == str(table_file)  # still found in the older one


# -- model_info --------------------------------------------------------------------------------------
def test_model_info_returns_what_is_known(table_file):
    llmkit.load_prices(table_file)
    info = llmkit.model_info("openai/gpt-test")
    assert info["model"] == "openai/gpt-test" and info["key"] == "gpt-test" and info["source"] == str(table_file)
    assert info["max_input_tokens"] == 128000 and info["max_output_tokens"] == 4096
    assert info["mode"] == "chat" and info["supports_vision"] is True
    assert info["input_cost_per_token"] == 1e-06


def test_model_info_shows_a_registered_price(log, table_file):
    llmkit.load_prices(table_file)
    llmkit.register_model_cost("openai/gpt-test", input_cost_per_token=0.5)
    info = llmkit.model_info("openai/gpt-test")
    assert info["input_cost_per_token"] == 0.5 and info["source"] == "register_model_cost"
    assert info["max_input_tokens"] == 128000  # the table's context window is still known
    llmkit.register_model_cost("my-provider/m", output_cost_per_token=0.1)
    assert llmkit.model_info("my-provider/m")["output_cost_per_token"] == 0.1


def test_litellm_model_strings_match_with_or_without_their_provider(table_file):
    llmkit.load_prices(table_file)
    assert llmkit.model_info("litellm/anthropic/claude-test")["key"] == "claude-test"
    assert llmkit.model_info("litellm/openai/gpt-test")["key"] == "gpt-test"
    with pytest.raises(LookupError):
        llmkit.model_info("litellm/bedrock/claude-test")  # the table's claude-test is Anthropic's, not Bedrock's


def test_model_info_of_an_unknown_model_says_where_it_looked(table_file):
    llmkit.load_prices(table_file)
    with pytest.raises(LookupError) as info:
        llmkit.model_info("openai/gpt-nope")
    message = str(info.value)
    assert "nothing is known about 'openai/gpt-nope'" in message and str(table_file) in message
    assert "llmkit.register_model_cost('openai/gpt-nope'" in message and "llmkit.load_prices(path)" in message
    with pytest.raises(LookupError, match="matched for openai and litellm/ models only"):
        llmkit.model_info("demo/echo")


# -- bad files ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "content, says",
    [
        ('{"gpt-test": {"input_cost_per_token": 1e-06,}}', "is not valid JSON: Expecting property name"),
        ("[1, 2]", "must be a JSON object mapping model names to their prices"),
        (
            (
                '{"ok": {"input_cost_per_token": 1e-06}, "cheap": {"input_cost_per_token": "free"},'
                ' "worse": {"output_cost_per_token": -1}}'
            ),
            "entry 'cheap' has input_cost_per_token='free'; it must be a number >= 0",
        ),
        ('{"gpt-test": [1e-06, 3e-06]}', "entry 'gpt-test' must be an object"),
        ('{"gpt-test": {"mode": 3}}', "entry 'gpt-test' has mode=3; it must be a string"),
    ],
)
def test_a_bad_price_file_names_the_file_and_the_first_bad_entry(tmp_path, content, says):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(prices.PriceFileError) as info:
        llmkit.load_prices(path)
    assert str(path) in str(info.value) and says in str(info.value)
    assert str(path) not in sources()  # nothing half-loaded


def test_a_missing_price_file_says_so(tmp_path):
    with pytest.raises(prices.PriceFileError, match=r"cannot read prices file .*nowhere\.json: No such file"):
        llmkit.load_prices(tmp_path / "nowhere.json")


def test_a_bad_llmkit_prices_file_is_reported_once_and_calls_are_still_logged(log, server, tmp_path, prices_env):
    path = tmp_path / "bad.json"
    path.write_text('{"gpt-test": {"input_cost_per_token": "cheap"}}')
    prices_env(path)
    with pytest.warns(RuntimeWarning, match=f"LLMKIT_PRICES: prices file {path}: entry 'gpt-test'"):
        assert str(path) not in sources()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        llmkit.completion("openai/gpt-test", MESSAGES, api_base=server.url + "/v1")
        row = last_record(log)
    assert row["status"] == "ok" and pd.isna(row["cost_usd"])
