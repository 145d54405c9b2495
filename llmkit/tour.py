"""``llmkit demo``: the registry, streaming, an image and errors, on the offline demo provider."""

from __future__ import annotations

import base64
import os
import tempfile
import time
from typing import Any

import llmkit


def _heading(text: str) -> None:
    print(f"\n== {text}")


def run_tour(fast: bool = False) -> int:
    _heading("providers a model string can name")
    print(", ".join(llmkit.provider_names()))

    _heading("a custom handler, registered the LiteLLM way")

    class Shouty(llmkit.CustomLLM):
        def completion(self, model: str, messages: list, optional_params: dict, **kwargs: Any) -> llmkit.ModelResponse:
            text = messages[-1]["content"].upper() + "!" * int(optional_params.get("excitement", 1))
            return llmkit.ModelResponse(model=model, choices=[{"message": {"content": text}}])

    llmkit.custom_provider_map = [{"provider": "shouty", "custom_handler": Shouty()}]
    response = llmkit.completion(model="shouty/v1", messages=[{"role": "user", "content": "hello"}], excitement=3)
    print(f"shouty/v1 -> {response.choices[0].message.content}   (optional_params reached the handler)")

    _heading("streaming demo/lorem, token by token")
    started = time.perf_counter()
    first = None
    stream = llmkit.completion(
        model="demo/lorem",
        messages=[{"role": "user", "content": "tell me something"}],
        stream=True,
        stream_options={"include_usage": True},
        max_tokens=30,
        tokens_per_second=0 if fast else 60,
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            first = first or time.perf_counter()
            print(chunk.choices[0].delta.content, end="", flush=True)
        if chunk.usage:
            usage = chunk.usage
    elapsed = time.perf_counter() - started
    print(
        f"\n[{stream.chunk_count} chunks, first after {((first or started) - started) * 1000:.0f} ms,"
        f" {elapsed * 1000:.0f} ms in all, usage {usage.prompt_tokens}+{usage.completion_tokens} tokens]"
    )

    _heading("an image from demo/image")
    image = llmkit.image_generation(prompt="a cute baby sea otter", model="demo/image", size="96x64")
    encoded = image.data[0].b64_json
    assert encoded is not None  # demo/image sends the image itself, not a URL
    png = base64.b64decode(encoded)
    path = os.path.join(tempfile.gettempdir(), "llmkit-demo.png")
    with open(path, "wb") as file:
        file.write(png)
    print(f"{len(png)} bytes of PNG written to {path} ({image.data[0].revised_prompt})")

    _heading("errors keep their status code and say what to do")
    attempts: list[dict[str, Any]] = [
        dict(model="demo/fail", status_code=429, message="slow down"),
        dict(model="nowhere/model"),
        dict(model="just-a-name"),
    ]
    for kwargs in attempts:
        try:
            llmkit.completion(messages=[{"role": "user", "content": "hi"}], **kwargs)
        except llmkit.APIError as error:
            print(f"{type(error).__name__} ({error.status_code}): {error.message}")

    _heading("every call above is in the call log (llmkit.calls; to_dataframe() with pandas)")
    for record in llmkit.calls.last(6):
        latency = f"{record['latency_ms']:.1f} ms"
        failure = record["error_type"] or ""
        print(f"{record['model']:<16} {record['kind']:<6} {record['status']:<6} {latency:>9}  {failure}")
    return 0
