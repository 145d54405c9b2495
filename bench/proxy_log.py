"""What the call log costs the proxy: requests/s and p99 with the log off and on, measured in one run.

    python bench/proxy_log.py [--seconds 10] [--connections 32] [--rounds 3]

Starts ``llmkit serve`` (one worker) with bench/proxy_handler.py's canned answer, as bench/proxy.py
does, and loads it with wrk three ways, rounds interleaved: LLMKIT_LOG=off, the SQLite log (a fresh
file in a temporary folder), and the memory log. Reports the median of the rounds and each log's
throughput as a fraction of log-off's, and the server's CPU time per request (user + system, from
/proc), which a loaded machine disturbs far less than req/s. Goal (issue 10): SQLite >= 0.85 of off,
p99 <= 10 ms. Linux only (wrk, /proc).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
from pathlib import Path

from proxy import free_port, prepare, start, stop, wrk

MODES = {"off": {"LLMKIT_LOG": "off"}, "sqlite": {"LLMKIT_LOG": "sqlite"}, "memory": {"LLMKIT_LOG": "memory"}}


def run(mode: str, folder: Path, args: argparse.Namespace, script: Path, db: Path) -> dict:
    port = free_port()
    env = {**os.environ, **MODES[mode], "LLMKIT_LOG_PATH": str(db)}
    command = [sys.executable, "-m", "llmkit.cli", "serve", "--config", "config.yaml", "--host", "127.0.0.1",
               "--port", str(port)]  # fmt: skip
    saved = dict(os.environ)
    os.environ.update(env)  # start() inherits the environment
    try:
        process, _ = start(command, port, folder, timeout=120)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    try:
        wrk(port, 2, args.connections, script)  # warm-up
        cpu = _cpu_seconds(process.pid)
        result = wrk(port, args.seconds, args.connections, script)
        result["cpu_us"] = (_cpu_seconds(process.pid) - cpu) * 1e6 / (result["rps"] * args.seconds)
        return result
    finally:
        stop(process)


def _cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far: what a request costs, however loaded the machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 1
    results: dict[str, list[dict]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        script = prepare(folder)
        db = folder / "calls.db"
        for _ in range(args.rounds):
            for mode in MODES:
                results[mode].append(run(mode, folder, args, script, db))
        rows = sqlite3.connect(db).execute("SELECT count(*) FROM calls").fetchone()[0]
    off = statistics.median(r["rps"] for r in results["off"])
    print(f"wrk -c{args.connections} -d{args.seconds}s, one worker, median of {args.rounds} interleaved rounds")
    print(
        f"{'log':8} {'req/s':>8} {'of off':>7} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} {'server CPU us/request':>22}"
    )
    for mode, runs in results.items():
        rps = statistics.median(r["rps"] for r in runs)
        p50 = statistics.median(r["p50_ms"] for r in runs)
        p99 = statistics.median(r["p99_ms"] for r in runs)
        errors = sum(r["errors"] for r in runs)
        cpu = statistics.median(r["cpu_us"] for r in runs)
        print(f"{mode:8} {rps:8.0f} {rps / off:7.2f} {p50:8.2f} {p99:8.2f} {errors:8d} {cpu:22.1f}")
    # This machine's speed drifts within minutes: each round's ratio, its three runs a minute apart,
    # shows the spread that the medians above hide.
    for mode in ("sqlite", "memory"):
        ratios = [run["rps"] / base["rps"] for run, base in zip(results[mode], results["off"], strict=True)]
        print(f"{mode} / off, round by round: {' '.join(f'{ratio:.2f}' for ratio in ratios)}")
    print(f"rows in the SQLite log: {rows:,} (every request of the SQLite runs, warm-ups included)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
