"""A stream's whole answer, kept small, and the conversions between whole answers and chunks.

:class:`StreamAnswer` gathers what a stream says (text, tool calls, role, finish_reason, usage) as
chunks go by, without keeping the chunks, so a stream of a million chunks can still be turned into
one ModelResponse at the end. ``stream_chunk_builder`` does the same for a list of chunks in hand;
``response_as_chunks`` and ``text_chunks`` go the other way.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from llmkit.tokens import count_message_tokens, count_tokens, estimated_usage
from llmkit.types.utils import (
    ChatCompletionDeltaToolCall,
    ChatCompletionMessageToolCall,
    Choices,
    Delta,
    Function,
    GenericStreamingChunk,
    Message,
    ModelResponse,
    ModelResponseStream,
    StreamingChoices,
)

__all__ = ["StreamAnswer", "response_as_chunks", "stream_chunk_builder", "text_chunks"]

# Text pieces are joined in groups of this many, so a long stream holds a few long strings rather
# than one small string object per chunk (about 50 bytes each on top of the text).
_JOIN_EVERY = 256


class StreamAnswer:
    """What a stream has said so far. ``texts`` joined is its text (record readers join it too)."""

    __slots__ = ("texts", "role", "finish_reason", "usage", "_tool_calls")

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.role = "assistant"
        self.finish_reason: str | None = None
        self.usage: Any = None
        self._tool_calls: dict[int, dict[str, Any]] = {}

    @property
    def text(self) -> str:
        return "".join(self.texts)

    def add_text(self, text: str) -> None:
        texts = self.texts
        texts.append(text)
        if len(texts) % _JOIN_EVERY == 0:  # join the newest group, in place: earlier groups stay joined
            texts[-_JOIN_EVERY:] = ["".join(texts[-_JOIN_EVERY:])]

    def add_tool_calls(self, calls: Iterable[ChatCompletionDeltaToolCall]) -> None:
        for call in calls:
            into = self._tool_calls.setdefault(call.index, {"id": None, "name": None, "arguments": []})
            into["id"] = into["id"] or call.id
            into["name"] = into["name"] or call.function.name
            if call.function.arguments:
                into["arguments"].append(call.function.arguments)

    def add(self, chunk: ModelResponseStream) -> None:
        """Everything a chunk carries (all of its choices merged into one answer, as LiteLLM does)."""
        if chunk.usage:
            self.usage = chunk.usage
        for choice in chunk.choices:
            delta = choice.delta
            self.role = delta.role or self.role
            if delta.content:
                self.add_text(delta.content)
            if delta.tool_calls:
                self.add_tool_calls(delta.tool_calls)
            self.finish_reason = choice.finish_reason or self.finish_reason

    def message(self) -> Message:
        text = self.text
        tool_calls = [
            ChatCompletionMessageToolCall(
                id=call["id"], function=Function(name=call["name"], arguments="".join(call["arguments"]))
            )
            for _, call in sorted(self._tool_calls.items())
        ]
        content = text if text or not tool_calls else None
        return Message(content=content, role=self.role, tool_calls=tool_calls or None)

    def response(self, head: Any, usage: Any, finish_reason: str | None = None) -> ModelResponse:
        """The whole answer; ``head`` (the first chunk, or a converter) gives its id, created and model."""
        return ModelResponse(
            id=head.id,
            created=head.created,
            model=head.model,
            system_fingerprint=getattr(head, "system_fingerprint", None),
            choices=[
                Choices(finish_reason=finish_reason or self.finish_reason or "stop", index=0, message=self.message())
            ],
            usage=usage,
        )


def stream_chunk_builder(chunks: Iterable[Any], messages: Any = None) -> ModelResponse | None:
    """Rebuild the whole ModelResponse from a stream's chunks (None for no chunks).

    Usage is the last a chunk carried, else an estimate from ``messages`` and the text, flagged
    ``usage.estimated``.
    """
    answer = StreamAnswer()
    first = None
    for chunk in chunks:
        if not isinstance(chunk, ModelResponseStream):
            chunk = ModelResponseStream.model_validate(chunk)
        first = first or chunk
        answer.add(chunk)
    if first is None:
        return None
    usage = answer.usage
    if usage is None:
        message = answer.message()
        usage = estimated_usage(count_message_tokens(messages or ()), count_tokens(message.content or ""))
    return answer.response(first, usage)


def text_chunks(text: str, usage: dict | None = None) -> list[GenericStreamingChunk]:
    """GenericStreamingChunk dicts that stream ``text`` a word at a time, the last one finishing."""
    pieces = re.findall(r"\s*\S+\s*|\s+", text) or [text]
    chunks: list[GenericStreamingChunk] = [
        {"text": piece, "is_finished": False, "finish_reason": None, "usage": None} for piece in pieces
    ]
    last = chunks[-1]
    last["is_finished"], last["finish_reason"], last["usage"] = True, "stop", usage
    return chunks


def response_as_chunks(response: ModelResponse) -> list[ModelResponseStream]:
    """A whole ModelResponse as stream chunks, for handlers that cannot stream."""
    chunks = []
    for choice in response.choices:
        message = choice.message
        tool_calls = None
        if message.tool_calls:
            tool_calls = [
                ChatCompletionDeltaToolCall(index=i, id=call.id, type=call.type, function=call.function)
                for i, call in enumerate(message.tool_calls)
            ]
        delta = Delta(content=message.content, role=message.role, tool_calls=tool_calls)
        stream_choice = StreamingChoices(index=choice.index, delta=delta, finish_reason=choice.finish_reason)
        chunks.append(ModelResponseStream(model=response.model, choices=[stream_choice]))
    if response.usage is not None and response.usage.total_tokens:
        chunks.append(ModelResponseStream(model=response.model, choices=[], usage=response.usage))
    return chunks
