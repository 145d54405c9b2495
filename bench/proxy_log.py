"""What the call log costs the proxy: requests/s, p99 and server CPU with the log off and on, in one run.

    python bench/proxy_log.py [--seconds 3] [--rounds 12] [--connections 32] [--pin]

Starts one ``llmkit serve`` (one worker, bench/proxy_handler.py's canned answer, as bench/proxy.py
does) per log setting: LLMKIT_LOG=off, the SQLite log (a fresh file in a temporary folder) and the
memory log. All three stay up for the whole run, and wrk loads them in turn for ``--rounds`` short
rounds, the order rotating each round. This machine's speed drifts from one minute to the next, so
each setting is compared with the log-off run of its own round, seconds apart: the table gives the
median of those per-round ratios with their quartiles, not a ratio of medians.

Server CPU per request (user + system, from /proc) is split into the event loop's thread and the
others (the log's writer, handler threads), which a loaded machine disturbs far less than req/s.

``--pin`` runs the servers on one CPU and wrk on another (taskset), so that the load generator never
takes the server's CPU and the server's threads share one core's caches.

Goal (issue 10): SQLite >= 0.85 of off, p99 <= 10 ms. Linux only (wrk, taskset, /proc).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from proxy import free_port, prepare, start, stop, wrk

MODES = {"off": {"LLMKIT_LOG": "off"}, "sqlite": {"LLMKIT_LOG": "sqlite"}, "memory": {"LLMKIT_LOG": "memory"}}


def pinned_cpus() -> tuple[str, str] | None:
    """``--pin``'s CPUs, the server's and wrk's: the first two this process may use (not always 0 and 1
    in a container), or None without two of them or taskset."""
    cpus = sorted(os.sched_getaffinity(0))
    return (str(cpus[0]), str(cpus[1])) if len(cpus) >= 2 and shutil.which("taskset") else None


def start_server(mode: str, folder: Path, db: Path, cpu: str | None) -> tuple[subprocess.Popen, int]:
    port = free_port()
    command = [sys.executable, "-m", "llmkit.cli", "serve", "--config", "config.yaml", "--host", "127.0.0.1",
               "--port", str(port)]  # fmt: skip
    if cpu is not None:
        command = ["taskset", "-c", cpu, *command]
    env = {**os.environ, **MODES[mode], "LLMKIT_LOG_PATH": str(db)}
    process, _ = start(command, port, folder, timeout=120, env=env)
    return process, port


def load(port: int, pid: int, args: argparse.Namespace, script: Path, cpu: str | None) -> dict:
    """One wrk run against a server (wrk on ``cpu`` if given), with the server's CPU per request over it."""
    before = thread_cpu(pid)
    result = wrk(port, args.seconds, args.connections, script, taskset=cpu)
    after = thread_cpu(pid)
    requests = result["requests"]
    loop = after.pop(pid, 0.0) - before.pop(pid, 0.0)
    others = sum(after.values()) - sum(before.get(tid, 0.0) for tid in after)
    result["loop_us"] = loop * 1e6 / requests
    result["other_us"] = others * 1e6 / requests
    return result


def thread_cpu(pid: int) -> dict[int, float]:
    """User + system CPU seconds of each thread of a process (the main thread's id is the pid)."""
    ticks = os.sysconf("SC_CLK_TCK")
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:  # a thread that ended meanwhile
            continue
        out[int(task.name)] = (int(fields[11]) + int(fields[12])) / ticks
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=3, help="seconds of each wrk run")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--pin", action="store_true", help="servers on one CPU, wrk on another")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 1
    cpus = pinned_cpus() if args.pin else None
    if args.pin and cpus is None:
        print("--pin needs taskset and at least two CPUs", file=sys.stderr)
        return 1
    server_cpu, wrk_cpu = cpus or (None, None)
    results: dict[str, list[dict]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        script = prepare(folder)
        db = folder / "calls.db"
        servers: dict[str, tuple[subprocess.Popen, int]] = {}
        try:
            for mode in MODES:
                servers[mode] = start_server(mode, folder, db, server_cpu)
                wrk(servers[mode][1], 2, args.connections, script)  # warm-up
            for round_ in range(args.rounds):
                order = list(MODES)[round_ % len(MODES) :] + list(MODES)[: round_ % len(MODES)]
                for mode in order:
                    process, port = servers[mode]
                    results[mode].append(load(port, process.pid, args, script, wrk_cpu))
        finally:
            for process, _ in servers.values():
                stop(process)
        rows = sqlite3.connect(db).execute("SELECT count(*) FROM calls").fetchone()[0]
    layout = f"servers on CPU {server_cpu}, wrk on CPU {wrk_cpu}" if cpus else "no CPU pinning"
    print(f"wrk -c{args.connections}, {args.rounds} rounds of {args.seconds} s per log setting, one worker, {layout}")
    print(f"{'log':8} {'req/s':>8} {'of off (q1-q3)':>18} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}"
          f" {'CPU us/request: loop':>21} {'other':>6}")  # fmt: skip
    for mode, runs in results.items():
        ratios = [run["rps"] / base["rps"] for run, base in zip(runs, results["off"], strict=True)]
        q1, _, q3 = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else (ratios[0],) * 3
        spread = f"{statistics.median(ratios):.2f} ({q1:.2f}-{q3:.2f})"
        print(
            f"{mode:8} {statistics.median(r['rps'] for r in runs):8.0f} {spread:>18}"
            f" {statistics.median(r['p50_ms'] for r in runs):8.2f} {statistics.median(r['p99_ms'] for r in runs):8.2f}"
            f" {sum(r['errors'] for r in runs):8d} {statistics.median(r['loop_us'] for r in runs):21.1f}"
            f" {statistics.median(r['other_us'] for r in runs):6.1f}"
        )
    answered = sum(r["requests"] for r in results["sqlite"])
    print(f"rows in the SQLite log: {rows:,}; requests answered by its server: {answered:,} plus the warm-up's")
    return 0


if __name__ == "__main__":
    sys.exit(main())
