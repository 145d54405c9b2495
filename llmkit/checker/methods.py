"""One row per handler method: call it as llmkit would, with the model for its kind, and judge the result."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

from llmkit.checker import shapes
from llmkit.checker.probe import Probe, aio, collect_async
from llmkit.checker.report import FAIL, SKIP, CheckRow
from llmkit.types.utils import EmbeddingResponse, ImageResponse, ModelResponse

__all__ = ["MethodRows"]

_MODEL_OPTION = {"image": "image_model", "embedding": "embedding_model"}


class MethodRows:
    """The rows for the eight handler methods, and what each produced (``answers``) for later rows."""

    def __init__(self, probe: Probe) -> None:
        self.probe = probe
        self.rows: list[CheckRow] = []
        self.answers: dict[str, shapes.Answer] = {}

    def run(self, messages: list, prompt: str, inputs: list) -> None:
        chat = {"messages": messages, "model_response": ModelResponse()}
        self._pair("completion", "acompletion", "chat", shapes.whole, chat)
        streamed = functools.partial(shapes.stream, model=self.probe.models["chat"])
        self._pair("streaming", "astreaming", "chat", streamed, chat)
        image = {"prompt": prompt, "model_response": ImageResponse()}
        self._pair("image_generation", "aimage_generation", "image", shapes.images, image)
        embedded = functools.partial(shapes.embeddings, inputs=inputs)
        embed = {"input": inputs, "model_response": EmbeddingResponse()}
        self._pair("embedding", "aembedding", "embedding", embedded, embed)

    def _pair(self, sync: str, async_: str, kind: str, validate: Callable[..., Any], fields: dict[str, Any]) -> None:
        model = self.probe.models[kind]
        for method in (sync, async_):
            if not self.probe.implements(method):
                self.rows.append(CheckRow(method, SKIP, f"not implemented; {self._served(method, sync, async_)}"))
            elif model is None:
                option = _MODEL_OPTION.get(kind, "model")
                detail = f"the handler lists no {kind} models; pass {option}= to check {method}() with one"
                self.rows.append(CheckRow(method, SKIP, detail))
            else:
                self._row(method, sync, kind, model, validate, fields)

    def _row(self, method: str, sync: str, kind: str, model: str, validate: Any, fields: dict[str, Any]) -> None:
        kwargs = self.probe.kwargs(model=model, stream=sync == "streaming", **fields)
        started = time.perf_counter()
        try:
            if method == sync:
                status, detail, answer = validate(self.probe.call(method, **kwargs), method)
            else:
                status, detail, answer = aio().run_sync(self._acall_validated(method, kwargs, validate))
        except Exception as exc:  # the handler failed: report it, keep checking the rest
            status, detail, answer = FAIL, shapes.describe_error(exc), shapes.Answer(error=exc)
            if kind != "chat" and model == self.probe.models["chat"]:
                detail += f" (if its {kind} models have other names, pass {_MODEL_OPTION[kind]}=)"
        seconds = time.perf_counter() - started
        self.rows.append(CheckRow(method, status, f"{detail} ({seconds * 1000:.0f} ms)"))
        self.answers[method] = answer

    async def _acall_validated(
        self, method: str, kwargs: dict[str, Any], validate: Callable[[Any, str], shapes.Verdict]
    ) -> shapes.Verdict:
        result = await self.probe.acall(method, **kwargs)
        if method == "astreaming":
            return validate(await collect_async(result, self.probe.timeout), method)
        return validate(result, method)

    def _served(self, method: str, sync: str, async_: str) -> str:
        """What a call that needs ``method`` gets from llmkit all the same."""
        other = async_ if method == sync else sync
        if self.probe.implements(other):
            return f"llmkit serves it from {other}()"
        if sync == "streaming":
            whole = next((m for m in ("completion", "acompletion") if self.probe.implements(m)), None)
            if whole is not None:
                return f"stream=True works all the same: llmkit streams {whole}()'s whole answer as one chunk"
        return "calls that need it get NotFoundError (404) naming the method"
