"""Benchmarks of the call log. Run: python bench/calllog.py [--quick] [--overhead] [--reads] [--compare]

With none of --overhead, --reads, --compare, all three parts run.

1. Time logging adds to a call: the median completion() (and per streamed chunk) with the log off,
   in memory and in SQLite, measured in the same run, rounds interleaved. Target: <= 5 us added.
2. Reads of a log of 1,000,000 records (--quick: 100,000), SQLite and memory (issue 10 targets, SQLite):
   the first unfiltered to_dataframe() in a new process <= 3 s (once with no copy of the log on disk,
   once with the copy the earlier reads wrote); to_dataframe(model=..., last=1000) <= 50 ms;
   summary() <= 1 s. Each figure is wall time, with the process's CPU time beside it (which a loaded
   machine disturbs less).
3. compare() of 200 prompts x 3 models against a handler that waits 50 ms, concurrency 32.
   Target: within 1.2x of the ideal 200 * 3 * 0.05 / 32 s.

What the log costs a proxy under load is bench/proxy_log.py's.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import llmkit
from llmkit.calllog import configure_log, diskcopy, recorder
from llmkit.calllog.record import new_call_id

QUICK = "--quick" in sys.argv
PARTS = [part for part in ("overhead", "reads", "compare") if f"--{part}" in sys.argv] or [
    "overhead",
    "reads",
    "compare",
]
MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
ANSWER = llmkit.ModelResponse(
    model="m", choices=[{"message": {"content": "Paris."}}], usage={"prompt_tokens": 9, "completion_tokens": 2}
)
CHUNKS = [{"text": f"w{i} ", "is_finished": False, "finish_reason": None, "usage": None} for i in range(200)]


class Instant(llmkit.CustomLLM):
    def completion(self, model, messages, **kwargs):
        return ANSWER

    def streaming(self, model, messages, **kwargs):
        return iter(CHUNKS)


class Waits50ms(llmkit.CustomLLM):
    async def acompletion(self, model, messages, **kwargs):
        await asyncio.sleep(0.05)
        return llmkit.ModelResponse(model=model, choices=[{"message": {"content": "ok"}}])


def per_call_us(calls: int) -> list[float]:
    times = []
    clock = time.perf_counter
    for _ in range(calls):
        start = clock()
        llmkit.completion(model="bench/m", messages=MESSAGES)
        times.append((clock() - start) * 1e6)
    return times


def per_chunk_us(streams: int) -> list[float]:
    """Each stream's time (opening it included) divided by its chunks."""
    times = []
    clock = time.perf_counter
    for _ in range(streams):
        start = clock()
        for _ in llmkit.completion(model="bench/m", messages=MESSAGES, stream=True):
            pass
        times.append((clock() - start) * 1e6 / len(CHUNKS))
    return times


def bench_overhead(tmp: str) -> None:
    llmkit.custom_provider_map = [{"provider": "bench", "custom_handler": Instant()}]
    modes = {"off": ("off", None), "memory": ("memory", None), "sqlite": ("sqlite", os.path.join(tmp, "overhead.db"))}
    per_call = {name: [] for name in modes}
    chunk = {name: [] for name in modes}
    per_call_us(2000)  # warm up
    for _ in range(3 if QUICK else 7):
        for name, (mode, path) in modes.items():
            configure_log(mode, path=path)
            per_call[name].extend(per_call_us(5000 if QUICK else 20000))
            chunk[name].extend(per_chunk_us(50 if QUICK else 300))
            llmkit.calls.flush()
    off = statistics.median(per_call["off"])
    print("1. time added per call by logging (median of every call, rounds interleaved)")
    for name in modes:
        median = statistics.median(per_call[name])
        print(f"   completion() log={name:7s} median {median:6.2f} us   added {median - off:+5.2f} us")
    off_chunk = statistics.median(chunk["off"])
    for name in modes:
        median = statistics.median(chunk[name])
        print(f"   per streamed chunk log={name:7s} median {median:5.2f} us   added {median - off_chunk:+5.2f} us")
    configure_log("memory")


def fake_rows(n: int, start: int = 0) -> list[dict]:
    now = time.time() - 2_000_000
    models = ("acme/small", "acme/large", "other/fast")
    rows = []
    for i in range(start, start + n):
        ok = i % 17 != 0
        rows.append(
            {
                "call_id": new_call_id(),
                "started_at": now + i,
                "model": models[i % 3],
                "provider": models[i % 3].split("/")[0],
                "handler_model": models[i % 3].split("/")[1],
                "kind": "stream" if i % 2 else "chat",
                "source": "python",
                "messages": [{"role": "user", "content": f"question number {i % 5000}"}],
                "prompt": f"question number {i % 5000}",
                "params": {"temperature": 0.2},
                "response": f"an answer of a few words, number {i}" if ok else None,
                "finish_reason": "stop" if ok else None,
                "prompt_tokens": 12,
                "completion_tokens": 40 if ok else None,
                "total_tokens": 52 if ok else None,
                "tokens_estimated": False,
                "latency_ms": 100.0 + i % 400,
                "ttft_ms": 20.0 + i % 50 if i % 2 else None,
                "tokens_per_s": 80.0,
                "cost_usd": 1e-4 if i % 3 == 0 else None,
                "status": "ok" if ok else "error",
                "error_type": None if ok else "RateLimitError",
                "status_code": None if ok else 429,
                "error_message": None if ok else "slow down",
                "metadata": {"tags": ["eval"]} if i % 10 == 0 else None,
                "run_id": None,
            }
        )
    return rows


