"""Checking a call's own arguments before any handler runs: ``messages``, ``timeout``, ``num_retries``.

Each check raises a BadRequestError that says what was wrong and what to pass instead. The dispatcher
runs them inside the recorded part of a call, so a call refused here is still in the call log.
"""

from __future__ import annotations

import math
from typing import Any

from llmkit.errors import BadRequestError

__all__ = ["checked_limits", "checked_messages", "checked_num_retries", "checked_timeout"]

_EXAMPLE = '[{"role": "user", "content": "Hello"}]'


def checked_messages(messages: Any) -> list:
    """``messages`` if it is a list of chat messages (dicts or objects with a role)."""
    if isinstance(messages, str):
        raise BadRequestError(
            f"messages must be a list of chat messages, not a string; to send {_short(messages)} as one prompt,"
            f" pass messages=[{{'role': 'user', 'content': {_short(messages)}}}]"
        )
    if not isinstance(messages, (list, tuple)):
        raise BadRequestError(
            f"messages must be a list of chat messages such as {_EXAMPLE}, got {type(messages).__name__}:"
            f" {_short(messages)}"
        )
    for index, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else getattr(message, "role", None)
        if not isinstance(role, str) or not role:
            raise BadRequestError(
                f"messages[{index}] has no role: {_short(message)}; each message needs a role ('system',"
                f" 'user', 'assistant' or 'tool') and content, e.g. {_EXAMPLE}"
            )
    return messages if isinstance(messages, list) else list(messages)


def checked_timeout(value: Any, name: str = "timeout") -> Any:
    """A positive number of seconds, an ``httpx.Timeout`` (passed to the handler as is), or None."""
    if value is None or _is_httpx_timeout(value):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 and math.isfinite(value):
        return value
    if isinstance(value, str):
        fix = f"; pass {name}={value.strip()} (a number, not a string)" if _is_number(value) else ""
    else:
        fix = ""
    raise BadRequestError(
        f"{name} must be a positive number of seconds, got {_short(value)}{fix or f'; e.g. {name}=30'}"
    )


def checked_num_retries(value: Any, name: str = "num_retries") -> int:
    """A whole number of retries, 0 or more (None counts as 0)."""
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise BadRequestError(f"{name} must be a whole number, 0 or more, got {_short(value)}; e.g. {name}=2")


def _is_httpx_timeout(value: Any) -> bool:
    cls = type(value)
    return cls.__name__ == "Timeout" and cls.__module__.startswith("httpx")


def _is_number(text: str) -> bool:
    try:
        return float(text) > 0
    except ValueError:
        return False


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def checked_limits(control: dict[str, Any]) -> tuple[Any, int]:
    """``(timeout, num_retries)`` from a call's control parameters, each under either of its names."""
    if not control:  # most calls: nothing to check
        return None, 0
    timeout = checked_timeout(control.get("timeout"))
    if timeout is None:
        timeout = checked_timeout(control.get("request_timeout"), "request_timeout")
    num_retries = checked_num_retries(control.get("num_retries"))
    if "num_retries" not in control or control["num_retries"] is None:
        num_retries = checked_num_retries(control.get("max_retries"), "max_retries")
    return timeout, num_retries
