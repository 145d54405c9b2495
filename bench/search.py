"""Benchmarks of the log's full-text search. Run: python bench/search.py [--quick]

1. Writing: records per second into a SQLite log without the FTS5 index and with it (its triggers
   index every new row), same records, same run, rounds interleaved. The index exists only once a
   search has made it, so a log never searched pays nothing.
2. The first search on a log of N calls (it builds the index from the rows there), then the median
   search with the index, against the row-by-row LIKE scan used where SQLite has no FTS5.
"""

from __future__ import annotations

import itertools
import os
import random
import statistics
import sys
import tempfile
import time
import uuid

from llmkit.calllog import search
from llmkit.calllog.sqlite import SQLiteStore

QUICK = "--quick" in sys.argv
# Text with a natural spread of word frequencies: a few words in most calls, most words in few.
VOCABULARY = [f"w{k}" for k in range(20_000)]
CUMULATIVE = list(itertools.accumulate(1 / (k + 1) for k in range(len(VOCABULARY))))


def records(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    now = time.time()
    return [
        {
            "call_id": uuid.uuid4().hex,
            "started_at": now - n + i,
            "model": "demo/echo",
            "status": "ok",
            "prompt": " ".join(rng.choices(VOCABULARY, cum_weights=CUMULATIVE, k=12)),
            "response": " ".join(rng.choices(VOCABULARY, cum_weights=CUMULATIVE, k=60)),
        }
        for i in range(n)
    ]


def write_rate(path: str, rows: list[dict], batch: int = 200) -> float:
    store = SQLiteStore(path)
    started = time.perf_counter()
    for i in range(0, len(rows), batch):
        store.write(rows[i : i + batch])
    elapsed = time.perf_counter() - started
    store.close()
    return len(rows) / elapsed


def bench_writes(tmp: str) -> None:
    n, rounds = (5_000, 3) if QUICK else (20_000, 5)
    plain, indexed = [], []
    for r in range(rounds):
        for label, rates in (("plain", plain), ("indexed", indexed)):
            path = os.path.join(tmp, f"w-{label}-{r}.db")
            SQLiteStore(path).close()
            if label == "indexed":
                search._sqlite(path, ["warmup"], 1)  # makes the index on the empty log
            rates.append(write_rate(path, records(n, r)))
    p, i = statistics.median(plain), statistics.median(indexed)
    print(f"writes, {n:,} records in batches of 200: {p:,.0f}/s without the index, {i:,.0f}/s with it ({i / p:.2f}x)")


def bench_search(tmp: str) -> None:
    n = 20_000 if QUICK else 100_000
    path = os.path.join(tmp, "s.db")
    store = SQLiteStore(path)
    rows = records(n, 42)
    for i in range(0, n, 5_000):
        store.write(rows[i : i + 5_000])
    store.close()
    started = time.perf_counter()
    search._sqlite(path, ["w1"], 20)
    build = time.perf_counter() - started
    # a common word, a rarer one, two words together, a rare one
    queries = [["w3"], ["w400"], ["w50", "w60"], ["w5000"]] * 5
    fts = statistics.median(_timed(lambda q=q: search._sqlite(path, q, 20)) for q in queries)
    original = search._ensure_index
    search._ensure_index = lambda db: False
    try:
        scan = statistics.median(_timed(lambda q=q: search._sqlite(path, q, 20)) for q in queries)
    finally:
        search._ensure_index = original
    print(f"a log of {n:,} calls: first search (builds the index) {build:.2f} s;")
    print(f"  then a search takes {fts * 1000:.1f} ms with FTS5, {scan * 1000:.1f} ms by LIKE scan ({scan / fts:.0f}x)")


def _timed(run) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        bench_writes(tmp)
        bench_search(tmp)
