"""The provider registry: which handler serves a provider name.

Three sources, looked up on every call so that changes take effect at once, the first that knows the
name winning:

1. ``llmkit.custom_provider_map``, the list of ``{"provider": ..., "custom_handler": ...}`` that users
   assign (the LiteLLM way); it wins, so a user can replace a built-in.
2. Providers registered with :func:`register_provider`, which is also how the built-ins arrive: they
   are registered lazily, on the first lookup, never as a side effect of ``import llmkit``.
3. Provider plugins: installed packages with an ``llmkit.providers`` entry point (``plugins.py``),
   read only when a name is in neither of the above, or when the providers are listed.
"""

from __future__ import annotations

import importlib
import sys
import threading
from typing import Any

from llmkit.errors import BadRequestError, LLMKitError
from llmkit.providers import plugins
from llmkit.providers.base import has_handler_methods

__all__ = ["describe_providers", "get_handler", "provider_names", "register_provider", "unregister_provider"]

# name -> "module:attribute" of a CustomLLM subclass, instantiated on first use.
BUILTIN_PROVIDERS: dict[str, str] = {
    "demo": "llmkit.providers.demo:DemoLLM",
    "openai": "llmkit.providers.openai_compat:OpenAICompatLLM",
    "litellm": "llmkit.providers.litellm_bridge:LiteLLMBridge",
}

_registered: dict[str, Any] = {}
_builtins: dict[str, Any] = {}  # the built-in handlers, to tell them from handlers registered in their place
_builtins_loaded = False
_lock = threading.Lock()
_package = sys.modules["llmkit"]


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip() or "/" in name or name != name.strip():
        raise ValueError(
            f"provider name must be a non-empty string without '/' or surrounding spaces, got {name!r};"
            " the provider is the part of 'provider/model' before the first '/'"
        )
    return name


def _check_handler(name: str, handler: object) -> None:
    if isinstance(handler, type):
        raise TypeError(
            f"custom_handler for provider {name!r} is the class {handler.__name__}, not an instance;"
            f" pass {handler.__name__}() instead"
        )
    if not has_handler_methods(handler):
        raise TypeError(
            f"custom_handler for provider {name!r} ({type(handler).__name__}) has none of the handler"
            " methods (completion, acompletion, streaming, ...); subclass llmkit.CustomLLM"
        )


def register_provider(name: str, handler: Any) -> None:
    """Serve ``name/<model>`` with ``handler`` (a CustomLLM instance), replacing any earlier one."""
    _check_name(name)
    _check_handler(name, handler)
    with _lock:
        _registered[name] = handler


def unregister_provider(name: str) -> None:
    """Forget a provider registered with :func:`register_provider` (a no-op if it is unknown)."""
    with _lock:
        _registered.pop(name, None)


def _load_builtins() -> None:
    global _builtins_loaded
    with _lock:
        if _builtins_loaded:
            return
        for name, target in BUILTIN_PROVIDERS.items():
            if name not in _registered:
                module_name, _, attribute = target.partition(":")
                _registered[name] = _builtins[name] = getattr(importlib.import_module(module_name), attribute)()
        _builtins_loaded = True


def _map_entries() -> list | tuple:
    entries = _package.custom_provider_map
    if not isinstance(entries, (list, tuple)):
        raise TypeError(
            "llmkit.custom_provider_map must be a list of"
            ' {"provider": name, "custom_handler": handler} dicts,'
            f" got {type(entries).__name__}"
        )
    return entries


def _from_map(provider: str) -> Any:
    for entry in _map_entries():
        if not isinstance(entry, dict) or "provider" not in entry or "custom_handler" not in entry:
            raise TypeError(
                f"bad entry in llmkit.custom_provider_map: {entry!r}; each entry must be"
                ' {"provider": "name", "custom_handler": handler_instance}'
            )
        if entry["provider"] == provider:
            handler = entry["custom_handler"]
            _check_handler(provider, handler)
            return handler
    return None


def get_handler(provider: str) -> Any:
    """The handler serving ``provider``; BadRequestError naming the registered ones if none does."""
    handler = _from_map(provider)
    if handler is not None:
        return handler
    handler = _registered.get(provider)
    if handler is None and not _builtins_loaded:
        _load_builtins()
        handler = _registered.get(provider)
    if handler is None:
        handler = plugins.handler_for(provider)
    if handler is None:
        raise BadRequestError(
            f"unknown provider {provider!r}; registered: {', '.join(provider_names()) or 'none'}."
            " Register it with llmkit.custom_provider_map = "
            f'[{{"provider": "{provider}", "custom_handler": MyHandler()}}]'
            f" or llmkit.register_provider({provider!r}, MyHandler()), or install a package that provides it"
            f" as a plugin (docs/plugins.md); for one of LiteLLM's providers, write litellm/{provider}/<model>",
            llm_provider=provider,
        )
    return handler


def _map_names() -> set[str]:
    return {
        entry["provider"]
        for entry in _map_entries()
        if isinstance(entry, dict) and isinstance(entry.get("provider"), str)
    }


def provider_names() -> list[str]:
    """Every provider a call can name right now, sorted: registered, built-in and installed as plugins."""
    if not _builtins_loaded:
        _load_builtins()
    return sorted(set(_registered) | _map_names() | set(plugins.discover()))


def describe_providers(load_plugins: bool = True) -> list[tuple[str, str]]:
    """``(name, where it comes from)`` for every provider, sorted by name.

    The origin is ``custom_provider_map``, ``registered``, ``built-in`` or ``plugin from package P V``;
    a plugin that is shadowed by another source, or fails to load (``load_plugins=True`` loads them),
    says so.
    """
    if not _builtins_loaded:
        _load_builtins()
    in_map = _map_names()
    found = plugins.discover()
    rows = []
    for name in provider_names():
        plugin = found.get(name)
        if name in in_map:
            origin = "custom_provider_map"
        elif name in _registered:
            origin = "built-in" if _is_builtin(name) else "registered"
        else:
            assert plugin is not None  # provider_names() has only the map's, the registered and the plugins
            rows.append((name, _plugin_origin(plugin, load_plugins)))
            continue
        if plugin is not None:
            origin += f" (wins over the {plugin.origin})"
        rows.append((name, origin))
    return rows


def _is_builtin(name: str) -> bool:
    return name in _builtins and _registered[name] is _builtins[name]


def _plugin_origin(plugin: plugins.Plugin, load: bool) -> str:
    if load:
        try:
            plugin.load()
        except LLMKitError:
            pass  # reported once by the plugin itself; the listing shows why
    if plugin.reason is not None:
        return f"{plugin.origin}, not usable: {plugin.reason}"
    return plugin.origin
