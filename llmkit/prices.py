"""What is known about a model: prices and context windows from tables in LiteLLM's format.

A table is a JSON object mapping model names to what is known about them, the format of LiteLLM's
``model_prices_and_context_window.json``::

    {"gpt-4o": {"input_cost_per_token": 2.5e-06, "output_cost_per_token": 1e-05,
                "max_input_tokens": 128000, "max_output_tokens": 16384, "mode": "chat", ...}}

Tables are looked up in this order, and never fetched from the network:

1. files loaded with :func:`load_prices`, the latest first;
2. the file named by ``LLMKIT_PRICES``, read on the first lookup;
3. LiteLLM's bundled copy (``model_prices_and_context_window_backup.json``), when LiteLLM is
   installed: found and read without importing LiteLLM.

``openai/<model>`` is matched by its model name (``openai/gpt-4o`` -> ``gpt-4o``); ``litellm/<model
string>`` by the whole string, then without its provider prefix when the table names that provider
(``litellm/anthropic/claude-x`` -> ``anthropic/claude-x``, then ``claude-x``). Models of other
providers are priced only by ``llmkit.register_model_cost``, which comes first for every model.
"""

from __future__ import annotations

import json
import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmkit.calllog.costs import registered_price

__all__ = ["ENV", "PriceFileError", "find_entry", "load_prices", "model_info", "tables"]

ENV = "LLMKIT_PRICES"

#: Fields read from a table, checked when it is loaded: numbers >= 0, or text.
NUMBER_FIELDS = (
    "input_cost_per_token",
    "output_cost_per_token",
    "input_cost_per_image",
    "output_cost_per_image",
    "input_cost_per_pixel",
    "output_cost_per_pixel",
    "max_tokens",
    "max_input_tokens",
    "max_output_tokens",
)
TEXT_FIELDS = ("mode", "litellm_provider")
_DOC_ENTRY = "sample_spec"  # LiteLLM's table describes its own fields under this key
# Providers whose models are matched to the tables by name; other providers' model names are their own.
TABLE_PROVIDERS = ("openai", "litellm")


class PriceFileError(ValueError):
    """A price table that is not in LiteLLM's format; the message names the file and the first bad entry."""


@dataclass(frozen=True)
class Table:
    source: str  # where it came from, for model_info and messages
    entries: dict[str, dict[str, Any]]


_loaded: list[Table] = []  # by load_prices, the latest first
_defaults: list[Table] | None = None  # LLMKIT_PRICES and LiteLLM's copy, read on first use
_lock = threading.Lock()
_found: dict[tuple, tuple[str, dict, Table] | None] = {}  # lookups already made
_warned: set[str] = set()
_MAX_FOUND = 4096


# -- loading -----------------------------------------------------------------------------------------
def load_prices(path: str | os.PathLike[str]) -> int:
    """Use the price table in ``path`` (LiteLLM's JSON format) before any other; the number of models in it.

    Prices registered with ``llmkit.register_model_cost`` still come first. PriceFileError names the
    file and the first entry that is not in the expected format.
    """
    global _found
    table = _read(Path(path), strict=True)
    with _lock:
        _loaded[:] = [table] + [t for t in _loaded if t.source != table.source]
        _found = {}  # a new memo: a lookup still running on the old tables writes to the old one
    return len(table.entries)


