"""Streams through the cache: a kept stream replayed, and one live stream read by identical calls.

A replay (:func:`replayed`) is a ``CustomStreamWrapper`` over the kept chunks, with the original
stream's id, creation time and usage, so its caller gets the same chunks in the same order: at once,
or with the recorded gaps when ``replay_pace`` is on.

A live stream under the cache is a :class:`SharedStream`: every caller, the first one included,
reads it through a reader of its own, and whichever reader needs a chunk that has not arrived yet
pulls it from the live stream while the others wait for it. Nobody waits on a reader that nobody
drives, so identical streams opened in one thread cannot deadlock. The chunks are objects shared by
all readers; each reader's converter has the live stream's id and model, so passing them through
changes nothing. The live stream stops when its last reader goes; it is kept once it is complete.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from typing import Any

from llmkit.errors import APIConnectionError
from llmkit.streaming import ChunkConverter, CustomStreamWrapper
from llmkit.types.utils import ModelResponseStream

__all__ = ["AsyncSharedStream", "SharedStream", "replayed"]


def _include_usage(kwargs: dict[str, Any]) -> bool:
    options = kwargs.get("stream_options")
    return bool(isinstance(options, dict) and options.get("include_usage"))


# -- replays -----------------------------------------------------------------------------------------
def replayed(recording: Any, provider: str, kwargs: dict, messages: Any, entry: Any, is_async: bool, pace: bool) -> Any:
    """A stream of the kept ``recording`` (``values.StreamRecording``), recorded in the log by ``entry``."""
    first = recording.chunks[0]
    converter = ChunkConverter(first.get("model"), include_usage=_include_usage(kwargs), messages=messages)
    converter.id, converter.created = first["id"], first["created"]
    converter.usage = recording.usage  # what the handler reported, shown or not
    source = (_areplay if is_async else _replay)(recording.chunks, recording.offsets, pace)
    return CustomStreamWrapper(source, converter, llm_provider=provider, entry=entry)


def _replay(chunks: list[dict], offsets: list[float], pace: bool) -> Any:
    started = time.perf_counter()
    for chunk, offset in zip(chunks, offsets, strict=True):
        if not chunk["choices"]:
            continue  # the usage chunk: the converter makes it again at the end, as it did the first time
        if pace:
            wait = offset - (time.perf_counter() - started)
            if wait > 0:
                time.sleep(wait)
        yield ModelResponseStream.model_validate(chunk)


async def _areplay(chunks: list[dict], offsets: list[float], pace: bool) -> Any:
    started = time.perf_counter()
    for chunk, offset in zip(chunks, offsets, strict=True):
        if not chunk["choices"]:
            continue
        if pace:
            wait = offset - (time.perf_counter() - started)
            if wait > 0:
                await _asyncio().sleep(wait)
        yield ModelResponseStream.model_validate(chunk)


def _asyncio() -> Any:
    import asyncio

    return asyncio


# -- one live stream, many readers -------------------------------------------------------------------
OPEN, DONE, FAILED, ABANDONED = "open", "done", "failed", "abandoned"


class _Shared:
    """The state both colours share: the chunks so far, their arrival times, and who still reads."""

    def __init__(self, live: CustomStreamWrapper, on_end: Callable[[Any], None]) -> None:
        self.live = live
        self.chunks: list[Any] = []
        self.offsets: list[float] = []
        self.started = time.perf_counter()
        self.state = OPEN
        self.error: BaseException | None = None
        self._readers = 0
        self._state_lock = threading.RLock()  # re-entrant: a reader's __del__ may run while it is held
        self._on_end = on_end

    def stream(self, entry: Any) -> CustomStreamWrapper | None:
        """A new reader's stream (recorded by ``entry``), or None when the live stream failed or stopped."""
        with self._state_lock:
            if self.state in (FAILED, ABANDONED):
                return None
            self._readers += 1
        live = self.live.converter
        converter = ChunkConverter(live.model, include_usage=live.include_usage, messages=live.messages)
        converter.id, converter.created = live.id, live.created
        return CustomStreamWrapper(self._reader(converter), converter, llm_provider=self.live.llm_provider, entry=entry)

    def _reader(self, converter: ChunkConverter) -> Any:
        """A new reader of the chunks, sync or async by the subclass."""
        raise NotImplementedError

    def _arrived(self, chunk: Any) -> None:
        self.chunks.append(chunk)
        self.offsets.append(time.perf_counter() - self.started)

    def _end(self, state: str, error: BaseException | None = None) -> None:
        with self._state_lock:
            if self.state != OPEN:
                return
            self.state, self.error = state, error
        self._on_end(self)

    def _released(self) -> bool:
        """A reader went; True when it was the last and the live stream must stop."""
        with self._state_lock:
            self._readers -= 1
            last = self._readers == 0 and self.state == OPEN
        if last:
            self._end(ABANDONED)
        return last

    def _error_for_reader(self) -> BaseException:
        """What a reader that did not pull the failing chunk raises: a copy of the error."""
        if isinstance(self.error, Exception):
            return copy.copy(self.error)
        return APIConnectionError(
            f"the identical call this stream shared was stopped ({type(self.error).__name__}) before its end"
        )

    def _finished(self, converter: ChunkConverter) -> None:
        converter.usage = self.live.converter.usage  # the log's figures: what the handler reported


