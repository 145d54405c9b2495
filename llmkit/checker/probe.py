"""Calling one handler method the way the dispatcher does; it knows nothing about what is checked."""

from __future__ import annotations

import inspect
from typing import Any

from llmkit.providers.invoke import LoggingObject, call_handler, implements, print_verbose

__all__ = ["Probe", "aio", "collect_async"]


def aio() -> Any:
    from llmkit import aio as bridge  # loads asyncio, which check() needs anyway for the async paths

    return bridge


class Probe:
    """One handler, the model names to call it with, and the keyword arguments llmkit would pass."""

    def __init__(self, handler: Any, models: dict[str, str | None], call_params: dict[str, Any], timeout: float):
        self.handler = handler
        self.models = models  # "chat", "image", "embedding" -> model name, or None for none to check
        self.model = models["chat"]
        self.control = {key: call_params.pop(key) for key in ("api_base", "api_key", "headers") if key in call_params}
        self.params = call_params
        self.timeout = timeout

    def kwargs(self, model: str | None = None, stream: bool = False, **fields: Any) -> dict[str, Any]:
        params = dict(self.params, stream=True) if stream else dict(self.params)
        return {
            "model": model or self.model,
            "api_key": self.control.get("api_key"),
            "api_base": self.control.get("api_base"),
            "headers": self.control.get("headers") or {},
            "optional_params": params,
            "litellm_params": {"custom_llm_provider": None, "metadata": {}},
            "logging_obj": LoggingObject(),
            "timeout": self.timeout,
            "client": None,
            "print_verbose": print_verbose,
            "logger_fn": None,
            "custom_prompt_dict": {},
            "encoding": None,
            "acompletion": False,
            **fields,
        }

    def call(self, method: str, **kwargs: Any) -> Any:
        result = call_handler(getattr(self.handler, method), kwargs)
        if inspect.isawaitable(result):  # a sync method that returned a coroutine
            result = aio().run_sync(result)
        return result

    async def acall(self, method: str, **kwargs: Any) -> Any:
        kwargs["acompletion"] = True
        result = call_handler(getattr(self.handler, method), kwargs)
        if inspect.isawaitable(result):
            import asyncio

            result = await asyncio.wait_for(result, self.timeout)
        return result

    def implements(self, method: str) -> bool:
        return implements(self.handler, method)


async def collect_async(result: Any, timeout: float) -> Any:
    """Every chunk of what ``astreaming()`` returned (a single dict is returned as it is)."""
    import asyncio

    if isinstance(result, dict):
        return result
    if not hasattr(result, "__aiter__"):
        raise TypeError(f"astreaming() returned {type(result).__name__}; make it an async generator that yields chunks")

    async def drain() -> list:
        return [chunk async for chunk in result]

    return await asyncio.wait_for(drain(), timeout)
