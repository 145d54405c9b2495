"""Streams: handler chunks in, OpenAI ``chat.completion.chunk`` objects out.

:class:`ChunkConverter` is the pure part (one per stream): it turns what a handler yields
(GenericStreamingChunk dicts, ModelResponseStream objects, OpenAI chunk dicts or bare strings) into
ModelResponseStream chunks sharing one id, the first with role "assistant", then a final chunk with
the finish_reason and, when asked for, a usage chunk. :class:`CustomStreamWrapper` drives it over a
sync or an async source with no buffering in between; the two iteration paths mirror each other.
"""

from __future__ import annotations

import re
import time
from typing import Any, AsyncIterator, Callable, Iterable, Iterator

from llmkit import retries
from llmkit.errors import APIError, map_exception
from llmkit.tokens import count_message_tokens, count_tokens
from llmkit.types.utils import (
    ChatCompletionDeltaToolCall,
    ChatCompletionMessageToolCall,
    Choices,
    Delta,
    Function,
    Message,
    ModelResponse,
    ModelResponseStream,
    StreamingChoices,
    Usage,
    new_completion_id,
)

__all__ = ["ChunkConverter", "CustomStreamWrapper", "replay", "response_as_chunks", "stream_chunk_builder", "text_chunks"]

_FINISH_REASONS = {
    "eos": "stop",
    "eos_token": "stop",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
}


def map_finish_reason(reason: str | None) -> str | None:
    """Provider spellings of finish reasons to OpenAI's (``eos`` -> ``stop``, ...)."""
    return _FINISH_REASONS.get(reason, reason) if reason else reason


class ChunkConverter:
    """Turns one stream's raw handler chunks into OpenAI chunks. Pure: no I/O, no clock after init."""

    def __init__(self, model: str | None, *, include_usage: bool = False, messages: Any = None) -> None:
        self.id = new_completion_id()
        self.created = int(time.time())
        self.model = model
        self.include_usage = include_usage
        self.messages = messages
        self.texts: list[str] = []
        self.usage: Any = None
        self.finish_reason: str | None = None
        self._role_sent = False
        self._finish_sent = False

    def convert(self, raw: Any) -> ModelResponseStream | None:
        """The chunk to deliver for ``raw``, or None when it carries nothing to show."""
        if isinstance(raw, dict):
            if "choices" in raw:
                return self._pass_through(ModelResponseStream.model_validate(raw))
            return self._from_generic(raw)
        if isinstance(raw, ModelResponseStream):
            return self._pass_through(raw)
        if isinstance(raw, str):
            return self._from_generic({"text": raw})
        raise TypeError(
            f"a stream chunk must be a GenericStreamingChunk dict, a ModelResponseStream or a str,"
            f" got {type(raw).__name__}: {raw!r:.200}"
        )

    def _from_generic(self, raw: dict) -> ModelResponseStream | None:
        usage = raw.get("usage")
        if usage:
            self.usage = usage
        if raw.get("is_finished"):
            self.finish_reason = map_finish_reason(raw.get("finish_reason")) or "stop"
        text = raw.get("text")
        tool_use = raw.get("tool_use")
        if not text and not tool_use:
            return None
        if text:
            self.texts.append(text)
        delta = {"content": text or None}
        if not self._role_sent:
            delta["role"] = "assistant"
            self._role_sent = True
        if tool_use:
            delta["tool_calls"] = [tool_use]
        # Validating one nested dict is about twice as fast as building the three models one by one.
        return ModelResponseStream.model_validate(
            {
                "id": self.id,
                "created": self.created,
                "model": self.model,
                "choices": [{"index": raw.get("index") or 0, "delta": delta}],
            }
        )

    def _pass_through(self, chunk: ModelResponseStream) -> ModelResponseStream | None:
        chunk.id = self.id  # one id and one model name for the whole stream, whoever built the chunk
        chunk.model = self.model
        if chunk.usage:
            self.usage = chunk.usage
        if not chunk.choices:
            return None  # a usage-only chunk: its usage goes out in our own usage chunk
        choice = chunk.choices[0]
        if not self._role_sent:
            if choice.delta.role is None:
                choice.delta.role = "assistant"
            self._role_sent = True
        if choice.delta.content:
            self.texts.append(choice.delta.content)
        if choice.finish_reason:
            choice.finish_reason = self.finish_reason = map_finish_reason(choice.finish_reason)
            self._finish_sent = True
        return chunk

    def finish(self) -> list[ModelResponseStream]:
        """The chunks that close the stream: the finish_reason chunk, then the usage chunk if asked."""
        out = []
        if not self._finish_sent:
            self._finish_sent = True
            delta = Delta() if self._role_sent else Delta(role="assistant")
            choice = StreamingChoices(finish_reason=self.finish_reason or "stop", delta=delta)
            out.append(ModelResponseStream(id=self.id, created=self.created, model=self.model, choices=[choice]))
        if self.include_usage:
            usage = self.final_usage()
            out.append(ModelResponseStream(id=self.id, created=self.created, model=self.model, choices=[], usage=usage))
        return out

    @property
    def usage_estimated(self) -> bool:
        return not self.usage

    def final_usage(self) -> Usage:
        """The usage the handler reported last, or an estimate from the text when it reported none."""
        if isinstance(self.usage, Usage):
            return self.usage
        if self.usage:
            return Usage.model_validate(self.usage if isinstance(self.usage, dict) else dict(self.usage))
        return Usage(
            prompt_tokens=count_message_tokens(self.messages or ()),
            completion_tokens=count_tokens("".join(self.texts)),
        )


