"""The call log on PostgreSQL, beside SQLite, over the same 1,000,000 records. Run:

    python bench/calllog_postgres.py [--quick] [--url postgresql://...]

Without --url a throwaway server is started from Debian's postgresql package (tests/postgres_server.py)
and removed afterwards. Both stores get the same rows (bench/calllog.py's fake_rows), and each figure
is measured for both in the same run:

1. writing: records through the store's write() in batches of 5,000, rows/s.
2. the first unfiltered read of the whole log in a new process: to_dataframe(), seconds; (a) of a log
   never read, which writes the read cache's copy (readcache.py: beside the SQLite file, in llmkit's
   data folder for PostgreSQL), then (b) in the next new process, which loads it. Target <= 3 s.
3. to_dataframe(model=..., last=1000), median of 20, ms. Target <= 50 ms.
4. summary(), median of 5, seconds. Target <= 1 s.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

from calllog import fake_rows  # noqa: E402 - bench/calllog.py: the same rows as the SQLite bench

import llmkit  # noqa: E402
from llmkit.calllog import configure_log  # noqa: E402

READER = """
import json, statistics, sys, time
import pandas, llmkit
from llmkit.calllog import configure_log
kind, where = sys.argv[1], sys.argv[2]
configure_log(url=where) if kind == "postgres" else configure_log(path=where)
start = time.perf_counter()
df = llmkit.calls.to_dataframe()
first = time.perf_counter() - start
assert len(df) == int(sys.argv[3]), len(df)
def timed(fn, runs):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
last = timed(lambda: llmkit.calls.to_dataframe(model="acme/small", last=1000), 20)
summary = timed(llmkit.calls.summary, 5)
print(json.dumps({"first_read_s": first, "last_1000_ms": last * 1000, "summary_s": summary}))
"""


def write(kind: str, where: str, n: int) -> float:
    configure_log(url=where) if kind == "postgres" else configure_log(path=where)
    store = llmkit.calls._store()
    elapsed = 0.0
    for start in range(0, n, 50_000):
        rows = fake_rows(50_000, start=start)
        begin = time.perf_counter()
        for batch in range(0, len(rows), 5_000):
            store.write(rows[batch : batch + 5_000])
        elapsed += time.perf_counter() - begin
    if kind == "postgres":  # fresh statistics, as autovacuum would give a real log soon after
        with store.database.connection() as conn:
            conn.execute("VACUUM ANALYZE llmkit.calls")
    configure_log("memory")
    return n / elapsed


def read(kind: str, where: str, n: int, data: str) -> dict:
    """Two new processes, one after the other: the first reads a log never read, the second finds the copy."""
    env = {**os.environ, "LLMKIT_LOG_PATH": os.path.join(data, kind, "calls.db")}  # where PostgreSQL's copy goes
    runs = [
        json.loads(
            subprocess.run(
                [sys.executable, "-c", READER, kind, where, str(n)],
                capture_output=True, text=True, check=True, timeout=600, env=env,
            ).stdout
        )
        for _ in range(2)
    ]  # fmt: skip
    return {**runs[1], "never_read_s": runs[0]["first_read_s"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="100,000 rows instead of 1,000,000")
    parser.add_argument("--url", help="an empty PostgreSQL database to use (default: a throwaway server)")
    args = parser.parse_args()
    n = 100_000 if args.quick else 1_000_000
    server = None
    if args.url is None:
        from postgres_server import PostgresServer

        server = PostgresServer()
        server.start()
    try:
        url = args.url or server.create_database("bench")
        with tempfile.TemporaryDirectory() as tmp:
            places = {"postgres": url, "sqlite": os.path.join(tmp, "bench.db")}
            results = {kind: {"write_rows_per_s": write(kind, where, n)} for kind, where in places.items()}
            for kind, where in places.items():
                results[kind].update(read(kind, where, n, tmp))
    finally:
        if server is not None:
            server.remove()
    report(n, results)


def report(n: int, results: dict) -> None:
    pg, lite = results["postgres"], results["sqlite"]
    print(f"call log over {n:,} records, PostgreSQL beside SQLite (same rows, same run)")
    rows = [
        ("1. write() in batches of 5,000", "write_rows_per_s", "{:,.0f} rows/s", None),
        ("2a. first to_dataframe(), never read", "never_read_s", "{:.2f} s", None),
        ("2b. first to_dataframe(), new process", "first_read_s", "{:.2f} s", 3.0),
        ("3. to_dataframe(model=, last=1000)", "last_1000_ms", "{:.1f} ms", 50.0),
        ("4. summary()", "summary_s", "{:.3f} s", 1.0),
    ]
    for label, key, shape, target in rows:
        goal = f"   target <= {shape.format(target)}" if target else ""
        ratio = pg[key] / lite[key]
        print(f"   {label:38s} postgres {shape.format(pg[key]):>14s}   sqlite {shape.format(lite[key]):>14s}"
              f"   ratio {ratio:5.2f}{goal}")  # fmt: skip


if __name__ == "__main__":
    main()
