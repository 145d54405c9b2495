"""``llmkit.check(handler)``: run a handler through every path it implements and report what holds.

Each method the handler implements is called directly, with the keyword arguments llmkit passes and
a model of the method's kind, and what it returns is checked against the contract (``shapes``). Then
(``across``): sync and async answers agree, an unknown model fails with a status code, and concurrent
calls all succeed, each with its own answer, without blocking the event loop. The report prints as a
table and renders as one in a notebook (``report``).

A handler that lists its models (``models``, ``image_models``, ``embedding_models``, as the demo
provider does) is checked with a model of the right kind for each method, so chat models are not
asked for images.
"""

from __future__ import annotations

from typing import Any

from llmkit.checker.across import METHODS, concurrency_row, error_row, parity_rows, usage_row
from llmkit.checker.methods import MethodRows
from llmkit.checker.probe import Probe
from llmkit.checker.report import FAIL, CheckReport, CheckRow
from llmkit.types.utils import ModelResponse

__all__ = ["CheckReport", "CheckRow", "check"]

_LISTS = {"chat": "models", "image": "image_models", "embedding": "embedding_models"}


def check(
    target: Any,
    model: str | None = None,
    *,
    image_model: str | None = None,
    embedding_model: str | None = None,
    messages: list | None = None,
    prompt: str = "a red square on a white background",
    input: list | None = None,
    bad_model: str = "llmkit-check-no-such-model",
    concurrency: int = 4,
    timeout: float = 60.0,
    **call_params: Any,
) -> CheckReport:
    """Check a handler (a CustomLLM instance, or a provider name such as ``"demo/echo"``).

    ``model`` is the model the handler is called with (taken from ``"provider/model"`` when given that
    way); ``image_model`` and ``embedding_model`` default to the handler's first listed model of that
    kind when it lists them, else to ``model``. Other keywords (``api_base=``, ``api_key=``,
    ``temperature=`` ...) are passed to every call as llmkit would pass them.
    """
    handler, name, model = _resolve(target, model)
    models = _models(handler, model, {"image": image_model, "embedding": embedding_model})
    probe = Probe(handler, models, call_params, timeout)
    messages = messages or [{"role": "user", "content": "Say hello to llmkit check"}]
    inputs = input or ["hello", "llmkit check"]
    rows = _rows(probe, messages, prompt, inputs, bad_model, max(2, concurrency))
    return CheckReport(f"llmkit.check: {name} ({type(handler).__name__}), {_named(models)}", rows)


def _rows(probe: Probe, messages: list, prompt: str, inputs: list, bad_model: str, n: int) -> list[CheckRow]:
    methods = MethodRows(probe)
    methods.run(messages, prompt, inputs)
    rows = methods.rows
    if not any(probe.implements(method) for method in METHODS):
        fix = "implements no handler method; subclass llmkit.CustomLLM and override completion()"
        return [*rows, CheckRow("methods", FAIL, fix)]
    fields = {"messages": messages, "model_response": ModelResponse(), "prompt": prompt, "input": inputs}
    rows += usage_row(methods.answers)
    rows += parity_rows(methods.answers)
    rows.append(error_row(probe, bad_model, fields))
    rows += concurrency_row(probe, messages, methods.answers, n)
    return rows


def _resolve(target: Any, model: str | None) -> tuple[Any, str, str | None]:
    if isinstance(target, str):
        from llmkit.providers.registry import get_handler

        provider, _, from_name = target.partition("/")
        return get_handler(provider), provider, model or from_name or None
    if isinstance(target, type):
        raise TypeError(f"check() needs a handler instance, not the class {target.__name__}; pass {target.__name__}()")
    return target, type(target).__name__, model


def _models(handler: Any, given: str | None, explicit: dict[str, str | None]) -> dict[str, str | None]:
    """The model to check each kind of method with (None: the handler lists none of that kind)."""
    listed = {kind: _listed(handler, attribute) for kind, attribute in _LISTS.items()}
    models = {}
    for kind, names in listed.items():
        elsewhere = [other for other_kind, other in listed.items() if other_kind != kind and other]
        models[kind] = explicit.get(kind) or _pick(given, names, elsewhere)
    return models


def _listed(handler: Any, attribute: str) -> tuple[str, ...] | None:
    names = getattr(handler, attribute, None)
    return None if names is None else tuple(names)


def _pick(given: str | None, names: tuple[str, ...] | None, elsewhere: list[tuple[str, ...]]) -> str | None:
    if names is None:  # the handler lists no models of this kind: try the one given
        return given or "default"
    if given is not None and (given in names or not any(given in other for other in elsewhere)):
        return given
    return names[0] if names else None


def _named(models: dict[str, str | None]) -> str:
    text = f"model {models['chat']!r}"
    for kind in ("image", "embedding"):
        if models[kind] not in (None, models["chat"]):
            text += f", {kind} model {models[kind]!r}"
    return text
