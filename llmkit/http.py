"""A handler for your own HTTP API in a dozen lines: subclass :class:`HTTPLLM`, map the shapes.

The base class owns the HTTP side (pooled connections, httpx for sync calls and aiohttp for async
ones; timeouts, status codes mapped to llmkit's errors with the server's message, Retry-After,
streamed bodies parsed as bytes arrive); your class only says what to send and how to read the
answer::

    class TorchServe(HTTPLLM):
        api_base = "http://127.0.0.1:8080"
        stream_format = "jsonl"          # or "sse"

        def build_request(self, model, messages, params, stream):
            body = {"prompt": last_user_text(messages), "stream": stream, **params}
            return Request(f"/predictions/{model}", json=body)

        def parse_response(self, data, model):
            return data["generated_text"]   # a str, a dict in the chat.completion shape, or a ModelResponse

        def parse_chunk(self, data, model):
            return data.get("token")         # a str, a GenericStreamingChunk dict, or None to skip

Define ``build_embedding_request`` / ``parse_embedding_response`` and ``build_image_request`` /
``parse_image_response`` the same way to serve embeddings and images. A method whose hooks a class
does not define stays unimplemented, so llmkit (and ``llmkit.check``) see exactly what it supports.
See docs/custom-http.md.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel

from llmkit.errors import (
    APIConnectionError,
    APIError,
    BadGatewayError,
    BadRequestError,
    CustomLLMError,
    error_class_for_status,
)
from llmkit.messages import last_user_text  # re-exported: handlers for single-prompt APIs use it
from llmkit.providers.base import CustomLLM
from llmkit.types.utils import (
    Choices,
    EmbeddingResponse,
    ImageResponse,
    Message,
    ModelResponse,
    ModelResponseStream,
)

#: What a stream yields: the parse hook's dicts (GenericStreamingChunk's shape, or OpenAI's chunk),
#: or a ModelResponseStream from a built-in fast path. The dispatcher takes each.
Chunk = dict[str, Any] | ModelResponseStream
Response = TypeVar("Response", bound=BaseModel)

__all__ = ["HTTPLLM", "Request", "last_user_text"]


@dataclass
class Request:
    """What to send: a path (joined to the base URL), a JSON body, and any extra headers or query."""

    path: str
    json: Any = None
    method: str = "POST"
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, Any] | None = None


# The hooks behind each group of handler methods: a subclass without the hooks does not serve them.
_HOOKS = {
    ("build_request", "parse_response"): ("completion", "acompletion"),
    ("build_request", "parse_chunk"): ("streaming", "astreaming"),
    ("build_embedding_request", "parse_embedding_response"): ("embedding", "aembedding"),
    ("build_image_request", "parse_image_response"): ("image_generation", "aimage_generation"),
}


class HTTPLLM(CustomLLM):
    """Base class for handlers of JSON-over-HTTP APIs. Override the hooks for what your API does."""

    #: Base URL used when neither the call (``api_base=``) nor the constructor gives one.
    api_base: str | None = None
    #: Environment variables read, in order, for the base URL and the key when the call has none.
    api_base_env: tuple[str, ...] = ()
    api_key_env: tuple[str, ...] = ()
    #: How a streamed body is framed: "sse" (server-sent events) or "jsonl" (one JSON per line).
    stream_format: str = "sse"
    #: An SSE data payload that ends the stream (None if the API has none and just closes the body).
    done_marker: str | None = "[DONE]"
    #: Headers sent with every request.
    headers: Mapping[str, str] = {}
    _api_base: str | None = None
    _api_key: str | None = None

    def __init__(self, api_base: str | None = None, api_key: str | None = None, headers: dict | None = None) -> None:
        self._api_base = api_base
        self._api_key = api_key
        if headers:
            self.headers = {**self.headers, **headers}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for hooks, methods in _HOOKS.items():
            has_hooks = all(getattr(cls, hook) is not getattr(HTTPLLM, hook) for hook in hooks)
            for method in methods:
                if getattr(cls, method) not in (getattr(HTTPLLM, method), getattr(CustomLLM, method)):
                    continue  # a method written by hand wins over the hooks
                # Without its hooks a method is CustomLLM's "not implemented" stub, as llmkit expects.
                setattr(cls, method, getattr(HTTPLLM if has_hooks else CustomLLM, method))

    # -- the hooks ------------------------------------------------------------------------------
    def build_request(self, model: str, messages: list, params: dict, stream: bool) -> Request:
        """The chat request. ``params`` are the call's optional_params (``stream`` taken out)."""
        raise NotImplementedError

    def parse_response(self, data: Any, model: str) -> ModelResponse | dict | str:
        """A whole chat answer from the decoded JSON body."""
        raise NotImplementedError

    def parse_chunk(self, data: Any, model: str) -> dict | str | None:
        """One stream chunk from one decoded event (a str, a GenericStreamingChunk dict, None to skip)."""
        raise NotImplementedError

    def build_embedding_request(self, model: str, input: Any, params: dict) -> Request:
        raise NotImplementedError

    def parse_embedding_response(self, data: Any, model: str) -> EmbeddingResponse | dict:
        raise NotImplementedError

    def build_image_request(self, model: str, prompt: str, params: dict) -> Request:
        raise NotImplementedError

    def parse_image_response(self, data: Any, model: str) -> ImageResponse | dict:
        raise NotImplementedError

    def auth_headers(self, api_key: str | None) -> dict[str, str]:
        """Headers that carry the key; a bearer token unless overridden."""
        return {"Authorization": f"Bearer {api_key}"} if api_key else {}

    def stream_error(self, event: str, data: Any) -> APIError | None:
        """The error a stream event reports, if it is one: ``{"error": {...}}`` or an ``error`` event."""
        if not isinstance(data, dict):
            return None
        body = data.get("error")
        if body is None and event != "error" and data.get("object") != "error":
            return None
        from llmkit._http_errors import message_from_body

        details = body if isinstance(body, dict) else data
        code = details.get("code", details.get("status_code"))
        status = code if isinstance(code, int) and 400 <= code < 600 else 500
        message = message_from_body(data) or json.dumps(data)[:300]
        return error_class_for_status(status)(f"the server reported an error mid-stream: {message}", status_code=status)

    # -- chat -----------------------------------------------------------------------------------
    def completion(self, model: str, messages: list, **kwargs: Any) -> ModelResponse:
        call = _Call(self, model, kwargs)
        request = self.build_request(model, messages, call.params, False)
        return self._chat_response(_transport().read_json(call.send(request)), model)

    async def acompletion(self, model: str, messages: list, **kwargs: Any) -> ModelResponse:
        call = _Call(self, model, kwargs)
        request = self.build_request(model, messages, call.params, False)
        return self._chat_response(await call.json_async(request), model)

    # Chunks wider than GenericStreamingChunk (see Chunk), as the dispatcher takes them.
    def streaming(self, model: str, messages: list, **kwargs: Any) -> Iterator[Chunk]:  # type: ignore[override]
        call = _Call(self, model, kwargs)
        request = self.build_request(model, messages, call.params, True)
        events = _transport().EventStream(call.send(request, stream=True), self.stream_format)
        return _ChunkStream(_ChunkReader(self, model), events)

    # And a coroutine returning the stream, not an async generator: one await fewer per chunk.
    async def astreaming(  # type: ignore[override]
        self, model: str, messages: list, **kwargs: Any
    ) -> AsyncIterator[Chunk]:
        call = _Call(self, model, kwargs)
        request = self.build_request(model, messages, call.params, True)
        events = await call.stream_async(request, self.stream_format)
        return _AsyncChunkStream(_ChunkReader(self, model), events)

    # -- embeddings and images ----------------------------------------------------------------------
    def embedding(self, model: str, input: Any, **kwargs: Any) -> EmbeddingResponse:
        call = _Call(self, model, kwargs)
        data = _transport().read_json(call.send(self.build_embedding_request(model, input, call.params)))
        return _validated(EmbeddingResponse, _parse(self.parse_embedding_response, data, model))

    async def aembedding(self, model: str, input: Any, **kwargs: Any) -> EmbeddingResponse:
        call = _Call(self, model, kwargs)
        data = await call.json_async(self.build_embedding_request(model, input, call.params))
        return _validated(EmbeddingResponse, _parse(self.parse_embedding_response, data, model))

    def image_generation(self, model: str, prompt: str, **kwargs: Any) -> ImageResponse:
        call = _Call(self, model, kwargs)
        data = _transport().read_json(call.send(self.build_image_request(model, prompt, call.params)))
        return _validated(ImageResponse, _parse(self.parse_image_response, data, model))

    async def aimage_generation(self, model: str, prompt: str, **kwargs: Any) -> ImageResponse:
        call = _Call(self, model, kwargs)
        data = await call.json_async(self.build_image_request(model, prompt, call.params))
        return _validated(ImageResponse, _parse(self.parse_image_response, data, model))

    # -- shared pieces --------------------------------------------------------------------------
    def _chat_response(self, data: Any, model: str) -> ModelResponse:
        parsed = _parse(self.parse_response, data, model)
        if isinstance(parsed, str):
            return ModelResponse(model=model, choices=[Choices(message=Message(content=parsed))])
        return _validated(ModelResponse, parsed)

    def _fast_chunk_reader(self) -> Callable[[str, str], ModelResponseStream | None] | None:
        """A fast path a built-in subclass may give: ``(event, data) -> chunk`` (None for an event it
        leaves to the general path), or None for the general path for every event."""
        return None

    def resolve(self, api_base: str | None, api_key: str | None) -> tuple[str, str | None]:
        """``(base URL, key)`` for a call: the call's, else the constructor's, else the environment's."""
        base = api_base or self._api_base or _first_env(self.api_base_env) or type(self).api_base
        if not base:
            env = " or ".join(self.api_base_env)
            raise BadRequestError(
                f"{type(self).__name__} needs a base URL: pass api_base='http://host:port' to the call,"
                f" to {type(self).__name__}(api_base=...), or set {type(self).__name__}.api_base"
                + (f" or the environment variable {env}" if env else "")
            )
        return base, api_key or self._api_key or _first_env(self.api_key_env)


