"""Benchmark the proxy: requests/s and p50/p99 at 32 connections, a 200-chunk stream, memory.

    python bench/proxy.py [--seconds 10] [--connections 32] [--litellm /work/bench-venv-litellm/bin/litellm]

Starts ``llmkit serve`` on a free loopback port with a canned-response handler
(bench/proxy_handler.py), once with one worker and once with two (``--workers 2``), each writing the
call log to a fresh SQLite file. Loads it with wrk (``apt-get install wrk``), times a 200-chunk stream
end to end with httpx, and reads the server's resident memory (all its processes). After SIGTERM has
drained the server, the rows in its log are counted against the requests answered: none may be
missing. When LiteLLM's proxy is installed (in a virtualenv of its own; see --litellm) the same config
goes through it in the same run. Loopback only; every load run is bounded by --seconds.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
KEY = "sk-" + secrets.token_hex(16)  # LiteLLM refuses to start without a master key, or with a weak one
HEADERS = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
CONFIG = f"""\
model_list:
  - model_name: canned
    litellm_params:
      model: bench/canned
litellm_settings:
  custom_provider_map:
    - {{provider: bench, custom_handler: proxy_handler.canned}}
general_settings:
  master_key: {KEY}
"""
BODY = '{"model": "canned", "messages": [{"role": "user", "content": "Hello"}]}'
STREAM_BODY = {"model": "canned", "messages": [{"role": "user", "content": "Hello"}], "stream": True, "chunks": 200}
WRK_SCRIPT = f"""\
wrk.method = "POST"
wrk.body = '{BODY}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {KEY}"
"""


def prepare(folder: Path) -> Path:
    """The benchmark's config and handler in ``folder``; returns the wrk script written beside them."""
    (folder / "config.yaml").write_text(CONFIG)
    shutil.copy(HERE / "proxy_handler.py", folder / "proxy_handler.py")
    script = folder / "post.lua"
    script.write_text(WRK_SCRIPT)
    return script


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(
    command: list[str], port: int, cwd: Path, timeout: float, env: dict | None = None
) -> tuple[subprocess.Popen, float]:
    """Start a server and wait for its first answered request; returns it and the seconds that took."""
    began = time.perf_counter()
    # stderr to a file, not a pipe: a server that runs for minutes and warns would fill a pipe and stop.
    errors = tempfile.TemporaryFile()
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=errors, env=env)
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    while time.perf_counter() - began < timeout:
        if process.poll() is not None:
            errors.seek(0)
            raise RuntimeError(f"{command[0]} exited: {errors.read().decode()[-2000:]}")
        try:
            if httpx.post(url, content=BODY, headers=HEADERS, timeout=1).status_code == 200:
                return process, time.perf_counter() - began
        except httpx.TransportError:
            time.sleep(0.02)
    process.kill()
    raise RuntimeError(f"{command[0]} did not answer within {timeout} s")


def stop(process: subprocess.Popen) -> int | None:
    """SIGTERM, then the exit status once it has drained (None if it had to be killed)."""
    process.terminate()
    try:
        return process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        return None


def rss_mb(pid: int) -> float:
    """Resident memory of the process and its children (LiteLLM may fork)."""
    total = 0
    pids = [pid] + [int(p) for p in _children(pid)]
    for p in pids:
        status = Path(f"/proc/{p}/status").read_text()
        total += int(re.search(r"VmRSS:\s+(\d+)", status).group(1))
    return total / 1024


def _children(pid: int) -> list[str]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return path.read_text().split() if path.exists() else []


