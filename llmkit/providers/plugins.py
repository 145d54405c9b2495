"""Provider plugins: installed packages that declare an ``llmkit.providers`` entry point.

A package whose ``pyproject.toml`` says::

    [project.entry-points."llmkit.providers"]
    my-provider = "my_package.handler:MyLLM"

serves ``my-provider/<model>`` in every process that has it installed, with no registration call.
Entry points are read lazily: the first time a provider name is not otherwise known, or when the
providers are listed. Importing ``importlib.metadata`` and scanning the installed packages costs tens
of milliseconds, which ``import llmkit`` and calls to known providers never pay. A plugin's module is
imported only when its provider is first used, and one that fails to load is reported once and fails
only the calls that name it.
"""

from __future__ import annotations

import importlib
import threading
import warnings
from dataclasses import dataclass
from typing import Any

from llmkit.errors import InternalServerError
from llmkit.providers.base import has_handler_methods

__all__ = ["GROUP", "Plugin", "discover", "handler_for", "reset"]

GROUP = "llmkit.providers"

_found: dict[str, Plugin] | None = None
_lock = threading.RLock()
_warned: set[str] = set()


@dataclass
class Plugin:
    """One ``name = "module:attribute"`` entry point, and what loading it gave."""

    name: str
    package: str  # the distribution that declared it, as pip names it
    version: str
    target: str  # "module:attribute"
    entry_point: Any
    handler: Any = None
    error: str | None = None  # the message of why it failed to load; a failed plugin is not tried again
    reason: str | None = None  # the same, short, for listings

    @property
    def origin(self) -> str:
        return f"plugin from package {self.package} {self.version}".rstrip()

    def load(self) -> Any:
        """The handler; InternalServerError naming the package when the entry point does not give one."""
        handler = self.handler
        if handler is not None:  # every call after the first: no lock
            return handler
        with _lock:
            if self.handler is None and self.error is None:
                try:
                    self.handler = self._make_handler()
                except Exception as exc:
                    self.reason = _reason(exc)
                    self.error = self._describe(exc)
                    _warn_once(self.name, self.error)
            if self.error is not None:
                raise InternalServerError(self.error, llm_provider=self.name)
            return self.handler

    def _make_handler(self) -> Any:
        obj = self.entry_point.load()
        if not has_handler_methods(obj):
            raise _NotAHandler(obj)
        # A handler class: one instance serves every call, as a registered one would.
        return obj() if isinstance(obj, type) else obj

    def _describe(self, exc: Exception) -> str:
        where = f"provider plugin {self.name!r} ({self.name} = {self.target!r}) of package {self.package!r}"
        if isinstance(exc, _NotAHandler):
            return (
                f"{where} {self.reason}: point the entry point at a CustomLLM subclass or instance"
                " (one with completion, streaming, ... methods)"
            )
        return (
            f"{where} {self.reason}; fix or reinstall the package"
            f" (pip install --force-reinstall {self.package}), or uninstall it"
        )


class _NotAHandler(Exception):
    def __init__(self, obj: object) -> None:
        super().__init__(repr(obj))
        self.obj = obj


def _reason(exc: Exception) -> str:
    if isinstance(exc, _NotAHandler):
        return f"names {_kind(exc.obj)}, not a handler"
    return f"failed to load: {type(exc).__name__}: {exc}"


def _kind(obj: object) -> str:
    if isinstance(obj, type):
        return f"the class {obj.__module__}.{obj.__qualname__}"
    text = repr(obj)
    return f"{type(obj).__name__} {text[:60] + '...' if len(text) > 60 else text}"


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=4)


def _valid_name(name: str) -> bool:
    return bool(name) and "/" not in name and name == name.strip()


def _scan(previous: dict[str, Plugin]) -> dict[str, Plugin]:
    from importlib.metadata import entry_points  # ~25 ms to import: only here, never on import llmkit

    found: dict[str, Plugin] = {}
    for entry_point in entry_points(group=GROUP):
        dist = getattr(entry_point, "dist", None)
        package = dist.name if dist is not None else "<unknown package>"
        version = dist.version if dist is not None else ""
        name = entry_point.name
        if not _valid_name(name):
            _warn_once(
                f"name:{package}:{name}",
                f"package {package!r} declares the llmkit provider plugin {name!r}, which is not a valid provider"
                " name (no '/', no surrounding spaces); the package needs fixing, other providers are unaffected",
            )
            continue
        if name in found:
            if found[name].package != package:
                _warn_once(
                    f"twice:{name}",
                    f"packages {found[name].package!r} and {package!r} both declare the llmkit provider {name!r};"
                    f" using {found[name].package!r}. Uninstall one, or register the one you want with"
                    " llmkit.register_provider",
                )
            continue
        old = previous.get(name)
        if old is not None and (old.package, old.target) == (package, entry_point.value):
            found[name] = old  # keep what loading it gave
        else:
            found[name] = Plugin(name, package, version, entry_point.value, entry_point)
    return found


def discover(refresh: bool = False) -> dict[str, Plugin]:
    """The installed plugins by provider name: read once per process, and again with ``refresh=True``."""
    global _found
    found = _found
    if found is not None and not refresh:  # every lookup after the first: no lock
        return found
    with _lock:
        if _found is None or refresh:
            if refresh:
                importlib.invalidate_caches()  # a package installed since (``%pip install`` in a notebook)
            _found = _scan(_found or {})
        return _found


def handler_for(name: str) -> Any:
    """The handler of plugin ``name``, or None when no installed package declares it.

    A name no plugin declared is looked up again among the installed packages, so that a package
    installed while the process runs is found; that costs a few milliseconds, on the error path only.
    """
    plugin = discover().get(name)
    if plugin is None:
        plugin = discover(refresh=True).get(name)
    return None if plugin is None else plugin.load()


def reset() -> None:
    """Forget what was discovered and loaded (tests; a process that changed its installed packages)."""
    global _found
    with _lock:
        _found = None
        _warned.clear()