def _first_env(names: tuple[str, ...]) -> str | None:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


def _transport() -> Any:
    from llmkit import _transport  # imports httpx: only when an HTTP handler makes a sync call

    return _transport


def _aiotransport() -> Any:
    from llmkit import _aiotransport  # imports aiohttp: only when an HTTP handler makes an async call

    return _aiotransport


def _parse(hook: Any, data: Any, model: str) -> Any:
    """Run a parse hook; a hook that fails on the server's answer says so, with the answer."""
    try:
        return hook(data, model)
    except (APIError, CustomLLMError):
        raise
    except Exception as exc:
        name = getattr(hook, "__qualname__", "the parse hook")
        raise BadGatewayError(
            f"{name}() failed on the server's answer ({type(exc).__name__}: {exc}); the answer was"
            f" {json.dumps(data)[:300]}; does the hook match what the server sends?"
        ) from exc


def _validated(cls: type[Response], value: Any) -> Response:
    return value if isinstance(value, cls) else cls.model_validate(value)


class _Call:
    """One call's endpoint, headers, timeout and parameters, from the handler keyword arguments."""

    __slots__ = ("base", "key", "key_env", "headers", "timeout", "params")

    def __init__(self, handler: HTTPLLM, model: str, kwargs: dict[str, Any]) -> None:
        self.base, self.key = handler.resolve(kwargs.get("api_base"), kwargs.get("api_key"))
        self.headers = {**handler.headers, **handler.auth_headers(self.key), **(kwargs.get("headers") or {})}
        self.key_env = handler.api_key_env
        self.timeout = kwargs.get("timeout")
        params = dict(kwargs.get("optional_params") or {})
        params.pop("stream", None)  # the hooks get stream as an argument of its own
        self.params = params

    def _headers(self, request: Request) -> dict[str, str]:
        return {**self.headers, **request.headers} if request.headers else self.headers

    def send(self, request: Request, stream: bool = False) -> Any:
        return _transport().send(
            self.base, self.key, request, self._headers(request), self.timeout, stream, self.key_env
        )

    async def json_async(self, request: Request) -> Any:
        return await _aiotransport().request_json(
            self.base, self.key, request, self._headers(request), self.timeout, self.key_env
        )

    async def stream_async(self, request: Request, stream_format: str) -> Any:
        return await _aiotransport().open_stream(
            self.base, self.key, request, self._headers(request), self.timeout, stream_format, self.key_env
        )


