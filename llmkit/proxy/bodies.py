"""Request bodies: parsed and checked in one step, with errors that name the field.

Only ``model`` and the fields each endpoint needs are checked; every other field of the OpenAI
request (temperature, tools, stream_options, user, a handler's own parameters...) is passed on to the
handler, except llmkit's control parameters (api_key, api_base, mock_response, metadata...), which
only the config may set.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError
from pydantic_core import from_json
from typing_extensions import Required, TypedDict

from llmkit.params import CONTROL_PARAMS
from llmkit.proxy.errors import HTTPError

__all__ = ["ChatBody", "EmbeddingBody", "ImageBody", "parse_body"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)

    def params(self) -> dict[str, Any]:
        """The extra fields, for the handler (control parameters left out)."""
        extra = self.model_extra or {}
        return {key: value for key, value in extra.items() if key not in CONTROL_PARAMS}


class ChatMessage(TypedDict, total=False):
    __pydantic_config__ = ConfigDict(extra="allow")  # type: ignore[misc]

    role: Required[str]


class ChatBody(_Body):
    messages: list[ChatMessage] = Field(min_length=1)
    stream: StrictBool = False  # "true" or 1 is a 400, as OpenAI answers it


class ImageBody(_Body):
    prompt: str = Field(min_length=1)


class EmbeddingBody(_Body):
    input: str | list[str] | list[int] | list[list[int]]


B = TypeVar("B", bound=_Body)


def parse_body(cls: type[B], raw: bytes) -> B:
    """The body as ``cls``, or HTTPError 400 saying which field is wrong and how."""
    try:
        body = cls.model_validate_json(raw)
    except ValidationError as exc:
        raise _bad_request(exc) from None
    if b"NaN" in raw or b"Infinity" in raw:  # cheap test first: JSON has no such numbers
        _refuse_non_finite(raw)
    return body


def _refuse_non_finite(raw: bytes) -> None:
    try:
        from_json(raw, allow_inf_nan=False)
    except ValueError as exc:
        raise HTTPError(
            400,
            f"the request body is not valid JSON ({exc}); NaN and Infinity are not JSON numbers, send finite numbers",
        ) from None


def _bad_request(exc: ValidationError) -> HTTPError:
    error = exc.errors(include_url=False)[0]
    if error["type"] in ("json_invalid", "json_type"):
        return HTTPError(400, f"the request body is not valid JSON ({error['msg']}); send a JSON object")
    if error["type"] == "model_type":
        return HTTPError(400, "the request body must be a JSON object")
    field = _field(error["loc"])
    if error["type"] == "missing":
        message = f"{field} is missing; add it to the request body"
    elif error["type"] == "bool_type":
        message = f"{field} must be a JSON boolean, true or false, not {error['input']!r}"
    else:
        message = f"{field}: {error['msg']}"
    return HTTPError(400, message, param=field)


_UNION_BRANCHES = frozenset({"str", "int", "list[str]", "list[int]", "list[list[int]]"})


def _field(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in _UNION_BRANCHES:  # which Union member pydantic tried, not a field
            break
        else:
            out += f".{part}" if out else part
    return out
