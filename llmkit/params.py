"""Pure request logic: reading ``provider/model`` strings and splitting a call's keyword arguments.

Every keyword a caller passes is either a *control* parameter, which llmkit itself acts on (keys,
timeouts, retries, mocks, tags), or it reaches the handler in ``optional_params`` unchanged.
"""

from __future__ import annotations

from typing import Any

from llmkit.errors import BadRequestError

__all__ = ["CONTROL_PARAMS", "get_llm_provider", "split_model", "split_params"]

# Acted on by llmkit, never passed to the handler in optional_params.
CONTROL_PARAMS = frozenset(
    {
        "api_base",
        "api_key",
        "api_version",
        "base_url",
        "bos_token",
        "cache",  # the response cache's mode for this call (llmkit/cache, issue 9)
        "client",
        "conversation_id",  # logged in the call log's conversation_id column (%%llm --chat)
        "custom_llm_provider",
        "eos_token",
        "extra_headers",
        "final_prompt_value",
        "headers",
        "initial_prompt_value",
        "logger_fn",
        "max_retries",
        "metadata",
        "mock_response",
        "num_retries",
        "request_timeout",
        "roles",
        "sample",  # which repeated sample of the same call this is: part of the cache key
        "source",
        "timeout",
    }
)

# OpenAI parameters: left out of optional_params when None, so callers can pass them unconditionally.
OPENAI_PARAMS = frozenset(
    {
        "frequency_penalty",
        "logit_bias",
        "logprobs",
        "max_completion_tokens",
        "max_tokens",
        "n",
        "parallel_tool_calls",
        "presence_penalty",
        "reasoning_effort",
        "response_format",
        "seed",
        "stop",
        "stream_options",
        "temperature",
        "tool_choice",
        "tools",
        "top_logprobs",
        "top_p",
        "user",
        # images and embeddings
        "dimensions",
        "encoding_format",
        "quality",
        "size",
        "style",
    }
)

_PROMPT_TEMPLATE_KEYS = ("initial_prompt_value", "roles", "final_prompt_value", "bos_token", "eos_token")

_MODEL_HELP = (
    "a model string looks like 'provider/model-name', for example 'demo/echo' or"
    " 'my-custom-llm/my-model': the part before the first '/' names a registered provider"
)


def split_model(model: Any, custom_llm_provider: str | None = None) -> tuple[str, str | None]:
    """``(handler_model, provider)`` from a model string; provider is None for a bare name."""
    if not isinstance(model, str) or not model.strip():
        raise BadRequestError(f"model must be a non-empty string, got {model!r}; {_MODEL_HELP}")
    if custom_llm_provider:
        prefix = custom_llm_provider + "/"
        return (model[len(prefix) :] if model.startswith(prefix) else model), custom_llm_provider
    provider, slash, rest = model.partition("/")
    if not slash:
        return model, None
    if not provider or not rest or provider != provider.strip() or " " in provider:
        raise BadRequestError(f"malformed model string {model!r}; {_MODEL_HELP}", model=model)
    return rest, provider


def split_params(kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(control, optional_params)`` from a call's extra keyword arguments."""
    control: dict[str, Any] = {}
    optional: dict[str, Any] = {}
    for key, value in kwargs.items():
        if key in CONTROL_PARAMS:
            control[key] = value
        elif value is not None or key not in OPENAI_PARAMS:
            optional[key] = value
    return control, optional


def custom_prompt_dict(model: str, control: dict[str, Any]) -> dict[str, Any]:
    """LiteLLM's prompt-template hint: ``{model: {...}}`` when a template key was passed, else {}."""
    template = {key: control[key] for key in _PROMPT_TEMPLATE_KEYS if key in control}
    return {model: template} if template else {}


def merged_headers(control: dict[str, Any]) -> dict[str, Any]:
    headers = dict(control.get("headers") or {})
    headers.update(control.get("extra_headers") or {})
    return headers


def get_llm_provider(
    model: str,
    custom_llm_provider: str | None = None,
    api_base: str | None = None,
    api_key: str | None = None,
) -> tuple[str, str, str | None, str | None]:
    """``(model, provider, api_key, api_base)``; BadRequestError for a bare or unknown provider."""
    from llmkit.providers.registry import get_handler

    handler_model, provider = split_model(model, custom_llm_provider)
    if provider is None:
        raise BadRequestError(f"model {model!r} names no provider; {_MODEL_HELP}", model=model)
    get_handler(provider)
    return handler_model, provider, api_key, api_base
