"""The openai/<model> provider against the official ``openai`` client, on the same local server.

    python bench/openai_provider.py [--requests 300] [--tokens 2000] [--rounds 5]

A fake OpenAI-compatible server (tests/fake_servers.py) runs in a subprocess on 127.0.0.1, so that
its work does not share the benchmark's interpreter. Both clients call it in the same run, in
alternating rounds:

- per-request time: the median over sequential non-streamed chat completions (sync and async);
- streaming throughput: chunks per second reading a ``--tokens``-chunk SSE stream that the server
  writes at once, so the figure is the client's parsing cost, not the server's pacing.

Ratios are llmkit / official: below 1.0 per request, or above 1.0 for throughput, means llmkit wins.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path

import openai

import llmkit

ROOT = Path(__file__).resolve().parent.parent
MESSAGES = [{"role": "user", "content": "benchmark prompt with a few words"}]
SERVER = """
import sys
sys.path.insert(0, sys.argv[1])
from fake_servers import FakeServer, openai_app
server = FakeServer(openai_app()).__enter__()
print(server.url, flush=True)
sys.stdin.read()  # serve until the benchmark closes our stdin
"""


def start_server() -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(ROOT / "tests")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    return process, process.stdout.readline().strip() + "/v1"


def per_request(call, n: int) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


async def per_request_async(call, n: int) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        await call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="requests per client per round")
    parser.add_argument("--tokens", type=int, default=2000, help="chunks in each streamed answer")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    process, base = start_server()
    try:
        run(base, args)
    finally:
        process.stdin.close()
        process.wait(timeout=5)


def run(base: str, args: argparse.Namespace) -> None:
    official = openai.OpenAI(base_url=base, api_key="sk-bench", max_retries=0)
    official_async = openai.AsyncOpenAI(base_url=base, api_key="sk-bench", max_retries=0)
    stream_body = {"max_tokens": args.tokens, "burst": True}

    def ours() -> None:
        llmkit.completion("openai/echo", MESSAGES, api_base=base, api_key="sk-bench")

    def theirs() -> None:
        official.chat.completions.create(model="echo", messages=MESSAGES)

    async def ours_async() -> None:
        await llmkit.acompletion("openai/echo", MESSAGES, api_base=base, api_key="sk-bench")

    async def theirs_async() -> None:
        await official_async.chat.completions.create(model="echo", messages=MESSAGES)

    def ours_stream() -> int:
        stream = llmkit.completion("openai/echo", MESSAGES, api_base=base, api_key="sk-bench", stream=True, **stream_body)
        return sum(1 for _ in stream)

    def theirs_stream() -> int:
        stream = official.chat.completions.create(
            model="echo", messages=MESSAGES, stream=True, stream_options={"include_usage": True}, extra_body=stream_body
        )
        return sum(1 for _ in stream)

    async def ours_astream() -> int:
        stream = await llmkit.acompletion("openai/echo", MESSAGES, api_base=base, api_key="sk-bench", stream=True, **stream_body)
        return len([c async for c in stream])

    async def theirs_astream() -> int:
        stream = await official_async.chat.completions.create(
            model="echo", messages=MESSAGES, stream=True, stream_options={"include_usage": True}, extra_body=stream_body
        )
        return len([c async for c in stream])

    def throughput(fn) -> float:
        start = time.perf_counter()
        chunks = fn()
        return chunks / (time.perf_counter() - start)

    async def athroughput(fn) -> float:
        start = time.perf_counter()
        chunks = await fn()
        return chunks / (time.perf_counter() - start)

    async def async_round(results: dict) -> None:
        results["async request"][0].append(await per_request_async(ours_async, args.requests))
        results["async request"][1].append(await per_request_async(theirs_async, args.requests))
        results["async stream"][0].append(await athroughput(ours_astream))
        results["async stream"][1].append(await athroughput(theirs_astream))

    results = {name: ([], []) for name in ("sync request", "async request", "sync stream", "async stream")}
    ours(), theirs(), ours_stream(), theirs_stream()  # warm up: connections, imports, pydantic schemas
    loop = asyncio.new_event_loop()
    loop.run_until_complete(async_round({k: ([], []) for k in results}))
    for _ in range(args.rounds):
        results["sync request"][0].append(per_request(ours, args.requests))
        results["sync request"][1].append(per_request(theirs, args.requests))
        results["sync stream"][0].append(throughput(ours_stream))
        results["sync stream"][1].append(throughput(theirs_stream))
        loop.run_until_complete(async_round(results))
    loop.run_until_complete(loop.shutdown_asyncgens())  # the official client leaves one unclosed
    loop.close()

    print(f"openai {openai.__version__}, llmkit {llmkit.__version__}; {args.rounds} rounds,"
          f" {args.requests} requests/round, {args.tokens}-chunk streams; medians over rounds")
    print(f"{'':16}{'llmkit':>14}{'official':>14}{'ratio':>8}")
    for name, (mine, peer) in results.items():
        a, b = statistics.median(mine), statistics.median(peer)
        if name.endswith("request"):
            print(f"{name:16}{a * 1e6:>11.0f} us{b * 1e6:>11.0f} us{a / b:>8.2f}")
        else:
            print(f"{name:16}{a:>8.0f} chunk/s{b:>8.0f} chunk/s{a / b:>8.2f}".replace(" chunk/s", "/s"))


if __name__ == "__main__":
    main()
