"""Response cache benchmark: an answer from the cache against a live call to a do-nothing handler.

    python bench/cache.py            # about 30 s
    python bench/cache.py --quick

The handler returns a prebuilt response (or prebuilt chunks), so a live call costs only llmkit's own
overhead: that is the bar a cache hit must clear. A hit builds a new response from the kept JSON,
as real handlers build theirs; the second baseline is a handler that builds its (equally small)
answer on each call. The call log stays on (SQLite, in a scratch file) and the cache is kept in the
same file, as users get them. Figures are medians over repeated batches. Goals: a hit costs less
than the live call, and <= 30 us (sync chat).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("LLMKIT_LOG_PATH", os.path.join(tempfile.mkdtemp(prefix="llmkit-bench-"), "calls.db"))
os.environ.pop("LLMKIT_CACHE", None)

import llmkit  # noqa: E402
from llmkit.types.utils import ModelResponse  # noqa: E402

MESSAGES = [{"role": "user", "content": "Summarise the plot of Hamlet in one sentence."}]
STREAM_CHUNKS = 200


class Nothing(llmkit.CustomLLM):
    prebuilt = ModelResponse(
        model="m",
        choices=[{"message": {"content": "A prince avenges his father."}}],
        usage={"prompt_tokens": 12, "completion_tokens": 6},
    )
    chunks = [{"text": "x ", "is_finished": False, "finish_reason": None, "usage": None}] * (STREAM_CHUNKS - 1) + [
        {"text": "x", "is_finished": True, "finish_reason": "stop", "usage": None}
    ]

    def completion(self, *args, **kwargs):
        return self.prebuilt

    async def acompletion(self, *args, **kwargs):
        return self.prebuilt

    def streaming(self, *args, **kwargs):
        return iter(self.chunks)


class Builds(llmkit.CustomLLM):
    """Does nothing either, but builds its answer on each call, as every real handler does."""

    def completion(self, model, *args, **kwargs):
        return ModelResponse(
            model=model,
            choices=[{"message": {"content": "A prince avenges his father."}}],
            usage={"prompt_tokens": 12, "completion_tokens": 6},
        )


def per_call_us(fn, batches: int, batch: int) -> float:
    for _ in range(batch):
        fn()
    samples = []
    for _ in range(batches):
        started = time.perf_counter()
        for _ in range(batch):
            fn()
        samples.append((time.perf_counter() - started) / batch * 1e6)
        llmkit.calls.flush()  # the log's writer work, off the clock, so batches stay alike
    return statistics.median(samples)


def aper_call_us(fn, batches: int, batch: int) -> float:
    async def run():
        for _ in range(batch):
            await fn()
        samples = []
        for _ in range(batches):
            started = time.perf_counter()
            for _ in range(batch):
                await fn()
            samples.append((time.perf_counter() - started) / batch * 1e6)
            llmkit.calls.flush()
        return statistics.median(samples)

    return asyncio.run(run())


def stream_per_chunk_us(runs: int) -> float:
    def once():
        started = time.perf_counter()
        count = sum(1 for _ in llmkit.completion("bench/m", MESSAGES, stream=True))
        return (time.perf_counter() - started) / count * 1e6

    once()
    return statistics.median(once() for _ in range(runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    batches, batch = (7, 300) if args.quick else (21, 1000)
    streams = 7 if args.quick else 21
    llmkit.register_provider("bench", Nothing())
    llmkit.register_provider("builds", Builds())
    chat = lambda: llmkit.completion("bench/m", MESSAGES)  # noqa: E731
    achat = lambda: llmkit.acompletion("bench/m", MESSAGES)  # noqa: E731
    counter = iter(range(10**9))
    fresh = lambda: llmkit.completion("bench/m", [{"role": "user", "content": f"q{next(counter)}"}])  # noqa: E731

    rows = []
    llmkit.configure_cache("off")
    live, alive, live_stream = (
        per_call_us(chat, batches, batch),
        aper_call_us(achat, batches, batch),
        stream_per_chunk_us(streams),
    )
    built = per_call_us(lambda: llmkit.completion("builds/m", MESSAGES), batches, batch)
    llmkit.configure_cache("use")
    hit, ahit, hit_stream = (
        per_call_us(chat, batches, batch),
        aper_call_us(achat, batches, batch),
        stream_per_chunk_us(streams),
    )
    miss = per_call_us(fresh, batches, batch // 4)  # each call new: looked up, made, kept
    rows += [
        ("chat: live call, cache off", live, None),
        ("chat: live call, handler builds its answer", built, live),
        ("chat: cache hit", hit, live),
        ("chat: miss (lookup + call + keep)", miss, live),
        ("acompletion: live call", alive, None),
        ("acompletion: cache hit", ahit, alive),
        (f"stream of {STREAM_CHUNKS}, per chunk: live", live_stream, None),
        (f"stream of {STREAM_CHUNKS}, per chunk: replayed", hit_stream, live_stream),
    ]
    llmkit.configure_cache("off")

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores; log and cache: SQLite; medians (us)")
    print(f"{'scenario':44}{'us':>10}{'vs live':>10}")
    for name, value, peer in rows:
        ratio = f"{value / peer:9.2f}x" if peer else ""
        print(f"{name:44}{value:10.2f}{ratio:>10}")
    ok = hit < live and hit <= 30
    print(f"goal: a hit < the live call and <= 30 us: {'met' if ok else 'NOT met'} ({hit:.1f} us vs {live:.1f} us)")


if __name__ == "__main__":
    main()
