"""The cost of a call: from prices registered for its model, else from a price table (``llmkit.prices``)."""

from __future__ import annotations

import functools
import threading
from types import ModuleType
from typing import Any

__all__ = ["cost_of", "register_model_cost", "registered_price", "registered_prices"]

_prices: dict[str, tuple[float, float]] = {}
_lock = threading.Lock()
_DEFAULT_IMAGE_SIZE = "1024x1024"  # OpenAI's default, and the size a table's per-pixel price is for then
_DEFAULT_IMAGE_QUALITY = "standard"


def register_model_cost(model: str, *, input_cost_per_token: float = 0.0, output_cost_per_token: float = 0.0) -> None:
    """Price ``model`` (as callers name it, e.g. ``"my-provider/my-model"``) in US dollars per token.

    The call log computes each call's ``cost_usd`` from its final usage; calls of models without a
    price have no cost (null, not zero). Registering again replaces the earlier price. A registered
    price comes before any price table (``llmkit.load_prices``).
    """
    if not isinstance(model, str) or not model:
        raise ValueError(f"model must be a non-empty string such as 'my-provider/my-model', got {model!r}")
    prices = (input_cost_per_token, output_cost_per_token)
    for name, price in zip(("input_cost_per_token", "output_cost_per_token"), prices, strict=True):
        if isinstance(price, bool) or not isinstance(price, (int, float)) or price < 0:
            raise ValueError(f"{name} must be a number >= 0 (US dollars per token), got {price!r}")
    with _lock:
        _prices[model] = (float(input_cost_per_token), float(output_cost_per_token))


def registered_prices() -> dict[str, tuple[float, float]]:
    """Every price registered in this process: model -> (input, output) US dollars per token."""
    with _lock:
        return dict(_prices)


def registered_price(model: str, handler_model: str | None) -> tuple[float, float] | None:
    """``(input, output)`` US dollars per token registered for ``model`` or else the bare ``handler_model``."""
    return _prices.get(model) or (_prices.get(handler_model) if handler_model else None)


def cost_of(
    model: str,
    handler_model: str | None,
    prompt_tokens: int | None,
    completion_tokens: int | None,
    *,
    provider: str | None = None,
    kind: str = "chat",
    images: int | None = None,
    params: dict[str, Any] | None = None,
) -> float | None:
    """US dollars for a call, None if its model has no known price.

    A registered price first (by ``model``, else the bare ``handler_model``), then a price table's
    entry: per token for chat and embeddings; per image, or per pixel of the ``size`` asked for,
    for the ``images`` of an image call.
    """
    prices = registered_price(model, handler_model)
    if prices is not None:
        if prompt_tokens is None and completion_tokens is None:
            return None
        return (prompt_tokens or 0) * prices[0] + (completion_tokens or 0) * prices[1]
    if provider is None or handler_model is None:
        return None
    if kind == "image":
        return _image_cost(provider, handler_model, images, params or {})
    return _token_cost(provider, handler_model, prompt_tokens, completion_tokens)


def _token_cost(
    provider: str, handler_model: str, prompt_tokens: int | None, completion_tokens: int | None
) -> float | None:
    if prompt_tokens is None and completion_tokens is None:
        return None
    entry = _table_entry(provider, handler_model)
    if entry is None or ("input_cost_per_token" not in entry and "output_cost_per_token" not in entry):
        return None
    return (prompt_tokens or 0) * (entry.get("input_cost_per_token") or 0.0) + (completion_tokens or 0) * (
        entry.get("output_cost_per_token") or 0.0
    )


def _image_cost(provider: str, handler_model: str, images: int | None, params: dict[str, Any]) -> float | None:
    if not images:
        return None
    width, height = _size(params.get("size"))
    quality = params.get("quality") if isinstance(params.get("quality"), str) else _DEFAULT_IMAGE_QUALITY
    size = f"{width}-x-{height}"
    # LiteLLM's tables price some image models per quality and size: "standard/1024-x-1024/dall-e-3".
    entry = _table_entry(provider, handler_model, (f"{quality}/{size}/", f"{size}/"))
    if entry is None:
        return None
    per_image: float | None = entry.get("output_cost_per_image") or entry.get("input_cost_per_image")
    if per_image is not None:
        return images * per_image
    per_pixel = (entry.get("input_cost_per_pixel") or 0.0) + (entry.get("output_cost_per_pixel") or 0.0)
    if per_pixel:
        return images * width * height * per_pixel
    return None


def _size(size: Any) -> tuple[int, int]:
    text = size if isinstance(size, str) else _DEFAULT_IMAGE_SIZE
    width, _, height = text.lower().partition("x")
    if width.strip().isdigit() and height.strip().isdigit():
        return int(width), int(height)
    return _size(_DEFAULT_IMAGE_SIZE)  # "auto" and the like: priced as the default size


def _table_entry(provider: str, handler_model: str, variants: tuple[str, ...] = ()) -> dict[str, Any] | None:
    found = _price_tables().find_entry(provider, handler_model, variants)
    return found[1] if found is not None else None


@functools.cache
def _price_tables() -> ModuleType:
    """llmkit.prices, imported once here rather than on every record (it imports this module)."""
    from llmkit import prices  # the tables load on the first call that needs them, on the log's thread

    return prices
