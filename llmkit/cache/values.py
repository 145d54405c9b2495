"""Answers as JSON text and back: whole responses, and streams with their chunks and timing.

A response (chat, image, embedding) is its own JSON. A stream is kept as the chunks its caller
received (``chat.completion.chunk`` objects, the finishing and usage chunks included), the time each
arrived after the stream opened, and the usage the handler reported (which the caller sees only when
it asked for ``include_usage``, and the call log always needs).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic_core import from_json, to_json

from llmkit.types.utils import EmbeddingResponse, ImageResponse, ModelResponse

__all__ = ["StreamRecording", "decode_response", "encode_response", "encode_stream"]

RESPONSE_TYPES: dict[str, type[BaseModel]] = {
    "chat": ModelResponse,
    "image": ImageResponse,
    "embedding": EmbeddingResponse,
}


def encode_response(response: BaseModel) -> str:
    return response.model_dump_json()


_validate_json: dict[str, Any] = {}  # by kind: the model's validator itself, a call shorter than the classmethod


def decode_response(kind: str, text: str) -> Any:
    validate = _validate_json.get(kind)
    if validate is not None:
        return validate(text)
    response_type = RESPONSE_TYPES[kind]
    response = response_type.model_validate_json(text)  # builds the (deferred) validator first
    _validate_json[kind] = response_type.__pydantic_validator__.validate_json
    return response


def _fallback(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump()
    raise TypeError(f"cannot keep a {type(value).__name__} in the response cache")


def encode_stream(chunks: list[Any], offsets: list[float], usage: Any) -> str:
    """``chunks`` (ModelResponseStream), each one's arrival in seconds after the stream opened, and usage."""
    return to_json(
        {"chunks": chunks, "offsets": [round(t, 6) for t in offsets], "usage": usage}, fallback=_fallback
    ).decode()


class StreamRecording:
    """A kept stream, decoded: plain chunk dicts (validated one at a time as they are replayed)."""

    __slots__ = ("chunks", "offsets", "usage")

    def __init__(self, text: str) -> None:
        data = from_json(text)
        self.chunks: list[dict[str, Any]] = data["chunks"]
        self.offsets: list[float] = data["offsets"]
        self.usage: Any = data["usage"]
        if not self.chunks or len(self.offsets) != len(self.chunks):
            raise ValueError("a kept stream without chunks, or without the time of each")
