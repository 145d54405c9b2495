"""The provider registry, the prices registered, and a run's call parameters, packed in the driver and
installed in Ray workers (prices too: workers that write a shared log price their calls themselves).

Each handler is pickled on its own with Ray's cloudpickle, so a failure names its provider: a
handler defined in ``__main__`` or a notebook cell travels by value (its class with it); one from an
importable module travels by reference, and the worker imports that module by name. Workers keep the
handlers they unpacked while the same bytes arrive again, so a handler that loads a model on first
use loads it once per worker, not once per run.
"""

from __future__ import annotations

import hashlib
from typing import Any

__all__ = ["install", "load_error", "pack", "unpack_params"]

_FIX = (
    "define the handler where the workers can import it (a module installed on the cluster, or sent with"
    " RayBackend(runtime_env={'py_modules': [module]}) or {'working_dir': '.'}), or in the notebook or the"
    " script's __main__, which are sent by value"
)


def pack(params: dict[str, Any]) -> dict[str, Any]:
    """What a run's workers need: the providers registered here (each pickled alone), the prices
    registered here (``register_model_cost``) and ``params``."""
    from ray import cloudpickle

    from llmkit.calllog.costs import registered_prices
    from llmkit.providers import registry

    registry.provider_names()  # the built-ins load first, so that only the user's own are sent
    mapped = [(entry["provider"], entry["custom_handler"]) for entry in registry._map_entries()]
    registered = [(name, handler) for name, handler in registry._registered.items() if not registry._is_builtin(name)]
    try:
        params_blob = cloudpickle.dumps(params)
    except Exception as exc:
        raise TypeError(
            f"compare()'s call parameters cannot be sent to Ray workers ({type(exc).__name__}: {exc});"
            " pass only plain values (strings, numbers, lists, dicts) as keyword arguments"
        ) from exc
    return {
        "map": [(name, _pickled(name, handler, cloudpickle)) for name, handler in mapped],
        "registered": [(name, _pickled(name, handler, cloudpickle)) for name, handler in registered],
        "params": params_blob,
        "prices": registered_prices(),
    }


def _pickled(name: str, handler: Any, cloudpickle: Any) -> bytes:
    try:
        blob: bytes = cloudpickle.dumps(handler)
        return blob
    except Exception as exc:
        raise TypeError(
            f"the handler of provider {name!r} ({type(handler).__name__}) cannot be sent to Ray workers:"
            f" {type(exc).__name__}: {exc}. Keep what cannot be pickled (clients, locks, open files) out of"
            f" the handler's attributes until its first call, or {_FIX}"
        ) from exc


# -- in the worker ---------------------------------------------------------------------------------
_loaded: dict[tuple[str, str], tuple[bytes, Any]] = {}  # (source, provider) -> (digest, handler)
_registered_here: set[str] = set()


def install(packed: dict[str, Any]) -> dict[str, str]:
    """Make the packed providers this worker's registry, and register the packed prices; ``{provider:
    why}`` for the providers that failed."""
    import llmkit
    from llmkit.providers import registry

    for model, (given, made) in packed.get("prices", {}).items():
        llmkit.register_model_cost(model, input_cost_per_token=given, output_cost_per_token=made)
    failed: dict[str, str] = {}
    mapped = _load("map", packed["map"], failed)
    registered = _load("registered", packed["registered"], failed)
    llmkit.custom_provider_map = [{"provider": name, "custom_handler": handler} for name, handler in mapped]
    for name in _registered_here - {name for name, _ in registered}:
        registry.unregister_provider(name)
    for name, handler in registered:
        registry.register_provider(name, handler)
    _registered_here.clear()
    _registered_here.update(name for name, _ in registered)
    return failed


def _load(source: str, items: list[tuple[str, bytes]], failed: dict[str, str]) -> list[tuple[str, Any]]:
    from ray import cloudpickle

    handlers = []
    for name, blob in items:
        digest = hashlib.blake2b(blob, digest_size=16).digest()
        kept = _loaded.get((source, name))
        if kept is not None and kept[0] == digest:
            handlers.append((name, kept[1]))
            continue
        try:
            handler = cloudpickle.loads(blob)
        except Exception as exc:
            failed[name] = f"{type(exc).__name__}: {exc}"
            continue
        _loaded[(source, name)] = (digest, handler)
        handlers.append((name, handler))
    return handlers


def unpack_params(packed: dict[str, Any]) -> dict[str, Any]:
    from ray import cloudpickle

    params: dict[str, Any] = cloudpickle.loads(packed["params"])
    return params


def load_error(failed: dict[str, str]) -> ImportError:
    """The driver's error for providers whose handlers the workers could not load."""
    listed = "; ".join(f"provider {name!r}: {why}" for name, why in sorted(failed.items()))
    return ImportError(
        f"the Ray workers could not load the handler of {listed}. Workers import a handler's class by its"
        f" module's name: {_FIX}"
    )
