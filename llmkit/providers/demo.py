"""The offline demo provider: realistic answers with no key and no network.

============  =====================================================================================
demo/echo     answers with the last user message (streamed a word at a time)
demo/lorem    fluent filler text, ``max_tokens`` words (default 48), paced at ``tokens_per_second``
              (default 40; 0 means as fast as possible), with usage; ``fail_after=N`` breaks the
              stream after N words with ``status_code`` (default 500), to show mid-stream errors
demo/image    a small PNG drawn from the prompt (``size`` "WxH", default 64x64; ``n`` images), as
              b64_json, or as a data URL with ``response_format="url"``
demo/embed    deterministic unit vectors (``dimensions``, default 16) for strings or lists of them
demo/fail     raises CustomLLMError with ``status_code`` (default 500) and ``message``
============  =====================================================================================

It is an ordinary CustomLLM subclass, registered through the same registry as a user's handler.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import math
import random
import struct
import time
import zlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

from llmkit.errors import CustomLLMError
from llmkit.messages import last_user_text
from llmkit.providers.base import CustomLLM
from llmkit.streaming import text_chunks
from llmkit.tokens import count_message_tokens, count_tokens
from llmkit.types.utils import (
    Choices,
    Embedding,
    EmbeddingResponse,
    GenericStreamingChunk,
    ImageObject,
    ImageResponse,
    Message,
    ModelResponse,
    Usage,
)

__all__ = ["DemoLLM"]

CHAT_MODELS = ("echo", "lorem", "fail")
MODELS = (*CHAT_MODELS, "image", "embed")

_WORDS = (
    "the model answers every prompt with calm and measured prose while the notebook records latency "
    "tokens and cost so that custom endpoints can be compared side by side across many runs and the "
    "best one chosen with evidence rather than intuition streaming keeps the reader engaged as each "
    "word arrives from the server in order"
).split()


class DemoLLM(CustomLLM):
    # What the notebook's model pickers offer; image models switch the surfaces to image mode.
    models = ("echo", "lorem")
    image_models = ("image",)
    embedding_models = ("embed",)  # llmkit.check asks these for embeddings, not the chat models

    # -- chat -----------------------------------------------------------------------------------
    def completion(self, model: str, messages: list, optional_params: dict, **_: Any) -> ModelResponse:
        plan = _plan(model, messages, optional_params)
        if plan.total_delay:  # sleep(0) is still a system call and a GIL hand-off
            time.sleep(plan.total_delay)
        return plan.response()

    async def acompletion(self, model: str, messages: list, optional_params: dict, **_: Any) -> ModelResponse:
        plan = _plan(model, messages, optional_params)
        if plan.total_delay:
            await asyncio.sleep(plan.total_delay)
        return plan.response()

    def streaming(self, model: str, messages: list, optional_params: dict, **_: Any) -> Iterator[GenericStreamingChunk]:
        plan = _plan(model, messages, optional_params)
        for chunk in plan.chunks():
            if plan.delay:
                time.sleep(plan.delay)
            yield chunk

    async def astreaming(
        self, model: str, messages: list, optional_params: dict, **_: Any
    ) -> AsyncIterator[GenericStreamingChunk]:
        plan = _plan(model, messages, optional_params)
        for chunk in plan.chunks():
            if plan.delay:
                await asyncio.sleep(plan.delay)
            yield chunk

    # -- images ---------------------------------------------------------------------------------
    def image_generation(self, model: str, prompt: str, optional_params: dict, **_: Any) -> ImageResponse:
        return _images(model, prompt, optional_params)

    async def aimage_generation(self, model: str, prompt: str, optional_params: dict, **_: Any) -> ImageResponse:
        return _images(model, prompt, optional_params)

    # -- embeddings -----------------------------------------------------------------------------
    def embedding(self, model: str, input: Any, optional_params: dict, **_: Any) -> EmbeddingResponse:
        return _embeddings(model, input, optional_params)

    async def aembedding(self, model: str, input: Any, optional_params: dict, **_: Any) -> EmbeddingResponse:
        return _embeddings(model, input, optional_params)


def _unknown(model: str, kind: str, valid: tuple[str, ...]) -> CustomLLMError:
    names = ", ".join(f"demo/{name}" for name in valid)
    return CustomLLMError(404, f"the demo provider has no {kind} model {model!r}; try {names}")


class _Plan:
    """What a demo chat call will answer, and how fast; shared by the four chat methods."""

    def __init__(self, model: str, text: str, usage: dict[str, int], delay: float, fail_after: int | None, status: int):
        self.model = model
        self.text = text
        self.usage = usage
        self.delay = delay
        self.fail_after = fail_after
        self.status = status

    @property
    def total_delay(self) -> float:
        return self.delay * self.usage["completion_tokens"]

    def response(self) -> ModelResponse:
        if self.fail_after is not None:
            raise CustomLLMError(self.status, f"demo/{self.model} failed after {self.fail_after} words, as asked")
        return ModelResponse(
            model=self.model,
            choices=[Choices(message=Message(content=self.text), finish_reason="stop")],
            usage=Usage(**self.usage),
        )

    def chunks(self) -> Iterator[GenericStreamingChunk]:
        for i, chunk in enumerate(text_chunks(self.text, usage=self.usage)):
            if self.fail_after is not None and i >= self.fail_after:
                raise CustomLLMError(self.status, f"demo/{self.model} broke its stream after {i} words, as asked")
            yield chunk


def _plan(model: str, messages: list, params: dict) -> _Plan:
    if model not in CHAT_MODELS:
        raise _unknown(model, "chat", CHAT_MODELS)
    status = int(params.get("status_code", 500))
    if model == "fail":
        raise CustomLLMError(status, str(params.get("message", "demo/fail failed, as it always does")))
    if model == "echo":
        text = last_user_text(messages)
        delay = 0.0
    else:
        seed = params.get("seed", last_user_text(messages))
        text = _lorem(int(params.get("max_tokens") or 48), seed)
        tokens_per_second = float(params.get("tokens_per_second", 40) or 0)
        delay = 1 / tokens_per_second if tokens_per_second > 0 else 0.0
    prompt_tokens = count_message_tokens(messages)
    completion_tokens = len(text.split()) if model == "lorem" else count_tokens(text)
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    fail_after = params.get("fail_after")
    return _Plan(model, text, usage, delay, None if fail_after is None else int(fail_after), status)


def _lorem(words: int, seed: Any) -> str:
    rng = random.Random(str(seed))
    out, sentence = [], []
    for _ in range(words):
        sentence.append(rng.choice(_WORDS))
        if len(sentence) >= rng.randint(6, 12):
            out.append(" ".join(sentence).capitalize() + ".")
            sentence = []
    if sentence:
        out.append(" ".join(sentence).capitalize() + ".")
    return " ".join(out)


# -- images -------------------------------------------------------------------------------------
def _images(model: str, prompt: str, params: dict) -> ImageResponse:
    if model != "image":
        raise _unknown(model, "image", ("image",))
    width, height = _size(params.get("size") or "64x64")
    count = int(params.get("n") or 1)
    images = []
    for index in range(count):
        png = _draw_png(width, height, f"{prompt}#{index}")
        encoded = base64.b64encode(png).decode("ascii")
        if params.get("response_format") == "url":
            image = ImageObject(url=f"data:image/png;base64,{encoded}")
        else:
            image = ImageObject(b64_json=encoded)
        image.revised_prompt = f"{prompt} (demo rendering {index + 1} of {count})"
        images.append(image)
    return ImageResponse(created=int(time.time()), data=images)


def _size(size: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in str(size).lower().split("x"))
    except ValueError:
        raise CustomLLMError(400, f"size must look like '64x64', got {size!r}") from None
    if not (1 <= width <= 1024 and 1 <= height <= 1024):
        raise CustomLLMError(400, f"demo images are at most 1024x1024, got {size!r}")
    return width, height


def _draw_png(width: int, height: int, seed: str) -> bytes:
    """A gradient with a disc, colours taken from the seed; encoded with zlib, no imaging library."""
    digest = hashlib.sha256(seed.encode("utf-8")).digest()
    base, accent = digest[0:3], digest[3:6]
    cx, cy, radius = width * (0.3 + digest[6] / 640), height * (0.3 + digest[7] / 640), min(width, height) / 3
    rows = []
    for y in range(height):
        row = bytearray(b"\x00")  # filter type 0 for each scanline
        for x in range(width):
            if (x - cx) ** 2 + (y - cy) ** 2 <= radius**2:
                row += bytes(accent)
            else:
                shade = (x + y) / (width + height)
                row += bytes(int(c * (0.4 + 0.6 * shade)) for c in base)
        rows.append(bytes(row))
    raw = b"".join(rows)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


# -- embeddings ---------------------------------------------------------------------------------
def _embeddings(model: str, input: Any, params: dict) -> EmbeddingResponse:
    if model != "embed":
        raise _unknown(model, "embedding", ("embed",))
    texts = [input] if isinstance(input, str) else list(input)
    dimensions = int(params.get("dimensions") or 16)
    data = [Embedding(index=i, embedding=_vector(str(text), dimensions)) for i, text in enumerate(texts)]
    tokens = sum(count_tokens(str(text)) for text in texts)
    return EmbeddingResponse(model=model, data=data, usage=Usage(prompt_tokens=tokens, total_tokens=tokens))


def _vector(text: str, dimensions: int) -> list[float]:
    rng = random.Random(hashlib.sha256(text.encode("utf-8")).digest())
    vector = [rng.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]
