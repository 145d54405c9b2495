"""Server-sent events for streamed chat: ``data: {chunk}`` events, then ``data: [DONE]``.

Each chunk is written as soon as the handler yields it, and not kept. If the client disconnects,
:class:`~llmkit.proxy.inflight.InFlight` cancels the request, and the stream is closed, which stops
the handler's generator (and its upstream call). An error after
the first bytes went out cannot change the status code any more, so it becomes one SSE event with
OpenAI's error body, which the OpenAI clients raise as an APIError, and the stream ends.
"""

from __future__ import annotations

from typing import Any

from llmkit.proxy.errors import stream_error_event
from llmkit.proxy.notices import handler_failed
from llmkit.proxy.router import RoutedStream

__all__ = ["EventStream"]

_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),  # tell reverse proxies not to buffer the stream
]


class EventStream:
    """An ASGI response that streams ``chunks`` (pydantic models) as server-sent events."""

    def __init__(self, chunks: RoutedStream) -> None:
        self.chunks = chunks

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await self._stream(send)
        finally:
            await self.chunks.aclose()

    async def _stream(self, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
        try:
            async for chunk in self.chunks:
                data = type(chunk).__pydantic_serializer__.to_json(chunk)
                await send({"type": "http.response.body", "body": b"data: " + data + b"\n\n", "more_body": True})
            tail = b"data: [DONE]\n\n"
        except OSError:  # the client went away while we were writing
            return
        except (Exception, KeyboardInterrupt, SystemExit) as exc:
            handler_failed(self.chunks.model_name, self.chunks.deployment_id, exc)
            tail = stream_error_event(exc)
        await send({"type": "http.response.body", "body": tail, "more_body": False})
