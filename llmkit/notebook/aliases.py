"""Short names for models, shared by the ``%%llm`` magic and the widgets (``%llm alias fast demo/echo``)."""

from __future__ import annotations

__all__ = ["aliases", "resolve", "set_alias"]

_aliases: dict[str, str] = {}


def set_alias(name: str, model: str) -> None:
    """Let ``name`` stand for ``model`` wherever the notebook surfaces take a model."""
    if not name or "/" in name or name.strip() != name:
        raise ValueError(f"alias name must be a single word without '/', got {name!r}; e.g. %llm alias fast demo/echo")
    if "/" not in model:
        raise ValueError(f"an alias must point at 'provider/model', got {model!r}; e.g. %llm alias fast demo/echo")
    _aliases[name] = model


def resolve(model: str) -> str:
    """The model string an alias stands for, or ``model`` itself."""
    return _aliases.get(model, model)


def aliases() -> dict[str, str]:
    """A copy of every alias, by name."""
    return dict(_aliases)
