"""llmkit: call, stream and compare your own LLM APIs, from Python and from Jupyter.

Register a handler once (``llmkit.custom_provider_map = [{"provider": ..., "custom_handler": ...}]``)
and call it as ``llmkit.completion(model="provider/model", messages=[...])``. The handler contract is
LiteLLM's ``CustomLLM``, so handlers written for LiteLLM run with only their imports changed.
"""

from typing import TYPE_CHECKING, Any

from llmkit.cache import configure_cache
from llmkit.calllog import calls, configure_log, register_model_cost
from llmkit.dispatch import (
    acompletion,
    aembedding,
    aimage_generation,
    completion,
    embedding,
    image_generation,
)
from llmkit.errors import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    BadGatewayError,
    BadRequestError,
    CacheMissError,
    CustomLLMError,
    InternalServerError,
    LLMKitError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServiceUnavailableError,
    Timeout,
    UnprocessableEntityError,
)
from llmkit.params import get_llm_provider
from llmkit.providers.base import CustomLLM
from llmkit.providers.registry import provider_names, register_provider, unregister_provider
from llmkit.streaming import CustomStreamWrapper, stream_chunk_builder
from llmkit.types.utils import (
    EmbeddingResponse,
    GenericStreamingChunk,
    ImageObject,
    ImageResponse,
    ModelResponse,
    ModelResponseStream,
    Usage,
)

if TYPE_CHECKING:  # what the lazily loaded names below are, for type checkers and editors
    from IPython.core.interactiveshell import InteractiveShell

    from llmkit import checks
    from llmkit.batch import compare, side_by_side
    from llmkit.checker import check
    from llmkit.evals.comparator import export_llm_comparator
    from llmkit.prices import load_prices, model_info

__version__ = "0.1.0"

#: Handlers by provider name, the LiteLLM way: assign a new list to change it; read on every call.
custom_provider_map: list = []


def load_ipython_extension(shell: "InteractiveShell") -> None:
    """``%load_ext llmkit``: register the ``%%llm`` and ``%llm`` magics (IPython loads only now)."""
    from llmkit.notebook import load_ipython_extension as load

    load(shell)


def unload_ipython_extension(shell: "InteractiveShell") -> None:
    """``%unload_ext llmkit``: remove the magics again (``%reload_ext llmkit`` loads them afresh)."""
    from llmkit.notebook import unload_ipython_extension as unload

    unload(shell)


# Names whose modules load on first use, so that ``import llmkit`` stays fast.
_LAZY = {
    "check": "llmkit.checker",
    "checks": "llmkit.checks",
    "compare": "llmkit.batch",
    "export_llm_comparator": "llmkit.evals.comparator",
    "load_prices": "llmkit.prices",
    "model_info": "llmkit.prices",
    "side_by_side": "llmkit.batch",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'llmkit' has no attribute {name!r}")
    import importlib

    imported = importlib.import_module(module)
    value = imported if module == f"llmkit.{name}" else getattr(imported, name)
    globals()[name] = value  # later lookups skip this function
    return value


__all__ = [
    "APIConnectionError",
    "APIError",
    "AuthenticationError",
    "BadGatewayError",
    "BadRequestError",
    "CacheMissError",
    "CustomLLM",
    "CustomLLMError",
    "CustomStreamWrapper",
    "EmbeddingResponse",
    "GenericStreamingChunk",
    "ImageObject",
    "ImageResponse",
    "InternalServerError",
    "LLMKitError",
    "ModelResponse",
    "ModelResponseStream",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "ServiceUnavailableError",
    "Timeout",
    "UnprocessableEntityError",
    "Usage",
    "__version__",
    "acompletion",
    "aembedding",
    "aimage_generation",
    "calls",
    "check",
    "checks",
    "compare",
    "completion",
    "configure_cache",
    "configure_log",
    "custom_provider_map",
    "embedding",
    "export_llm_comparator",
    "get_llm_provider",
    "image_generation",
    "load_prices",
    "model_info",
    "provider_names",
    "register_model_cost",
    "register_provider",
    "side_by_side",
    "stream_chunk_builder",
    "unregister_provider",
]
