"""What a handler returned, as the response the caller gets.

A handler may return the response object itself, a dict of its shape, or another library's pydantic
object of that shape. Anything else, a dict without the response's one required key included, is an
error naming the handler and saying what the response needs. A chat answer always names a model (the
one the call asked for, when the handler set none) and carries usage: the handler's, or llmkit's
estimate flagged ``usage.estimated``, the same numbers the call log and a stream's usage chunk show.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel

from llmkit.errors import APIConnectionError
from llmkit.tokens import count_message_tokens, count_tokens, estimated_usage
from llmkit.types.utils import EmbeddingResponse, ImageResponse, ModelResponse

__all__ = ["normalized"]

Response = TypeVar("Response", bound=BaseModel)

# The key each response cannot do without, and how to say what goes in it.
_NEEDS: dict[type[BaseModel], tuple[str, str]] = {
    ModelResponse: ("choices", "choices=[{'message': {'role': 'assistant', 'content': 'the answer'}}]"),
    ImageResponse: ("data", "data=[{'url': ...}] or data=[{'b64_json': ...}]"),
    EmbeddingResponse: ("data", "data=[{'embedding': [0.1, ...], 'index': 0}]"),
}


def normalized(result: Any, cls: type[Response], call: Any, payload: Any = None) -> Response:
    """``result`` as a ``cls`` (``call`` is the dispatcher's prepared call, for names and the model)."""
    response = _as_response(result, cls, call)
    if isinstance(response, ModelResponse):
        _complete_chat(response, call.model, payload)
    elif isinstance(response, EmbeddingResponse) and not response.usage.total_tokens:
        response.usage = estimated_usage(count_tokens(_input_text(payload)), 0)
    return response


def _as_response(result: Any, cls: type[Response], call: Any) -> Response:
    if isinstance(result, cls):
        return result
    data = result
    dump = getattr(result, "model_dump", None)
    if not isinstance(result, dict) and callable(dump):  # another library's object of the same shape
        data = dump()
    key, example = _NEEDS[cls]
    if isinstance(data, dict) and isinstance(data.get(key), list):
        try:
            return cls.model_validate(data)
        except ValueError as exc:  # pydantic's ValidationError
            raise _shape_error(call, cls, f"a dict that does not validate ({exc})", example) from None
    what = f"a dict without a {key!r} list" if isinstance(data, dict) else type(result).__name__
    raise _shape_error(call, cls, f"{what}: {_short(result)}", example)


def _shape_error(call: Any, cls: type, what: str, example: str) -> APIConnectionError:
    # APIConnectionError: the tree's class for a handler bug (see llmkit.errors).
    return APIConnectionError(
        f"{type(call.handler).__name__}.{call.sync_method}() (provider {call.provider!r}) returned {what};"
        f" return a {cls.__name__}, or a dict of its shape: a {cls.__name__} needs {example}",
        llm_provider=call.provider,
        model=call.model,
    )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def _complete_chat(response: ModelResponse, model: str, messages: Any) -> None:
    if response.model is None:
        response.model = model
    usage = response.usage
    if usage is None or not usage.total_tokens or usage.estimated:
        response.usage = estimated_usage(count_message_tokens(messages or ()), count_tokens(_answer_text(response)))


def _answer_text(response: ModelResponse) -> str:
    choices = response.choices
    if len(choices) == 1 and not choices[0].message.tool_calls:  # the usual answer: one text
        return choices[0].message.content or ""
    parts = []
    for choice in response.choices:
        message = choice.message
        if message.content:
            parts.append(message.content)
        for call in message.tool_calls or ():
            parts.append(f"{call.function.name or ''}{call.function.arguments or ''}")
    return "".join(parts)


def _input_text(payload: Any) -> str:
    if isinstance(payload, str):
        return payload
    if isinstance(payload, (list, tuple)):
        return "\n".join(str(item) for item in payload)
    return "" if payload is None else str(payload)
