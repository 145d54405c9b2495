"""The public face: exported names, LiteLLM import paths, and a light import."""

import json
import os
import subprocess
import sys

import llmkit

EXPECTED = {
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
    "completion",
    "configure_cache",
    "custom_provider_map",
    "embedding",
    "get_llm_provider",
    "image_generation",
    "provider_names",
    "register_provider",
    "stream_chunk_builder",
    "unregister_provider",
}


def test_all_is_sorted_and_holds_the_public_names():
    assert llmkit.__all__ == sorted(llmkit.__all__)
    assert EXPECTED <= set(llmkit.__all__)
    for name in llmkit.__all__:
        assert hasattr(llmkit, name), name


def test_litellm_compatible_import_paths():
    from llmkit.llms.base import BaseLLM
    from llmkit.llms.custom_llm import CustomLLM, CustomLLMError
    from llmkit.types.utils import (  # noqa: F401
        Choices,
        Delta,
        EmbeddingResponse,
        GenericStreamingChunk,
        ImageObject,
        ImageResponse,
        Message,
        ModelResponse,
        ModelResponseStream,
        StreamingChoices,
        Usage,
    )

    assert CustomLLM is llmkit.CustomLLM and CustomLLMError is llmkit.CustomLLMError
    assert issubclass(CustomLLM, BaseLLM) and ModelResponse is llmkit.ModelResponse


def test_import_llmkit_loads_no_heavy_dependencies():
    heavy = ["pandas", "IPython", "ipywidgets", "starlette", "uvicorn", "fastapi", "granian", "httpx", "asyncio"]
    code = f"import sys, json, llmkit; print(json.dumps([m for m in {heavy!r} if m in sys.modules]))"
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert loaded == []


def test_the_cli_tour_runs_offline(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "llmkit.cli", "demo", "--fast"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "TMPDIR": str(tmp_path)},  # where it writes its image, not the machine's /tmp
    )
    assert "HELLO!!!" in result.stdout
    assert "RateLimitError (429): slow down" in result.stdout
    assert "unknown provider 'nowhere'" in result.stdout
    assert "bytes of PNG" in result.stdout and (tmp_path / "llmkit-demo.png").read_bytes().startswith(b"\x89PNG")
    assert "demo/fail        chat   error" in result.stdout and "RateLimitError" in result.stdout.split("call log")[-1]
