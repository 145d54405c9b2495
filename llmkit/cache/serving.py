"""A call through the cache: look it up, replay it, join an identical call in flight, or make it.

:func:`serve` and :func:`aserve` mirror each other; the dispatcher calls them, when the cache is on,
with the call's description and ``live(entry)``, which makes the call the ordinary way and records it
in the log with ``entry``. Every call gets one log entry: a live call's records its real figures; an
answer from the cache, or from an identical call in flight, is recorded as a ``cache_hit`` with its
own (tiny) latency and no cost.

Identical calls in flight at the same time are made once (:mod:`llmkit.cache.flights`): the first
makes it, the others wait for its answer (or read its stream as it arrives). If the first fails
before it answers, the others go on as if it had never been made, and one of them makes the call; a
stream that fails once it has started fails every reader alike.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from llmkit.cache import backend, settings
from llmkit.cache.flights import Flight, flights
from llmkit.cache.keys import Request, request_of
from llmkit.cache.streams import AsyncSharedStream, SharedStream, replayed
from llmkit.cache.values import StreamRecording, decode_response, encode_response, encode_stream
from llmkit.calllog.recorder import begin, warn_once
from llmkit.errors import BadRequestError, CacheMissError
from llmkit.messages import last_user_text

__all__ = ["aserve", "serve"]

_MISSING = object()
_count_lock = threading.Lock()


def serve(kind: str, model: Any, payload: Any, kwargs: dict[str, Any], live: Callable[[Any], Any]) -> Any:
    entry = begin(kind, model, payload, kwargs)
    call = _plan(entry, kind, model, payload, kwargs, is_async=False)
    if call is None:
        return live(entry)
    try:
        if call.mode != "refresh":
            answer = call.lookup()
            if answer is not _MISSING:
                return answer
        flight = flights.join(call.request.key, "sync")
        while not flight.leading:
            answer = call.follow(flight.wait())
            if answer is not _MISSING:
                return answer
            flight = flights.join(call.request.key, "sync")
        return call.lead(flight, live)
    except BaseException as exc:  # Ctrl-C while waiting, say: the call is still recorded, once
        _record_failure(entry, exc)
        raise


async def aserve(kind: str, model: Any, payload: Any, kwargs: dict[str, Any], live: Callable[[Any], Any]) -> Any:
    entry = begin(kind, model, payload, kwargs)
    call = _plan(entry, kind, model, payload, kwargs, is_async=True)
    if call is None:
        return await live(entry)
    try:
        if call.mode != "refresh":
            answer = call.lookup()
            if answer is not _MISSING:
                return answer
        loop = _running_loop()  # streams and waits belong to one event loop
        flight = flights.join(call.request.key, loop)
        while not flight.leading:
            answer = call.follow(await flight.await_outcome())
            if answer is not _MISSING:
                return answer
            flight = flights.join(call.request.key, loop)
        return await call.alead(flight, live)
    except BaseException as exc:  # the task cancelled while it waited, say
        _record_failure(entry, exc)
        raise


def _record_failure(entry: Any, exc: BaseException) -> None:
    if entry is not None and entry.status is None:  # not recorded yet (a live call records itself)
        entry.failed(exc)


def _plan(entry: Any, kind: str, model: Any, payload: Any, kwargs: dict[str, Any], is_async: bool) -> _Call | None:
    """The call as the cache sees it, or None when it goes to the handler untouched."""
    try:
        mode = settings.call_mode(kwargs)
        if mode == "off" or kwargs.get("mock_response") is not None:
            return None  # a mock answers by itself, and must not be kept as the model's answer
        request = request_of(kind, model, payload, kwargs)
    except ValueError as exc:
        error = BadRequestError(str(exc))
        _record_failure(entry, error)
        raise error from None
    except BaseException as exc:
        _record_failure(entry, exc)
        raise
    if request is None:
        return None  # no provider to key it by: the dispatcher says what is wrong with the model
    return _Call(entry, mode, request, payload, kwargs, is_async)


def _running_loop() -> Any:
    import asyncio

    return asyncio.get_running_loop()


def _count(name: str) -> None:
    with _count_lock:
        backend.counts[name] += 1
    seen = settings.outcomes.get()
    if seen is not None:
        seen.append(name)


class _Call:
    """One call through the cache: its log entry, mode and key, and how to answer it each way."""

    __slots__ = ("entry", "mode", "request", "payload", "kwargs", "is_async")

    def __init__(self, entry: Any, mode: str, request: Request, payload: Any, kwargs: dict, is_async: bool) -> None:
        self.entry = entry
        self.mode = mode
        self.request = request
        self.payload = payload
        self.kwargs = kwargs
        self.is_async = is_async

    # -- answers that make no call -----------------------------------------------------------------
    def lookup(self) -> Any:
        """The kept answer, or _MISSING (CacheMissError in replay mode)."""
        text = backend.current_store().get(self.request.key)
        if text is not None:
            answer = self.answer(text)
            if answer is not _MISSING:
                return answer
        if self.mode == "replay":
            _count("misses")
            raise _miss_error(self.request, self.payload)
        return _MISSING

    def answer(self, text: str) -> Any:
        """A kept answer (JSON text) as this call's result, recorded as a cache hit; _MISSING when
        the text cannot be read (written by another version of llmkit, say): the call is made again."""
        kind = self.request.kind
        try:
            value = StreamRecording(text) if kind == "stream" else decode_response(kind, text)
        except Exception as exc:
            warn_once(("cache-read", type(exc)), f"llmkit's response cache holds an answer it cannot read ({exc})")
            return _MISSING
        _count("hits")
        entry = self.entry
        if entry is not None:
            entry.cache_hit = True
        if kind == "stream":
            provider = self.request.provider
            return replayed(value, provider, self.kwargs, self.payload, entry, self.is_async, settings.replay_pace)
        if entry is not None:
            entry.ok(value)
        return value

    def follow(self, outcome: Any) -> Any:
        """The answer of the identical call this one waited for, or _MISSING when that call failed."""
        if outcome is None:
            return _MISSING
        if isinstance(outcome, str):
            return self.answer(outcome)
        if self.entry is not None:
            self.entry.cache_hit = True  # before the stream takes the entry: it is recorded at its end
        stream = outcome.stream(self.entry)  # a live stream, read as it arrives
        if stream is None:
            if self.entry is not None:
                self.entry.cache_hit = False
            return _MISSING
        _count("hits")
        return stream

    # -- making the call ---------------------------------------------------------------------------
    def lead(self, flight: Flight, live: Callable[[Any], Any]) -> Any:
        """Make the call (this one is first among identical calls in flight) and keep its answer."""
        try:
            early = self._kept_meanwhile(flight)
            if early is not _MISSING:
                return early
            _count("misses")
            result = live(self.entry)
        except BaseException:
            flight.resolve(None)
            raise
        if self.request.kind != "stream":
            return self._keep(flight, result)
        shared = SharedStream(result, lambda s: self._stream_ended(s, flight))
        flight.resolve(shared, finished=False)  # identical calls read it until it ends
        return shared.stream(None)

    async def alead(self, flight: Flight, live: Callable[[Any], Any]) -> Any:
        try:
            early = self._kept_meanwhile(flight)
            if early is not _MISSING:
                return early
            _count("misses")
            result = await live(self.entry)
        except BaseException:
            flight.resolve(None)
            raise
        if self.request.kind != "stream":
            return self._keep(flight, result)
        shared = AsyncSharedStream(result, lambda s: self._stream_ended(s, flight))
        flight.resolve(shared, finished=False)
        return shared.stream(None)

    def _kept_meanwhile(self, flight: Flight) -> Any:
        """In use mode, the answer an identical call kept between our lookup and our taking the lead."""
        if self.mode != "use":
            return _MISSING
        text = backend.current_store().get(self.request.key)
        answer = _MISSING if text is None else self.answer(text)
        if answer is not _MISSING:
            flight.resolve(text)
        return answer

    def _keep(self, flight: Flight, result: Any) -> Any:
        text = _encoded(encode_response, result)
        if text is not None:
            _put(self.request, text)
        flight.resolve(text)
        return result

    def _stream_ended(self, shared: Any, flight: Flight) -> None:
        if shared.state == "done":
            text = _encoded(encode_stream, shared.chunks, shared.offsets, shared.live.converter.usage)
            if text is not None:
                _put(self.request, text)
        flight.finish()


def _encoded(encode: Callable[..., str], *args: Any) -> str | None:
    try:
        return encode(*args)
    except Exception as exc:  # an answer that cannot be written as JSON is answered, not kept
        warn_once(
            ("cache-encode", type(exc)), f"llmkit's response cache cannot keep an answer: {type(exc).__name__}: {exc}"
        )
        return None


def _put(request: Request, text: str) -> None:
    try:
        backend.current_store().put(request.key, request.kind, request.model, text)
    except Exception as exc:  # a full disk or a locked file must not fail a call that succeeded
        warn_once(
            ("cache-put", type(exc)), f"llmkit's response cache could not keep an answer: {type(exc).__name__}: {exc}"
        )


def _miss_error(request: Request, payload: Any) -> CacheMissError:
    return CacheMissError(
        f"the response cache is in replay mode and has no answer for this {request.kind} call to"
        f" {request.model} ({_preview(request.kind, payload)}); record it once with"
        " llmkit.configure_cache('use') (or LLMKIT_CACHE=use), or pass cache=False to call the model",
        llm_provider=request.provider,
        model=request.handler_model,
    )


def _preview(kind: str, payload: Any) -> str:
    """The first words of the prompt, so that the person reading the error knows which call it was."""
    if kind in ("chat", "stream"):
        text = last_user_text(payload)
    elif isinstance(payload, (list, tuple)):
        text = str(payload[0]) if payload else ""
    else:
        text = str(payload)
    words = text.split()
    shown = " ".join(words[:8])
    if len(shown) > 60:
        shown = shown[:60].rstrip()
    return f"prompt {shown!r}" + ("..." if len(shown) < len(" ".join(words)) else "")
