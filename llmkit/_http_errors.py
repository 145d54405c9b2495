"""llmkit's errors for HTTP failures, shared by the sync (httpx) and async (aiohttp) transports.

Pure: each function takes what the failure left (a status, headers, body bytes, the request's method
and URL, the client's own message) and returns the llmkit error, so both transports word their errors
the same way whichever library raised.

- an HTTP status: the class for that status with the server's own message, and ``retry_after`` from
  Retry-After on 429 and 503;
- a timeout: Timeout; a refused connection: APIConnectionError saying to check the server and URL;
  any other network failure: APIConnectionError; a stream cut off midway says so first;
- a successful answer whose body is not JSON: BadGatewayError with the start of the body.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any

from llmkit.errors import APIConnectionError, APIError, BadGatewayError, Timeout, error_class_for_status

__all__ = [
    "broken_stream",
    "connect_error",
    "decoded_json",
    "message_from_body",
    "network_error",
    "retry_after_seconds",
    "status_error",
    "timeout_error",
]

_HINTS = {
    401: "check api_key (or the environment variable the provider reads)",
    404: "check the model name and api_base (OpenAI-compatible servers usually want it to end in /v1)",
}


def status_error(
    status: int,
    reason: str | None,
    body: bytes,
    headers: Mapping[str, str],
    where: str,
    api_key: str | None = None,
    key_env: tuple = (),
) -> APIError:
    """The llmkit error for an HTTP error response, carrying the server's own message.

    ``where`` is ``"METHOD URL"``; ``headers`` any case-insensitive mapping (httpx's or aiohttp's).
    """
    message = f"{server_message(body, reason)} [{where} -> {status}]"
    hint = _HINTS.get(status)
    if status == 401 and not api_key:
        names = " or set " + " / ".join(key_env) if key_env else ""
        hint = f"no api key was sent: pass api_key={names}"
    if hint:
        message = f"{message}; {hint}"
    retry_after = retry_after_seconds(headers) if status in (429, 503) else None
    return error_class_for_status(status)(message, status_code=status, retry_after=retry_after)


def server_message(body: bytes, reason: str | None) -> str:
    """The error text a server put in its body: OpenAI's error.message, FastAPI's detail, or the text."""
    try:
        decoded = json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace").strip()[:500] or reason or "no message"
    return message_from_body(decoded) or reason or "no message"


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


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
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


def decoded_json(body: bytes, status: int, where: str) -> Any:
    """The JSON of a successful answer's body; BadGatewayError when it is not JSON."""
    try:
        return json.loads(body)
    except ValueError:
        text = body.decode("utf-8", "replace")
        raise BadGatewayError(
            f"{where} answered {status} with a body that is not JSON: {text[:200]!r}; is api_base the right server?"
        ) from None


def timeout_error(where: str, detail: str) -> Timeout:
    return Timeout(f"the server did not answer in time ({where}): {detail}; pass a larger timeout=")


def connect_error(where: str, detail: str) -> APIConnectionError:
    return APIConnectionError(f"could not connect ({where}): {detail}; is the server running, and is api_base right?")


def network_error(where: str, kind: str, detail: str) -> APIConnectionError:
    return APIConnectionError(f"{kind} ({where}): {detail}")


def broken_stream(error: APIError) -> APIError:
    """``error`` (from a read that failed mid-body) worded as the broken stream it is."""
    error.message = f"the stream broke before it finished: {error.message}"
    return error
