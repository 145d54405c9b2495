"""Handlers that record how they were called, shared by the tests."""

import llmkit
from llmkit.types.utils import ImageObject, ImageResponse, ModelResponse


class Recorder(llmkit.CustomLLM):
    """Implements every method; remembers the keyword arguments of each call."""

    def __init__(self, text="ok"):
        self.text = text
        self.calls = []

    def _answer(self, method, kwargs):
        self.calls.append((method, kwargs))
        return ModelResponse(model=kwargs["model"], choices=[{"message": {"content": self.text}}])

    def completion(self, *args, **kwargs):
        assert not args, "handlers are called with keyword arguments only"
        return self._answer("completion", kwargs)

    async def acompletion(self, *args, **kwargs):
        assert not args
        return self._answer("acompletion", kwargs)

    def streaming(self, *args, **kwargs):
        self.calls.append(("streaming", kwargs))
        yield {"text": self.text, "is_finished": True, "finish_reason": "stop", "usage": None}

    async def astreaming(self, *args, **kwargs):
        self.calls.append(("astreaming", kwargs))
        yield {"text": self.text, "is_finished": True, "finish_reason": "stop", "usage": None}

    def image_generation(self, *args, **kwargs):
        self.calls.append(("image_generation", kwargs))
        return ImageResponse(data=[ImageObject(url="https://img/1.png")])

    async def aimage_generation(self, *args, **kwargs):
        self.calls.append(("aimage_generation", kwargs))
        return ImageResponse(data=[ImageObject(url="https://img/1.png")])

    def embedding(self, *args, **kwargs):
        self.calls.append(("embedding", kwargs))
        return llmkit.EmbeddingResponse(model=kwargs["model"], data=[{"embedding": [1.0, 0.0], "index": 0}])

    async def aembedding(self, *args, **kwargs):
        self.calls.append(("aembedding", kwargs))
        return llmkit.EmbeddingResponse(model=kwargs["model"], data=[{"embedding": [1.0, 0.0], "index": 0}])


def register(handler, provider="p"):
    llmkit.custom_provider_map = [{"provider": provider, "custom_handler": handler}]
    return handler


def chunk(text="", finished=False, finish_reason=None, usage=None, **extra):
    return {"text": text, "is_finished": finished, "finish_reason": finish_reason, "usage": usage, **extra}
