"""HTTP for the HTTP handlers: pooled httpx clients, error mapping, and streamed bodies.

This module imports httpx, so it loads only when an HTTP handler makes its first call.

- One ``httpx.Client`` per (base URL, api key), and one ``httpx.AsyncClient`` per (event loop, base
  URL, api key): an AsyncClient's connections belong to the loop that opened them, so a notebook's
  loop and each ``asyncio.run`` get their own. Clients are reused across calls and closed at exit.
- Failures leave as llmkit errors: an HTTP status as the class for that status with the server's own
  message (and ``retry_after`` from Retry-After on 429 and 503), an httpx timeout as Timeout, any
  other network failure as APIConnectionError, an unreadable body as BadGatewayError.
"""

from __future__ import annotations

import atexit
import json
import threading
import weakref
from collections import deque
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from llmkit.errors import APIConnectionError, APIError, BadGatewayError, Timeout, error_class_for_status
from llmkit.sse import decoder_for

__all__ = [
    "AsyncEventStream",
    "EventStream",
    "async_client",
    "close_clients",
    "message_from_body",
    "read_json",
    "retry_after_seconds",
    "send",
    "send_async",
    "status_error",
    "sync_client",
    "transport_error",
]

_LIMITS = httpx.Limits(max_connections=1000, max_keepalive_connections=100)
_sync_clients: dict[tuple[str, str | None], httpx.Client] = {}
_async_clients: dict[tuple[int, str, str | None], tuple[weakref.ref, httpx.AsyncClient]] = {}
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


def async_client(base_url: str, api_key: str | None) -> httpx.AsyncClient:
    import asyncio  # loaded already by the async caller; sync-only users never pay for it

    loop = asyncio.get_running_loop()
    key = (id(loop), base_url, api_key)
    entry = _async_clients.get(key)
    if entry is not None and entry[0]() is loop:
        return entry[1]
    with _lock:
        _forget_closed_loops()
        client = httpx.AsyncClient(base_url=base_url, limits=_LIMITS)
        _async_clients[key] = (weakref.ref(loop), client)
    return client


def _forget_closed_loops() -> None:
    # Clients of a finished loop cannot be closed any more (closing needs their loop); drop them.
    for key, (loop_ref, _) in list(_async_clients.items()):
        loop = loop_ref()
        if loop is None or loop.is_closed():
            del _async_clients[key]


def close_clients() -> None:
    """Close every pooled client (at exit; tests call it to start afresh)."""
    with _lock:
        sync = list(_sync_clients.values())
        _sync_clients.clear()
        pooled = list(_async_clients.values())
        _async_clients.clear()
    for client in sync:
        client.close()
    for loop_ref, client in pooled:
        loop = loop_ref()
        if loop is not None and not loop.is_closed() and not loop.is_running():
            try:
                loop.run_until_complete(client.aclose())
            except Exception:  # at exit a loop may be half torn down; the OS closes the sockets
                pass


atexit.register(close_clients)


# -- sending ----------------------------------------------------------------------------------------
def _timeout(value: Any) -> httpx.Timeout:
    if isinstance(value, httpx.Timeout):
        return value
    return httpx.Timeout(None if value is None else float(value))


def _build(client: httpx.Client | httpx.AsyncClient, request: Any, headers: dict, timeout: Any) -> httpx.Request:
    return client.build_request(
        request.method,
        request.path,
        json=request.json,
        params=request.params,
        headers=headers,
        timeout=_timeout(timeout),
    )


