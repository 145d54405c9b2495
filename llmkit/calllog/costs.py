"""Prices per token for models that have no public price list, and the cost of a call from them."""

from __future__ import annotations

import threading

__all__ = ["cost_of", "register_model_cost"]

_prices: dict[str, tuple[float, float]] = {}
_lock = threading.Lock()


def register_model_cost(model: str, *, input_cost_per_token: float = 0.0, output_cost_per_token: float = 0.0) -> None:
    """Price ``model`` (as callers name it, e.g. ``"my-provider/my-model"``) in US dollars per token.

    The call log computes each call's ``cost_usd`` from its final usage; calls of models without a
    price have no cost (null, not zero). Registering again replaces the earlier price.
    """
    if not isinstance(model, str) or not model:
        raise ValueError(f"model must be a non-empty string such as 'my-provider/my-model', got {model!r}")
    prices = (input_cost_per_token, output_cost_per_token)
    for name, price in zip(("input_cost_per_token", "output_cost_per_token"), prices):
        if isinstance(price, bool) or not isinstance(price, (int, float)) or price < 0:
            raise ValueError(f"{name} must be a number >= 0 (US dollars per token), got {price!r}")
    with _lock:
        _prices[model] = (float(input_cost_per_token), float(output_cost_per_token))


def cost_of(
    model: str, handler_model: str | None, prompt_tokens: int | None, completion_tokens: int | None
) -> float | None:
    """US dollars for a call, by the price of ``model`` or else of the bare ``handler_model``; None if unpriced."""
    prices = _prices.get(model) or (_prices.get(handler_model) if handler_model else None)
    if prices is None or (prompt_tokens is None and completion_tokens is None):
        return None
    return (prompt_tokens or 0) * prices[0] + (completion_tokens or 0) * prices[1]
