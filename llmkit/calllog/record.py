"""From what the dispatcher saw of a call to one log record (a plain dict), off the calling path.

The dispatcher keeps only references and two clock readings while a call runs (see ``recorder``);
everything here (model parsing, parameters, response text, token estimates, cost, ids) runs later on
the log's writer thread, so that logging costs the call almost nothing.
"""

from __future__ import annotations

import os
import re
from typing import Any

from llmkit.calllog.costs import cost_of
from llmkit.calllog.session import SESSION_ID
from llmkit.faults import handler_fault, traceback_text
from llmkit.messages import last_user_text
from llmkit.params import split_model, split_params
from llmkit.tokens import count_message_tokens, count_tokens

__all__ = ["COLUMNS", "JSON_COLUMNS", "build_record"]

#: Every record's fields, in the order of the DataFrame's columns.
COLUMNS = (
    "call_id",
    "started_at",
    "model",
    "provider",
    "handler_model",
    "kind",
    "source",
    "messages",
    "prompt",
    "params",
    "response",
    "finish_reason",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "tokens_estimated",
    "latency_ms",
    "ttft_ms",
    "tokens_per_s",
    "cost_usd",
    "status",
    "error_type",
    "status_code",
    "error_message",
    "metadata",
    "run_id",
    "cache_hit",
    "user",
    "error_traceback",
    "session_id",
    "conversation_id",
)

#: Columns holding lists or dicts; stores keep them as JSON text.
JSON_COLUMNS = ("messages", "params", "metadata")


def build_record(entry: Any) -> dict[str, Any]:
    """The record of a finished call (``entry`` is a ``recorder.Entry``)."""
    kwargs = entry.kwargs
    handler_model, provider = _split(entry.model, kwargs.get("custom_llm_provider"))
    _, params = split_params(kwargs)  # control parameters (api_key, headers, ...) never reach the log
    params = _redacted(params)
    if entry.kind == "stream":
        params["stream"] = True
    record: dict[str, Any] = {
        "call_id": os.urandom(16).hex(),  # as unique as uuid4().hex, five times cheaper
        "started_at": entry.started_at,
        "model": entry.model if isinstance(entry.model, str) else repr(entry.model),
        "provider": provider,
        "handler_model": handler_model,
        "kind": entry.kind,
        "source": _text(kwargs.get("source")) or "python",
        "messages": entry.payload if entry.kind in ("chat", "stream") else None,
        "prompt": _prompt(entry),
        "params": params,
        "metadata": kwargs.get("metadata") or None,
        "run_id": entry.capture.run_id if entry.capture is not None else None,
        "user": _user(kwargs.get("metadata")),
        "session_id": SESSION_ID,
        "conversation_id": _text(kwargs.get("conversation_id")),  # a %%llm --chat thread, or the caller's
        "status": entry.status,
        "latency_ms": (entry.t_end - entry.t0) * 1000.0,
        "ttft_ms": (entry.t_first - entry.t0) * 1000.0 if entry.t_first is not None else None,
    }
    _add_result(record, entry)
    _add_error(record, entry)
    _add_rates(record, entry)
    record["cache_hit"] = entry.cache_hit
    if entry.cache_hit:  # an answer the cache kept: it cost nothing, and its speed is not the model's
        record["cost_usd"] = 0.0 if entry.status == "ok" else None
        record.pop("tokens_per_s", None)
    return record


# Parameter names that hold credentials, wherever a caller put them (aws_secret_access_key=,
# extra_body={"api_key": ...}); their values are replaced before anything is stored.
_SECRET_NAME = re.compile(
    r"api_?key|secret|password|passwd|credential|authorization|auth_?token|access_?token|session_?token|private_?key",
    re.IGNORECASE,
)
REDACTED = "<redacted>"


def _redacted(value: Any, depth: int = 0) -> Any:
    if isinstance(value, dict) and depth < 4:
        return {
            key: REDACTED if isinstance(key, str) and _SECRET_NAME.search(key) else _redacted(item, depth + 1)
            for key, item in value.items()
        }
    return value


def _split(model: Any, custom_llm_provider: Any) -> tuple[str | None, str | None]:
    try:
        return split_model(model, custom_llm_provider)
    except Exception:  # a malformed model string: the call failed on it, and the log says so
        return None, None


