"""Async HTTP for the HTTP handlers on aiohttp: one pooled session per event loop, errors, streams.

This module imports aiohttp, so it loads only when an HTTP handler makes its first async call; sync
calls go through llmkit._transport (httpx). aiohttp because under concurrency its client costs a
fraction of httpx's CPU per call (bench/openai_provider.py measures both, and httpx over aiohttp).

- One ``aiohttp.ClientSession`` per event loop (a session's connections belong to the loop that
  opened them), shared by every base URL and key, kept open between calls. It is closed when its loop
  shuts down (``asyncio.run`` does; so does ``loop.shutdown_asyncgens()``), and at exit.
- What httpx did for the sync path, done the same way here: the same JSON body bytes, ``timeout=``
  bounding connecting and each read, proxies from HTTP_PROXY / HTTPS_PROXY / ALL_PROXY / NO_PROXY read
  when a base URL is first used on a loop, certificates from certifi unless SSL_CERT_FILE /
  SSL_CERT_DIR say otherwise.
- Failures leave as llmkit errors worded by llmkit._http_errors, as for sync calls.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import threading
import weakref
from collections import deque
from typing import Any

import aiohttp

from llmkit import _http_errors
from llmkit.errors import APIError
from llmkit.sse import decoder_for

__all__ = ["AsyncEventStream", "close_sessions", "open_stream", "request_json", "session"]

_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError)
_pools: dict[int, _Pool] = {}
_lock = threading.Lock()


# -- the pool ---------------------------------------------------------------------------------------
class _Pool:
    """One event loop's session, and the proxy each base URL goes through on it."""

    __slots__ = ("closer", "loop", "proxies", "session")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = weakref.ref(loop)
        connector = aiohttp.TCPConnector(limit=1000, ssl=_ssl_context())
        # trust_env=False: proxies are resolved once per base URL below, not from os.environ per request.
        self.session = aiohttp.ClientSession(connector=connector, trust_env=False, timeout=aiohttp.ClientTimeout())
        self.proxies: dict[str, str | None] = {}
        self.closer: Any = None

    def proxy(self, base_url: str) -> str | None:
        try:
            return self.proxies[base_url]
        except KeyError:
            proxy = self.proxies[base_url] = _env_proxy(base_url)
            return proxy


async def session() -> aiohttp.ClientSession:
    """The running loop's pooled session."""
    return (await _pool()).session


async def _pool() -> _Pool:
    loop = asyncio.get_running_loop()
    pool = _pools.get(id(loop))
    if pool is not None and pool.loop() is loop:
        return pool
    pool = _Pool(loop)
    # An async generator the loop closes when it shuts down; closing it closes the session, inside
    # the loop, so no "Unclosed client session" warning is ever printed.
    pool.closer = _close_at_shutdown(pool.session)
    await pool.closer.asend(None)
    with _lock:
        _forget_closed_loops()
        _pools[id(loop)] = pool
    return pool


async def _close_at_shutdown(session: aiohttp.ClientSession) -> Any:
    try:
        yield
    finally:
        await session.close()


def _forget_closed_loops() -> None:
    for key, pool in list(_pools.items()):
        loop = pool.loop()
        if loop is None or loop.is_closed():
            del _pools[key]
            _finish(pool.closer)


def _finish(closer: Any) -> None:
    """Close a session whose loop is gone (closed without shutting down its async generators).

    Its sockets went with the loop; the session only needs marking closed, which needs no loop: the
    closer's ``aclose()`` is driven by hand (aiohttp's no-op awaitables yield once or twice).
    """
    step = closer.aclose()
    try:
        for _ in range(8):
            step.send(None)
    except StopIteration:
        return
    except Exception:  # a session that cannot close without its loop: the OS reclaims the sockets
        pass
    step.close()


def close_sessions() -> None:
    """Close every pooled session whose loop can still run (at exit; tests call it to start afresh)."""
    with _lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        loop = pool.loop()
        try:
            if loop is None or loop.is_closed():
                _finish(pool.closer)
            elif loop.is_running():  # another thread's loop (llmkit's bridge, a server's)
                asyncio.run_coroutine_threadsafe(pool.closer.aclose(), loop).result(timeout=2)
            else:
                loop.run_until_complete(pool.closer.aclose())
        except Exception:  # at exit a loop may be half torn down; the OS closes the sockets
            pass


atexit.register(close_sessions)


# -- what httpx did: proxies, certificates, timeouts, bodies, URLs ----------------------------------
def _env_proxy(base_url: str) -> str | None:
    """The proxy for ``base_url`` from the environment, as httpx's trust_env reads it; None for none."""
    import urllib.request
    from urllib.parse import urlsplit

    parts = urlsplit(base_url)
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]  # undocumented, not in typeshed
    if not proxy or bypass(parts.netloc, proxies):
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


_ssl: Any = None


def _ssl_context() -> Any:
    global _ssl
    if _ssl is None:
        import os
        import ssl

        import certifi  # httpx's certificate bundle: sync and async calls trust the same servers

        cafile, capath = os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR")
        if cafile or capath:
            _ssl = ssl.create_default_context(cafile=cafile or None, capath=capath or None)
        else:
            _ssl = ssl.create_default_context(cafile=certifi.where())
    return _ssl


_timeouts: dict[Any, aiohttp.ClientTimeout] = {}