class _ChunkReader:
    """Pure per-stream logic shared by the sync and async streams: events in, chunks out."""

    __slots__ = ("handler", "model", "sse", "direct", "done", "finished", "events")

    def __init__(self, handler: HTTPLLM, model: str) -> None:
        self.handler = handler
        self.model = model
        self.sse = handler.stream_format == "sse"
        self.direct = handler._fast_chunk_reader()
        self.done = False
        self.finished = False
        self.events = 0

    def read(self, event: str, data: str) -> Chunk | None:
        """The chunk for one event, None to skip it; sets ``done`` at the end marker."""
        self.events += 1
        if self.sse and data == self.handler.done_marker:
            self.done = True
            return None
        if self.direct is not None:
            direct = self.direct(event, data)
            if direct is not None:
                for choice in direct.choices:
                    if choice.finish_reason:
                        self.finished = True
                return direct
        try:
            decoded = json.loads(data)
        except ValueError:
            raise BadGatewayError(f"the server sent a stream event that is not JSON: {data[:200]!r}") from None
        error = self.handler.stream_error(event, decoded)
        if error is not None:
            raise error
        parsed = _parse(self.handler.parse_chunk, decoded, self.model)
        if parsed is None:
            return None
        if isinstance(parsed, str):
            return {"text": parsed, "is_finished": False, "finish_reason": None, "usage": None}
        chunk: dict[str, Any] = parsed  # parse_chunk's contract: a chunk dict, its text, or None
        if chunk.get("is_finished") or any(c.get("finish_reason") for c in chunk.get("choices") or ()):
            self.finished = True
        return chunk

    def end(self, content_type: str = "") -> dict | None:
        """At the end of the body: the closing chunk if none came, or an error for a cut-off stream."""
        if not self.events:
            raise BadGatewayError(
                f"the server sent no stream events (content-type {content_type or 'unknown'!r}, expected"
                f" {self.handler.stream_format}); does it support streaming for this request?"
            )
        if self.sse and self.handler.done_marker and not self.done and not self.finished:
            raise APIConnectionError(
                f"the server closed the stream before it finished (no {self.handler.done_marker}"
                " and no finish_reason); the answer is incomplete"
            )
        if self.finished:
            return None
        self.finished = True
        return {"text": "", "is_finished": True, "finish_reason": "stop", "usage": None}