def _read(path: Path, strict: bool) -> Table:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PriceFileError(f"cannot read prices file {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise PriceFileError(f"prices file {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise PriceFileError(
            f"prices file {path} must be a JSON object mapping model names to their prices"
            f' ({{"gpt-4o": {{"input_cost_per_token": 2.5e-06, ...}}}}, LiteLLM\'s format), got {type(data).__name__}'
        )
    entries = {}
    for name, entry in data.items():
        if name == _DOC_ENTRY:
            continue
        problem = _problem(entry)
        if problem is None:
            entries[name] = entry
        elif strict:
            raise PriceFileError(f"prices file {path}: entry {name!r} {problem}; fix that entry (LiteLLM's format)")
    return Table(str(path), entries)


def _problem(entry: Any) -> str | None:
    """What is wrong with one table entry, or None."""
    if not isinstance(entry, dict):
        return f'must be an object such as {{"input_cost_per_token": 1e-06}}, got {type(entry).__name__}'
    for field in NUMBER_FIELDS:
        value = entry.get(field)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
            return f"has {field}={value!r}; it must be a number >= 0"
    for field in TEXT_FIELDS:
        value = entry.get(field)
        if value is not None and not isinstance(value, str):
            return f"has {field}={value!r}; it must be a string"
    return None


def _default_tables() -> list[Table]:
    global _defaults
    if _defaults is None:
        with _lock:
            if _defaults is None:
                _defaults = [table for table in (_env_table(), _litellm_table()) if table is not None]
    return _defaults


def _env_table() -> Table | None:
    path = os.environ.get(ENV)
    if not path:
        return None
    try:
        return _read(Path(path), strict=True)
    except PriceFileError as exc:  # read on a lookup, maybe the call log's thread: say so, carry on without it
        _warn_once(ENV, f"{ENV}: {exc}; calls are priced without it until it is fixed")
        return None


def _litellm_table() -> Table | None:
    import importlib.util

    try:
        spec = importlib.util.find_spec("litellm")  # finds the package without importing it (seconds)
    except (ImportError, ValueError):
        return None
    locations = list(spec.submodule_search_locations or ()) if spec is not None else []
    for location in locations:
        path = Path(location) / "model_prices_and_context_window_backup.json"
        if path.is_file():
            try:
                return _read(path, strict=False)  # LiteLLM's own: skip what we cannot use, never fail on it
            except PriceFileError as exc:
                _warn_once("litellm", f"LiteLLM's bundled price table is unusable: {exc}")
    return None


def tables() -> list[Table]:
    """Every price table in use, in lookup order."""
    return list(_loaded) + _default_tables()


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


# -- lookups -----------------------------------------------------------------------------------------
def find_entry(
    provider: str | None, handler_model: str | None, variants: tuple[str, ...] = ()
) -> tuple[str, dict[str, Any], Table] | None:
    """``(key, entry, table)`` for a model, or None; ``variants`` are prefixes tried first (image sizes)."""
    if not handler_model or (provider is not None and provider not in TABLE_PROVIDERS):
        return None
    memo, cache_key = _found, (provider, handler_model, variants)
    try:
        return memo[cache_key]
    except KeyError:
        pass
    found = _search(_candidates(provider, handler_model, variants))
    if len(memo) >= _MAX_FOUND:  # a proxy can be asked for any model name: keep the memo bounded
        memo.clear()
    memo[cache_key] = found
    return found


def _candidates(provider: str | None, handler_model: str, variants: tuple[str, ...]) -> list[tuple[str, str | None]]:
    """``(key, provider the entry must be of)`` pairs, most specific first."""
    names: list[tuple[str, str, str | None]] = [("", handler_model, None)]  # (prefix, name, required provider)
    if provider == "openai":
        names.append(("openai/", handler_model, None))
    elif provider == "litellm" and "/" in handler_model:
        prefix, rest = handler_model.split("/", 1)
        names.append((prefix + "/", rest, None))  # "azure/" + "standard/1024-x-1024/dall-e-3"
        names.append(("", rest, prefix))
    out: dict[tuple[str, str | None], None] = {}  # ordered and without repeats
    for prefix, name, required in names:
        for variant in (*variants, ""):
            out[(prefix + variant + name, required)] = None
    return list(out)


def _search(candidates: list[tuple[str, str | None]]) -> tuple[str, dict[str, Any], Table] | None:
    all_tables = tables()
    for key, required in candidates:
        for table in all_tables:
            entry = table.entries.get(key)
            if entry is not None and (required is None or str(entry.get("litellm_provider", "")).startswith(required)):
                return key, entry, table
    return None


def model_info(model: str) -> dict[str, Any]:
    """What is known about ``model`` (``"openai/gpt-4o"``): prices, context window, mode, capabilities.

    The table's entry as it is, plus ``model``, ``key`` (the table's name for it) and ``source``
    (the table's file); a price registered with ``llmkit.register_model_cost`` replaces the table's
    token prices. LookupError, saying where llmkit looked, when nothing is known.
    """
    if not isinstance(model, str) or not model:
        raise ValueError(f"model must be a non-empty string such as 'openai/gpt-4o', got {model!r}")
    provider: str | None
    provider, slash, handler_model = model.partition("/")
    if not slash:
        provider, handler_model = None, model
    found = find_entry(provider, handler_model)
    info: dict[str, Any] = {"model": model, "key": None, "source": None}
    if found is not None:
        key, entry, table = found
        info.update(entry)
        info.update(model=model, key=key, source=table.source)
    price = registered_price(model, handler_model)
    if price is not None:
        info.update(input_cost_per_token=price[0], output_cost_per_token=price[1], source="register_model_cost")
    if found is None and price is None:
        raise LookupError(_unknown(model, provider))
    return info


def _unknown(model: str, provider: str | None) -> str:
    if provider is not None and provider not in TABLE_PROVIDERS:
        where = (
            f"no price registered for it (price tables are matched for {' and '.join(TABLE_PROVIDERS)}/ models only)"
        )
    else:
        sources = ", ".join(table.source for table in tables()) or f"none loaded (set {ENV} or install LiteLLM)"
        where = f"no price registered for it and no entry in the price tables ({sources})"
    return (
        f"nothing is known about {model!r}: {where}. Register its price with llmkit.register_model_cost("
        f"{model!r}, input_cost_per_token=..., output_cost_per_token=...) or load a table with llmkit.load_prices(path)"
    )


def reset() -> None:
    """Forget loaded tables and lookups (tests; after changing LLMKIT_PRICES)."""
    global _defaults, _found
    with _lock:
        _loaded.clear()
        _defaults = None
        _found = {}
        _warned.clear()