FIRST_READ = """
import sys, time
import pandas, llmkit
llmkit.configure_log("sqlite", path=sys.argv[1])
wall, cpu = time.perf_counter(), time.process_time()
df = llmkit.calls.to_dataframe()
print(time.perf_counter() - wall, time.process_time() - cpu, len(df))
"""
# The first summary in a new process: with read_cache_rows=0, SQLite's GROUP BY and the percentile
# columns read back; by default, the copy on disk when there is one.
FIRST_SUMMARY = """
import sys, time
from llmkit.calllog.sqlite import SQLiteStore
from llmkit.calllog.store import Filters
store = SQLiteStore(sys.argv[1], read_cache_rows=int(sys.argv[2]))
wall, cpu = time.perf_counter(), time.process_time()
store.summary(Filters())
print(time.perf_counter() - wall, time.process_time() - cpu)
"""


def in_new_process(script: str, *args: str) -> tuple[float, ...]:
    out = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, check=True)
    return tuple(map(float, out.stdout.split()))


def timed(function, runs: int) -> tuple[float, float]:
    """Median wall and CPU seconds of ``runs`` calls."""
    walls, cpus = [], []
    for _ in range(runs):
        wall, cpu = time.perf_counter(), time.process_time()
        function()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def bench_reads(tmp: str) -> None:
    n = 100_000 if QUICK else 1_000_000
    print(f"2. reads of a log of {n:,} records (median of the runs; wall s, CPU s)")
    for mode, path in (("sqlite", os.path.join(tmp, "million.db")), ("memory", None)):
        configure_log(mode, path=path)
        store = llmkit.calls._store()
        for i in range(0, n, 50_000):
            store.write(fake_rows(50_000, start=i))
        if mode == "sqlite":
            wall, cpu, rows = in_new_process(FIRST_READ, path)
            print(f"   sqlite  first to_dataframe() in a new process, no copy on disk  {wall:6.2f} s"
                  f"  CPU {cpu:5.2f} s  ({int(rows):,} rows)")  # fmt: skip
        llmkit.calls.to_dataframe(last=10)  # pandas loaded, the file open
        for run in range(1, 4):  # the first loads the copy on disk, the second keeps it in memory, the third reads it
            wall, cpu = timed(llmkit.calls.to_dataframe, 1)
            print(f"   {mode:7s} {f'to_dataframe() read {run}':38s} {wall:6.3f} s  CPU {cpu:6.3f} s")
        if mode == "sqlite":
            size = diskcopy.path_for(Path(path)).stat().st_size / 1e6
            wall, cpu, _ = in_new_process(FIRST_READ, path)
            print(f"   sqlite  first to_dataframe() in a new process, with the copy on disk ({size:.0f} MB)"
                  f"  {wall:6.2f} s  CPU {cpu:5.2f} s  (target <= 3 s)")  # fmt: skip
            for label, cache in (("in SQL (no copy)", "0"), ("from the copy on disk", "1000000")):
                wall, cpu = in_new_process(FIRST_SUMMARY, path, cache)
                print(f"   sqlite  {f'first summary() in a new process, {label}':60s} {wall:6.3f} s  CPU {cpu:6.3f} s")
        runs = {
            "to_dataframe(model=..., last=1000)": (lambda: llmkit.calls.to_dataframe(model="acme/small", last=1000), 9),
            "summary() (from the copy in memory)" if mode == "sqlite" else "summary()": (llmkit.calls.summary, 3),
        }
        targets = {"to_dataframe(model=..., last=1000)": "<= 0.05 s", "summary() (from the copy in memory)": "<= 1 s"}
        for label, (function, count) in runs.items():
            wall, cpu = timed(function, count)
            target = f"  (target {targets[label]})" if mode == "sqlite" and label in targets else ""
            print(f"   {mode:7s} {label:38s} {wall:6.3f} s  CPU {cpu:6.3f} s{target}")
    configure_log("memory")


def bench_compare() -> None:
    llmkit.custom_provider_map = [{"provider": "wait", "custom_handler": Waits50ms()}]
    prompts = [f"prompt {i}" for i in range(200)]
    models = ["wait/a", "wait/b", "wait/c"]
    ideal = 200 * 3 * 0.05 / 32
    times = []
    for _ in range(3):
        start = time.perf_counter()
        df = llmkit.compare(models, prompts, concurrency=32, progress=False)
        times.append(time.perf_counter() - start)
        assert len(df) == 600 and (df["status"] == "ok").all()
    median = statistics.median(times)
    print("3. compare() 200 prompts x 3 models, handler waits 50 ms, concurrency 32 (median of 3)")
    print(f"   {median:.3f} s   ideal {ideal:.3f} s   ratio {median / ideal:.2f}x")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        configure_log("memory")
        if "overhead" in PARTS:
            bench_overhead(tmp)
        if "reads" in PARTS:
            bench_reads(tmp)
        if "compare" in PARTS:
            bench_compare()
        configure_log("off")
    recorder.callbacks.clear()
