"""The handler base class: subclass it and override the methods your API supports.

The method names and keyword arguments match LiteLLM's ``CustomLLM``, so a handler written for
LiteLLM works here with only its imports changed. Every method the subclass does not override raises
``CustomLLMError(500, "Not implemented yet!")``; the dispatcher looks at which methods are overridden
to serve async calls from sync methods (in a worker thread) and sync calls from async ones.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from llmkit.errors import CustomLLMError
from llmkit.types.utils import EmbeddingResponse, GenericStreamingChunk, ImageResponse, ModelResponse

__all__ = ["HANDLER_METHODS", "BaseLLM", "CustomLLM", "CustomLLMError", "has_handler_methods"]

#: The methods of the handler contract; a handler implements at least one.
HANDLER_METHODS = (
    "completion",
    "acompletion",
    "streaming",
    "astreaming",
    "image_generation",
    "aimage_generation",
    "embedding",
    "aembedding",
)


class BaseLLM:
    """Placeholder base, kept so that ``from llmkit.llms.base import BaseLLM`` works as in LiteLLM."""


def _not_implemented() -> CustomLLMError:
    return CustomLLMError(status_code=500, message="Not implemented yet!")


class CustomLLM(BaseLLM):
    def completion(self, *args: Any, **kwargs: Any) -> ModelResponse:
        raise _not_implemented()

    def streaming(self, *args: Any, **kwargs: Any) -> Iterator[GenericStreamingChunk]:
        raise _not_implemented()

    async def acompletion(self, *args: Any, **kwargs: Any) -> ModelResponse:
        raise _not_implemented()

    async def astreaming(self, *args: Any, **kwargs: Any) -> AsyncIterator[GenericStreamingChunk]:
        raise _not_implemented()
        yield  # type: ignore[unreachable]  # pragma: no cover - an async generator, as an override would be

    def image_generation(self, *args: Any, **kwargs: Any) -> ImageResponse:
        raise _not_implemented()

    async def aimage_generation(self, *args: Any, **kwargs: Any) -> ImageResponse:
        raise _not_implemented()

    def embedding(self, *args: Any, **kwargs: Any) -> EmbeddingResponse:
        raise _not_implemented()

    async def aembedding(self, *args: Any, **kwargs: Any) -> EmbeddingResponse:
        raise _not_implemented()


def has_handler_methods(obj: object) -> bool:
    """Whether ``obj`` (a handler instance or class) has at least one method of the contract."""
    return any(callable(getattr(obj, name, None)) for name in HANDLER_METHODS)
