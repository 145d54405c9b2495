"""The cache key of a call: equal calls meet, different ones never do.

The key is a SHA-256 of the canonical JSON of what decides the answer: the kind of call (chat, stream,
image, embedding), the resolved ``provider/model``, the messages (or prompt, or input), the optional
parameters and the ``sample`` index. Canonical means key order does not matter, ``temperature=0``
meets ``temperature=0.0``, a message given as a pydantic object meets the same message as a dict,
and None-valued OpenAI parameters are left out (``params.split_params`` drops them). Control
parameters (api_key, headers, timeout, metadata, source...) are not in it, and parameters named like
credentials enter only as ``"<redacted>"``: a key never carries a secret, not even hashed.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from llmkit.calllog.record import _redacted
from llmkit.errors import BadRequestError
from llmkit.params import split_model, split_params

__all__ = ["Request", "request_of"]

# Bumped when the canonical form changes, so that old entries are missed rather than misread.
_FORMAT = "llmkit-cache-1"


class Request:
    """What the cache needs to know about one call."""

    __slots__ = ("kind", "model", "provider", "handler_model", "key", "sample")

    def __init__(self, kind: str, provider: str, handler_model: str, key: str, sample: int) -> None:
        self.kind = kind
        self.provider = provider
        self.handler_model = handler_model
        self.model = f"{provider}/{handler_model}"
        self.key = key
        self.sample = sample


def request_of(kind: str, model: Any, payload: Any, kwargs: dict[str, Any]) -> Request | None:
    """The call's Request; None when its model names no provider (the dispatcher then says what is
    wrong); BadRequestError for a ``sample`` that is not a whole number >= 0."""
    try:
        handler_model, provider = split_model(model, kwargs.get("custom_llm_provider"))
    except BadRequestError:
        return None
    if provider is None:
        return None
    sample = kwargs.get("sample", 0)
    if type(sample) is not int or sample < 0:
        raise BadRequestError(f"sample= is which repeated sample this call is: a whole number >= 0, got {sample!r}")
    _, params = split_params(kwargs)
    text = json.dumps(
        [_FORMAT, kind, provider, handler_model, _canonical_payload(kind, payload), _canonical_params(params), sample],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=_plain,
    )
    return Request(kind, provider, handler_model, hashlib.sha256(text.encode()).hexdigest(), sample)


def _canonical_payload(kind: str, payload: Any) -> Any:
    if kind in ("chat", "stream") and type(payload) is list:
        # {"role": "user", "content": "hi", "name": None} is the same message as one without "name".
        return [
            {key: value for key, value in message.items() if value is not None} if type(message) is dict else message
            for message in payload
        ]
    return payload


def _canonical_params(params: dict[str, Any]) -> dict[str, Any]:
    for key, value in params.items():
        if type(value) is float and value.is_integer():
            params[key] = int(value)  # temperature=0.0 is temperature=0
    return _redacted(params)


def _plain(value: Any) -> Any:
    """JSON for what json cannot write: pydantic objects as their set fields, anything else by repr.

    A repr with an address in it never meets another call's: such calls are simply not shared.
    """
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(exclude_none=True)
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    return repr(value)
