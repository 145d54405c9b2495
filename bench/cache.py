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

import llmkit
from llmkit.types.utils import ModelResponse

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


def interleaved(scenarios: dict, batches: int, per_batch: int) -> dict:
    """``{name: (wall, cpu)}``: medians of microseconds per call (or chunk) for each scenario.

    ``scenarios`` maps a name to a function running one batch of ``per_batch`` calls. The batches of
    all scenarios take turns, so a machine busier at one moment than another weighs on all alike.
    CPU time (this thread's) leaves out the time other processes had the cores: on a loaded
    machine it is the steadier figure.
    """
    times = {name: ([], []) for name in scenarios}
    for run in scenarios.values():
        run()  # warm up
    for _ in range(batches):
        for name, run in scenarios.items():
            wall, cpu = time.perf_counter(), time.thread_time()
            run()
            times[name][0].append((time.perf_counter() - wall) / per_batch * 1e6)
            times[name][1].append((time.thread_time() - cpu) / per_batch * 1e6)
            llmkit.calls.flush()  # the log's writer work, off the clock, so batches stay alike
    return {name: (statistics.median(w), statistics.median(c)) for name, (w, c) in times.items()}


def repeat(call, n: int):
    def run():
        for _ in range(n):
            call()

    return run


def arepeat(call, n: int):
    async def calls():
        for _ in range(n):
            await call()

    return lambda: asyncio.run(calls())


def stream(n: int, **kwargs):
    def run():
        for _ in range(n):
            count = sum(1 for _ in llmkit.completion("bench/m", MESSAGES, stream=True, **kwargs))
            assert count == STREAM_CHUNKS + 1  # and the chunk that carries the finish reason

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    batches, batch = (7, 300) if args.quick else (21, 1000)
    llmkit.register_provider("bench", Nothing())
    llmkit.register_provider("builds", Builds())
    llmkit.configure_cache("off")  # hits ask for the cache per call (cache="use"): one code path
    counter = iter(range(10**9))
    fresh = lambda: [{"role": "user", "content": f"q{next(counter)}"}]  # noqa: E731

    chat = interleaved(
        {
            "chat: live call, cache off": repeat(lambda: llmkit.completion("bench/m", MESSAGES), batch),
            "chat: live call, handler builds its answer": repeat(
                lambda: llmkit.completion("builds/m", MESSAGES), batch
            ),
            "chat: cache hit": repeat(lambda: llmkit.completion("bench/m", MESSAGES, cache="use"), batch),
            "chat: miss (looked up, made, kept)": repeat(
                lambda: llmkit.completion("bench/m", fresh(), cache="use"), batch // 10
            ),
        },
        batches,
        batch,
    )
    chat["chat: miss (looked up, made, kept)"] = tuple(v * 10 for v in chat["chat: miss (looked up, made, kept)"])
    achat = interleaved(
        {
            "acompletion: live call": arepeat(lambda: llmkit.acompletion("bench/m", MESSAGES), batch),
            "acompletion: cache hit": arepeat(lambda: llmkit.acompletion("bench/m", MESSAGES, cache="use"), batch),
        },
        batches,
        batch,
    )
    streams = interleaved(
        {
            f"stream of {STREAM_CHUNKS}, per chunk: live": stream(2),
            f"stream of {STREAM_CHUNKS}, per chunk: replayed": stream(2, cache="use"),
        },
        batches,
        2 * (STREAM_CHUNKS + 1),
    )

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores; log and cache: SQLite; medians (us)")
    print(f"{'scenario':44}{'wall':>10}{'vs live':>10}{'cpu':>10}{'vs live':>10}")
    for group in (chat, achat, streams):
        peer = next(iter(group.values()))
        for name, value in group.items():
            line = f"{name:44}"
            for i in (0, 1):
                ratio = f"{value[i] / peer[i]:9.2f}x" if value is not peer else ""
                line += f"{value[i]:10.2f}{ratio:>10}"
            print(line)
    live, hit = chat["chat: live call, cache off"], chat["chat: cache hit"]
    met = [hit[i] < live[i] and hit[i] <= 30 for i in (0, 1)]
    print(
        f"goal: a hit < the live call and <= 30 us: wall {'met' if met[0] else 'NOT met'}"
        f" ({hit[0]:.1f} vs {live[0]:.1f} us), cpu {'met' if met[1] else 'NOT met'} ({hit[1]:.1f} vs {live[1]:.1f} us)"
    )


if __name__ == "__main__":
    main()
