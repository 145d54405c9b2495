"""The OpenAI-compatible HTTP app: short routes over the router and the dispatcher.

Every route is served with and without the ``/v1`` prefix, and with or without a trailing slash.
With a master key or named keys, every route but the health checks needs ``Authorization: Bearer
<key>``; the key's name reaches the call log as the call's ``user``. Errors always have OpenAI's body
shape. :class:`~llmkit.proxy.inflight.InFlight` wraps the app: it stops a request whose client
left, and all of them at shutdown.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import sys
import time
from array import array
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

import llmkit
from llmkit.proxy.bodies import ChatBody, EmbeddingBody, ImageBody, parse_body
from llmkit.proxy.config import ProxyConfig
from llmkit.proxy.errors import HTTPError, error_body, error_from_exception
from llmkit.proxy.inflight import InFlight
from llmkit.proxy.notices import notice
from llmkit.proxy.openapi import openapi_document
from llmkit.proxy.router import Router
from llmkit.proxy.sse import EventStream

__all__ = ["build_app"]

JSON = "application/json"
Endpoint = Callable[[Request], Awaitable[Response]]


MASTER = "master"  # the user name calls made with the master key are logged under


def build_app(config: ProxyConfig, read_timeout: float = 30.0, request_timeout: float | None = None) -> InFlight:
    """The ASGI app serving ``config``'s models. A request body must arrive within ``read_timeout``
    seconds; a request is stopped after ``request_timeout`` seconds without progress (the config's)."""
    limit = config.request_limit if request_timeout is None else request_timeout
    return InFlight(_Proxy(config).app, read_timeout=read_timeout, request_timeout=limit)


class _Proxy:
    def __init__(self, config: ProxyConfig) -> None:
        self.router = Router(config)
        self.max_bytes = config.max_request_bytes
        # Keys by the SHA-256 of their value: every request's key is hashed once and compared with
        # each in constant time, so neither a key's content nor its length shows in the timing.
        named = [*config.keys.items(), *([(MASTER, config.master_key)] if config.master_key else [])]
        self._keys = [(_digest(key), name) for name, key in named]
        created = int(time.time())
        models = [
            {"id": name, "object": "model", "created": created, "owned_by": "llmkit"} for name in config.model_names
        ]
        self._models = json.dumps({"object": "list", "data": models}).encode()
        self._openapi = json.dumps(openapi_document()).encode()
        routes = [
            ("/chat/completions", self.chat, "POST"),
            ("/images/generations", self.images, "POST"),
            ("/embeddings", self.embeddings, "POST"),
            ("/models", self.models, "GET"),
            ("/health", self.health, "GET"),
            ("/health/readiness", self.readiness, "GET"),
            ("/openapi.json", self.openapi, "GET"),
        ]
        self.app = Starlette(
            routes=[
                Route(prefix + path, _answering_errors(endpoint), methods=[method])
                for path, endpoint, method in routes
                for prefix in ("", "/v1")
            ],
            exception_handlers={HTTPException: _starlette_error},
        )
        self.app.router.redirect_slashes = False  # InFlight serves "/path/" as "/path"

    # -- routes --------------------------------------------------------------------------------
    async def chat(self, request: Request) -> Response:
        user = self._authorize(request)
        body = parse_body(ChatBody, await self._read(request))
        params = body.params()
        if body.stream:
            chunks = await self.router.chat_stream(body.model, body.messages, params, user=user)
            return EventStream(chunks)  # type: ignore[return-value]
        response = await self.router.chat(body.model, body.messages, params, user=user)
        return _json(response)

    async def images(self, request: Request) -> Response:
        user = self._authorize(request)
        body = parse_body(ImageBody, await self._read(request))
        response = await self.router.image(body.model, body.prompt, body.params(), user=user)
        return _json(response, exclude_none=True)  # {"created", "data": [{"url"}]}, as OpenAI sends it

    async def embeddings(self, request: Request) -> Response:
        user = self._authorize(request)
        body = parse_body(EmbeddingBody, await self._read(request))
        params = body.params()
        response = await self.router.embedding(body.model, body.input, params, user=user)
        if params.get("encoding_format") == "base64":
            _encode_vectors(response)
        return _json(response)

    async def models(self, request: Request) -> Response:
        self._authorize(request)
        return Response(self._models, media_type=JSON)

    async def health(self, request: Request) -> Response:
        return Response(b'{"status":"healthy"}', media_type=JSON)

    async def readiness(self, request: Request) -> Response:
        ready = {"status": "ready", "llmkit_version": llmkit.__version__, "models": len(self.router.deployments)}
        return Response(json.dumps(ready).encode(), media_type=JSON)

    async def openapi(self, request: Request) -> Response:
        self._authorize(request)
        return Response(self._openapi, media_type=JSON)

    # -- shared --------------------------------------------------------------------------------
    def _authorize(self, request: Request) -> str | None:
        """The name of the request's key (None when the proxy has no keys); 401 if it has none of them."""
        if not self._keys:
            return None
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        digest = _digest(token.strip())
        user = None
        for key, name in self._keys:  # no early exit: the time taken does not say which key matched
            if hmac.compare_digest(digest, key):
                user = name
        if scheme.lower() != "bearer" or user is None:
            raise HTTPError(
                401,
                "missing or wrong API key; send the header 'Authorization: Bearer <key>' with the"
                " proxy's master_key or one of its keys (general_settings in its config)",
                code="invalid_api_key",
            )
        return user

    async def _read(self, request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            raise self._too_large()
        parts, size = [], 0
        try:
            async for part in request.stream():
                size += len(part)
                if size > self.max_bytes:
                    raise self._too_large()
                parts.append(part)
        except ClientDisconnect:
            notice("upload", logging.INFO, "llmkit proxy: a client disconnected before sending its whole request body")
            raise HTTPError(400, "the client disconnected before sending the whole body") from None
        return b"".join(parts)

    def _too_large(self) -> HTTPError:
        limit = self.max_bytes / (1024 * 1024)
        return HTTPError(
            413,
            f"the request body is larger than {limit:g} MB; send less, or raise"
            " general_settings.max_request_size_mb in the proxy's config",
        )


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def _json(model: Any, exclude_none: bool = False) -> Response:
    return Response(type(model).__pydantic_serializer__.to_json(model, exclude_none=exclude_none), media_type=JSON)


def _encode_vectors(response: Any) -> None:
    """Float vectors as base64 of little-endian float32, as OpenAI sends them when asked (unless the
    handler did so already)."""
    for item in response.data:
        if isinstance(item.embedding, list):
            vector = array("f", item.embedding)
            if sys.byteorder == "big":
                vector.byteswap()
            item.embedding = base64.b64encode(vector.tobytes()).decode("ascii")


def _answering_errors(endpoint: Endpoint) -> Endpoint:
    async def answer(request: Request) -> Response:
        try:
            return await endpoint(request)
        except (Exception, KeyboardInterrupt, SystemExit) as exc:  # a handler's too: never a bare 500 page
            status, body = error_from_exception(exc)
            return Response(body, status_code=status, media_type=JSON)

    return answer


async def _starlette_error(request: Request, exc: Exception) -> Response:
    """Unknown paths (404) and wrong methods (405), in the OpenAI error shape."""
    status = getattr(exc, "status_code", 500)
    message = f"no route {request.method} {request.url.path}; see /openapi.json for the routes served here"
    headers = getattr(exc, "headers", None)
    return Response(error_body(status, message), status_code=status, media_type=JSON, headers=headers)
