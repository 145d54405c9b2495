"""Secrets never reach the call log: parameters named like credentials, and values known to be secret.

Two guards, applied before anything is stored:

- :func:`redacted` replaces the value of every key named like a credential (``api_key``, ``api-key``,
  ``apiKey``, ``token``, ``hf_token``, ``aws_secret_access_key``, ``password``, ``headers``...), at
  any depth of dicts and lists, and says which texts it replaced: the record builder scrubs them
  from the handler's answer and error too (a handler that echoes its parameters leaks nothing).
- :func:`hide` registers a value that must never be stored, whatever key carries it (the proxy
  registers every value its config reads with ``os.environ/NAME``); :func:`scrub` replaces it in a
  text before the text is written. Values shorter than ``MIN_HIDDEN`` characters are not registered:
  replacing "1" or "true" everywhere would wreck the log and hide nothing.
"""

from __future__ import annotations

import json
import re
import threading
from typing import Any

__all__ = ["REDACTED", "hide", "is_secret_name", "redacted", "replaced", "scrub"]

REDACTED = "<redacted>"
MIN_HIDDEN = 8

# A key is split into words ("aws_secret_access_key" -> aws, secret, access, key; "apiKey" -> api, key)
# and is secret when a word says so, or "key" follows a word that makes it a credential.
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
_SECRET_WORDS = frozenset(
    {"token", "secret", "secrets", "password", "passwd", "passphrase", "credential", "credentials",
     "authorization", "auth", "cookie", "cookies", "apikey", "bearer", "header", "headers", "jwt"}
)  # fmt: skip
_KEY_KINDS = frozenset(
    {"api", "access", "private", "secret", "client", "master", "account", "subscription", "encryption", "signing",
     "session", "service", "x"}
)  # fmt: skip
# Tokens that are vocabulary, not credentials (a tokenizer's eos_token, max_token).
_NOT_SECRET_BEFORE_TOKEN = frozenset(
    {"max", "min", "bos", "eos", "pad", "sep", "unk", "mask", "cls", "stop", "start", "end"}
)
_MAX_DEPTH = 64

_names: dict[Any, bool] = {}  # key -> whether it names a secret
_hidden: dict[str, None] = {}  # an ordered set
#: Whether any value is hidden (read on every row written: a plain name, no call).
hidden = False
_lock = threading.Lock()


def is_secret_name(name: Any) -> bool:
    known = _names.get(name)
    if known is None:
        known = _classify(name) if isinstance(name, str) else False
        if len(_names) > 4096:  # parameter names are few; a flood of odd ones must not grow this
            _names.clear()
        _names[name] = known
    return known


def _classify(name: str) -> bool:
    words = [word.lower() for word in _WORDS.findall(name)]
    for index, word in enumerate(words):
        before = words[index - 1] if index else ""
        if word == "token" and before in _NOT_SECRET_BEFORE_TOKEN:
            continue
        if word in _SECRET_WORDS or (word == "key" and before in _KEY_KINDS):
            return True
    return False


def redacted(value: Any, found: list[str] | None = None, depth: int = 0) -> Any:
    """``value`` with every item under a secret-looking key replaced by ``REDACTED``, at any depth; the
    texts replaced are appended to ``found``, so that the caller can scrub them from the rest of a record.

    A dict or list with nothing to hide and nothing nested comes back as it is, not copied.
    """
    if isinstance(value, dict):
        if depth >= _MAX_DEPTH:
            return REDACTED
        names = _names
        for key, item in value.items():  # the common case, nothing to hide: no copy, no call per key
            if isinstance(item, _CONTAINERS) or names.get(key, True):
                break
        else:
            return value
        out = {}
        for key, item in value.items():
            if is_secret_name(key):
                if found is not None:
                    _texts(item, found)
                out[key] = REDACTED
            else:
                out[key] = redacted(item, found, depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        if depth >= _MAX_DEPTH:
            return REDACTED
        if not any(isinstance(item, _CONTAINERS) for item in value):
            return value
        return [redacted(item, found, depth + 1) for item in value]
    return value


def _texts(value: Any, found: list[str], depth: int = 0) -> None:
    """The strings inside ``value`` worth scrubbing elsewhere (as ``hide`` would take them)."""
    if isinstance(value, str):
        if len(value) >= MIN_HIDDEN:
            found.append(value)
    elif depth < _MAX_DEPTH and isinstance(value, dict):
        for item in value.values():
            _texts(item, found, depth + 1)
    elif depth < _MAX_DEPTH and isinstance(value, (list, tuple)):
        for item in value:
            _texts(item, found, depth + 1)


def replaced(text: Any, values: list[str]) -> Any:
    """``text`` with each of ``values`` replaced by ``REDACTED``; anything but a string as it is."""
    if isinstance(text, str):
        for value in values:
            if value in text:
                text = text.replace(value, REDACTED)
            escaped = json.dumps(value, ensure_ascii=False)[1:-1]
            if escaped != value and escaped in text:
                text = text.replace(escaped, REDACTED)
    return text


_CONTAINERS = (dict, list, tuple)


def hide(value: Any) -> None:
    """Never store ``value``: wherever it appears in a record's texts, it is replaced by ``REDACTED``."""
    global hidden
    if isinstance(value, str) and len(value) >= MIN_HIDDEN:
        with _lock:
            _hidden[value] = None
            hidden = True


def scrub(text: Any) -> Any:
    """``text`` with every hidden value replaced; anything but a string is returned as it is."""
    if not _hidden or not isinstance(text, str):
        return text
    return replaced(text, list(_hidden))
