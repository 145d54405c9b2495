"""From what the dispatcher saw of a call to one log record (a plain dict), off the calling path.

The dispatcher keeps only references and two clock readings while a call runs (see ``recorder``);
everything here (model parsing, parameters, response text, token estimates, cost, ids) runs later on
the log's writer thread, so that logging costs the call almost nothing. A chat's prompt is not part
of the record the writer stores: it is the last user message, derived from the messages when read.
"""

from __future__ import annotations

import functools
import os
import random
import time
from typing import TYPE_CHECKING, Any

from llmkit.calllog.costs import cost_of
from llmkit.calllog.secrets import redacted, replaced
from llmkit.calllog.session import SESSION_ID
from llmkit.faults import handler_fault, traceback_text
from llmkit.messages import last_user_text
from llmkit.params import split_model, split_params
from llmkit.tokens import count_message_tokens, count_tokens

if TYPE_CHECKING:
    from llmkit.types.utils import ImageObject, Message

__all__ = ["COLUMNS", "JSON_COLUMNS", "build_record", "new_call_id", "prompt_of", "with_prompt"]

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
    """The record of a finished call (``entry`` is a ``recorder.Entry``); a chat's prompt is left
    to :func:`with_prompt`, so that the writer never spends time on it."""
    kwargs = entry.kwargs
    kind = entry.kind
    chat = kind == "chat" or kind == "stream"
    handler_model, provider = _split(entry.model, kwargs.get("custom_llm_provider"))
    found: list[str] = []  # secrets taken out of the parameters, which a handler may have echoed
    record: dict[str, Any] = {
        "call_id": new_call_id(),
        "started_at": entry.started_at,
        "model": entry.model if isinstance(entry.model, str) else repr(entry.model),
        "provider": provider,
        "handler_model": handler_model,
        "kind": kind,
        "source": _text(kwargs.get("source")) or "python",
        "messages": entry.payload if chat else None,
        "prompt": None if chat else _prompt(entry.payload),
        "params": _params(kwargs, kind, found),
        "metadata": redacted(kwargs.get("metadata"), found) or None,
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
    if found:
        for name in ("response", "error_message", "error_traceback"):
            record[name] = replaced(record.get(name), found)
    return record


def with_prompt(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` with a chat's prompt filled in from its messages, as callbacks and captures see it."""
    if record.get("prompt") is None and record.get("messages") is not None:
        record["prompt"] = prompt_of(record["messages"])
    return record


def prompt_of(messages: Any) -> str | None:
    """A chat's prompt: the text of its last user message."""
    return (last_user_text(messages) or None) if isinstance(messages, list) else None


def new_call_id() -> str:
    """32 hex digits: the time in milliseconds, then 80 random bits (as unique as uuid4().hex).

    Ids that grow with time are appended at the end of an index on call_id, where random ids land
    anywhere in it and make each insert into a large log touch a different page.
    """
    global _random_hex, _used
    if _used >= len(_random_hex):  # 20 random hex digits per id, drawn 1,024 ids at a time
        _random_hex, _used = f"{_random_bits(80 * 1024):020480x}", 0
    _used += 20
    return f"{_time_ns() // 1_000_000:012x}" + _random_hex[_used - 20 : _used]


_time_ns = time.time_ns
_random_bits = random.getrandbits  # reseeded in a forked child by the random module itself
_random_hex, _used = "", 0


def _after_fork() -> None:
    global _random_hex, _used
    _random_hex, _used = "", 0  # a child draws its own: the parent's would repeat its ids


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def _params(kwargs: dict[str, Any], kind: str, found: list[str]) -> dict[str, Any]:
    _, params = split_params(kwargs)  # control parameters (api_key, headers, ...) never reach the log
    params = redacted(params, found) if params else {}
    if kind == "stream":
        params["stream"] = True
    return params


def _split(model: Any, custom_llm_provider: Any) -> tuple[str | None, str | None]:
    key = (model, custom_llm_provider)
    try:
        return _splits[key]
    except (KeyError, TypeError):  # TypeError: an unhashable model, which the call failed on
        pass
    try:
        split: tuple[str | None, str | None] = split_model(model, custom_llm_provider)
    except Exception:  # a malformed model string: the call failed on it, and the log says so
        split = (None, None)
    if isinstance(model, str):
        if len(_splits) > 1024:  # a few models in practice; odd ones never grow this without bound
            _splits.clear()
        _splits[key] = split
    return split


_splits: dict[tuple[Any, Any], tuple[str | None, str | None]] = {}


def _user(metadata: Any) -> str | None:
    """Who made the call: ``metadata["user"]`` (the proxy puts its caller's key name there)."""
    return _text(metadata.get("user")) if isinstance(metadata, dict) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _prompt(payload: Any) -> str | None:
    """An image prompt or an embedding's input as text."""
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
        get = usage.get if isinstance(usage, dict) else functools.partial(getattr, usage)
        prompt, completion, total = (
            get("prompt_tokens", None),
            get("completion_tokens", None),
            get("total_tokens", None),
        )
        prompt_tokens = prompt if isinstance(prompt, int) else None
        completion_tokens = completion if isinstance(completion, int) else None
        total_tokens = total if isinstance(total, int) else None
        record["prompt_tokens"] = prompt_tokens
        record["completion_tokens"] = completion_tokens
        record["total_tokens"] = total_tokens or (prompt_tokens or 0) + (completion_tokens or 0)
        record["tokens_estimated"] = estimated
    record["cost_usd"] = cost_of(  # images are priced without usage
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


def _message_text(message: Message) -> str | None:
    if message.content is not None or not message.tool_calls:
        return message.content
    import json

    return json.dumps([call.model_dump() for call in message.tool_calls])


def _image_text(image: ImageObject) -> str:
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