def _user(metadata: Any) -> str | None:
    """Who made the call: ``metadata["user"]`` (the proxy puts its caller's key name there)."""
    return _text(metadata.get("user")) if isinstance(metadata, dict) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _prompt(entry: Any) -> str | None:
    """The prompt as text: an image prompt, embedding input, or a chat's last user message."""
    payload = entry.payload
    if entry.kind in ("chat", "stream"):
        return last_user_text(payload) or None
    if isinstance(payload, str):
        return payload
    if isinstance(payload, (list, tuple)):
        return "\n".join(str(item) for item in payload)
    return None if payload is None else str(payload)


def _add_result(record: dict[str, Any], entry: Any) -> None:
    """Response text, finish_reason, tokens (estimated where the handler reported none) and cost."""
    if entry.result is None:
        return
    usage, estimated = _RESULT_READERS[entry.kind](record, entry)
    if usage is not None:
        prompt_tokens = _tokens(usage, "prompt_tokens")
        completion_tokens = _tokens(usage, "completion_tokens")
        record["prompt_tokens"] = prompt_tokens
        record["completion_tokens"] = completion_tokens
        record["total_tokens"] = _tokens(usage, "total_tokens") or (prompt_tokens or 0) + (completion_tokens or 0)
        record["tokens_estimated"] = estimated
    record["cost_usd"] = cost_of(
        record["model"],
        record["handler_model"],
        record.get("prompt_tokens"),
        record.get("completion_tokens"),
        provider=record["provider"],
        kind=entry.kind,
        images=len(entry.result.data) if entry.kind == "image" else None,
        params=record["params"],
    )


def _stream_result(record: dict[str, Any], entry: Any) -> tuple[Any, bool]:
    converter = entry.result  # what arrived, however the stream ended
    record["response"] = "".join(converter.texts) or None
    record["finish_reason"] = converter.finish_reason
    return converter.final_usage(), converter.usage_estimated


def _chat_result(record: dict[str, Any], entry: Any) -> tuple[Any, bool]:
    result = entry.result
    choice = result.choices[0] if result.choices else None
    record["response"] = _message_text(choice.message) if choice is not None else None
    record["finish_reason"] = choice.finish_reason if choice is not None else None
    if result.usage and result.usage.total_tokens:  # the dispatcher's estimate, when the handler gave none
        return result.usage, result.usage.estimated
    return _estimate(count_message_tokens(entry.payload or ()), count_tokens(record["response"] or "")), True


def _image_result(record: dict[str, Any], entry: Any) -> tuple[Any, bool]:
    record["response"] = "\n".join(_image_text(image) for image in entry.result.data)
    return entry.result.usage, False


def _embedding_result(record: dict[str, Any], entry: Any) -> tuple[Any, bool]:
    data = entry.result.data
    width = len(data[0].embedding) if data else 0
    record["response"] = f"{len(data)} embedding(s) of {width} dimensions"
    if entry.result.usage and entry.result.usage.total_tokens:
        return entry.result.usage, entry.result.usage.estimated
    return _estimate(count_tokens(record["prompt"] or ""), 0), True


_RESULT_READERS = {
    "stream": _stream_result,
    "chat": _chat_result,
    "image": _image_result,
    "embedding": _embedding_result,
}


def _estimate(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _tokens(usage: Any, name: str) -> int | None:
    value = usage.get(name) if isinstance(usage, dict) else getattr(usage, name, None)
    return value if isinstance(value, int) else None


def _message_text(message: Any) -> str | None:
    if message.content is not None or not message.tool_calls:
        return message.content
    import json

    return json.dumps([call.model_dump() for call in message.tool_calls])


def _image_text(image: Any) -> str:
    url = image.url
    if url and not url.startswith("data:"):
        return url
    data = url or image.b64_json or ""
    label = "data URL" if url else "b64_json"
    return f"<{label}, {len(data)} characters>"


def _add_error(record: dict[str, Any], entry: Any) -> None:
    error = entry.error
    if error is not None:
        record["error_type"] = type(error).__name__
        status = getattr(error, "status_code", None)
        record["status_code"] = status if isinstance(status, int) and not isinstance(status, bool) else None
        message = getattr(error, "message", None)
        record["error_message"] = message if isinstance(message, str) else str(error) or None
        fault = handler_fault(error)  # a handler's bug, not an answer such as a 429: keep where it was
        if fault is not None:
            record["error_traceback"] = traceback_text(fault)
    elif entry.reason is not None:
        record["error_message"] = entry.reason


def _add_rates(record: dict[str, Any], entry: Any) -> None:
    """Output tokens per second: over the time since the first token for streams, else the latency."""
    tokens = record.get("completion_tokens")
    if not tokens:
        return
    start = entry.t_first if entry.t_first is not None else entry.t0
    seconds = entry.t_end - start
    if seconds > 0:
        record["tokens_per_s"] = tokens / seconds
