"""The models the notebook surfaces can offer: every registered provider's listed models, and aliases.

A handler lists its models in optional ``models`` (chat) and ``image_models`` attributes; a provider
that lists none is still callable as ``provider/<any model>``, just not offered in pickers. A plugin
that fails to load lists nothing (``describe_providers`` says why).
"""

from __future__ import annotations

import llmkit
from llmkit.notebook.aliases import aliases, resolve
from llmkit.providers.registry import get_handler

__all__ = ["check_model", "known_models", "provider_models"]


def provider_models() -> dict[str, tuple[list[str], list[str]]]:
    """``{provider: ([chat models], [image models])}`` as ``provider/model`` strings."""
    listing: dict[str, tuple[list[str], list[str]]] = {}
    for provider in llmkit.provider_names():
        try:
            handler = get_handler(provider)
        except llmkit.LLMKitError:  # a plugin that fails to load, reported once by the registry
            listing[provider] = ([], [])
            continue
        chat = [f"{provider}/{name}" for name in getattr(handler, "models", ())]
        image = [f"{provider}/{name}" for name in getattr(handler, "image_models", ())]
        listing[provider] = (chat, image)
    return listing


def known_models(image: bool = False) -> list[str]:
    """Aliases first, then every listed chat model (or image model, with ``image=True``)."""
    listed = [name for chat, images in provider_models().values() for name in (images if image else chat)]
    return [*aliases(), *listed]


def check_model(model: str) -> str:
    """The ``provider/model`` that ``model`` names; BadRequestError saying how to fix a bad one."""
    target = resolve(model)
    if "/" not in target:
        known = ", ".join(aliases()) or "none yet"
        raise llmkit.BadRequestError(
            f"{model!r} is neither 'provider/model' nor an alias (aliases: {known});"
            " see %llm models, or add one with %llm alias NAME provider/model"
        )
    llmkit.get_llm_provider(target)  # BadRequestError naming the registered providers
    return target
