"""A handler for the response cache tests: every live call gives a new answer and is counted."""

import asyncio
import collections
import threading
import time

import llmkit
from llmkit import CustomLLM, CustomLLMError
from llmkit.types.utils import ImageObject, ImageResponse, ModelResponse

USER = [{"role": "user", "content": "Tell me a story about a lighthouse keeper and her cat"}]


class Counting(CustomLLM):
    """Answers "answer N" (N counts live calls), so an answer from the cache shows as a repeated N.

    ``delay`` seconds per call (per chunk for streams); ``fail`` status codes raised by the first
    calls, one each. ``calls`` counts the calls per method.
    """

    def __init__(self, delay: float = 0.0, fail: list[int] | None = None, words: int = 4) -> None:
        self.delay = delay
        self.fail = list(fail or [])
        self.words = words
        self.calls: collections.Counter = collections.Counter()
        self._lock = threading.Lock()

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    def _next(self, method: str) -> int:
        with self._lock:
            self.calls[method] += 1
            return self.total

    def _check(self) -> None:
        """Fail (after the delay, like a server would) while there are failures left."""
        with self._lock:
            status = self.fail.pop(0) if self.fail else None
        if status is not None:
            raise CustomLLMError(status, "failed, as the test asked")

    def _response(self, model: str, n: int) -> ModelResponse:
        usage = {"prompt_tokens": 11, "completion_tokens": 2, "total_tokens": 13}
        return ModelResponse(model=model, choices=[{"message": {"content": f"answer {n}"}}], usage=usage)

    def _chunks(self, n: int) -> list[dict]:
        words = [f"w{i}.{n} " for i in range(self.words)]
        chunks = [{"text": w, "is_finished": False, "finish_reason": None, "usage": None} for w in words]
        chunks[-1].update(
            is_finished=True, finish_reason="stop", usage={"prompt_tokens": 11, "completion_tokens": self.words}
        )
        return chunks

    def completion(self, model, messages, optional_params, **kwargs):
        n = self._next("completion")
        time.sleep(self.delay)
        self._check()
        return self._response(model, n)

    async def acompletion(self, model, messages, optional_params, **kwargs):
        n = self._next("acompletion")
        await asyncio.sleep(self.delay)
        self._check()
        return self._response(model, n)

    def streaming(self, model, messages, optional_params, **kwargs):
        n = self._next("streaming")
        for chunk in self._chunks(n):
            time.sleep(self.delay)
            self._check()
            yield chunk

    async def astreaming(self, model, messages, optional_params, **kwargs):
        n = self._next("astreaming")
        for chunk in self._chunks(n):
            await asyncio.sleep(self.delay)
            self._check()
            yield chunk

    def image_generation(self, model, prompt, optional_params, **kwargs):
        n = self._next("image_generation")
        return ImageResponse(data=[ImageObject(url=f"https://img/{n}.png")])

    async def aimage_generation(self, model, prompt, optional_params, **kwargs):
        n = self._next("aimage_generation")
        return ImageResponse(data=[ImageObject(url=f"https://img/{n}.png")])

    def embedding(self, model, input, optional_params, **kwargs):
        n = self._next("embedding")
        return llmkit.EmbeddingResponse(model=model, data=[{"embedding": [float(n), 0.5], "index": 0}])

    async def aembedding(self, model, input, optional_params, **kwargs):
        n = self._next("aembedding")
        return llmkit.EmbeddingResponse(model=model, data=[{"embedding": [float(n), 0.5], "index": 0}])


def counting(provider: str = "count", **options) -> Counting:
    handler = Counting(**options)
    llmkit.register_provider(provider, handler)
    return handler


def text(response) -> str:
    return response.choices[0].message.content


def dumps(chunks) -> list[dict]:
    return [chunk.model_dump() for chunk in chunks]
