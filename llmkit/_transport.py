"""Sync HTTP for the HTTP handlers on httpx: pooled clients, error mapping, and streamed bodies.

This module imports httpx, so it loads only when an HTTP handler makes its first sync call; async
calls go through llmkit._aiotransport (aiohttp).

- One ``httpx.Client`` per (base URL, api key), reused across calls and threads, closed at exit.
- Failures leave as llmkit errors (worded by llmkit._http_errors): an HTTP status as the class for
  that status with the server's own message (and ``retry_after`` from Retry-After on 429 and 503), an
  httpx timeout as Timeout, any other network failure as APIConnectionError, an unreadable body as
  BadGatewayError.
"""

from __future__ import annotations

import atexit
import threading
from collections import deque
from typing import Any

import httpx

from llmkit import _http_errors
from llmkit.errors import APIError
from llmkit.sse import decoder_for

__all__ = ["EventStream", "close_clients", "read_json", "send", "status_error", "sync_client", "transport_error"]

_LIMITS = httpx.Limits(max_connections=1000, max_keepalive_connections=100)
_sync_clients: dict[tuple[str, str | None], httpx.Client] = {}
_lock = threading.Lock()


# -- the pools --------------------------------------------------------------------------------------
def sync_client(base_url: str, api_key: str | None) -> httpx.Client:
    key = (base_url, api_key)
    client = _sync_clients.get(key)
    if client is None:
        with _lock:
            client = _sync_clients.get(key)
            if client is None:
                client = _sync_clients[key] = httpx.Client(base_url=base_url, limits=_LIMITS)
    return client


def close_clients() -> None:
    """Close every pooled client (at exit; tests call it to start afresh)."""
    with _lock:
        clients = list(_sync_clients.values())
        _sync_clients.clear()
    for client in clients:
        client.close()


atexit.register(close_clients)


# -- sending ----------------------------------------------------------------------------------------
def _timeout(value: Any) -> httpx.Timeout:
    if isinstance(value, httpx.Timeout):
        return value
    return httpx.Timeout(None if value is None else float(value))


def _build(client: httpx.Client, request: Any, headers: dict, timeout: Any) -> httpx.Request:
    return client.build_request(
        request.method,
        request.path,
        json=request.json,
        params=request.params,
        headers=headers,
        timeout=_timeout(timeout),
    )


def send(
    base_url: str,
    api_key: str | None,
    request: Any,
    headers: dict,
    timeout: Any,
    stream: bool = False,
    key_env: tuple = (),
) -> httpx.Response:
    """Send ``request`` (an llmkit.http.Request) on the pooled client; raise llmkit errors on failure."""
    client = sync_client(base_url, api_key)
    http_request = _build(client, request, headers, timeout)
    try:
        response = client.send(http_request, stream=stream)
    except httpx.HTTPError as exc:
        raise transport_error(exc, http_request) from exc
    if response.status_code >= 400:
        try:
            response.read()
        except httpx.HTTPError:
            pass  # the status is what matters; the message falls back to the reason phrase
        finally:
            response.close()
        raise status_error(response, api_key, key_env)
    return response


def read_json(response: httpx.Response) -> Any:
    """The body of a successful response as JSON; BadGatewayError when it is not JSON."""
    return _http_errors.decoded_json(response.content, response.status_code, _where(response.request))


# -- errors -----------------------------------------------------------------------------------------
def _where(request: httpx.Request) -> str:
    return f"{request.method} {request.url}"


def transport_error(exc: httpx.HTTPError, request: httpx.Request | None = None) -> APIError:
    """An httpx failure without a response: Timeout, or APIConnectionError naming the URL."""
    try:
        where = _where(request or exc.request)
    except RuntimeError:  # httpx raises when an error has no request attached
        where = "no request"
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return _http_errors.timeout_error(where, detail)
    if isinstance(exc, httpx.ConnectError):
        return _http_errors.connect_error(where, detail)
    return _http_errors.network_error(where, type(exc).__name__, detail)


def status_error(response: httpx.Response, api_key: str | None = None, key_env: tuple = ()) -> APIError:
    """The llmkit error for an HTTP error response, carrying the server's own message."""
    return _http_errors.status_error(
        response.status_code, response.reason_phrase, response.content, response.headers, _where(response.request),
        api_key, key_env,
    )  # fmt: skip


# -- streamed bodies --------------------------------------------------------------------------------
class EventStream:
    """The events of a streamed response, decoded as its bytes arrive; closes the response at the end.

    Iterating yields ``(event_type, data)`` pairs (see llmkit.sse). A broken connection raises
    APIConnectionError (Timeout for a read timeout); ``close()`` releases the connection early.
    """

    def __init__(self, response: httpx.Response, stream_format: str) -> None:
        self.response = response
        self.content_type = response.headers.get("content-type", "")
        self._bytes = response.iter_bytes()
        self._decoder = decoder_for(stream_format)
        self._events: deque[tuple[str, str]] = deque()
        self._done = False

    def __iter__(self) -> EventStream:
        return self

    def __next__(self) -> tuple[str, str]:
        events = self._events
        while not events:
            if self._done:
                raise StopIteration
            try:
                chunk = next(self._bytes)
            except StopIteration:
                events.extend(self._decoder.close())
                self.close()
                continue
            except httpx.HTTPError as exc:
                self.close()
                raise _broken(exc, self.response) from exc
            events.extend(self._decoder.feed(chunk))
        return events.popleft()

    def close(self) -> None:
        self._done = True
        self._bytes.close()  # type: ignore[attr-defined]  # a generator, which httpx types as an Iterator
        self.response.close()


def _broken(exc: httpx.HTTPError, response: httpx.Response) -> APIError:
    return _http_errors.broken_stream(transport_error(exc, response.request))
