"""The offline demo provider: realistic answers without a key or a network."""

import asyncio
import base64
import math
import struct
import time
import zlib

import pytest

import llmkit


def ask(text):
    return [{"role": "user", "content": text}]


def test_echo_answers_with_the_last_user_message_and_reports_usage():
    messages = [
        {"role": "system", "content": "sys"},
        *ask("first"),
        {"role": "assistant", "content": "a"},
        *ask("second"),
    ]
    response = llmkit.completion(model="demo/echo", messages=messages)
    assert response.choices[0].message.content == "second"
    assert response.usage.completion_tokens >= 1 and response.usage.prompt_tokens > 0


def test_lorem_is_deterministic_per_prompt_and_sized_by_max_tokens():
    first = llmkit.completion(model="demo/lorem", messages=ask("x"), max_tokens=25, tokens_per_second=0)
    again = llmkit.completion(model="demo/lorem", messages=ask("x"), max_tokens=25, tokens_per_second=0)
    other = llmkit.completion(model="demo/lorem", messages=ask("y"), max_tokens=25, tokens_per_second=0)
    assert first.choices[0].message.content == again.choices[0].message.content != other.choices[0].message.content
    assert len(first.choices[0].message.content.split()) == 25 == first.usage.completion_tokens


def test_lorem_streams_at_the_requested_pace():
    started = time.perf_counter()
    chunks = list(
        llmkit.completion(model="demo/lorem", messages=ask("x"), stream=True, max_tokens=10, tokens_per_second=100)
    )
    assert time.perf_counter() - started >= 10 / 100 * 0.9
    assert len(chunks) == 11


def test_lorem_can_break_its_stream_midway_with_a_status():
    received = []
    with pytest.raises(llmkit.ServiceUnavailableError, match="after 3 words"):
        for item in llmkit.completion(
            model="demo/lorem", messages=ask("x"), stream=True, tokens_per_second=0, fail_after=3, status_code=503
        ):
            received.append(item)
    assert len(received) == 3


def test_fail_raises_the_status_it_is_given():
    with pytest.raises(llmkit.RateLimitError, match="slow down"):
        asyncio.run(llmkit.acompletion(model="demo/fail", messages=ask("x"), status_code=429, message="slow down"))


def _png_size(data: bytes):
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_image_returns_valid_pngs_of_the_requested_size():
    response = llmkit.image_generation(model="demo/image", prompt="an otter", size="40x30", n=2)
    assert len(response.data) == 2
    pngs = [base64.b64decode(item.b64_json) for item in response.data]
    assert [_png_size(png) for png in pngs] == [(40, 30), (40, 30)]
    idat = pngs[0][pngs[0].index(b"IDAT") + 4 : pngs[0].index(b"IEND") - 8]
    assert len(zlib.decompress(idat)) == 30 * (1 + 40 * 3)  # every scanline: filter byte + RGB
    assert pngs[0] != pngs[1] and "an otter" in response.data[0].revised_prompt


def test_image_as_a_data_url_and_bad_sizes():
    url = asyncio.run(llmkit.aimage_generation(model="demo/image", prompt="p", response_format="url")).data[0].url
    assert url.startswith("data:image/png;base64,")
    with pytest.raises(llmkit.BadRequestError, match="size must look like"):
        llmkit.image_generation(model="demo/image", prompt="p", size="big")


def test_embed_gives_deterministic_unit_vectors():
    response = llmkit.embedding(model="demo/embed", input=["a", "b", "a"], dimensions=8)
    vectors = [item.embedding for item in response.data]
    assert vectors[0] == vectors[2] != vectors[1]
    assert all(len(v) == 8 and math.isclose(sum(x * x for x in v), 1.0) for v in vectors)
    assert [item.index for item in response.data] == [0, 1, 2]


def test_unknown_demo_models_list_the_real_ones():
    with pytest.raises(llmkit.NotFoundError, match="demo/echo, demo/lorem"):
        llmkit.completion(model="demo/gpt-9", messages=ask("x"))