class _ChunkStream:
    """What ``streaming()`` returns: chunks as events arrive. ``close()`` frees the connection."""

    def __init__(self, reader: _ChunkReader, events: Any) -> None:
        self._reader = reader
        self._events = events
        self._ended = False

    def __iter__(self) -> _ChunkStream:
        return self

    def __next__(self) -> Chunk:
        reader = self._reader
        while not self._ended:
            if reader.done:
                self._events.close()
                break
            try:
                event, data = next(self._events)
                chunk = reader.read(event, data)
            except StopIteration:
                break
            except BaseException:
                self._events.close()
                raise
            if chunk is not None:
                return chunk
        if self._ended:
            raise StopIteration
        self._ended = True
        last = reader.end(self._events.content_type)
        if last is None:
            raise StopIteration
        return last

    def close(self) -> None:
        self._ended = True
        self._events.close()


class _AsyncChunkStream:
    """The async twin of :class:`_ChunkStream`."""

    def __init__(self, reader: _ChunkReader, events: Any) -> None:
        self._reader = reader
        self._events = events
        self._ended = False

    def __aiter__(self) -> _AsyncChunkStream:
        return self

    async def __anext__(self) -> Chunk:
        reader = self._reader
        while not self._ended:
            if reader.done:
                await self._events.aclose()
                break
            try:
                event, data = await self._events.__anext__()
                chunk = reader.read(event, data)
            except StopAsyncIteration:
                break
            except BaseException:
                await self._events.aclose()
                raise
            if chunk is not None:
                return chunk
        if self._ended:
            raise StopAsyncIteration
        self._ended = True
        last = reader.end(self._events.content_type)
        if last is None:
            raise StopAsyncIteration
        return last

    async def aclose(self) -> None:
        self._ended = True
        await self._events.aclose()
