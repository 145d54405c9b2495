"""Every code block of the seed guide runs with only ``litellm`` replaced by ``llmkit``."""

import asyncio
import re
import sys
from pathlib import Path

import pytest

import llmkit

SEED = Path(__file__).parent / "data" / "seed_guide.md"
SHARED_SEED = Path(__file__).resolve().parents[2] / "shared" / "seed" / "000_cc57925e94cbb0db.txt"


def python_blocks() -> list[str]:
    text = SEED.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    return [block.replace("litellm", "llmkit") for block in blocks]


def run_block(index: int, *, future_annotations: bool = False) -> dict:
    flags = __import__("__future__").annotations.compiler_flag if future_annotations else 0
    namespace: dict = {"__name__": f"seed_block_{index}"}
    exec(compile(python_blocks()[index], f"<seed block {index}>", "exec", flags=flags, dont_inherit=True), namespace)
    return namespace


def test_the_vendored_guide_is_the_seed():
    if not SHARED_SEED.exists():
        pytest.skip("shared/seed is not beside this checkout")
    assert SEED.read_text(encoding="utf-8") == SHARED_SEED.read_text(encoding="utf-8")


def test_the_guide_has_the_six_python_blocks():
    assert len(python_blocks()) == 6


def test_quick_start_block_passes_its_assertion():
    namespace = run_block(0)
    assert namespace["resp"].choices[0].message.content == "Hi!"
    # The delegating handler answers with the inner mock's model, as the guide's expected response shows.
    assert namespace["resp"].model == "gpt-3.5-turbo"


def test_proxy_handler_block_serves_sync_and_async_calls():
    handler = run_block(1)["my_custom_llm"]
    llmkit.custom_provider_map = [{"provider": "my-custom-llm", "custom_handler": handler}]
    messages = [{"role": "user", "content": 'Say "this is a test" in JSON!'}]
    sync = llmkit.completion(model="my-custom-llm/my-model", messages=messages)
    asynchronous = asyncio.run(llmkit.acompletion(model="my-custom-llm/my-model", messages=messages))
    for response in (sync, asynchronous):
        body = response.model_dump()
        assert body["object"] == "chat.completion"
        assert body["choices"][0] == {
            "finish_reason": "stop",
            "index": 0,
            "message": {"content": "Hi!", "role": "assistant", "tool_calls": None, "function_call": None},
        }
        assert body["usage"] == {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30}
        assert body["system_fingerprint"] is None and body["id"].startswith("chatcmpl-")


def test_streaming_block_streams_the_unix_time_sync_and_async():
    unixtime = run_block(2)["unixtime"]
    llmkit.custom_provider_map = [{"provider": "unixtime", "custom_handler": unixtime}]

    # The guide's streaming() returns one dict instead of an iterator: a one-chunk stream here.
    chunks = list(llmkit.completion(model="unixtime/now", messages=[{"role": "user", "content": "t"}], stream=True))
    assert re.fullmatch(r"\d{10}", chunks[0].choices[0].delta.content)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert len({chunk.id for chunk in chunks}) == 1

    async def consume():
        stream = await llmkit.acompletion(model="unixtime/now", messages=[], stream=True)
        return [chunk async for chunk in stream]

    achunks = asyncio.run(consume())
    assert re.fullmatch(r"\d{10}", achunks[0].choices[0].delta.content)
    assert achunks[-1].choices[0].finish_reason == "stop"

    # Its completion() calls completion(model="test/unixtime", mock_response=...): mocks need no provider.
    full = llmkit.completion(model="unixtime/now", messages=[])
    assert re.fullmatch(r"\d{10}", full.choices[0].message.content)
    afull = asyncio.run(llmkit.acompletion(model="unixtime/now", messages=[]))
    assert re.fullmatch(r"\d{10}", afull.choices[0].message.content)


def test_image_block_serves_its_narrow_aimage_generation_signature():
    handler = run_block(3)["my_custom_llm"]
    llmkit.custom_provider_map = [{"provider": "my-custom-llm", "custom_handler": handler}]
    # aimage_generation takes no api_key/api_base: only what it accepts is passed (LiteLLM fails here).
    image = asyncio.run(llmkit.aimage_generation(model="my-custom-llm/my-model", prompt="A cute baby sea otter"))
    assert image.model_dump(exclude_none=True)["data"] == [{"url": "https://example.com/image.png"}]
    assert isinstance(image.created, int)
    # The handler only implements the async method; the sync call is served from it.
    sync_image = llmkit.image_generation(model="my-custom-llm/my-model", prompt="A cute baby sea otter")
    assert sync_image.data[0].url == "https://example.com/image.png"


def test_additional_parameters_block_passes_its_assertion_without_messages():
    namespace = run_block(4)
    assert namespace["resp"].choices[0].message.content == "Hi!"


def test_handler_specification_block_behaves_like_the_base_class():
    # The block annotates with HTTPHandler, which it never imports: it only compiles where
    # annotations are not evaluated at definition time (Python 3.14, or this future flag).
    namespace = run_block(5, future_annotations=True)
    assert issubclass(namespace["CustomLLM"], llmkit.llms.base.BaseLLM)
    llmkit.custom_provider_map = [{"provider": "spec", "custom_handler": namespace["CustomLLM"]()}]
    with pytest.raises(llmkit.InternalServerError) as error:
        llmkit.completion(model="spec/m", messages=[])
    # The block's own CustomLLMError class is mapped by its status code like ours.
    assert error.value.status_code == 500 and error.value.message == "Not implemented yet!"
    assert isinstance(error.value.__cause__, namespace["CustomLLMError"])


@pytest.mark.skipif(sys.version_info >= (3, 14), reason="annotations are lazy from 3.14 on")
def test_the_specification_block_needs_lazy_annotations_before_3_14():
    with pytest.raises(NameError, match="HTTPHandler"):
        run_block(5)
