"""Failures as OpenAI-style error bodies: ``{"error": {"message", "type", "param", "code"}}``.

The status code of an llmkit APIError (a handler's ``CustomLLMError(429, ...)`` included) is the
HTTP status; anything unexpected is a 500 with the same body shape, never a bare error page.
"""

from __future__ import annotations

import json
import logging

from llmkit.errors import APIError
from llmkit.faults import traceback_text
from llmkit.proxy.notices import notice

__all__ = ["HTTPError", "error_body", "error_from_exception", "stream_error_event"]

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


class HTTPError(Exception):
    """A request the proxy refuses itself (bad body, bad key, unknown route...)."""

    def __init__(self, status_code: int, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.param = param
        self.code = code


def error_type(status_code: int) -> str:
    if status_code in _TYPES:
        return _TYPES[status_code]
    return "invalid_request_error" if status_code < 500 else "api_error"


def error_body(status_code: int, message: str, param: str | None = None, code: str | None = None) -> bytes:
    error = {"message": message, "type": error_type(status_code), "param": param, "code": code or str(status_code)}
    return json.dumps({"error": error}).encode()


def error_from_exception(exc: BaseException) -> tuple[int, bytes]:
    """``(status, body)`` for anything a route raised."""
    if isinstance(exc, HTTPError):
        return exc.status_code, error_body(exc.status_code, exc.message, exc.param, exc.code)
    if isinstance(exc, APIError):
        status = exc.status_code if 400 <= exc.status_code <= 599 else 500
        return status, error_body(status, exc.message)
    notice(("unexpected", type(exc)), logging.ERROR, "llmkit proxy: unexpected error\n%s", traceback_text(exc).rstrip())
    return 500, error_body(500, f"internal error in the llmkit proxy: {type(exc).__name__}: {exc}")


def stream_error_event(exc: BaseException) -> bytes:
    """An error after a stream has started: one SSE event the OpenAI clients raise as APIError."""
    _, body = error_from_exception(exc)
    return b"data: " + body + b"\n\n"
