"""The requests being served, as an ASGI middleware around the app.

Each request runs in its server task; this layer can stop it there, whatever it is doing (reading
the body, waiting on a handler, streaming):

- when its client disconnects, the task is cancelled, so the handler is cancelled with it (its
  ``finally`` runs, and the call log records the call as cancelled);
- when its body has not arrived ``read_timeout`` seconds after it began, it is answered 408 and
  the connection closed (a client that stalls must not hold a request open);
- when it has gone ``request_timeout`` seconds without progress (no answer yet, or no chunk of its
  stream), it is stopped the same way and answered 408 (or sent one SSE error event);
- at shutdown, :meth:`InFlight.drain` waits for the requests in flight, then stops the rest: each
  is cancelled the same way, and its client gets an answer saying why (a 503 error body, or one SSE
  error event when a stream had started).

Most requests are answered in a few milliseconds, so none of this costs them a timer or a task: one
sweeper per event loop looks at the requests in flight every ``SWEEP`` seconds, stops those whose
body is late, and starts watching for the client's disconnection once a request has run that long.

A path with a trailing slash is served as the same path without it (never redirected).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from llmkit.proxy.errors import error_body

__all__ = ["InFlight"]

logger = logging.getLogger("llmkit.proxy")

SHUTTING_DOWN = "the server is shutting down; send the request again (to another server, or once this one is back)"
SWEEP = 0.05  # seconds between two looks at the requests in flight


class InFlight:
    def __init__(self, app: Any, read_timeout: float = 30.0, request_timeout: float = 600.0) -> None:
        self.app = app
        self.read_timeout = read_timeout
        self.request_timeout = request_timeout
        self.requests: set[_Request] = set()
        self._sweeper: asyncio.Task | None = None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if len(path) > 1 and path.endswith("/"):
            scope["path"] = path.rstrip("/") or "/"
        if self._sweeper is None or self._sweeper.done() or self._sweeper.get_loop() is not asyncio.get_running_loop():
            self._sweeper = asyncio.ensure_future(self._sweep())
        request = _Request(receive, send)
        self.requests.add(request)
        try:
            await self.app(scope, request.receive, request.send)
        except asyncio.CancelledError:
            if request.stopped_by is None:
                raise  # cancelled by someone else (the server itself): not ours to answer
            request.uncancel()
            await request.answer_stopped()
        finally:
            self.requests.discard(request)
            request.done()

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP)
            now = time.monotonic()
            for request in list(self.requests):
                if now - request.began < SWEEP:
                    continue
                if request.reading:
                    if now - request.began > self.read_timeout:
                        request.stop(
                            f"the request body did not arrive within {self.read_timeout:g} s; send it without pausing",
                            408,
                        )
                elif request.body_read:
                    if request.watcher is None:
                        request.watch()  # running a while: stop it if its client leaves
                    if now - request.progress > self.request_timeout:
                        request.stop(
                            f"no answer within request_timeout={self.request_timeout:g} s; raise"
                            " litellm_settings.request_timeout in the proxy's config if the model is slow",
                            408,
                        )

    async def drain(self, seconds: float, forced: Callable[[], bool] = lambda: False) -> int:
        """Wait up to ``seconds`` for the requests in flight to finish (less if ``forced()`` turns
        true), then stop the rest and wait for them to answer. Returns how many were stopped."""
        deadline = time.monotonic() + seconds
        # A poll, not an Event: forced() is uvicorn's flag (a second Ctrl-C), which signals nothing.
        while self.requests and not forced() and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        stopped = [request for request in list(self.requests) if request.stop(SHUTTING_DOWN, 503)]
        if stopped:
            logger.warning("llmkit proxy: stopped %d request(s) still running at shutdown", len(stopped))
            deadline = time.monotonic() + 5
            while self.requests and time.monotonic() < deadline:  # noqa: ASYNC110 - spares every request an Event
                await asyncio.sleep(0.01)
        if self._sweeper is not None:
            self._sweeper.cancel()
        return len(stopped)


class _Request:
    """One request's task, and what has been received and sent so far."""

    __slots__ = (
        "task",
        "_receive",
        "_send",
        "began",
        "progress",
        "reading",
        "body_read",
        "watcher",
        "started",
        "streaming",
        "finished",
        "disconnected",
        "stopped_by",
        "status",
    )

    def __init__(self, receive: Any, send: Any) -> None:
        self.task = asyncio.current_task()
        self._receive = receive
        self._send = send
        self.began = self.progress = time.monotonic()
        self.reading = self.body_read = False
        self.watcher: asyncio.Task | None = None
        self.started = self.streaming = self.finished = self.disconnected = False
        self.stopped_by: str | None = None
        self.status = 503

    async def receive(self) -> dict:
        self.reading = True
        message: dict = await self._receive()
        if message["type"] == "http.request":
            if not message.get("more_body", False):
                self.reading = False
                self.body_read = True
                self.progress = time.monotonic()  # from now on the next message can only be the client leaving
        elif message["type"] == "http.disconnect":
            self.reading = False
            self.disconnected = True
        return message

    async def send(self, message: dict) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.started = True
            self.streaming = any(
                name == b"content-type" and value.startswith(b"text/event-stream")
                for name, value in message.get("headers", ())
            )
        elif kind == "http.response.body":
            self.progress = time.monotonic()
            self.finished = not message.get("more_body", False)
        await self._send(message)

    def watch(self) -> None:
        self.watcher = asyncio.ensure_future(self._watch())

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
        self.task.cancel(reason)  # the reason reaches the call log as the cancellation's message
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
        if self.watcher is not None and not self.watcher.done():
            self.watcher.cancel()
