"""Benchmarks of the notebook's call-log views. Run: python bench/notebook_log.py [--quick]

1. ``%llm log`` (the newest 10 calls, read with calls.last) against the obvious peer,
   ``calls.to_dataframe().tail(10)``, on a SQLite log of 200,000 calls: the first read in a process
   (nothing cached) and later reads. Medians, same run.
2. ``Leaderboard.refresh()`` (summary + vote counts + the HTML table) against ``calls.summary()``
   on the same log, warm: the ratio is what counting votes and drawing the table add.
3. An open Leaderboard during a burst of 2,000 calls: median time per ``completion()`` with and
   without it (rounds interleaved), and how many refreshes the burst caused (throttled to one per
   ``interval``).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time

from calllog import MESSAGES, Instant, fake_rows  # bench/calllog.py: the same handler and rows

import llmkit
from llmkit.calllog import configure_log, recorder
from llmkit.notebook.tables import recent_calls
from llmkit.widgets import Leaderboard

QUICK = "--quick" in sys.argv
N = 50_000 if QUICK else 200_000


def timed(fn, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def fill(path: str) -> None:
    configure_log("sqlite", path=path)
    store = llmkit.calls._store()
    for i in range(0, N, 50_000):
        store.write(fake_rows(min(50_000, N - i), start=i))


def bench_log(path: str) -> None:
    print(f"1. %llm log (newest 10) vs calls.to_dataframe().tail(10), SQLite log of {N:,} calls")
    peers = {"%llm log": lambda: recent_calls(10), "to_dataframe().tail": lambda: llmkit.calls.to_dataframe().tail(10)}
    for name, read in peers.items():
        configure_log("sqlite", path=path)  # as a new process: nothing cached
        first = timed(read, 1)[0]
        warm = statistics.median(timed(read, 5))
        print(f"   {name:20s} first read {first * 1e3:8.1f} ms   later reads median {warm * 1e3:8.1f} ms")


def bench_refresh(path: str) -> None:
    configure_log("sqlite", path=path)
    llmkit.calls.summary()  # warm the read cache
    board = Leaderboard(interval=3600)
    try:
        refresh = statistics.median(timed(board.refresh, 7))
        summary = statistics.median(timed(llmkit.calls.summary, 7))
    finally:
        board.close()
    print(
        f"2. warm, {N:,} calls: Leaderboard.refresh() {refresh * 1e3:.1f} ms,"
        f" calls.summary() {summary * 1e3:.1f} ms, ratio {refresh / summary:.2f}x"
    )


def per_call_us(calls: int) -> list[float]:
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        llmkit.completion(model="bench/m", messages=MESSAGES)
        times.append((time.perf_counter() - start) * 1e6)
    return times


def bench_burst(tmp: str) -> None:
    llmkit.custom_provider_map = [{"provider": "bench", "custom_handler": Instant()}]
    configure_log("sqlite", path=os.path.join(tmp, "burst.db"))
    per_call_us(500)  # warm up
    without, with_board, refreshes = [], [], 0
    for _ in range(3 if QUICK else 5):
        without.extend(per_call_us(2000))
        llmkit.calls.flush()
        board = Leaderboard(interval=0.2)
        counted = []
        board.observe(counted.append, "rows")
        with_board.extend(per_call_us(2000))
        llmkit.calls.flush()
        time.sleep(0.5)  # let the trailing refresh land
        board.close()
        refreshes = max(refreshes, len(counted))
    a, b = statistics.median(without), statistics.median(with_board)
    print("3. completion() during a burst of 2,000 calls (median per call, rounds interleaved)")
    print(f"   no leaderboard {a:6.2f} us   leaderboard open {b:6.2f} us   ratio {b / a:.2f}x")
    print(f"   refreshes caused by one burst (interval 0.2 s): at most {refreshes}")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "log.db")
        fill(path)
        bench_log(path)
        bench_refresh(path)
        bench_burst(tmp)
        configure_log("off")
    recorder.callbacks.clear()
