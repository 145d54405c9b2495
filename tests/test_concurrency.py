"""Sync calls inside running loops, and many calls at once from tasks and threads."""

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

from helpers import chunk, register

import llmkit
from llmkit.types.utils import ModelResponse


class AsyncOnlyEcho(llmkit.CustomLLM):
    async def acompletion(self, model, messages, **kwargs):
        await asyncio.sleep(0.001)
        return ModelResponse(model=model, choices=[{"message": {"content": messages[-1]["content"]}}])

    async def astreaming(self, messages, **kwargs):
        for word in messages[-1]["content"].split():
            await asyncio.sleep(0)
            yield chunk(word)


def ask(text):
    return [{"role": "user", "content": text}]


def test_a_sync_call_inside_a_running_event_loop_works():
    register(AsyncOnlyEcho())

    async def notebook_cell():
        # What a Jupyter cell does: a plain sync call while the kernel's loop is running.
        response = llmkit.completion(model="p/m", messages=ask("inside a loop"))
        streamed = [
            c.choices[0].delta.content for c in llmkit.completion(model="p/m", messages=ask("a b"), stream=True)
        ]
        image = llmkit.image_generation(model="demo/image", prompt="otter")
        return response, streamed, image

    response, streamed, image = asyncio.run(notebook_cell())
    assert response.choices[0].message.content == "inside a loop"
    assert streamed == ["a", "b", None]
    assert image.data[0].b64_json


def test_an_async_handler_may_make_sync_calls_that_need_the_bridge():
    class Delegating(llmkit.CustomLLM):
        async def acompletion(self, messages, **kwargs):
            inner = llmkit.completion(model="inner/m", messages=messages)  # sync call from async code
            return ModelResponse(choices=[{"message": {"content": "outer:" + inner.choices[0].message.content}}])

    llmkit.custom_provider_map = [
        {"provider": "outer", "custom_handler": Delegating()},
        {"provider": "inner", "custom_handler": AsyncOnlyEcho()},
    ]
    assert llmkit.completion(model="outer/m", messages=ask("x")).choices[0].message.content == "outer:x"


def test_a_thousand_concurrent_acompletion_calls_never_mix_up_results():
    register(AsyncOnlyEcho())

    async def run():
        return await asyncio.gather(*(llmkit.acompletion(model="p/m", messages=ask(f"n{i}")) for i in range(1000)))

    responses = asyncio.run(run())
    assert [r.choices[0].message.content for r in responses] == [f"n{i}" for i in range(1000)]
    assert len({r.id for r in responses}) == 1000


def test_dozens_of_concurrent_streams_from_tasks_keep_their_own_chunks():
    register(AsyncOnlyEcho())

    async def one(i):
        stream = await llmkit.acompletion(
            model="p/m", messages=ask(" ".join(f"s{i}w{j}" for j in range(20))), stream=True
        )
        return [c async for c in stream]

    async def run():
        return await asyncio.gather(*(one(i) for i in range(48)))

    for i, chunks in enumerate(asyncio.run(run())):
        assert len({c.id for c in chunks}) == 1
        assert [c.choices[0].delta.content for c in chunks[:-1]] == [f"s{i}w{j}" for j in range(20)]


def test_concurrent_sync_calls_and_streams_from_threads():
    register(AsyncOnlyEcho())

    def work(i):
        full = llmkit.completion(model="p/m", messages=ask(f"t{i}")).choices[0].message.content
        streamed = llmkit.completion(model="p/m", messages=ask(f"a{i} b{i}"), stream=True).text()
        return full, streamed

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(work, range(64)))
    assert results == [(f"t{i}", f"a{i}b{i}") for i in range(64)]


def test_sync_handlers_run_concurrently_under_acompletion():
    barrier = threading.Barrier(8, timeout=5)

    class Blocking(llmkit.CustomLLM):
        def completion(self, **kwargs):
            barrier.wait()  # only passes if 8 calls are in flight at once
            return ModelResponse(choices=[{"message": {"content": "done"}}])

    register(Blocking())

    async def run():
        return await asyncio.gather(*(llmkit.acompletion(model="p/m", messages=[]) for _ in range(8)))

    assert {r.choices[0].message.content for r in asyncio.run(run())} == {"done"}
