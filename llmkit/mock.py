"""``mock_response=``: a whole answer, a stream or an error without calling any handler.

Works for any model string, bare names such as "gpt-3.5-turbo" included, as the seed guide uses it.
"""

from __future__ import annotations

from typing import Any

from llmkit.errors import (
    APIError,
    BadRequestError,
    InternalServerError,
    RateLimitError,
    error_class_for_status,
)
from llmkit.types.utils import Choices, Message, ModelResponse, Usage

__all__ = ["mock_chunks", "mock_model_response"]

MOCK_USAGE = {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30}

# LiteLLM's magic strings, in both spellings.
_MAGIC_ERRORS: dict[str, type[APIError]] = {
    f"{prefix}.{name}": cls
    for prefix in ("llmkit", "litellm")
    for name, cls in (
        ("RateLimitError", RateLimitError),
        ("InternalServerError", InternalServerError),
        ("ContextWindowExceededError", BadRequestError),
    )
}


def _mock_error(mock: Any, provider: str | None, model: str) -> APIError:
    if isinstance(mock, APIError):
        return mock
    if isinstance(mock, str):
        cls = _MAGIC_ERRORS[mock]
        return cls(f"mock {mock.rpartition('.')[2]} (mock_response={mock!r})", llm_provider=provider, model=model)
    status = getattr(mock, "status_code", None)
    cls = error_class_for_status(status) if isinstance(status, int) else InternalServerError
    message = getattr(mock, "message", None) or str(mock) or type(mock).__name__
    return cls(message, status_code=status if isinstance(status, int) else None, llm_provider=provider, model=model)


def mock_model_response(mock: Any, *, provider: str | None, model: str) -> ModelResponse:
    """The ModelResponse ``mock_response=mock`` stands for; raises the mapped error for an exception."""
    if isinstance(mock, BaseException) or (isinstance(mock, str) and mock in _MAGIC_ERRORS):
        raise _mock_error(mock, provider, model)
    if isinstance(mock, str):
        return ModelResponse(
            model=model,
            choices=[Choices(finish_reason="stop", index=0, message=Message(content=mock, role="assistant"))],
            usage=Usage(**MOCK_USAGE),
        )
    if isinstance(mock, ModelResponse):
        return mock
    if isinstance(mock, dict):
        return ModelResponse.model_validate(mock)
    raise BadRequestError(
        f"mock_response must be a str, a ModelResponse, a dict or an Exception, got {type(mock).__name__}",
        llm_provider=provider,
        model=model,
    )


def mock_chunks(mock: Any, *, provider: str | None, model: str) -> list[Any]:
    """What a mocked stream yields: the text a word at a time with the mock usage, or a response."""
    from llmkit.streaming import response_as_chunks, text_chunks

    if isinstance(mock, str) and mock not in _MAGIC_ERRORS:
        return text_chunks(mock, usage=MOCK_USAGE)
    return response_as_chunks(mock_model_response(mock, provider=provider, model=model))
