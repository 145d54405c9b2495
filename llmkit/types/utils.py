"""Response and chunk types in the OpenAI wire shapes.

The module path matches LiteLLM's ``litellm.types.utils`` so that a handler written for LiteLLM
imports its types from ``llmkit.types.utils`` unchanged. The models are pydantic v2 models that also
allow dict-style access (``resp["choices"][0]["message"]["content"]``), as LiteLLM's do.
"""

from __future__ import annotations

import random
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from typing_extensions import NotRequired, TypedDict

__all__ = [
    "ChatCompletionDeltaToolCall",
    "ChatCompletionMessageToolCall",
    "ChatCompletionToolCallChunk",
    "ChatCompletionToolCallFunctionChunk",
    "Choices",
    "Delta",
    "Embedding",
    "EmbeddingResponse",
    "Function",
    "GenericStreamingChunk",
    "ImageObject",
    "ImageResponse",
    "Message",
    "ModelResponse",
    "ModelResponseStream",
    "StreamingChoices",
    "Usage",
    "new_completion_id",
]


def new_completion_id() -> str:
    """A ``chatcmpl-<uuid4>`` style id, from the random module's generator: an id need not be secret,
    and os.urandom lets go of the GIL, handing it to any thread waiting for it (the call log's writer)
    in the middle of every response the proxy builds."""
    h = f"{_random_bits(128):032x}"
    return f"chatcmpl-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_random_bits = random.getrandbits  # the random module reseeds itself in a forked child


def _now() -> int:
    return int(time.time())


class OpenAIObject(BaseModel):
    """Base of the wire models: extra keys are kept, and fields read like dict items too."""

    model_config = ConfigDict(extra="allow", protected_namespaces=(), defer_build=True)

    def __getitem__(self, key: str) -> Any:
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None

    def __setitem__(self, key: str, value: Any) -> None:
        setattr(self, key, value)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and hasattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default)

    def json(self, **kwargs: Any) -> dict[str, Any]:  # type: ignore[override]
        """The response as a plain dict (LiteLLM's ``.json()`` returns a dict, not a string)."""
        return self.model_dump(**kwargs)


class Usage(OpenAIObject):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    @model_validator(mode="after")
    def _fill_total(self) -> Usage:
        if not self.total_tokens and (self.prompt_tokens or self.completion_tokens):
            self.total_tokens = self.prompt_tokens + self.completion_tokens
        return self

    @property
    def estimated(self) -> bool:
        """True when llmkit counted these tokens itself, the handler having reported none.

        Set by building the usage with ``estimated=True``, which also goes out with it on the wire.
        """
        return bool(self.__pydantic_extra__ and self.__pydantic_extra__.get("estimated"))


class Function(OpenAIObject):
    name: str | None = None
    arguments: str = ""


class ChatCompletionMessageToolCall(OpenAIObject):
    id: str | None = None
    type: str = "function"
    function: Function = Field(default_factory=Function)


class ChatCompletionDeltaToolCall(OpenAIObject):
    id: str | None = None
    type: str | None = None
    function: Function = Field(default_factory=Function)
    index: int = 0


class Message(OpenAIObject):
    content: str | None = None
    role: str = "assistant"
    tool_calls: list[ChatCompletionMessageToolCall] | None = None
    function_call: Function | None = None


class Delta(OpenAIObject):
    content: str | None = None
    role: str | None = None
    tool_calls: list[ChatCompletionDeltaToolCall] | None = None
    function_call: Function | None = None


class Choices(OpenAIObject):
    finish_reason: str | None = "stop"
    index: int = 0
    message: Message = Field(default_factory=Message)


class StreamingChoices(OpenAIObject):
    finish_reason: str | None = None
    index: int = 0
    delta: Delta = Field(default_factory=Delta)


class ModelResponse(OpenAIObject):
    """A ``chat.completion`` object."""

    id: str = Field(default_factory=new_completion_id)
    choices: list[Choices] = Field(default_factory=lambda: [Choices()])
    created: int = Field(default_factory=_now)
    model: str | None = None
    object: str = "chat.completion"
    system_fingerprint: str | None = None
    usage: Usage = Field(default_factory=Usage)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        """In a notebook: the answer as Markdown with a footer (``repr()`` stays pydantic's)."""
        from llmkit.types import reprs  # loaded the first time a notebook shows a response

        return reprs.response_bundle(self)

    def _repr_markdown_(self) -> str:
        from llmkit.types import reprs

        return reprs.response_bundle(self)["text/markdown"]


class ModelResponseStream(OpenAIObject):
    """A ``chat.completion.chunk`` object."""

    id: str = Field(default_factory=new_completion_id)
    choices: list[StreamingChoices] = Field(default_factory=lambda: [StreamingChoices()])
    created: int = Field(default_factory=_now)
    model: str | None = None
    object: str = "chat.completion.chunk"
    system_fingerprint: str | None = None
    usage: Usage | None = None


class ImageObject(OpenAIObject):
    b64_json: str | None = None
    url: str | None = None
    revised_prompt: str | None = None


class ImageResponse(OpenAIObject):
    created: int = Field(default_factory=_now)
    data: list[ImageObject] = Field(default_factory=list)
    usage: Usage | None = None

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        """In a notebook: the images themselves."""
        from llmkit.types import reprs

        return reprs.image_bundle(self)


class Embedding(OpenAIObject):
    embedding: list[float] | str = Field(default_factory=list)
    index: int = 0
    object: Literal["embedding"] = "embedding"


class EmbeddingResponse(OpenAIObject):
    object: str = "list"
    data: list[Embedding] = Field(default_factory=list)
    model: str | None = None
    usage: Usage = Field(default_factory=Usage)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        """In a notebook: a one-line summary, not thousands of numbers."""
        from llmkit.types import reprs

        return reprs.embedding_bundle(self)


class ChatCompletionToolCallFunctionChunk(TypedDict, total=False):
    name: str | None
    arguments: str


class ChatCompletionToolCallChunk(TypedDict):
    id: str | None
    type: Literal["function"]
    function: ChatCompletionToolCallFunctionChunk
    index: int


class GenericStreamingChunk(TypedDict):
    """What a handler's ``streaming()`` / ``astreaming()`` yields."""

    text: str
    is_finished: bool
    finish_reason: str | None
    usage: dict | None
    index: NotRequired[int]
    tool_use: NotRequired[ChatCompletionToolCallChunk | None]
    provider_specific_fields: NotRequired[dict | None]
