"""Short names for models, shared by the ``%%llm`` magic and the widgets (``%llm alias fast demo/echo``).

The aliases saved in the settings file (:mod:`llmkit.settings`) are read on first use, so they work
in a new kernel before anything else runs; ``c.LLM.aliases`` and ``%config LLM.aliases`` replace the
process's table through :mod:`llmkit.notebook.configurable`.
"""

from __future__ import annotations

from llmkit import settings

__all__ = ["aliases", "check_alias", "delete_alias", "replace", "reset", "resolve", "saved_aliases", "set_alias"]

_aliases: dict[str, str] = {}
_loaded = False  # whether the settings file's aliases were read into _aliases


def _table() -> dict[str, str]:
    global _loaded
    if not _loaded:
        _loaded = True
        for name, model in saved_aliases().items():
            _aliases.setdefault(name, model)
    return _aliases


def saved_aliases() -> dict[str, str]:
    """The aliases in the settings file."""
    table = settings.read().get("aliases", {})
    return {str(k): str(v) for k, v in table.items()} if isinstance(table, dict) else {}


def check_alias(name: str, model: str) -> None:
    """ValueError saying how to fix a bad alias."""
    if not name or "/" in name or name.strip() != name or " " in name:
        raise ValueError(f"alias name must be a single word without '/', got {name!r}; e.g. %llm alias fast demo/echo")
    if "/" not in model:
        raise ValueError(f"an alias must point at 'provider/model', got {model!r}; e.g. %llm alias fast demo/echo")


def set_alias(name: str, model: str, *, save: bool = False) -> None:
    """Let ``name`` stand for ``model`` wherever the notebook surfaces take a model; ``save=True``
    writes it to the settings file too, so that it is there after a restart."""
    check_alias(name, model)
    if save:
        settings.update(aliases={**saved_aliases(), name: model})
    _table()[name] = model


def delete_alias(name: str, *, save: bool = False) -> bool:
    """Forget ``name`` (and, with ``save=True``, remove it from the settings file); False if unknown."""
    known = name in _table()
    if save and name in saved_aliases():
        settings.update(aliases={k: v for k, v in saved_aliases().items() if k != name})
        known = True
    _aliases.pop(name, None)
    return known


def replace(table: dict[str, str]) -> None:
    """Make ``table`` the whole set of aliases for this process (``%config LLM.aliases = {...}``)."""
    global _loaded
    for name, model in table.items():
        check_alias(name, model)
    _aliases.clear()
    _aliases.update(table)
    _loaded = True


def reset() -> None:
    """Forget every alias of this process; the settings file's are read again on next use."""
    global _loaded
    _aliases.clear()
    _loaded = False


def resolve(model: str) -> str:
    """The model string an alias stands for, or ``model`` itself."""
    if "/" in model:  # already provider/model: no need to read the settings file
        return model
    return _table().get(model, model)


def aliases() -> dict[str, str]:
    """A copy of every alias, by name."""
    return dict(_table())
