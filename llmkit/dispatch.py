"""The dispatcher: every call, from every surface, goes through these functions.

``completion`` / ``acompletion`` (chat, optionally streamed), ``image_generation`` /
``aimage_generation`` and ``embedding`` / ``aembedding`` each resolve ``provider/model`` to a handler,
split the keyword arguments into control parameters and ``optional_params``, call the handler the way
LiteLLM does, and translate its errors. The sync and async paths mirror each other line for line over
the shared, pure preparation in :class:`_Call`; they differ only where one awaits.

A handler that implements only the sync method also serves async calls (in a worker thread), and one
that implements only the async method also serves sync calls (on llmkit's bridge loop), so sync calls
work inside a running event loop too.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from functools import partial
from typing import Any, Generic, Literal, TypeVar, cast, overload

from pydantic import BaseModel

from llmkit import cache, mock, retries
from llmkit.arguments import checked_limits, checked_messages
from llmkit.calllog.recorder import Entry, begin
from llmkit.errors import BadRequestError, map_exception, timeout_error
from llmkit.normalize import normalized
from llmkit.params import custom_prompt_dict, merged_headers, split_model, split_params
from llmkit.providers.invoke import (
    LoggingObject,
    call_handler,
    implements,
    print_verbose,
    require_methods,
)
from llmkit.providers.registry import get_handler
from llmkit.streaming import (
    ChunkConverter,
    CustomStreamWrapper,
    replay,
    response_as_chunks,
)
from llmkit.tokens import encoding
from llmkit.types.utils import EmbeddingResponse, ImageResponse, ModelResponse

__all__ = ["acompletion", "aembedding", "aimage_generation", "completion", "embedding", "image_generation"]

DEFAULT_TIMEOUT = 600.0

Response = TypeVar("Response", bound=BaseModel)
T = TypeVar("T")

# llmkit.aio and asyncio are imported in the functions that use them: asyncio takes ~30 ms to import,
# async callers have loaded it already, and only handlers of the other colour need aio's bridge.


class _Call(Generic[Response]):
    """One prepared call: its handler, the keyword arguments for it, and the control settings."""

    __slots__ = (
        "handler",
        "provider",
        "model",
        "kwargs",
        "sync_method",
        "async_method",
        "result_type",
        "timeout",
        "num_retries",
    )

    def __init__(
        self,
        kind: tuple[str, str, type[Response], str],
        model: str,
        control: dict[str, Any],
        optional_params: dict[str, Any],
        methods: tuple[str, ...] | None = None,
    ) -> None:
        handler_model, provider = split_model(model, control.get("custom_llm_provider"))
        if provider is None:
            raise BadRequestError(
                f"model {model!r} names no provider; write 'provider/{model}', where provider is one of"
                " the registered providers (see llmkit.provider_names()), e.g. 'demo/echo'",
                model=model,
            )
        self.handler = _handler(provider, model)
        self.provider = provider
        self.model = handler_model
        self.sync_method, self.async_method, self.result_type, what = kind
        require_methods(self.handler, methods or kind[:2], what, handler_model, provider)
        timeout, self.num_retries = checked_limits(control)
        self.timeout = float(timeout) if isinstance(timeout, (int, float)) else None
        # The arguments every kind of handler method gets; each kind adds its own below.
        self.kwargs: dict[str, Any] = {
            "model": handler_model,
            "api_key": control.get("api_key"),
            "api_base": control.get("api_base") or control.get("base_url"),
            "optional_params": optional_params,
            "logging_obj": LoggingObject(),
            "timeout": DEFAULT_TIMEOUT if timeout is None else timeout,
        }

    @property
    def threads(self) -> tuple[str, str]:
        """The handler pool this call's blocking work runs in: one per model, so one that hangs
        cannot hold the threads every other model needs."""
        return (self.provider, self.model)

    def litellm_params(self, control: dict[str, Any]) -> dict[str, Any]:
        return {
            "custom_llm_provider": self.provider,
            "api_key": self.kwargs["api_key"],
            "api_base": self.kwargs["api_base"],
            "api_version": control.get("api_version"),  # Azure's, for handlers that need it (litellm/azure/...)
            "metadata": control.get("metadata") or {},
        }

    # -- the two mirrored paths ---------------------------------------------------------------
    def run_sync(self) -> Response:
        return self._normalize(self.retry_sync(self._invoke_sync))

    async def run_async(self) -> Response:
        return self._normalize(await self.retry_async(self._invoke_async))

    def retry_sync(self, operation: Callable[[], T]) -> T:
        """``operation()``, retried on retryable failures; errors leave as llmkit exceptions."""
        attempt = 0
        while True:
            try:
                return operation()
            except Exception as exc:
                error = map_exception(exc, self.provider, self.model)
                delay = retries.delay_before_retry(error, attempt, self.num_retries)
                if delay is None:
                    if error is exc:
                        raise
                    raise error from exc
                time.sleep(delay)
                attempt += 1

    async def retry_async(self, operation: Callable[[], Awaitable[T]]) -> T:
        attempt = 0
        while True:
            try:
                return await operation()
            except Exception as exc:
                error = map_exception(exc, self.provider, self.model)
                delay = retries.delay_before_retry(error, attempt, self.num_retries)
                if delay is None:
                    if error is exc:
                        raise
                    raise error from exc
                import asyncio

                await asyncio.sleep(delay)
                attempt += 1

    def _invoke_sync(self) -> Any:
        handler = self.handler
        if implements(handler, self.sync_method) or not implements(handler, self.async_method):
            result = self._call_blocking(getattr(handler, self.sync_method))
        else:
            from llmkit import aio

            result = aio.run_sync(self._with_timeout(call_handler(getattr(handler, self.async_method), self.kwargs)))
        if inspect.isawaitable(result):
            from llmkit import aio

            result = aio.run_sync(self._with_timeout(result))
        return result

    async def _invoke_async(self) -> Any:
        handler = self.handler
        if implements(handler, self.async_method) or not implements(handler, self.sync_method):
            result = call_handler(getattr(handler, self.async_method), self.kwargs)
        else:
            from llmkit import aio

            result = aio.run_in_thread(call_handler, getattr(handler, self.sync_method), self.kwargs, pool=self.threads)
        if inspect.isawaitable(result):
            result = await self._with_timeout(result)
        return result

    # -- shared pieces -------------------------------------------------------------------------
    def _call_blocking(self, method: Callable[..., Any]) -> Any:
        if self.timeout is None:
            return call_handler(method, self.kwargs)
        # A thread cannot be stopped, so a sync handler past its timeout keeps running in the
        # background; the caller gets Timeout on time all the same.
        from concurrent.futures import (
            TimeoutError as FutureTimeout,  # not builtin TimeoutError on 3.10
        )

        from llmkit import aio

        future = aio.handler_pool(self.threads).submit(call_handler, method, self.kwargs)
        try:
            return future.result(timeout=self.timeout)
        except FutureTimeout:
            raise timeout_error(self.timeout, self.provider, self.model) from None

    async def _with_timeout(self, awaitable: Awaitable[T]) -> T:
        if self.timeout is None:
            return await awaitable
        import asyncio

        from llmkit import aio

        try:
            return await aio.wait_for(awaitable, self.timeout)
        except asyncio.TimeoutError:
            raise timeout_error(self.timeout, self.provider, self.model) from None

    def _normalize(self, result: Any) -> Response:
        # Outside the retries: a handler that returns the wrong shape will return it again.
        return normalized(result, self.result_type, self, self.kwargs.get("messages", self.kwargs.get("input")))


_CHAT = ("completion", "acompletion", ModelResponse, "chat completions")
_IMAGE = ("image_generation", "aimage_generation", ImageResponse, "image generation")
_EMBEDDING = ("embedding", "aembedding", EmbeddingResponse, "embeddings")
_STREAM_METHODS = ("completion", "acompletion", "streaming", "astreaming")


def _handler(provider: str, model: str) -> Any:
    try:
        return get_handler(provider)
    except BadRequestError as exc:  # say which model string named the unknown provider
        raise BadRequestError(f"model {model!r}: {exc.message}", llm_provider=provider) from None


def _chat_call(model: str, messages: Any, stream: bool, kwargs: dict[str, Any], is_async: bool) -> _Call[ModelResponse]:
    control, optional_params = split_params(kwargs)
    if stream:
        optional_params["stream"] = True
    call = _Call(_CHAT, model, control, optional_params, _STREAM_METHODS if stream else None)
    call.kwargs.update(
        messages=messages,
        model_response=ModelResponse(),
        print_verbose=print_verbose,
        encoding=encoding,
        acompletion=is_async,
        litellm_params=call.litellm_params(control),
        logger_fn=control.get("logger_fn"),
        headers=merged_headers(control) if control else {},
        custom_prompt_dict=custom_prompt_dict(call.model, control) if control else {},
        client=control.get("client"),
    )
    return call


def _include_usage(kwargs: dict[str, Any]) -> bool:
    options = kwargs.get("stream_options")
    return bool(isinstance(options, dict) and options.get("include_usage"))


# -- chat ----------------------------------------------------------------------------------------
_Chat = ModelResponse | CustomStreamWrapper  # an answer, or with stream=True its chunks


@overload
def completion(
    model: str, messages: list | None = None, *, stream: Literal[False] = False, **kwargs: Any
) -> ModelResponse: ...
@overload
def completion(
    model: str, messages: list | None = None, *, stream: Literal[True], **kwargs: Any
) -> CustomStreamWrapper: ...
@overload
def completion(
    model: str, messages: list | None = None, *, stream: bool, **kwargs: Any
) -> ModelResponse | CustomStreamWrapper: ...
def completion(
    model: str, messages: list | None = None, *, stream: bool = False, **kwargs: Any
) -> ModelResponse | CustomStreamWrapper:
    """Chat completion through the provider named by ``model`` (``"provider/model"``).

    Keyword arguments other than llmkit's control parameters (api_key, api_base, timeout,
    num_retries, mock_response, metadata, headers, ...) reach the handler in ``optional_params``.
    With ``stream=True`` the result is an iterator of ``chat.completion.chunk`` objects.
    Every call is recorded in ``llmkit.calls``; a stream when it ends.
    """
    messages = [] if messages is None else messages
    if cache.settings.on or "cache" in kwargs:  # the response cache answers it, or keeps its answer
        live = partial(_live_completion, model, messages, stream, kwargs)  # no closure: free when the cache is off
        return cache.serve("stream" if stream else "chat", model, messages, kwargs, live)
    entry = begin("stream" if stream else "chat", model, messages, kwargs)
    return _recorded(entry, stream, _completion, model, messages, stream, kwargs, entry)


def _live_completion(model: str, messages: list, stream: bool, kwargs: dict[str, Any], entry: Entry | None) -> _Chat:
    return _recorded(entry, stream, _completion, model, messages, stream, kwargs, entry)


def _completion(model: str, messages: list, stream: bool, kwargs: dict[str, Any], entry: Entry | None) -> _Chat:
    messages = checked_messages(messages)
    mocked = kwargs.get("mock_response")
    if mocked is not None:
        return _mocked(model, messages, stream, kwargs, mocked, is_async=False, entry=entry)
    call = _chat_call(model, messages, stream, kwargs, is_async=False)
    if not stream:
        return call.run_sync()
    converter = ChunkConverter(call.model, include_usage=_include_usage(kwargs), messages=messages)
    return CustomStreamWrapper(
        call.retry_sync(lambda: _open_stream_sync(call)),
        converter,
        llm_provider=call.provider,
        reopen=lambda: _open_stream_sync(call),
        num_retries=call.num_retries,
        chunk_timeout=call.timeout,
        entry=entry,
    )


@overload
async def acompletion(
    model: str, messages: list | None = None, *, stream: Literal[False] = False, **kwargs: Any
) -> ModelResponse: ...
@overload
async def acompletion(
    model: str, messages: list | None = None, *, stream: Literal[True], **kwargs: Any
) -> CustomStreamWrapper: ...
@overload
async def acompletion(
    model: str, messages: list | None = None, *, stream: bool, **kwargs: Any
) -> ModelResponse | CustomStreamWrapper: ...
async def acompletion(
    model: str, messages: list | None = None, *, stream: bool = False, **kwargs: Any
) -> ModelResponse | CustomStreamWrapper:
    """The async twin of :func:`completion`; with ``stream=True`` iterate the result with ``async for``."""
    messages = [] if messages is None else messages
    if cache.settings.on or "cache" in kwargs:
        live = partial(_live_acompletion, model, messages, stream, kwargs)
        return await cache.aserve("stream" if stream else "chat", model, messages, kwargs, live)
    entry = begin("stream" if stream else "chat", model, messages, kwargs)
    return await _arecorded(entry, stream, _acompletion, model, messages, stream, kwargs, entry)


async def _live_acompletion(
    model: str, messages: list, stream: bool, kwargs: dict[str, Any], entry: Entry | None
) -> _Chat:
    return await _arecorded(entry, stream, _acompletion, model, messages, stream, kwargs, entry)


async def _acompletion(model: str, messages: list, stream: bool, kwargs: dict[str, Any], entry: Entry | None) -> _Chat:
    messages = checked_messages(messages)
    mocked = kwargs.get("mock_response")
    if mocked is not None:
        return _mocked(model, messages, stream, kwargs, mocked, is_async=True, entry=entry)
    call = _chat_call(model, messages, stream, kwargs, is_async=True)
    if not stream:
        return await call.run_async()
    converter = ChunkConverter(call.model, include_usage=_include_usage(kwargs), messages=messages)
    return CustomStreamWrapper(
        await call.retry_async(lambda: _open_stream_async(call)),
        converter,
        llm_provider=call.provider,
        reopen=lambda: _open_stream_async(call),
        num_retries=call.num_retries,
        chunk_timeout=call.timeout,
        entry=entry,
    )


def _open_stream_sync(call: _Call[ModelResponse]) -> Iterator[Any]:
    handler = call.handler
    if implements(handler, "streaming") or not implements(handler, "astreaming"):
        if implements(handler, "streaming") or not _can_chat(handler):
            return _sync_chunks(call_handler(handler.streaming, call.kwargs))
        return iter(response_as_chunks(call.run_sync()))  # no streaming method: one big chunk
    return _sync_chunks(call_handler(handler.astreaming, call.kwargs))


async def _open_stream_async(call: _Call[ModelResponse]) -> AsyncIterator[Any]:
    handler = call.handler
    if implements(handler, "astreaming") or not implements(handler, "streaming"):
        if implements(handler, "astreaming") or not _can_chat(handler):
            return await _async_chunks(call_handler(handler.astreaming, call.kwargs))
        return replay(response_as_chunks(await call.run_async()))
    from llmkit import aio

    result = await aio.run_in_thread(call_handler, handler.streaming, call.kwargs, pool=call.threads)
    return await _async_chunks(result, threads=call.threads)


def _can_chat(handler: Any) -> bool:
    return implements(handler, "completion") or implements(handler, "acompletion")


def _sync_chunks(result: Any) -> Iterator[Any]:
    """An iterator over what ``streaming()`` returned: an iterator, an async one, or a single chunk."""
    if isinstance(result, dict):  # the seed guide's streaming() returns one chunk, not an iterator
        return iter((result,))
    if hasattr(result, "__next__"):  # duck-typed, as Python's next() is: no Iterator ABC needed
        return cast("Iterator[Any]", result)
    if hasattr(result, "__aiter__"):
        from llmkit import aio

        return aio.iterate_sync(result)
    if inspect.isawaitable(result):
        from llmkit import aio

        return _sync_chunks(aio.run_sync(result))
    if isinstance(result, ModelResponse):
        return iter(response_as_chunks(result))
    if hasattr(result, "__iter__") and not isinstance(result, (str, bytes)):
        return iter(result)
    raise TypeError(f"streaming() returned {type(result).__name__}; return an iterator of GenericStreamingChunk dicts")


async def _async_chunks(result: Any, threads: Any = None) -> AsyncIterator[Any]:
    """An async iterator over what ``astreaming()`` (or a sync ``streaming()``, drained in the handler
    pool ``threads``) returned."""
    if isinstance(result, dict):
        return replay((result,))
    if hasattr(result, "__anext__"):  # duck-typed, as async for is
        return cast("AsyncIterator[Any]", result)
    if hasattr(result, "__aiter__"):
        return cast("AsyncIterator[Any]", result.__aiter__())
    if inspect.isawaitable(result):
        return await _async_chunks(await result, threads)
    if isinstance(result, ModelResponse):
        return replay(response_as_chunks(result))
    if hasattr(result, "__iter__") and not isinstance(result, (str, bytes)):
        # A sync generator may block between chunks: drain it in a worker thread.
        if threads is None:
            return replay(result)
        from llmkit import aio

        return aio.aiter_in_thread(iter(result), pool=threads)
    raise TypeError(f"astreaming() returned {type(result).__name__}; yield GenericStreamingChunk dicts from it")


def _mocked(
    model: str, messages: Any, stream: bool, kwargs: dict[str, Any], value: Any, is_async: bool, entry: Entry | None
) -> _Chat:
    handler_model, provider = split_model(model, kwargs.get("custom_llm_provider"))
    checked_limits(kwargs)  # a mock stands in for a call: the same arguments are wrong
    if not stream:
        return mock.mock_model_response(value, provider=provider, model=handler_model)
    chunks = mock.mock_chunks(value, provider=provider, model=handler_model)
    converter = ChunkConverter(handler_model, include_usage=_include_usage(kwargs), messages=messages)
    source = replay(chunks) if is_async else iter(chunks)
    return CustomStreamWrapper(source, converter, llm_provider=provider, entry=entry)


# -- images and embeddings ---------------------------------------------------------------------------
def _image_call(prompt: str, model: str | None, kwargs: dict[str, Any]) -> _Call[ImageResponse]:
    if model is None:
        raise BadRequestError("image_generation needs model='provider/model', e.g. model='demo/image'")
    control, optional_params = split_params(kwargs)
    call = _Call(_IMAGE, model, control, optional_params)
    call.kwargs.update(prompt=prompt, model_response=ImageResponse(), client=control.get("client"))
    return call


def image_generation(prompt: str, model: str | None = None, **kwargs: Any) -> ImageResponse:
    """Generate images for ``prompt`` with the provider named by ``model``."""
    run = lambda: _image_call(prompt, model, kwargs).run_sync()  # noqa: E731
    if cache.settings.on or "cache" in kwargs:
        return cache.serve("image", model, prompt, kwargs, lambda entry: _recorded(entry, False, run))
    return _recorded(begin("image", model, prompt, kwargs), False, run)


async def aimage_generation(prompt: str, model: str | None = None, **kwargs: Any) -> ImageResponse:
    """The async twin of :func:`image_generation`."""
    run = lambda: _image_call(prompt, model, kwargs).run_async()  # noqa: E731
    if cache.settings.on or "cache" in kwargs:
        return await cache.aserve("image", model, prompt, kwargs, lambda entry: _arecorded(entry, False, run))
    return await _arecorded(begin("image", model, prompt, kwargs), False, run)


def _embedding_call(model: str, input: Any, kwargs: dict[str, Any]) -> _Call[EmbeddingResponse]:
    control, optional_params = split_params(kwargs)
    call = _Call(_EMBEDDING, model, control, optional_params)
    call.kwargs.update(
        input=input,
        model_response=EmbeddingResponse(),
        print_verbose=print_verbose,
        litellm_params=call.litellm_params(control),
    )
    return call


def embedding(model: str, input: Any = None, **kwargs: Any) -> EmbeddingResponse:
    """Embed ``input`` (a string or a list of strings) with the provider named by ``model``."""
    input = [] if input is None else input
    run = lambda: _embedding_call(model, input, kwargs).run_sync()  # noqa: E731
    if cache.settings.on or "cache" in kwargs:
        return cache.serve("embedding", model, input, kwargs, lambda entry: _recorded(entry, False, run))
    return _recorded(begin("embedding", model, input, kwargs), False, run)


async def aembedding(model: str, input: Any = None, **kwargs: Any) -> EmbeddingResponse:
    """The async twin of :func:`embedding`."""
    input = [] if input is None else input
    run = lambda: _embedding_call(model, input, kwargs).run_async()  # noqa: E731
    if cache.settings.on or "cache" in kwargs:
        return await cache.aserve("embedding", model, input, kwargs, lambda entry: _arecorded(entry, False, run))
    return await _arecorded(begin("embedding", model, input, kwargs), False, run)


# -- recording ---------------------------------------------------------------------------------------
def _recorded(entry: Entry | None, stream: bool, run: Callable[..., T], *args: Any) -> T:
    """``run(*args)`` with its outcome recorded in the call log (``entry`` is None when nothing records).

    A stream is recorded by its CustomStreamWrapper when it ends; here only if it fails to open.
    """
    if entry is None:
        return run(*args)
    try:
        result = run(*args)
    except BaseException as exc:  # KeyboardInterrupt included: recorded as cancelled
        entry.failed(exc)
        raise
    if not stream:
        entry.ok(result)
    return result


async def _arecorded(entry: Entry | None, stream: bool, run: Callable[..., Awaitable[T]], *args: Any) -> T:
    if entry is None:
        return await run(*args)
    try:
        result = await run(*args)
    except BaseException as exc:  # CancelledError included: recorded as cancelled
        entry.failed(exc)
        raise
    if not stream:
        entry.ok(result)
    return result