class CustomStreamWrapper:
    """The stream ``completion(stream=True)`` and ``acompletion(stream=True)`` return.

    Iterate it (``for`` for completion, ``async for`` for acompletion) to get chunks as they arrive.
    Once finished it can be iterated again to replay the chunks; :meth:`text` and :meth:`response`
    drain it and return the whole answer. Closing it (or leaving a ``with`` block) stops the handler.
    The call log records the stream once, when it ends: exhausted, failed, closed early, interrupted,
    cancelled, or dropped unfinished, with what had arrived by then.
    """

    def __init__(
        self,
        source: Iterator[Any] | AsyncIterator[Any],
        converter: ChunkConverter,
        *,
        llm_provider: str | None,
        reopen: Callable[[], Any] | None = None,
        num_retries: int = 0,
        chunk_timeout: float | None = None,
        entry: Any = None,
    ) -> None:
        self._entry = entry  # the call log's llmkit.calllog.recorder.Entry, or None
        if entry is not None:
            entry.streaming(converter)
        self._source: Any = source
        self._is_async = hasattr(source, "__anext__")
        self.converter = converter
        self.model = converter.model
        self.llm_provider = llm_provider
        self.chunks: list[ModelResponseStream] = []
        self._pending: list[ModelResponseStream] = []
        self._finished = False
        self._reopen = reopen
        self._num_retries = num_retries
        self._attempt = 0
        self._chunk_timeout = chunk_timeout

    # -- sync --------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[ModelResponseStream]:
        if self._is_async:
            raise TypeError("this stream came from acompletion(); iterate it with 'async for'")
        if self._finished and not self._pending:
            return iter(list(self.chunks))  # replay
        return self

    def __next__(self) -> ModelResponseStream:
        if self._pending:
            return self._deliver(self._pending.pop(0))
        while not self._finished:
            try:
                chunk = self.converter.convert(next(self._source))
            except StopIteration:
                self._end()
                return self.__next__()
            except Exception as exc:
                delay = self._retry_delay(exc)
                if delay is None:
                    raise self._fail(exc) from exc
                time.sleep(delay)
                self._source = self._reopen()
                continue
            except BaseException as exc:  # KeyboardInterrupt
                self._interrupted(exc)
                raise
            if chunk is not None:
                return self._deliver(chunk)
        raise StopIteration

    def close(self) -> None:
        """Stop the stream and let the handler's generator clean up."""
        self._finished = True
        self._abandoned("closed by the caller")
        close = getattr(self._source, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> CustomStreamWrapper:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def text(self) -> str:
        """Drain the stream and return its whole text."""
        for _ in self:
            pass
        return "".join(self.converter.texts)

    def response(self, messages: Any = None) -> ModelResponse:
        """Drain the stream and return the whole answer as a ModelResponse."""
        for _ in self:
            pass
        return stream_chunk_builder(self.chunks, messages=messages or self.converter.messages)

    # -- async -------------------------------------------------------------------------------
    def __aiter__(self) -> AsyncIterator[ModelResponseStream]:
        if not self._is_async:
            raise TypeError("this stream came from completion(); iterate it with 'for'")
        if self._finished and not self._pending:
            return replay(list(self.chunks))
        return self

    async def __anext__(self) -> ModelResponseStream:
        if self._pending:
            return self._deliver(self._pending.pop(0))
        while not self._finished:
            try:
                if self._chunk_timeout is None:
                    raw = await self._source.__anext__()
                else:
                    from llmkit.aio import wait_for  # not asyncio's: a handler's KeyboardInterrupt must not stop the loop

                    raw = await wait_for(self._source.__anext__(), self._chunk_timeout)
                chunk = self.converter.convert(raw)
            except StopAsyncIteration:
                self._end()
                return await self.__anext__()
            except Exception as exc:
                delay = self._retry_delay(exc)
                if delay is None:
                    raise self._fail(exc) from exc
                await _asyncio().sleep(delay)
                self._source = await self._reopen()
                continue
            except BaseException as exc:  # the task was cancelled, or KeyboardInterrupt
                self._interrupted(exc)
                raise
            if chunk is not None:
                return self._deliver(chunk)
        raise StopAsyncIteration

    async def aclose(self) -> None:
        self._finished = True
        self._abandoned("closed by the caller")
        aclose = getattr(self._source, "aclose", None)
        if aclose is not None:
            await aclose()

    async def __aenter__(self) -> CustomStreamWrapper:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()

    async def atext(self) -> str:
        async for _ in self:
            pass
        return "".join(self.converter.texts)

    async def aresponse(self, messages: Any = None) -> ModelResponse:
        async for _ in self:
            pass
        return stream_chunk_builder(self.chunks, messages=messages or self.converter.messages)

    # -- shared ------------------------------------------------------------------------------
    def _deliver(self, chunk: ModelResponseStream) -> ModelResponseStream:
        if not self.chunks and self._entry is not None:
            self._entry.t_first = time.perf_counter()  # time to first token, taken once
        self.chunks.append(chunk)
        return chunk

    def _end(self) -> None:
        self._finished = True
        self._pending.extend(self.converter.finish())
        if self._entry is not None:
            self._entry.ok(self.converter)

    def _fail(self, exc: BaseException) -> APIError:
        self._finished = True
        error = map_exception(exc, self.llm_provider, self.model)
        if self._entry is not None:
            self._entry.failed(error, self.converter)
        return error

    def _interrupted(self, exc: BaseException) -> None:
        if self._entry is not None:
            self._entry.failed(exc, self.converter)

    def _abandoned(self, reason: str) -> None:
        entry = self._entry
        if entry is not None and entry.status is None:
            entry.abandoned(self.converter, f"{reason} after {len(self.chunks)} chunk(s)")

    def __del__(self) -> None:
        if getattr(self, "_entry", None) is not None:
            self._abandoned("dropped unfinished")

    def _retry_delay(self, exc: BaseException) -> float | None:
        """Seconds to wait before reopening the stream, or None to give up.

        Only a stream that has delivered nothing yet is retried, so no chunk is ever repeated.
        """
        if self.chunks or self._reopen is None:
            return None
        error = map_exception(exc, self.llm_provider, self.model)
        delay = retries.delay_before_retry(error, self._attempt, self._num_retries)
        self._attempt += delay is not None
        return delay


def _asyncio() -> Any:
    import asyncio  # slow to import; loaded already whenever an async stream is running

    return asyncio


async def replay(items: Iterable[Any]) -> AsyncIterator[Any]:
    """An async iterator over items already in hand (a finished stream, a mock, a single chunk)."""
    for item in items:
        yield item


def text_chunks(text: str, usage: dict | None = None) -> list[dict]:
    """GenericStreamingChunk dicts that stream ``text`` a word at a time, the last one finishing."""
    pieces = re.findall(r"\s*\S+\s*|\s+", text) or [text]
    chunks = [{"text": piece, "is_finished": False, "finish_reason": None, "usage": None} for piece in pieces]
    chunks[-1].update(is_finished=True, finish_reason="stop", usage=usage)
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
    if response.usage and response.usage.total_tokens:
        chunks.append(ModelResponseStream(model=response.model, choices=[], usage=response.usage))
    return chunks


def stream_chunk_builder(chunks: Iterable[Any], messages: Any = None) -> ModelResponse | None:
    """Rebuild the whole ModelResponse from a stream's chunks (None for no chunks)."""
    chunks = [c if isinstance(c, ModelResponseStream) else ModelResponseStream.model_validate(c) for c in chunks]
    if not chunks:
        return None
    texts: list[str] = []
    tool_calls: dict[int, dict[str, Any]] = {}
    finish_reason = None
    usage = None
    role = "assistant"
    for chunk in chunks:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            delta = choice.delta
            role = delta.role or role
            if delta.content:
                texts.append(delta.content)
            for call in delta.tool_calls or ():
                _merge_tool_call(tool_calls.setdefault(call.index, {"id": None, "name": None, "arguments": []}), call)
            finish_reason = choice.finish_reason or finish_reason
    content = "".join(texts) if texts or not tool_calls else None
    message = Message(
        content=content,
        role=role,
        tool_calls=[
            ChatCompletionMessageToolCall(id=call["id"], function=Function(name=call["name"], arguments="".join(call["arguments"])))
            for _, call in sorted(tool_calls.items())
        ]
        or None,
    )
    if usage is None:
        usage = Usage(
            prompt_tokens=count_message_tokens(messages or ()),
            completion_tokens=count_tokens(content or ""),
        )
    first = chunks[0]
    return ModelResponse(
        id=first.id,
        created=first.created,
        model=first.model,
        system_fingerprint=first.system_fingerprint,
        choices=[Choices(finish_reason=finish_reason or "stop", index=0, message=message)],
        usage=usage,
    )


def _merge_tool_call(into: dict[str, Any], call: ChatCompletionDeltaToolCall) -> None:
    into["id"] = into["id"] or call.id
    into["name"] = into["name"] or call.function.name
    if call.function.arguments:
        into["arguments"].append(call.function.arguments)