def send(
    base_url: str, api_key: str | None, request: Any, headers: dict, timeout: Any, stream: bool = False, key_env: tuple = ()
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


async def send_async(
    base_url: str, api_key: str | None, request: Any, headers: dict, timeout: Any, stream: bool = False, key_env: tuple = ()
) -> httpx.Response:
    """The async twin of :func:`send`, on the pooled client of the running event loop."""
    client = async_client(base_url, api_key)
    http_request = _build(client, request, headers, timeout)
    try:
        response = await client.send(http_request, stream=stream)
    except httpx.HTTPError as exc:
        raise transport_error(exc, http_request) from exc
    if response.status_code >= 400:
        try:
            await response.aread()
        except httpx.HTTPError:
            pass
        finally:
            await response.aclose()
        raise status_error(response, api_key, key_env)
    return response


def read_json(response: httpx.Response) -> Any:
    """The body of a successful response as JSON; BadGatewayError when it is not JSON."""
    try:
        return json.loads(response.content)
    except ValueError:
        raise BadGatewayError(
            f"{_where(response.request)} answered {response.status_code} with a body that is not JSON:"
            f" {response.text[:200]!r}; is api_base the right server?"
        ) from None


# -- errors -----------------------------------------------------------------------------------------
def _where(request: httpx.Request) -> str:
    return f"{request.method} {request.url}"


def transport_error(exc: httpx.HTTPError, request: httpx.Request | None = None) -> APIError:
    """An httpx failure without a response: Timeout, or APIConnectionError naming the URL."""
    try:
        request = request or exc.request
        where = f" ({_where(request)})"
    except RuntimeError:  # httpx raises when an error has no request attached
        where = ""
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return Timeout(f"the server did not answer in time{where}: {detail}; pass a larger timeout=")
    if isinstance(exc, httpx.ConnectError):
        return APIConnectionError(f"could not connect{where}: {detail}; is the server running, and is api_base right?")
    return APIConnectionError(f"{type(exc).__name__}{where}: {detail}")


_HINTS = {
    401: "check api_key (or the environment variable the provider reads)",
    404: "check the model name and api_base (OpenAI-compatible servers usually want it to end in /v1)",
}


def status_error(response: httpx.Response, api_key: str | None = None, key_env: tuple = ()) -> APIError:
    """The llmkit error for an HTTP error response, carrying the server's own message."""
    status = response.status_code
    message = f"{server_message(response)} [{_where(response.request)} -> {status}]"
    hint = _HINTS.get(status)
    if status == 401 and not api_key:
        where = " or set " + " / ".join(key_env) if key_env else ""
        hint = f"no api key was sent: pass api_key={where}"
    if hint:
        message = f"{message}; {hint}"
    retry_after = retry_after_seconds(response.headers) if status in (429, 503) else None
    return error_class_for_status(status)(message, status_code=status, retry_after=retry_after)


def server_message(response: httpx.Response) -> str:
    """The error text a server put in its body: OpenAI's error.message, FastAPI's detail, or the text."""
    try:
        body = json.loads(response.content)
    except ValueError:
        return response.text.strip()[:500] or response.reason_phrase or "no message"
    return message_from_body(body) or response.reason_phrase or "no message"


def message_from_body(body: Any) -> str | None:
    if isinstance(body, dict):
        for key in ("error", "detail", "message"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value
            if isinstance(value, (dict, list)):
                nested = message_from_body(value)
                if nested:
                    return nested
        return None
    if isinstance(body, list) and body:  # FastAPI validation errors: a list of {"msg": ...}
        first = body[0]
        return (first.get("msg") or first.get("message")) if isinstance(first, dict) else str(first)
    return str(body) if body else None


def retry_after_seconds(headers: httpx.Headers) -> float | None:
    """Seconds from ``retry-after-ms`` or ``Retry-After`` (a number or an HTTP date); None if absent."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(float(millis) / 1000, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    import datetime

    return max((when - datetime.datetime.now(when.tzinfo)).total_seconds(), 0.0)


# -- streamed bodies --------------------------------------------------------------------------------
class EventStream:
    """The events of a streamed response, decoded as its bytes arrive; closes the response at the end.

    Iterating yields ``(event_type, data)`` pairs (see llmkit.sse). A broken connection raises
    APIConnectionError (Timeout for a read timeout); ``close()`` releases the connection early.
    """

    def __init__(self, response: httpx.Response, stream_format: str) -> None:
        self.response = response
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
        self._bytes.close()
        self.response.close()


class AsyncEventStream:
    """The async twin of :class:`EventStream`."""

    def __init__(self, response: httpx.Response, stream_format: str) -> None:
        self.response = response
        self._bytes = response.aiter_bytes()
        self._decoder = decoder_for(stream_format)
        self._events: deque[tuple[str, str]] = deque()
        self._done = False

    def __aiter__(self) -> AsyncEventStream:
        return self

    async def __anext__(self) -> tuple[str, str]:
        events = self._events
        while not events:
            if self._done:
                raise StopAsyncIteration
            try:
                chunk = await self._bytes.__anext__()
            except StopAsyncIteration:
                events.extend(self._decoder.close())
                await self.aclose()
                continue
            except httpx.HTTPError as exc:
                await self.aclose()
                raise _broken(exc, self.response) from exc
            events.extend(self._decoder.feed(chunk))
        return events.popleft()

    async def aclose(self) -> None:
        self._done = True
        await self._bytes.aclose()
        await self.response.aclose()


def _broken(exc: httpx.HTTPError, response: httpx.Response) -> APIError:
    error = transport_error(exc, response.request)
    error.message = f"the stream broke before it finished: {error.message}"
    return error
