"""The requests being served, as an ASGI middleware around the app.

Each request runs in its server task; this layer can stop it there, whatever it is doing (reading
the body, waiting on a handler, streaming):

- when its client disconnects, the task is cancelled, so the handler is cancelled with it (its
  ``finally`` runs, and the call log records the call as cancelled);
- when its body has not arrived ``read_timeout`` seconds after it began, it is answered 408 and
  the connection closed (a client that stalls must not hold a request open);
- at shutdown, :meth:`InFlight.drain` waits for the requests in flight, then stops the rest: each
  is cancelled the same way, and its client gets an answer saying why (a 503 error body, or one SSE
  error event when a stream had started).

A path with a trailing slash is served as the same path without it (never redirected).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable

from llmkit.proxy.errors import error_body

__all__ = ["InFlight"]

logger = logging.getLogger("llmkit.proxy")

SHUTTING_DOWN = "the server is shutting down; send the request again (to another server, or once this one is back)"


class InFlight:
    def __init__(self, app: Any, read_timeout: float = 30.0) -> None:
        self.app = app
        self.read_timeout = read_timeout
        self.requests: set[_Request] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        if len(path) > 1 and path.endswith("/"):
            scope["path"] = path.rstrip("/") or "/"
        request = _Request(receive, send, self.read_timeout)
        self.requests.add(request)
        self._idle.clear()
        try:
            await self.app(scope, request.receive, request.send)
        except asyncio.CancelledError:
            if request.stopped_by is None:
                raise  # cancelled by someone else (the server itself): not ours to answer
            request.uncancel()
            await request.answer_stopped()
        finally:
            request.done()
            self.requests.discard(request)
            if not self.requests:
                self._idle.set()

    async def drain(self, seconds: float, forced: Callable[[], bool] = lambda: False) -> int:
        """Wait up to ``seconds`` for the requests in flight to finish (less if ``forced()`` turns
        true), then stop the rest and wait for them to answer. Returns how many were stopped."""
        deadline = time.monotonic() + seconds
        while self.requests and not forced() and time.monotonic() < deadline:
            try:
                await asyncio.wait_for(self._idle.wait(), min(0.05, max(0.0, deadline - time.monotonic())))
            except asyncio.TimeoutError:
                pass
        stopped = [request for request in list(self.requests) if request.stop(SHUTTING_DOWN, 503)]
        if stopped:
            logger.warning("llmkit proxy: stopped %d request(s) still running at shutdown", len(stopped))
            try:
                await asyncio.wait_for(self._idle.wait(), 5)
            except asyncio.TimeoutError:
                pass
        return len(stopped)


class _Request:
    """One request's task, and what has been received and sent so far."""

    __slots__ = ("task", "_receive", "_send", "read_timeout", "_reading", "watcher", "started", "streaming",
                 "finished", "disconnected", "stopped_by", "status")

    def __init__(self, receive: Any, send: Any, read_timeout: float) -> None:
        self.task = asyncio.current_task()
        self._receive = receive
        self._send = send
        self.read_timeout = read_timeout
        self._reading: asyncio.TimerHandle | None = None
        self.watcher: asyncio.Task | None = None
        self.started = self.streaming = self.finished = self.disconnected = False
        self.stopped_by: str | None = None
        self.status = 503

    async def receive(self) -> dict:
        if self._reading is None and self.watcher is None:
            self._reading = asyncio.get_running_loop().call_later(self.read_timeout, self._too_slow)
        message = await self._receive()
        if message["type"] == "http.request":
            if not message.get("more_body", False) and self.watcher is None:
                self._reading.cancel()
                # The body is in: from now on the next message can only be the client leaving.
                self.watcher = asyncio.ensure_future(self._watch())
        elif message["type"] == "http.disconnect":
            self.disconnected = True
            self._reading.cancel()
        return message

    def _too_slow(self) -> None:
        self.stop(f"the request body did not arrive within {self.read_timeout:g} s; send it without pausing", 408)

    async def send(self, message: dict) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.started = True
            self.streaming = any(name == b"content-type" and value.startswith(b"text/event-stream")
                                 for name, value in message.get("headers", ()))
        elif kind == "http.response.body" and not message.get("more_body", False):
            self.finished = True
        await self._send(message)

    async def _watch(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass
        self.disconnected = True
        self.stop("the client disconnected", 499)

    def stop(self, reason: str, status: int) -> bool:
        """Cancel the request's task unless it has answered already; True if it was cancelled."""
        if self.finished or self.stopped_by is not None or self.task is None or self.task.done():
            return False
        self.stopped_by = reason
        self.status = status
        self.task.cancel()
        return True

    def uncancel(self) -> None:
        uncancel = getattr(self.task, "uncancel", None)  # Python 3.11+: the task goes on normally
        if uncancel is not None:
            uncancel()

    async def answer_stopped(self) -> None:
        """Tell the client why its request ended, if it is still there to hear it."""
        if self.disconnected or self.finished:
            return
        code = "server_shutting_down" if self.status == 503 else None
        body = error_body(self.status, self.stopped_by or SHUTTING_DOWN, code=code)
        try:
            if not self.started:
                headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
                await self._send({"type": "http.response.start", "status": self.status, "headers": headers})
                await self._send({"type": "http.response.body", "body": body})
            elif self.streaming:
                await self._send({"type": "http.response.body", "body": b"data: " + body + b"\n\n"})
            else:
                await self._send({"type": "http.response.body", "body": b""})
        except OSError:  # the client left meanwhile
            pass
        self.finished = True

    def done(self) -> None:
        if self._reading is not None:
            self._reading.cancel()
        if self.watcher is not None and not self.watcher.done():
            self.watcher.cancel()
