"""Core overhead benchmark: llmkit against LiteLLM, same scenarios, same run.

    python bench/core.py                 # llmkit only, or both where litellm is importable
    python bench/core.py --quick         # fewer repetitions

Every scenario uses a handler that does no work (it returns a prebuilt response, or yields
prebuilt chunks), so what is timed is the library's own overhead. Figures are medians over
repeated batches. Targets (2-core machine): import <= 150 ms, completion <= 15 us,
acompletion <= 25 us, stream <= 4 us per chunk, time to first chunk <= 50 us,
1,000 concurrent acompletion <= 30 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network fetch at litellm import
# The call log stays on, as it is for users, but writes to a scratch file rather than the user's log.
os.environ.setdefault("LLMKIT_LOG_PATH", os.path.join(tempfile.mkdtemp(prefix="llmkit-bench-"), "calls.db"))

MESSAGES = [{"role": "user", "content": "hello"}]
STREAM_CHUNKS = 1000


def import_ms(module: str, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", f"import {module}"], check=True, env=os.environ)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def make_handler(lib):
    """A do-nothing handler written against ``lib``'s CustomLLM contract."""
    from importlib import import_module

    utils = import_module(f"{lib.__name__}.types.utils")
    prebuilt = utils.ModelResponse(model="m", choices=[{"message": {"content": "hi"}}])
    chunk = {"text": "x", "is_finished": False, "finish_reason": None, "usage": None, "index": 0, "tool_use": None}
    last = {**chunk, "is_finished": True, "finish_reason": "stop"}
    chunks = [chunk] * (STREAM_CHUNKS - 1) + [last]

    class Nothing(lib.CustomLLM):
        def completion(self, *args, **kwargs):
            return prebuilt

        async def acompletion(self, *args, **kwargs):
            return prebuilt

        def streaming(self, *args, **kwargs):
            return iter(chunks)

        async def astreaming(self, *args, **kwargs):
            for item in chunks:
                yield item

    return Nothing()


def per_call_us(fn, batches: int, batch: int) -> float:
    for _ in range(batch):
        fn()
    samples = []
    for _ in range(batches):
        started = time.perf_counter()
        for _ in range(batch):
            fn()
        samples.append((time.perf_counter() - started) / batch * 1e6)
    return statistics.median(samples)


async def aper_call_us(fn, batches: int, batch: int) -> float:
    for _ in range(batch):
        await fn()
    samples = []
    for _ in range(batches):
        started = time.perf_counter()
        for _ in range(batch):
            await fn()
        samples.append((time.perf_counter() - started) / batch * 1e6)
    return statistics.median(samples)


def run_scenarios(lib, quick: bool) -> dict[str, float]:
    lib.custom_provider_map = [{"provider": "bench", "custom_handler": make_handler(lib)}]
    batches, batch = (7, 200) if quick else (21, 1000)
    streams = 7 if quick else 21
    model = "bench/m"
    results: dict[str, float] = {}

    results["completion_us"] = per_call_us(lambda: lib.completion(model=model, messages=MESSAGES), batches, batch)
    results["mock_response_us"] = per_call_us(
        lambda: lib.completion(model=model, messages=MESSAGES, mock_response="hi"), batches, batch
    )

    def first_chunk_us():
        # A fresh stream, closed after its first chunk: what a reader waiting for the first token sees.
        started = time.perf_counter()
        stream = lib.completion(model=model, messages=MESSAGES, stream=True)
        next(iter(stream))
        elapsed = (time.perf_counter() - started) * 1e6
        getattr(stream, "close", lambda: None)()
        return elapsed

    def stream_per_chunk_us():
        started = time.perf_counter()
        count = sum(1 for _ in lib.completion(model=model, messages=MESSAGES, stream=True))
        return (time.perf_counter() - started) / count * 1e6

    first_chunk_us()
    results["first_chunk_us"] = statistics.median(first_chunk_us() for _ in range(batch))
    results["stream_per_chunk_us"] = statistics.median(stream_per_chunk_us() for _ in range(streams))

    async def async_part():
        results["acompletion_us"] = await aper_call_us(
            lambda: lib.acompletion(model=model, messages=MESSAGES), batches, batch
        )

        async def astream_once():
            started = time.perf_counter()
            count = 0
            async for _ in await lib.acompletion(model=model, messages=MESSAGES, stream=True):
                count += 1
            return (time.perf_counter() - started) / count * 1e6

        results["astream_per_chunk_us"] = statistics.median([await astream_once() for _ in range(streams)])

        samples = []
        for _ in range(5 if quick else 15):
            started = time.perf_counter()
            await asyncio.gather(*(lib.acompletion(model=model, messages=MESSAGES) for _ in range(1000)))
            samples.append((time.perf_counter() - started) * 1000)
        results["concurrent_1000_ms"] = statistics.median(samples)

    asyncio.run(async_part())
    return results


TARGETS = {
    "import_ms": 150,
    "completion_us": 15,
    "acompletion_us": 25,
    "mock_response_us": None,
    "stream_per_chunk_us": 4,
    "astream_per_chunk_us": 4,
    "first_chunk_us": 50,
    "concurrent_1000_ms": 30,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()

    libraries = ["llmkit"]
    try:
        importlib.import_module("litellm")
        libraries.append("litellm")
    except ImportError:
        pass

    table: dict[str, dict[str, float]] = {}
    for name in libraries:
        lib = importlib.import_module(name)
        results = {"import_ms": import_ms(name, 5 if args.quick else 15)}
        results.update(run_scenarios(lib, args.quick))
        table[name] = results

    log = os.environ.get("LLMKIT_LOG", "sqlite")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores; call log: {log}; medians")
    header = f"{'scenario':24}{'llmkit':>12}{'target':>10}"
    if "litellm" in table:
        header += f"{'litellm':>12}{'litellm/llmkit':>16}"
    print(header)
    for key, target in TARGETS.items():
        ours = table["llmkit"][key]
        line = f"{key:24}{ours:12.2f}{(str(target) if target else '-'):>10}"
        if "litellm" in table:
            theirs = table["litellm"][key]
            line += f"{theirs:12.2f}{theirs / ours:15.1f}x"
        print(line)


if __name__ == "__main__":
    main()