def wrk(port: int, seconds: int, connections: int, script: Path, taskset: str | None = None) -> dict[str, float]:
    """One wrk run; ``taskset``: the CPUs wrk may use (bench/proxy_log.py --pin), else any."""
    out = subprocess.run(
        [
            *(["taskset", "-c", taskset] if taskset else []),
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}/v1/chat/completions",
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {
        "requests": total,
        "rps": rps,
        "p50_ms": _ms(re.search(r"50%\s+([\d.]+\w+)", out).group(1)),
        "p99_ms": _ms(re.search(r"99%\s+([\d.]+\w+)", out).group(1)),
        "errors": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else "",
    }


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


STREAM_RUNS = 50


def stream_ms(port: int, runs: int = STREAM_RUNS) -> float:
    """Median milliseconds from sending a 200-chunk stream request to reading [DONE]."""
    times = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=HEADERS, timeout=30) as client:
        for _ in range(runs + 5):
            began = time.perf_counter()
            with client.stream("POST", "/v1/chat/completions", json=STREAM_BODY) as response:
                events = [line for line in response.iter_lines() if line.startswith("data: ")]
            times.append((time.perf_counter() - began) * 1000)
            if events[-1] != "data: [DONE]" or len(events) < 200:
                raise RuntimeError(f"stream ended badly: {len(events)} events, last {events[-1]!r}")
    return statistics.median(times[5:])  # the first few warm up the server


def measure(
    name: str,
    command: list[str],
    port: int,
    folder: Path,
    args: argparse.Namespace,
    script: Path,
    log: Path | None = None,
) -> dict:
    env = {**os.environ, "LLMKIT_LOG_PATH": str(log)} if log is not None else None
    process, startup = start(command, port, folder, timeout=120, env=env)
    try:
        warm = wrk(port, 2, args.connections, script)
        load = wrk(port, args.seconds, args.connections, script)
        result = {
            "name": name,
            "startup_s": startup,
            **load,
            "stream_ms": stream_ms(port),
            "rss_mb": rss_mb(process.pid),
        }
    finally:
        result_status = stop(process)
    # Requests the server answered: the start-up probe, both wrk runs, the streams.
    result["answered"] = 1 + warm["requests"] + load["requests"] + STREAM_RUNS + 5
    result["exit"] = result_status
    if log is not None:
        with sqlite3.connect(log) as db:
            result["rows"] = db.execute("SELECT count(*) FROM calls").fetchone()[0]
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--litellm",
        default="/work/bench-venv-litellm/bin/litellm",
        help="LiteLLM's proxy command, installed apart from llmkit; skipped if missing",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        script = prepare(folder)
        llmkit_cmd = [sys.executable, "-m", "llmkit.cli", "serve", "--config", "config.yaml", "--host", "127.0.0.1"]
        results = []
        for workers in (1, 2):
            port = free_port()
            command = llmkit_cmd + ["--port", str(port), "--workers", str(workers)]
            log = folder / f"calls-{workers}w.db"
            results.append(measure(f"llmkit {workers}w", command, port, folder, args, script, log=log))
        if os.path.exists(args.litellm):
            port = free_port()
            litellm_cmd = [
                args.litellm,
                "--config",
                "config.yaml",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--num_workers",
                "1",
            ]
            results.append(measure("litellm", litellm_cmd, port, folder, args, script))
        else:
            print(f"(LiteLLM's proxy not found at {args.litellm}: comparison skipped)")
    print(
        f"{'':10} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} {'stream200 ms':>13} {'RSS MB':>8}"
        f" {'start s':>8} {'answered':>9} {'log rows':>9}"
    )
    for r in results:
        rows = f"{r['rows']:9d}" if "rows" in r else f"{'-':>9}"
        print(
            f"{r['name']:10} {r['rps']:8.0f} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} {r['errors']:8d}"
            f" {r['stream_ms']:13.2f} {r['rss_mb']:8.1f} {r['startup_s']:8.2f} {r['answered']:9d} {rows}"
            f"  {r['socket_errors']}"
        )
    one, two = results[0], results[1]
    print(
        f"2 workers / 1 worker: {two['rps'] / one['rps']:.2f}x req/s (goal >= 1.6x on 2 cores), p99"
        f" {one['p99_ms']:.1f} -> {two['p99_ms']:.1f} ms"
    )
    # wrk does not count requests cut off when its time is up, which the server may still have answered
    # and logged: a log may hold up to one such row per connection and run more than wrk counted.
    lost = [r["name"] for r in results if "rows" in r and r["rows"] < r["answered"]]
    print("log rows = requests answered: " + (f"MISSING ROWS in {', '.join(lost)}" if lost else "yes, none lost"))
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
