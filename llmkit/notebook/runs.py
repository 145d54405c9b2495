"""One model's answer as it arrives, with its timings, and the async calls that fill it in.

Shared by the ``%%llm`` magic and the widgets: each :class:`ModelRun` is written by one coroutine
(``stream_chat``, ``complete_chat`` or ``generate_images``) and read by whatever renders it. Every call
goes through the public dispatcher with the surface's ``source``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import llmkit
from llmkit import ImageResponse
from llmkit.cache.settings import outcomes
from llmkit.notebook.aliases import resolve
from llmkit.providers.invoke import implements
from llmkit.providers.registry import get_handler
from llmkit.tokens import count_tokens

__all__ = ["ModelRun", "complete_chat", "generate_images", "is_image_model", "stream_chat"]

_CHAT_METHODS = ("completion", "acompletion", "streaming", "astreaming")
_IMAGE_METHODS = ("image_generation", "aimage_generation")


class ModelRun:
    """The state of one model's call: text so far, status, timings, and the final response or error."""

    def __init__(self, model: str) -> None:
        self.model = model  # as the user wrote it (maybe an alias)
        self.target = resolve(model)  # the "provider/model" string the dispatcher gets
        self.parts: list[str] = []
        self.status = "pending"  # pending -> running -> done | error | cancelled
        self.error: BaseException | None = None
        self.images: ImageResponse | None = None  # set by generate_images
        self._response: Any = None
        self._build_response: Callable[[], Any] | None = None
        self.started: float | None = None
        self.first_token: float | None = None
        self.ended: float | None = None
        self.usage_tokens: int | None = None
        self.cache_hit = False  # answered by the response cache: its timings are not the model's
        self._outcomes: list[str] = []

    @property
    def response(self) -> Any:
        """The ModelResponse (or ImageResponse) once finished; a stream's is built on first use."""
        if self.images is not None:
            return self.images
        if self._response is None and self._build_response is not None:
            self._response, self._build_response = self._build_response(), None
        return self._response

    @response.setter
    def response(self, value: Any) -> None:
        self._response = value

    @property
    def text(self) -> str:
        return "".join(self.parts)

    @property
    def finished(self) -> bool:
        return self.status in ("done", "error", "cancelled")

    @property
    def latency(self) -> float | None:
        """Seconds from the call to its end (or to now, while it runs)."""
        if self.started is None:
            return None
        return (self.ended or time.perf_counter()) - self.started

    @property
    def ttft(self) -> float | None:
        """Seconds to the first token."""
        if self.started is None or self.first_token is None:
            return None
        return self.first_token - self.started

    @property
    def tokens(self) -> int:
        """Completion tokens: the handler's usage when it reported one, else the chunks seen so far."""
        return self.usage_tokens if self.usage_tokens is not None else len(self.parts)

    @property
    def tokens_per_second(self) -> float | None:
        """Completion tokens per second of generation (after the first token)."""
        if self.first_token is None or not self.tokens:
            return None
        span = (self.ended or time.perf_counter()) - self.first_token
        return self.tokens / span if span > 0 else None

    def figures(self) -> dict[str, Any]:
        """The per-run numbers the footer, the widget panes and the DataFrame show."""
        return {
            "status": self.status,
            "latency_s": self.latency,
            "ttft_s": self.ttft,
            "tokens": self.tokens,
            "tokens_per_second": self.tokens_per_second,
            "error": None if self.error is None else str(self.error),
        }

    # -- written by the call coroutines --------------------------------------------------------
    def start(self) -> None:
        self.status = "running"
        self.started = time.perf_counter()
        outcomes.set(self._outcomes)  # each call runs in a task of its own: this is its context only

    def add(self, text: str) -> None:
        if self.first_token is None:
            self.first_token = time.perf_counter()
        self.parts.append(text)

    def end(self, status: str, error: BaseException | None = None) -> None:
        self.ended = time.perf_counter()
        self.cache_hit = "hits" in self._outcomes
        self.status = status
        self.error = error


def is_image_model(model: str) -> bool:
    """Whether ``model`` only generates images: its handler lists it in ``image_models``, or the
    handler implements image generation and no chat method at all."""
    target = resolve(model)
    provider, _, name = target.partition("/")
    try:
        handler = get_handler(provider)
    except llmkit.APIError:
        return False
    if name in getattr(handler, "image_models", ()):
        return True
    can_draw = any(implements(handler, method) for method in _IMAGE_METHODS)
    return can_draw and not any(implements(handler, method) for method in _CHAT_METHODS)


async def stream_chat(run: ModelRun, messages: list, params: dict, source: str) -> None:
    """Stream ``run``'s answer into it; errors and cancellation end up in ``run.status``."""
    run.start()
    stream = None
    try:
        stream = await llmkit.acompletion(run.target, messages, stream=True, source=source, **params)
        stream.replay_limit = 0  # the run keeps the text; the whole answer comes from the converter
        async for chunk in stream:
            if chunk.choices:
                content = chunk.choices[0].delta.content
                if content:
                    run.add(content)
        run.usage_tokens = stream.converter.final_usage().completion_tokens  # the handler's, or an estimate
        run._build_response = lambda: _whole_response(stream, messages)  # few callers need it: build on demand
        run.end("done")
    except asyncio.CancelledError:
        if stream is not None and stream.chunk_count:  # keep what arrived, for -o
            run._build_response = lambda: _whole_response(stream, messages)
        run.end("cancelled")
        raise
    except Exception as exc:
        run.end("error", exc)
    finally:
        if stream is not None and run.status != "done":
            await stream.aclose()  # stops the handler's generator


def _whole_response(stream: Any, messages: list) -> Any:
    return stream.converter.response(messages)  # the answer so far, with the usage the log has


async def complete_chat(run: ModelRun, messages: list, params: dict, source: str) -> None:
    """Ask for the whole answer at once (``--no-stream``)."""
    run.start()
    try:
        response = await llmkit.acompletion(run.target, messages, source=source, **params)
    except asyncio.CancelledError:
        run.end("cancelled")
        raise
    except Exception as exc:
        run.end("error", exc)
        return
    content = response.choices[0].message.content if response.choices else None
    run.add(content or "")
    reported = response.usage.completion_tokens if response.usage is not None else 0
    run.usage_tokens = reported or count_tokens(content or "")  # an estimate when the handler gave none
    run.response = response
    run.end("done")


async def generate_images(run: ModelRun, prompt: str, params: dict, source: str) -> None:
    """Generate images for ``prompt``; the ImageResponse lands in ``run.response``."""
    run.start()
    try:
        response = await llmkit.aimage_generation(prompt, run.target, source=source, **params)
    except asyncio.CancelledError:
        run.end("cancelled")
        raise
    except Exception as exc:
        run.end("error", exc)
        return
    run.first_token = time.perf_counter()
    run.images = response
    run.usage_tokens = 0
    run.end("done")