def _timeout(value: Any) -> aiohttp.ClientTimeout:
    """``timeout=`` as aiohttp's: seconds bound connecting (pool wait included) and each read."""
    if value is None or isinstance(value, (int, float)):
        timeout = _timeouts.get(value)
        if timeout is None:
            seconds = None if value is None else float(value)
            timeout = _timeouts[value] = aiohttp.ClientTimeout(connect=seconds, sock_read=seconds)
        return timeout
    # an httpx.Timeout (or anything with its fields): pool + connect bound getting a connection
    connect, pool = getattr(value, "connect", None), getattr(value, "pool", None)
    return aiohttp.ClientTimeout(
        connect=None if connect is None and pool is None else (connect or 0) + (pool or 0),
        sock_connect=connect,
        sock_read=getattr(value, "read", None),
    )


def _url(base_url: str, path: str) -> str:
    if path.startswith(("http://", "https://")):
        return path
    return base_url.rstrip("/") + "/" + path.lstrip("/")


def _query(params: dict[str, Any] | None) -> list[tuple[str, str]] | None:
    """Query parameters as httpx writes them: True as "true", None as "", a list as repeated keys."""
    if not params:
        return None
    pairs = []
    for key, value in params.items():
        for item in value if isinstance(value, (list, tuple)) else (value,):
            text = "true" if item is True else "false" if item is False else "" if item is None else str(item)
            pairs.append((key, text))
    return pairs


def _body(request: Any, headers: dict[str, str]) -> tuple[bytes | None, dict[str, str]]:
    if request.json is None:
        return None, headers
    # httpx's encoding, so a server sees the same bytes from sync and async calls
    body = json.dumps(request.json, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
    if not any(name.lower() == "content-type" for name in headers):
        headers = {**headers, "Content-Type": "application/json"}
    return body, headers


# -- sending ----------------------------------------------------------------------------------------
async def _send(
    base_url: str, api_key: str | None, request: Any, headers: dict, timeout: Any, key_env: tuple
) -> tuple[aiohttp.ClientResponse, str]:
    """Send ``request`` (an llmkit.http.Request) on the loop's session; raise llmkit errors on failure."""
    pool = await _pool()
    url = _url(base_url, request.path)
    where = f"{request.method} {url}"
    body, headers = _body(request, headers)
    try:
        response = await pool.session.request(
            request.method,
            url,
            data=body,
            params=_query(request.params),
            headers=headers,
            timeout=_timeout(timeout),
            proxy=pool.proxy(base_url),
        )
    except _ERRORS as exc:
        raise _error(exc, where) from exc
    if response.status >= 400:
        try:
            content = await response.read()
        except _ERRORS:
            content = b""  # the status is what matters; the message falls back to the reason phrase
        finally:
            response.release()
        raise _http_errors.status_error(
            response.status, response.reason, content, response.headers, where, api_key, key_env
        )
    return response, where


async def request_json(
    base_url: str, api_key: str | None, request: Any, headers: dict, timeout: Any, key_env: tuple = ()
) -> Any:
    """Send ``request`` and return its answer's JSON."""
    response, where = await _send(base_url, api_key, request, headers, timeout, key_env)
    try:
        content = await response.read()
    except _ERRORS as exc:
        raise _error(exc, where) from exc
    finally:
        response.release()
    return _http_errors.decoded_json(content, response.status, where)


async def open_stream(
    base_url: str,
    api_key: str | None,
    request: Any,
    headers: dict,
    timeout: Any,
    stream_format: str,
    key_env: tuple = (),
) -> AsyncEventStream:
    """Send ``request`` and return its answer's events as they arrive."""
    response, where = await _send(base_url, api_key, request, headers, timeout, key_env)
    return AsyncEventStream(response, stream_format, where)


def _error(exc: BaseException, where: str) -> APIError:
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, asyncio.TimeoutError):  # aiohttp's connect and read timeouts are ones too
        return _http_errors.timeout_error(where, detail)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return _http_errors.connect_error(where, detail)
    return _http_errors.network_error(where, type(exc).__name__, detail)


# -- streamed bodies --------------------------------------------------------------------------------
class AsyncEventStream:
    """The events of a streamed response, decoded as its bytes arrive; releases the response at the end.

    ``async for`` yields ``(event_type, data)`` pairs (see llmkit.sse). A broken connection raises
    APIConnectionError (Timeout for a read timeout); ``aclose()`` (or ``close()``) frees the
    connection early.
    """

    __slots__ = ("_decoder", "_done", "_events", "_read", "_where", "content_type", "response")

    def __init__(self, response: aiohttp.ClientResponse, stream_format: str, where: str) -> None:
        self.response = response
        self.content_type = response.headers.get("Content-Type", "")
        self._where = where
        self._read = response.content.readany
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
                chunk = await self._read()
            except _ERRORS as exc:
                self.close()
                raise _http_errors.broken_stream(_error(exc, self._where)) from exc
            if chunk:
                events.extend(self._decoder.feed(chunk))
            else:  # the end of the body
                events.extend(self._decoder.close())
                self._done = True
                self.response.release()
        return events.popleft()

    def close(self) -> None:
        if not self._done:
            self._done = True
            self.response.close()  # mid-body: the connection cannot be reused, so it is closed

    async def aclose(self) -> None:
        self.close()
