"""Calling a handler method the way LiteLLM does, and more leniently.

Handlers are called with keyword arguments only. A method whose signature does not take some of them
(and has no ``**kwargs``) gets only those it names, so narrower signatures such as the seed guide's
``aimage_generation(self, model, prompt, model_response, optional_params, logging_obj, ...)`` work.
Signatures are read once per function and cached.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from llmkit.providers.base import HANDLER_METHODS, CustomLLM

__all__ = ["LoggingObject", "call_handler", "implements", "print_verbose", "require_methods"]

_ACCEPTS_ALL = None
_accepted_names: dict[Any, frozenset[str] | None] = {}
_implemented: dict[tuple[type, str], bool] = {}


def _accepted(func: Callable[..., Any]) -> frozenset[str] | None:
    key = getattr(func, "__func__", func)
    try:
        return _accepted_names[key]
    except KeyError:
        pass
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):  # builtins and some C callables: pass everything
        names = _ACCEPTS_ALL
    else:
        if any(p.kind is p.VAR_KEYWORD for p in params):
            names = _ACCEPTS_ALL
        else:
            names = frozenset(p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
    _accepted_names[key] = names
    return names


def call_handler(method: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    """Call ``method`` with the keyword arguments of ``kwargs`` that it accepts."""
    names = _accepted(method)
    if names is _ACCEPTS_ALL:
        return method(**kwargs)
    return method(**{key: value for key, value in kwargs.items() if key in names})


def implements(handler: Any, name: str) -> bool:
    """Whether ``handler`` really provides ``name``, rather than inheriting CustomLLM's stub."""
    own = getattr(handler, "__dict__", None)
    if own and name in own:  # a function set on the instance itself
        return callable(own[name])
    key = (type(handler), name)
    try:
        return _implemented[key]
    except KeyError:
        method = getattr(key[0], name, None)
        result = _implemented[key] = callable(method) and method is not getattr(CustomLLM, name, None)
        return result


def print_verbose(*args: Any, **kwargs: Any) -> None:
    """Handlers may call ``print_verbose``; llmkit keeps quiet."""


class LoggingObject:
    """Stand-in for LiteLLM's Logging object: handlers may call these hooks; they do nothing."""

    def __init__(self) -> None:
        self.model_call_details: dict[str, Any] = {}

    def pre_call(self, *args: Any, **kwargs: Any) -> None:
        pass

    def post_call(self, *args: Any, **kwargs: Any) -> None:
        pass


def require_methods(handler: Any, methods: tuple[str, ...], what: str, model: str, provider: str) -> None:
    """NotFoundError (404, never retried) unless ``handler`` implements one of ``methods``.

    404, as OpenAI answers a model asked for an endpoint it does not serve: the request names
    something this model does not have, and asking again will not change that.
    """
    for method in methods:
        if implements(handler, method):
            return
    from llmkit.errors import NotFoundError

    names = [f"{method}()" for method in methods]
    listed = f"neither {names[0]} nor {names[1]}" if len(names) == 2 else "none of " + ", ".join(names)
    has = [f"{name}()" for name in HANDLER_METHODS if implements(handler, name)]
    fix = "implement one of them, or call a model whose handler does"
    if "completion" in methods and any(name in has for name in ("streaming()", "astreaming()")):
        fix = "call it with stream=True, or " + fix
    raise NotFoundError(
        f"{provider}/{model}: {type(handler).__name__}, the handler for provider {provider!r}, does not do {what}:"
        f" it implements {listed} ({'only ' + ', '.join(has) if has else 'no handler method at all'}); {fix}",
        llm_provider=provider,
        model=model,
    )
