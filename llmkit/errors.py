"""The exceptions llmkit raises, and the one place handler errors are translated.

::

    LLMKitError
    ├── APIError                        .status_code .message .llm_provider .model
    │   ├── BadRequestError             400 (and any other 4xx without a class of its own)
    │   │   └── UnprocessableEntityError 422
    │   ├── AuthenticationError         401
    │   ├── PermissionDeniedError       403
    │   ├── NotFoundError               404
    │   ├── CacheMissError              404 replay mode: no cached answer for this call
    │   ├── Timeout                     408 (and 504)
    │   ├── RateLimitError              429
    │   ├── InternalServerError         500
    │   ├── BadGatewayError             502
    │   ├── ServiceUnavailableError     503
    │   └── APIConnectionError          the handler raised something without a status code
    └── WorkerLostError                 compare()'s Ray worker died running a call, on its retry too

    CustomLLMError                      what a handler raises: CustomLLMError(status_code, message)

Every exception a handler raises reaches the caller as the most specific ``APIError`` subclass for
its status code, raised ``from`` the original, with the handler's status code and message kept.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "APIConnectionError",
    "APIError",
    "AuthenticationError",
    "BadGatewayError",
    "BadRequestError",
    "CacheMissError",
    "CustomLLMError",
    "InternalServerError",
    "LLMKitError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "ServiceUnavailableError",
    "Timeout",
    "UnprocessableEntityError",
    "WorkerLostError",
    "map_exception",
    "timeout_error",
]


class CustomLLMError(Exception):
    """Raised by a handler to fail a call with an HTTP-style status code."""

    def __init__(self, status_code: int, message: str) -> None:
        self.status_code = status_code
        self.message = message
        super().__init__(message)


class LLMKitError(Exception):
    """Base class of every exception llmkit raises."""


class WorkerLostError(LLMKitError):
    """A worker process running a call died (compare()'s Ray backend), and so did the one it was
    retried on; the message names both failures."""


class APIError(LLMKitError):
    """A call failed. ``status_code`` is the HTTP-style status the failure maps to."""

    default_status_code = 500

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        llm_provider: str | None = None,
        model: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.message = message
        self.status_code = self.default_status_code if status_code is None else status_code
        self.llm_provider = llm_provider
        self.model = model
        # Seconds the server asked us to wait before retrying (a Retry-After header), if any.
        self.retry_after = retry_after
        super().__init__(message)

    def __str__(self) -> str:
        where = "/".join(part for part in (self.llm_provider, self.model) if part)
        suffix = f", {where}" if where else ""
        return f"{self.message} (status {self.status_code}{suffix})"

    def __reduce__(self) -> tuple[Any, ...]:  # keyword-only state kept when pickled (worker processes)
        return (_rebuild, (type(self), self.message, self.__dict__))


def _rebuild(cls: type[APIError], message: str, state: dict[str, Any]) -> APIError:
    error = cls.__new__(cls)
    LLMKitError.__init__(error, message)
    error.__dict__.update(state)
    return error


class BadRequestError(APIError):
    default_status_code = 400


class UnprocessableEntityError(BadRequestError):
    default_status_code = 422


class AuthenticationError(APIError):
    default_status_code = 401


class PermissionDeniedError(APIError):
    default_status_code = 403


class NotFoundError(APIError):
    default_status_code = 404


class CacheMissError(APIError):
    """The response cache is in replay mode and holds no answer for this call (llmkit/cache)."""

    default_status_code = 404


class Timeout(APIError):
    default_status_code = 408


class RateLimitError(APIError):
    default_status_code = 429


class InternalServerError(APIError):
    default_status_code = 500


class BadGatewayError(APIError):
    default_status_code = 502


class ServiceUnavailableError(APIError):
    default_status_code = 503


class APIConnectionError(APIError):
    """The handler failed without a status code (a bug in it, or a network error)."""


_CLASS_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    408: Timeout,
    422: UnprocessableEntityError,
    429: RateLimitError,
    500: InternalServerError,
    502: BadGatewayError,
    503: ServiceUnavailableError,
    504: Timeout,
}


def error_class_for_status(status_code: int) -> type[APIError]:
    """The most specific class for an HTTP status: other 4xx are bad requests, other codes APIError."""
    cls = _CLASS_BY_STATUS.get(status_code)
    if cls is not None:
        return cls
    return BadRequestError if 400 <= status_code < 500 else APIError


def _status_of(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and not isinstance(status, bool):
        return status
    try:  # CustomLLMError(status_code="429", ...) is a common slip; accept digits
        return int(status) if status is not None else None
    except (TypeError, ValueError):
        return None


def timeout_error(seconds: float, llm_provider: str | None, model: str | None) -> Timeout:
    """The one wording of a call, or a stream's wait for its next chunk, running past ``timeout=``."""
    return Timeout(
        f"no answer within timeout={seconds:g} s; pass a larger timeout= if the model is slow",
        llm_provider=llm_provider,
        model=model,
    )


def map_exception(exc: BaseException, llm_provider: str | None, model: str | None) -> APIError:
    """Translate anything a handler raised into the matching APIError (not raised here).

    An APIError passes through, gaining the provider and model if it had none. Anything with a
    ``status_code`` (CustomLLMError, an HTTP library's status error) maps by that code, keeping its
    message. A timeout becomes Timeout; anything else APIConnectionError naming the original type.
    """
    if isinstance(exc, APIError):
        if exc.llm_provider is None:
            exc.llm_provider = llm_provider
        if exc.model is None:
            exc.model = model
        return exc
    status = _status_of(exc)
    if status is not None:
        message = getattr(exc, "message", None)
        if not isinstance(message, str):
            message = str(exc)
        cls = error_class_for_status(status)
        return cls(message, status_code=status, llm_provider=llm_provider, model=model)
    if isinstance(exc, TimeoutError) or type(exc).__name__ == "TimeoutError":  # asyncio's, on 3.10
        text = str(exc) or "the handler timed out"
        return Timeout(text, llm_provider=llm_provider, model=model)
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return APIConnectionError(text, llm_provider=llm_provider, model=model)