class SharedStream(_Shared):
    """A live sync stream (``completion(stream=True)``) read by every identical call in flight."""

    def __init__(self, live: CustomStreamWrapper, on_end: Callable[[Any], None]) -> None:
        super().__init__(live, on_end)
        self._pull_lock = threading.Lock()

    def _reader(self, converter: ChunkConverter) -> _Reader:
        return _Reader(self, converter)

    def chunk(self, index: int) -> Any:
        """Chunk ``index``, pulled from the live stream if it has not arrived; StopIteration at the end."""
        with self._pull_lock:
            if index < len(self.chunks):
                return self.chunks[index]
            if self.state == DONE:
                raise StopIteration
            if self.state != OPEN:
                raise self._error_for_reader()
            try:
                chunk = next(self.live)
            except StopIteration:
                self._end(DONE)
                raise
            except BaseException as exc:
                self._end(FAILED, exc)
                raise
            self._arrived(chunk)
            return chunk

    def release(self) -> None:
        if self._released():
            self.live.close()


class _Reader:
    def __init__(self, shared: SharedStream, converter: ChunkConverter) -> None:
        self._shared = shared
        self._converter = converter
        self._index = 0
        self._open = True

    def __iter__(self) -> _Reader:
        return self

    def __next__(self) -> Any:
        shared = self._shared
        while True:
            index = self._index
            try:
                chunk = shared.chunks[index] if index < len(shared.chunks) else shared.chunk(index)
            except StopIteration:
                shared._finished(self._converter)
                self.close()
                raise
            self._index = index + 1
            if chunk.choices:  # the usage chunk is made again by this reader's converter
                return chunk

    def close(self) -> None:
        if self._open:
            self._open = False
            self._shared.release()

    def __del__(self) -> None:
        self.close()


class AsyncSharedStream(_Shared):
    """A live async stream (``acompletion(stream=True)``) read by identical calls in the same event loop."""

    def __init__(self, live: CustomStreamWrapper, on_end: Callable[[Any], None]) -> None:
        super().__init__(live, on_end)
        self._pull_lock = _asyncio().Lock()

    def _reader(self, converter: ChunkConverter) -> _AsyncReader:
        return _AsyncReader(self, converter)

    async def chunk(self, index: int) -> Any:
        async with self._pull_lock:
            if index < len(self.chunks):
                return self.chunks[index]
            if self.state == DONE:
                raise StopAsyncIteration
            if self.state != OPEN:
                raise self._error_for_reader()
            try:
                chunk = await self.live.__anext__()
            except StopAsyncIteration:
                self._end(DONE)
                raise
            except BaseException as exc:
                self._end(FAILED, exc)
                raise
            self._arrived(chunk)
            return chunk

    async def release(self) -> None:
        if self._released():
            await self.live.aclose()


class _AsyncReader:
    def __init__(self, shared: AsyncSharedStream, converter: ChunkConverter) -> None:
        self._shared = shared
        self._converter = converter
        self._index = 0
        self._open = True

    def __aiter__(self) -> _AsyncReader:
        return self

    async def __anext__(self) -> Any:
        shared = self._shared
        while True:
            index = self._index
            try:
                chunk = shared.chunks[index] if index < len(shared.chunks) else await shared.chunk(index)
            except StopAsyncIteration:
                shared._finished(self._converter)
                await self.aclose()
                raise
            self._index = index + 1
            if chunk.choices:
                return chunk

    async def aclose(self) -> None:
        if self._open:
            self._open = False
            await self._shared.release()

    def __del__(self) -> None:
        # No awaiting here: the last reader dropped leaves the live stream to the garbage collector,
        # which closes the handler's generator and records the call as dropped unfinished.
        if self._open:
            self._open = False
            self._shared._released()
