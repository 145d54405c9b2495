"""Choosing a deployment for each request, and trying another when one fails.

Every call goes through llmkit's dispatcher (``llmkit.acompletion``, ``aimage_generation``,
``aembedding``) with ``source="proxy"`` and ``metadata={"model_name", "deployment"}``, so the call log
records proxy traffic like any other. A retryable failure (timeout, 429, 5xx, connection error) is
retried on the model's next deployment, up to ``num_retries`` times, then on each of the model's
``fallbacks`` in turn; any other failure is the answer. A stream is retried only until its first
chunk has arrived, so a client never sees a chunk twice.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import llmkit
from llmkit import retries
from llmkit.errors import APIError, map_exception
from llmkit.proxy.config import Deployment, ProxyConfig
from llmkit.proxy.errors import HTTPError
from llmkit.proxy.notices import handler_failed

__all__ = ["RoutedStream", "Router"]

Call = Callable[[Deployment, dict[str, Any]], Awaitable[Any]]


class Router:
    def __init__(self, config: ProxyConfig) -> None:
        self.deployments = config.deployments
        self.strategy = config.routing_strategy
        self.num_retries = config.num_retries
        self.timeout = config.timeout
        self.fallbacks = config.fallbacks
        self._turns = {name: itertools.count() for name in self.deployments}

    # -- the three kinds of call -------------------------------------------------------------
    async def chat(self, model_name: str, messages: list, params: dict[str, Any], user: str | None = None) -> Any:
        async def call(deployment: Deployment, kwargs: dict[str, Any]) -> Any:
            return await llmkit.acompletion(model=deployment.model, messages=messages, **kwargs)

        return await self._run(model_name, params, call, user)

    async def chat_stream(
        self, model_name: str, messages: list, params: dict[str, Any], user: str | None = None
    ) -> RoutedStream:
        """The stream's chunks; failures before the first chunk are retried like any call."""

        async def open_stream(deployment: Deployment, kwargs: dict[str, Any]) -> tuple[Any, Any, Deployment]:
            stream = await llmkit.acompletion(model=deployment.model, messages=messages, stream=True, **kwargs)
            # Each chunk goes to the client and is let go: the proxy never replays a stream, and the
            # call log takes the answer from the stream's converter (text, tool calls, usage).
            stream.replay_limit = 0
            try:
                first = await stream.__anext__()
            except StopAsyncIteration:
                first = None
            except BaseException:
                await stream.aclose()
                raise
            deployment.in_flight += 1  # held until the stream ends
            return stream, first, deployment

        return RoutedStream(*await self._run(model_name, params, open_stream, user))

    async def image(self, model_name: str, prompt: str, params: dict[str, Any], user: str | None = None) -> Any:
        async def call(deployment: Deployment, kwargs: dict[str, Any]) -> Any:
            return await llmkit.aimage_generation(prompt=prompt, model=deployment.model, **kwargs)

        return await self._run(model_name, params, call, user)

    async def embedding(self, model_name: str, input: Any, params: dict[str, Any], user: str | None = None) -> Any:
        async def call(deployment: Deployment, kwargs: dict[str, Any]) -> Any:
            return await llmkit.aembedding(model=deployment.model, input=input, **kwargs)

        return await self._run(model_name, params, call, user)

    # -- routing -------------------------------------------------------------------------------
    def check_model(self, model_name: str) -> None:
        if model_name not in self.deployments:
            raise HTTPError(
                404,
                f"model {model_name!r} is not served here; available models: {', '.join(self.deployments)}."
                " Use one of them, or add it to model_list in the config",
                param="model",
                code="model_not_found",
            )

    def pick(self, model_name: str, tried: set[int]) -> Deployment:
        """The next deployment for ``model_name``, preferring ones not tried yet for this request."""
        candidates = self.deployments[model_name]
        fresh = [d for d in candidates if id(d) not in tried] or candidates
        if len(fresh) == 1:
            return fresh[0]
        if self.strategy == "least-busy":
            least = min(d.in_flight for d in fresh)
            fresh = [d for d in fresh if d.in_flight == least]
        if self.strategy == "simple-shuffle":
            return random.choice(fresh)
        return fresh[next(self._turns[model_name]) % len(fresh)]

    async def _run(self, model_name: str, params: dict[str, Any], call: Call, user: str | None) -> Any:
        self.check_model(model_name)
        error: APIError | None = None
        for name in (model_name, *self.fallbacks.get(model_name, ())):
            tried: set[int] = set()
            for attempt in range(self.num_retries + 1):
                deployment = self.pick(name, tried)
                if id(deployment) in tried:  # every deployment failed once: wait before going round again
                    await asyncio.sleep(retries.backoff(attempt - 1, error))
                tried.add(id(deployment))
                try:
                    return await self._call(deployment, model_name, params, call, user)
                except Exception as exc:
                    error = map_exception(exc, None, deployment.model)
                    handler_failed(model_name, deployment.id, error)
                    if not retries.is_retryable(error):
                        raise error from exc
        assert error is not None
        raise error

    async def _call(
        self, deployment: Deployment, model_name: str, params: dict[str, Any], call: Call, user: str | None
    ) -> Any:
        kwargs = {**deployment.params, **params}
        kwargs["source"] = "proxy"
        # metadata["user"] is the name of the caller's key (the log's user column); a "user" field in
        # the request body is the OpenAI parameter, in params, for the handler.
        kwargs["metadata"] = {"model_name": model_name, "deployment": deployment.id}
        if user is not None:
            kwargs["metadata"]["user"] = user
        timeout = deployment.timeout or self.timeout
        if timeout is not None:
            kwargs["timeout"] = timeout
        deployment.in_flight += 1
        try:
            return await call(deployment, kwargs)
        finally:
            deployment.in_flight -= 1


class RoutedStream:
    """A chat stream that went through the router; ``aclose()`` stops the handler and frees its slot."""

    def __init__(self, stream: Any, first: Any, deployment: Deployment) -> None:
        self._stream = stream
        self._first = first
        self._deployment = deployment
        self._closed = False

    @property
    def model_name(self) -> str:
        return self._deployment.model_name

    @property
    def deployment_id(self) -> str:
        return self._deployment.id

    async def __aiter__(self) -> AsyncIterator[Any]:
        first, self._first = self._first, None  # held no longer than it takes to send it
        if first is not None:
            yield first
            del first
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._deployment.in_flight -= 1
            await self._stream.aclose()
