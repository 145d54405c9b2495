"""The built-in ``litellm/<model>`` provider: LiteLLM's providers behind llmkit's handler contract.

``litellm/anthropic/claude-3-5-haiku-latest`` calls ``litellm.completion(model="anthropic/claude-3-5-haiku-latest",
...)`` with the call's messages, key, base URL, timeout, headers and every optional param as given;
streams, embeddings and images go to LiteLLM's functions of the same names, sync and async. What comes
back is handed to the dispatcher as plain dicts, so callers get llmkit's own types, and every call is
in the call log like any other. LiteLLM's exceptions become llmkit's by their status code.

LiteLLM takes seconds to import, so it is imported on the first ``litellm/`` call and never before;
``LITELLM_LOCAL_MODEL_COST_MAP`` is set (unless the user set it) so that the import reads LiteLLM's
bundled price table instead of fetching one. Retries are llmkit's (``num_retries=``): LiteLLM's own
are turned off, so a failing call is not retried twice over.
"""

from __future__ import annotations

import os
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

from llmkit.errors import APIConnectionError, APIError, BadRequestError, error_class_for_status
from llmkit.providers.base import CustomLLM

__all__ = ["LiteLLMBridge", "import_litellm"]

INSTALL_HINT = "pip install 'llmkit[litellm]'"

_litellm: Any = None
_lock = threading.Lock()


def import_litellm() -> Any:
    """The ``litellm`` module, imported on first use; BadRequestError naming the extra when it is missing."""
    global _litellm
    if _litellm is None:
        with _lock:
            if _litellm is None:
                _litellm = _import()
    return _litellm


def _import() -> Any:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # never fetch the price table at import
    try:
        import litellm
    except ImportError as exc:
        if exc.name != "litellm":
            raise BadRequestError(
                f"LiteLLM is installed but failed to import ({exc}); reinstall it: {INSTALL_HINT}",
                llm_provider="litellm",
            ) from exc
        raise BadRequestError(
            f"litellm/<model> calls go through LiteLLM, which is not installed: {INSTALL_HINT}", llm_provider="litellm"
        ) from None
    litellm.suppress_debug_info = True  # its errors reach the caller as llmkit's; no "Give Feedback" banner
    return litellm


class LiteLLMBridge(CustomLLM):
    """Serves ``litellm/<LiteLLM model string>`` through LiteLLM's own functions.

    Each method returns LiteLLM's answer as a plain dict of its OpenAI shape (``Any`` below), which the
    dispatcher validates into llmkit's types, as it does any handler's dict.
    """

    def completion(self, model: str, messages: list, optional_params: dict, **kwargs: Any) -> Any:
        with _translated(model):
            return _dump(import_litellm().completion(**_chat_args(model, messages, optional_params, kwargs)))

    async def acompletion(self, model: str, messages: list, optional_params: dict, **kwargs: Any) -> Any:
        with _translated(model):
            return _dump(await import_litellm().acompletion(**_chat_args(model, messages, optional_params, kwargs)))

    def streaming(self, model: str, messages: list, optional_params: dict, **kwargs: Any) -> Iterator[Any]:
        # Opened here, so that a refused request fails the call itself rather than its first chunk.
        with _translated(model):
            stream = import_litellm().completion(**_stream_args(model, messages, optional_params, kwargs))
        return _chunks(stream, model)

    # A coroutine returning the stream (opened before the first chunk is asked for), not an async generator.
    async def astreaming(  # type: ignore[override]
        self, model: str, messages: list, optional_params: dict, **kwargs: Any
    ) -> AsyncIterator[Any]:
        with _translated(model):
            stream = await import_litellm().acompletion(**_stream_args(model, messages, optional_params, kwargs))
        return _achunks(stream, model)

    def embedding(self, model: str, input: Any, optional_params: dict, **kwargs: Any) -> Any:
        with _translated(model):
            return _dump(import_litellm().embedding(model=model, input=input, **_common(optional_params, kwargs)))

    async def aembedding(self, model: str, input: Any, optional_params: dict, **kwargs: Any) -> Any:
        with _translated(model):
            return _dump(
                await import_litellm().aembedding(model=model, input=input, **_common(optional_params, kwargs))
            )

    def image_generation(self, model: str, prompt: str, optional_params: dict, **kwargs: Any) -> Any:
        with _translated(model):
            return _dump(
                import_litellm().image_generation(model=model, prompt=prompt, **_common(optional_params, kwargs))
            )

    async def aimage_generation(self, model: str, prompt: str, optional_params: dict, **kwargs: Any) -> Any:
        with _translated(model):
            result = await import_litellm().aimage_generation(
                model=model, prompt=prompt, **_common(optional_params, kwargs)
            )
            return _dump(result)


# -- arguments -------------------------------------------------------------------------------------
def _common(optional_params: dict, kwargs: dict) -> dict:
    """What every LiteLLM function takes: the call's connection settings, then its optional params as given."""
    args: dict[str, Any] = {"max_retries": 0}  # llmkit retries (num_retries=); LiteLLM's client must not too
    for name in ("api_key", "api_base", "timeout"):
        if kwargs.get(name) is not None:
            args[name] = kwargs[name]
    api_version = (kwargs.get("litellm_params") or {}).get("api_version")
    if api_version is not None:
        args["api_version"] = api_version
    if kwargs.get("headers"):
        args["extra_headers"] = kwargs["headers"]
    args.update(optional_params)
    return args


def _chat_args(model: str, messages: list, optional_params: dict, kwargs: dict) -> dict:
    args = _common(optional_params, kwargs)
    args.pop("stream", None)
    args.pop("stream_options", None)  # only valid with stream=True
    return {"model": model, "messages": messages, **args}


def _stream_args(model: str, messages: list, optional_params: dict, kwargs: dict) -> dict:
    args = _common(optional_params, kwargs)
    args["stream"] = True
    args.setdefault("stream_options", {"include_usage": True})  # real token counts for the call log
    return {"model": model, "messages": messages, **args}


def _chunks(stream: Any, model: str) -> Iterator[Any]:
    with _translated(model):
        for chunk in stream:
            yield _dump(chunk)


async def _achunks(stream: Any, model: str) -> AsyncIterator[Any]:
    with _translated(model):
        async for chunk in stream:
            yield _dump(chunk)


def _dump(result: Any) -> Any:
    """A LiteLLM response object as the plain dict of its OpenAI shape."""
    dump = getattr(result, "model_dump", None)
    return dump() if callable(dump) else result


# -- errors ----------------------------------------------------------------------------------------
class _translated:
    """Re-raise LiteLLM's exceptions as llmkit's, by status code, ``from`` the original."""

    def __init__(self, model: str) -> None:
        self.model = model

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is None or not isinstance(exc, Exception) or isinstance(exc, APIError):
            return  # nothing to translate: it goes on as it is
        raise translate(exc, self.model) from exc


def translate(exc: Exception, model: str | None) -> APIError:
    """The llmkit error for one LiteLLM raised: the class its status code maps to, its message kept."""
    message = getattr(exc, "message", None)
    if not isinstance(message, str):
        message = str(exc)
    status = getattr(exc, "status_code", None)
    retry_after = _retry_after(exc)
    if type(exc).__name__ == "APIConnectionError" or not isinstance(status, int) or isinstance(status, bool):
        return APIConnectionError(
            f"{type(exc).__name__}: {message}", llm_provider="litellm", model=model, retry_after=retry_after
        )
    return error_class_for_status(status)(
        message, status_code=status, llm_provider="litellm", model=model, retry_after=retry_after
    )


def _retry_after(exc: Exception) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    value = headers.get("retry-after") if headers is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
