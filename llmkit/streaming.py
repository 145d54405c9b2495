"""Streams: handler chunks in, OpenAI ``chat.completion.chunk`` objects out.

:class:`ChunkConverter` is the pure part (one per stream): it turns what a handler yields
(GenericStreamingChunk dicts, ModelResponseStream objects, OpenAI chunk dicts or bare strings) into
ModelResponseStream chunks sharing one id and one model, the first with role "assistant", then a
final chunk with the finish_reason and, when asked for, a usage chunk; what they say is gathered in a
:class:`~llmkit.stream_answer.StreamAnswer`. :class:`CustomStreamWrapper` drives it over a sync or an
async source with no buffering in between; the two iteration paths mirror each other.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any

from llmkit import retries
from llmkit.errors import APIError, LLMKitError, map_exception, timeout_error
from llmkit.stream_answer import StreamAnswer, response_as_chunks, stream_chunk_builder, text_chunks
from llmkit.tokens import count_message_tokens, count_tokens, estimated_usage
from llmkit.types.utils import Delta, ModelResponse, ModelResponseStream, StreamingChoices, Usage, new_completion_id

__all__ = [
    "ChunkConverter",
    "CustomStreamWrapper",
    "replay",
    "response_as_chunks",
    "stream_chunk_builder",
    "text_chunks",
]

#: How many chunks a stream keeps so that it can be iterated again once finished (about 2 KB each).
#: A longer stream lets them go as they are delivered; its text() and response() are kept in full.
REPLAY_LIMIT = 10_000

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
        self.answer = StreamAnswer()
        self.texts = self.answer.texts  # the text so far, in pieces (read by the call log)
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
            self.answer.add_text(text)
        delta = {"content": text or None}
        if not self._role_sent:
            delta["role"] = "assistant"
            self._role_sent = True
        if tool_use:
            delta["tool_calls"] = [tool_use]
        # Validating one nested dict is about twice as fast as building the three models one by one.
        chunk = ModelResponseStream.model_validate(
            {
                "id": self.id,
                "created": self.created,
                "model": self.model,
                "choices": [{"index": raw.get("index") or 0, "delta": delta}],
            }
        )
        if tool_use:
            self.answer.add_tool_calls(chunk.choices[0].delta.tool_calls or ())
        return chunk

    def _pass_through(self, chunk: ModelResponseStream) -> ModelResponseStream | None:
        if not self._role_sent and chunk.model:
            self.model = chunk.model  # the model the server says answered, as its whole answers say
        # One id and one model name for the whole stream, whoever built the chunk. Written to the
        # fields directly: pydantic's __setattr__ costs more than the rest of this method, per chunk.
        fields = chunk.__dict__
        fields["id"] = self.id
        fields["model"] = self.model
        chunk.__pydantic_fields_set__.update(("id", "model"))
        if chunk.usage:
            self.usage = chunk.usage
        if not chunk.choices:
            return None  # a usage-only chunk: its usage goes out in our own usage chunk
        choice = chunk.choices[0]
        if not self._role_sent:
            if choice.delta.role is None:
                choice.delta.role = "assistant"
            self._role_sent = True
        if choice.finish_reason:
            choice.finish_reason = self.finish_reason = map_finish_reason(choice.finish_reason)
            self._finish_sent = True
        self.answer.add(chunk)
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
        usage = self.usage
        if not usage:
            return True
        return bool(usage.get("estimated") if isinstance(usage, dict) else getattr(usage, "estimated", False))

    def final_usage(self, messages: Any = None) -> Usage:
        """The usage the handler reported last, or an estimate (flagged ``estimated``) when it reported none."""
        if isinstance(self.usage, Usage):
            return self.usage
        if self.usage:
            return Usage.model_validate(self.usage if isinstance(self.usage, dict) else dict(self.usage))
        prompt = count_message_tokens(messages or self.messages or ())
        return estimated_usage(prompt, count_tokens(self.answer.text))

    def response(self, messages: Any = None) -> ModelResponse | None:
        """The answer so far as one ModelResponse (None before the first chunk), with the usage above."""
        if not self._role_sent:
            return None
        return self.answer.response(self, self.final_usage(messages), self.finish_reason)


class CustomStreamWrapper:
    """The stream ``completion(stream=True)`` and ``acompletion(stream=True)`` return.

    Iterate it (``for`` for completion, ``async for`` for acompletion) to get chunks as they arrive.
    Once finished it can be iterated again to replay the chunks, if there were no more than
    ``replay_limit`` of them (set it before iterating; 0 keeps none); :meth:`text` and :meth:`response`
    drain it and return the whole answer, however long. Closing it (or leaving a ``with`` block) stops
    the handler. With a timeout, each chunk must arrive within it. The call log records the stream
    once, when it ends: exhausted, failed, closed early, interrupted, cancelled, or dropped unfinished,
    with what had arrived by then.
    """

    replay_limit = REPLAY_LIMIT

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
        self.llm_provider = llm_provider
        self.chunks: list[ModelResponseStream] = []  # kept for replay, up to replay_limit
        self.chunk_count = 0  # delivered so far
        self._pending: list[ModelResponseStream] = []
        self._late: Any = None  # a timed-out next() still running in a worker thread
        self._finished = False
        self._reopen = reopen
        self._num_retries = num_retries
        self._attempt = 0
        self._chunk_timeout = chunk_timeout

    @property
    def model(self) -> str | None:
        return self.converter.model

    # -- sync --------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[ModelResponseStream]:
        if self._is_async:
            raise TypeError("this stream came from acompletion(); iterate it with 'async for'")
        if self._finished and not self._pending:
            return iter(self._replayed())
        return self

    def __next__(self) -> ModelResponseStream:
        if self._pending:
            return self._deliver(self._pending.pop(0))
        while not self._finished:
            try:
                chunk = self.converter.convert(self._next_raw())
            except StopIteration:
                self._end()
                return self.__next__()
            except Exception as exc:
                self._close_source()  # a generator left mid-chunk by a timeout is closed when it yields
                delay = self._retry_delay(exc)
                if delay is None or self._reopen is None:  # (no retry without a way to reopen)
                    raise self._fail(exc) from exc
                time.sleep(delay)
                self._late = None
                self._source = self._reopen()
                continue
            except BaseException as exc:  # KeyboardInterrupt
                self._interrupted(exc)
                raise
            if chunk is not None:
                return self._deliver(chunk)
        raise StopIteration

    def _next_raw(self) -> Any:
        if self._chunk_timeout is None or isinstance(self._source, _IN_HAND):
            return next(self._source)
        # A blocked next() cannot be interrupted: wait for it in a worker thread, on time.
        from concurrent.futures import TimeoutError as FutureTimeout  # not builtin TimeoutError on 3.10

        future = _aio().handler_pool().submit(next, self._source)
        try:
            return future.result(timeout=self._chunk_timeout)
        except FutureTimeout:
            self._late = future
            raise timeout_error(self._chunk_timeout, self.llm_provider, self.model) from None

    def close(self) -> None:
        """Stop the stream and let the handler's generator clean up."""
        self._finished = True
        self._abandoned("closed by the caller")
        self._close_source()

    def _close_source(self) -> None:
        close = getattr(self._source, "close", None)
        if close is None:
            return
        if self._late is not None:  # the generator is still running in a thread: close it when it yields
            self._late.add_done_callback(lambda _: _quietly(close))
        else:
            close()

    def __enter__(self) -> CustomStreamWrapper:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def text(self) -> str:
        """Drain the stream and return its whole text."""
        if self._is_async:
            raise TypeError("this stream came from acompletion(); use 'await stream.atext()'")
        while not self._finished or self._pending:
            next(self, None)
        return self.converter.answer.text

    def response(self, messages: Any = None) -> ModelResponse | None:
        """Drain the stream and return the whole answer as a ModelResponse."""
        self.text()
        return self.converter.response(messages)

    # -- async -------------------------------------------------------------------------------
    def __aiter__(self) -> AsyncIterator[ModelResponseStream]:
        if not self._is_async:
            raise TypeError("this stream came from completion(); iterate it with 'for'")
        if self._finished and not self._pending:
            return replay(self._replayed())
        return self

    async def __anext__(self) -> ModelResponseStream:
        if self._pending:
            return self._deliver(self._pending.pop(0))
        while not self._finished:
            try:
                chunk = self.converter.convert(await self._anext_raw())
            except StopAsyncIteration:
                self._end()
                return await self.__anext__()
            except Exception as exc:
                delay = self._retry_delay(exc)
                if delay is None or self._reopen is None:  # (no retry without a way to reopen)
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

    async def _anext_raw(self) -> Any:
        if self._chunk_timeout is None:
            return await self._source.__anext__()
        try:
            # aio's wait_for: asyncio.timeout where it exists (no task per chunk), and a handler's
            # KeyboardInterrupt cannot stop a server's event loop
            return await _aio().wait_for(self._source.__anext__(), self._chunk_timeout)
        except _asyncio().TimeoutError:
            raise timeout_error(self._chunk_timeout, self.llm_provider, self.model) from None

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
        if not self._is_async:
            raise TypeError("this stream came from completion(); use 'stream.text()'")
        while not self._finished or self._pending:
            try:
                await self.__anext__()
            except StopAsyncIteration:
                break
        return self.converter.answer.text

    async def aresponse(self, messages: Any = None) -> ModelResponse | None:
        await self.atext()
        return self.converter.response(messages)

    # -- shared ------------------------------------------------------------------------------
    def _deliver(self, chunk: ModelResponseStream) -> ModelResponseStream:
        count = self.chunk_count = self.chunk_count + 1
        if count == 1 and self._entry is not None:
            self._entry.t_first = time.perf_counter()  # time to first token, taken once
        if count <= self.replay_limit:
            self.chunks.append(chunk)
        elif self.chunks:
            self.chunks = []  # past the limit: a replay could not be whole, so keep none
        return chunk

    def _replayed(self) -> list[ModelResponseStream]:
        if self.chunk_count > self.replay_limit:
            raise LLMKitError(
                f"this stream delivered {self.chunk_count} chunks, more than its replay_limit of"
                f" {self.replay_limit}, so they were not kept for a replay; use stream.text() or"
                " stream.response() for the whole answer, or set stream.replay_limit higher before iterating"
            )
        return list(self.chunks)

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
            entry.abandoned(self.converter, f"{reason} after {self.chunk_count} chunk(s)")

    def __del__(self) -> None:
        if getattr(self, "_entry", None) is not None:
            self._abandoned("dropped unfinished")

    def _retry_delay(self, exc: BaseException) -> float | None:
        """Seconds to wait before reopening the stream, or None to give up.

        Only a stream that has delivered nothing yet is retried, so no chunk is ever repeated.
        """
        if self.chunk_count or self._reopen is None:
            return None
        error = map_exception(exc, self.llm_provider, self.model)
        delay = retries.delay_before_retry(error, self._attempt, self._num_retries)
        self._attempt += delay is not None
        return delay


def _asyncio() -> Any:
    import asyncio  # slow to import; loaded already whenever an async stream is running

    return asyncio


def _aio() -> Any:
    from llmkit import aio  # loads asyncio: only sync streams with a timeout need its threads

    return aio


def _quietly(close: Callable[[], Any]) -> None:
    try:
        close()
    except Exception:  # the stream already failed with a Timeout; a late cleanup error adds nothing
        pass


# Sources already in hand (a mock, a whole answer as chunks): nothing there can block.
_IN_HAND: tuple[type, ...] = (type(iter([])), type(iter(())))


async def replay(items: Iterable[Any]) -> AsyncIterator[Any]:
    """An async iterator over items already in hand (a finished stream, a mock, a single chunk)."""
    for item in items:
        yield item
