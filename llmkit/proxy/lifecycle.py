"""One server process: uvicorn's Server, with llmkit's shutdown and read deadlines.

On SIGTERM or SIGINT the server stops accepting connections, lets the requests in flight finish
for up to ``graceful_seconds``, then stops the rest (see :class:`~llmkit.proxy.inflight.InFlight`);
a second signal stops them at once. ``serve()`` then returns normally, so the caller can flush the
call log and exit 0. (uvicorn's own Server re-raises the signal once done, which kills the process
before anything registered with atexit runs.)

A connection whose request headers have not all arrived ``read_timeout`` seconds after it opened
(or after its previous request) is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn

from llmkit.calllog import recorder
from llmkit.proxy.inflight import InFlight

__all__ = ["ProxyServer", "timed_headers_protocol"]

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class ProxyServer(uvicorn.Server):
    def __init__(
        self,
        config: uvicorn.Config,
        inflight: InFlight,
        graceful_seconds: float,
        read_timeout: float,
        parent: int | None = None,
    ):
        super().__init__(config)
        self.inflight = inflight
        self.graceful_seconds = graceful_seconds
        self.read_timeout = read_timeout
        self.parent = parent  # a worker's supervisor: when it is gone, the worker stops too
        self._builder: asyncio.Task | None = None

    async def startup(self, sockets: list | None = None) -> None:
        # The call log's records are built on this loop between requests, not by its writer thread
        # in batches that hold every request up (recorder.build_on_loop).
        self._builder = asyncio.create_task(recorder.build_on_loop())
        await super().startup(sockets=sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def handle_exit(self, sig: int, frame: Any) -> None:
        if self.should_exit:
            self.force_exit = True  # a second signal: stop the requests in flight now
        self.should_exit = True

    async def on_tick(self, counter: int) -> bool:
        if self.parent is not None and os.getppid() != self.parent:
            self.should_exit = True
        self._close_slow_headers()
        return await super().on_tick(counter)

    def _close_slow_headers(self) -> None:
        late = time.monotonic() - self.read_timeout
        for connection in list(self.server_state.connections):
            since = getattr(connection, "headers_since", None)
            if since is not None and since < late and not connection.transport.is_closing():
                connection.transport.close()

    async def shutdown(self, sockets: list | None = None) -> None:
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()  # idle connections close now, busy ones after their response
        await self.inflight.drain(self.graceful_seconds, forced=lambda: self.force_exit)
        await self._close_connections(timeout=2.0)
        if self._builder is not None:  # what it has not built, the writer builds at the last flush
            self._builder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._builder

    async def _close_connections(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        # A poll: uvicorn's sets of connections and tasks empty themselves without signalling anyone.
        while (self.server_state.connections or self.server_state.tasks) and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        for connection in list(self.server_state.connections):
            connection.transport.close()
        for task in list(self.server_state.tasks):
            task.cancel()


def timed_headers_protocol() -> Any:
    """httptools' protocol class, noting since when a connection has been waiting for request
    headers (``ProxyServer`` closes it when that is too long); None without httptools (h11 then
    serves, with no such deadline)."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:
        return None

    class TimedHeaders(HttpToolsProtocol):
        # No timer per request: the server's tick looks at this ten times a second.
        headers_since: float | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self.headers_since = time.monotonic()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self.headers_since is None:
                self.headers_since = time.monotonic()

        def on_headers_complete(self) -> None:
            self.headers_since = None
            super().on_headers_complete()

    return TimedHeaders
