"""Whether what a handler method returned keeps the contract, as ``(status, detail, Answer)``.

ModelResponse / ImageResponse / EmbeddingResponse shapes, and stream chunks that are
GenericStreamingChunk dicts (or OpenAI chunks) ending in one with a finish_reason. Pure functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from llmkit.checker.report import FAIL, PASS, WARN
from llmkit.streaming import ChunkConverter
from llmkit.types.utils import EmbeddingResponse, ImageResponse, ModelResponse, ModelResponseStream

if TYPE_CHECKING:
    from pydantic import BaseModel

__all__ = ["Answer", "describe_error", "embeddings", "images", "stream", "text_of", "whole"]

Verdict = tuple[str, str, "Answer"]


@dataclass
class Answer:
    """What one path produced, for the rows that compare paths."""

    text: str | None = None
    usage: bool = False
    error: BaseException | None = None


def whole(result: Any, method: str) -> Verdict:
    response, problem = _as_model(result, ModelResponse, method)
    if problem:
        return FAIL, problem, Answer()
    if not response.choices:
        return FAIL, "the ModelResponse has no choices", Answer()
    choice = response.choices[0]
    text = choice.message.content
    if text is None and not choice.message.tool_calls:
        return FAIL, "choices[0].message has neither content nor tool_calls", Answer()
    usage = bool(response.usage and response.usage.total_tokens)
    detail = (
        f"ModelResponse, {len(text or '')} chars, finish_reason={choice.finish_reason!r},"
        f" usage {'yes' if usage else 'no'}"
    )
    return (PASS if choice.finish_reason else WARN), detail, Answer(text=text, usage=usage)


def stream(result: Any, method: str, model: str | None) -> Verdict:
    note = ""
    if isinstance(result, dict):
        note = "; returned one dict, not an iterator: llmkit accepts it, but nothing streams"
        chunks = [result]
    elif method == "streaming":
        if not hasattr(result, "__iter__") or isinstance(result, (str, bytes)):
            return (
                FAIL,
                f"returned {type(result).__name__}; return an iterator of GenericStreamingChunk dicts",
                Answer(),
            )
        chunks = list(result)
    else:
        chunks = result
    if not chunks:
        return FAIL, "the stream yielded no chunks", Answer()
    for i, chunk in enumerate(chunks):
        problem = _chunk_problem(chunk)
        if problem:
            return FAIL, f"chunk {i}: {problem}", Answer()
    finish = _final_finish_reason(chunks)
    converter = ChunkConverter(model)
    for chunk in chunks:
        converter.convert(chunk)
    usage = any(_chunk_usage(chunk) for chunk in chunks)
    text = converter.answer.text
    detail = f"{len(chunks)} chunks, {len(text)} chars, usage {'yes' if usage else 'no'}"
    if not finish:
        fix = "; the last chunk has no finish_reason (set is_finished=True, finish_reason='stop')"
        return FAIL, detail + fix, Answer(text, usage)
    detail += f", last chunk finish_reason={finish!r}"
    return (WARN if note else PASS), detail + note, Answer(text, usage)


def images(result: Any, method: str) -> Verdict:
    response, problem = _as_model(result, ImageResponse, method)
    if problem:
        return FAIL, problem, Answer()
    if not response.data:
        return FAIL, "ImageResponse.data is empty", Answer()
    bad = [i for i, image in enumerate(response.data) if not (image.url or image.b64_json)]
    if bad:
        return FAIL, f"image {bad[0]} has neither url nor b64_json", Answer()
    kinds = sorted({"url" if image.url else "b64_json" for image in response.data})
    detail = f"ImageResponse, {len(response.data)} image(s) as {'/'.join(kinds)}"
    return PASS, detail, Answer(text=str(len(response.data)))


def embeddings(result: Any, method: str, inputs: list) -> Verdict:
    response, problem = _as_model(result, EmbeddingResponse, method)
    if problem:
        return FAIL, problem, Answer()
    if len(response.data) != len(inputs):
        return FAIL, f"{len(response.data)} embeddings for {len(inputs)} inputs", Answer()
    sizes = {len(item.embedding) for item in response.data}
    if 0 in sizes or len(sizes) != 1:
        return FAIL, f"embeddings of uneven or zero length: {sorted(sizes)}", Answer()
    usage = bool(response.usage and response.usage.total_tokens)
    detail = f"EmbeddingResponse, {len(response.data)} vectors of {sizes.pop()}, usage {'yes' if usage else 'no'}"
    return PASS, detail, Answer(text=repr([item.embedding for item in response.data]), usage=usage)


def text_of(result: Any) -> str | None:
    response = result if isinstance(result, ModelResponse) else ModelResponse.model_validate(result)
    return response.choices[0].message.content if response.choices else None


def describe_error(exc: BaseException) -> str:
    status = getattr(exc, "status_code", None)
    message = getattr(exc, "message", None) or str(exc)
    if isinstance(status, int):
        return f"raised {type(exc).__name__}({status}): {message}"[:300]
    return (
        f"raised {type(exc).__name__}: {message} — without a status code;"
        " raise CustomLLMError(status_code, message) so callers get a typed error"
    )[:400]


def _as_model(result: Any, cls: type[BaseModel], method: str) -> tuple[Any, str | None]:
    if isinstance(result, cls):
        return result, None
    if isinstance(result, dict):
        try:
            return cls.model_validate(result), None
        except Exception as exc:
            return None, f"returned a dict that is not a {cls.__name__}: {exc}"
    return None, f"{method}() returned {type(result).__name__}; return a {cls.__name__}"


def _chunk_problem(chunk: Any) -> str | None:
    if isinstance(chunk, ModelResponseStream):
        return None
    if not isinstance(chunk, dict):
        return f"is a {type(chunk).__name__}; yield GenericStreamingChunk dicts"
    if "choices" in chunk:  # an OpenAI chat.completion.chunk: llmkit passes it through
        try:
            ModelResponseStream.model_validate(chunk)
        except Exception as exc:
            return f"an OpenAI-style chunk that does not validate: {exc}"
        return None
    missing = [key for key in ("text", "is_finished", "finish_reason") if key not in chunk]
    if missing:
        return (
            f"GenericStreamingChunk lacks {', '.join(missing)} (LiteLLM needs text, is_finished, finish_reason, usage)"
        )
    if not isinstance(chunk["text"], str):
        return f"text is {type(chunk['text']).__name__}, not str"
    if not isinstance(chunk["is_finished"], bool):
        return f"is_finished is {type(chunk['is_finished']).__name__}, not bool"
    return None


def _final_finish_reason(chunks: list) -> Any:
    """The finish_reason the stream ended with, as the handler wrote it (an OpenAI stream may end with
    a usage-only chunk)."""
    for chunk in reversed(chunks):
        raw = chunk.model_dump() if isinstance(chunk, ModelResponseStream) else chunk
        if "choices" not in raw:
            return raw.get("finish_reason") if raw.get("is_finished") else None
        if raw["choices"]:
            return raw["choices"][0].get("finish_reason")
    return None


def _chunk_usage(chunk: Any) -> bool:
    usage = chunk.usage if isinstance(chunk, ModelResponseStream) else chunk.get("usage")
    return bool(usage)
