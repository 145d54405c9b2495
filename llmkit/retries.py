"""When to retry a failed call, and how long to wait first.

Retried: timeouts (408), rate limits (429), server errors (5xx) and connection errors. Not retried:
other 4xx, which will fail the same way again. Waits grow exponentially from ``BASE_DELAY`` up to
``MAX_DELAY`` with jitter, so that many clients retrying at once spread out; a server's Retry-After
(carried on the error as ``retry_after``) is honoured instead when it gives one.
"""

from __future__ import annotations

import random

from llmkit.errors import APIConnectionError, APIError

__all__ = ["backoff", "delay_before_retry", "is_retryable"]

BASE_DELAY = 0.25
MAX_DELAY = 8.0
MAX_RETRY_AFTER = 60.0


def is_retryable(error: APIError) -> bool:
    if isinstance(error, APIConnectionError):
        return True
    return error.status_code in (408, 429) or error.status_code >= 500


def backoff(attempt: int, error: APIError | None = None) -> float:
    """Seconds to wait before retry number ``attempt + 1`` (attempt counts from 0)."""
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None and retry_after >= 0:
        return min(float(retry_after), MAX_RETRY_AFTER)
    delay = min(BASE_DELAY * 2.0**attempt, MAX_DELAY)
    return delay * random.uniform(0.5, 1.0)


def delay_before_retry(error: APIError, attempt: int, num_retries: int) -> float | None:
    """Seconds to wait before retrying after failed attempt number ``attempt`` (from 0); None: give up."""
    if attempt >= num_retries or not is_retryable(error):
        return None
    return backoff(attempt, error)
