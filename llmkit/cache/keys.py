"""The cache key of a call: equal calls meet, different ones never do.

The key is a SHA-256 of the canonical JSON of what decides the answer: the kind of call (chat, stream,
image, embedding), the resolved ``provider/model``, the messages (or prompt, or input), the optional
parameters and the ``sample`` index. Canonical means key order does not matter, ``temperature=0``
meets ``temperature=0.0``, a message given as a pydantic object meets the same message as a dict,
and None-valued parameters and message fields count as not given. Control
parameters (api_key, headers, timeout, metadata, source...) are not in it, and parameters named like
credentials enter only as ``"<redacted>"``: a key never carries a secret, not even hashed.
"""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic_core import to_json

from llmkit.calllog.secrets import redacted
from llmkit.errors import BadRequestError
from llmkit.params import split_model, split_params

__all__ = ["Request", "request_of"]

# Bumped when the canonical form changes, so that old entries are missed rather than misread.
_FORMAT = "llmkit-cache-1"


class Request:
    """What the cache needs to know about one call."""

    __slots__ = ("kind", "model", "provider", "handler_model", "key")

    def __init__(self, kind: str, provider: str, handler_model: str, key: str) -> None:
        self.kind = kind
        self.provider = provider
        self.handler_model = handler_model
        self.model = f"{provider}/{handler_model}"
        self.key = key


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
    if params:
        params = redacted(params)
    text = to_json(
        [_FORMAT, kind, provider, handler_model, _canonical(payload), _canonical(params), sample],
        fallback=repr,
        bytes_mode="base64",
    )
    return Request(kind, provider, handler_model, hashlib.sha256(text).hexdigest())


def _canonical(value: Any) -> Any:
    """``value`` with dict keys in order, None-valued items left out (``{"name": None}`` is no name),
    whole floats as ints (``temperature=0.0`` is ``temperature=0``) and pydantic objects as their set
    fields (a Message object is the same message as its dict). Anything else is written by repr: a
    repr with an address in it never meets another call's, so such calls are simply not shared."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    # Texts, the usual values, are kept as they are without a call per item: keys are made on every call.
    if kind is dict:
        try:
            names = sorted(value)
        except TypeError:  # keys of several types
            names = sorted(value, key=repr)
        return {
            name: item if type(item) is str else _canonical(item) for name in names if (item := value[name]) is not None
        }
    if kind is list or kind is tuple:
        return [item if type(item) is str else _canonical(item) for item in value]
    if kind is float:
        return int(value) if value.is_integer() else value
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return _canonical(dump(exclude_none=True))
    if isinstance(value, dict):
        return _canonical(dict(value))
    if isinstance(value, (list, tuple)):
        return [_canonical(item) for item in value]
    if isinstance(value, (set, frozenset)):
        return sorted(repr(item) for item in value)
    return value
