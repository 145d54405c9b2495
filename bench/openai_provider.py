"""The openai/<model> provider against raw HTTP clients and the official ``openai`` client.

    python bench/openai_provider.py [--part concurrency|official|all] [--rounds 5]

``concurrency`` (issue 16): streamed chat calls at concurrency 32 and 128 against a local server in a
subprocess that answers after ``--delay`` = 50 ms: by default bench/stream_server.py, light enough
that the clients, not the server, use the CPU (a role chunk, ``--chunks`` content chunks, a finish
chunk, a usage chunk, [DONE]); with ``--server proxy``, ``llmkit serve`` with its call log off and a
handler that streams ``--chunks`` chunks, the setup issue 16 measured. In the same run, in interleaved
rounds (the order rotates), each client makes the same calls, reading every event and decoding it:

- raw aiohttp, raw httpx, and httpx over the aiohttp transport (``pip install httpx-aiohttp``), as peers;
- ``llmkit.acompletion("openai/...", stream=True)``, with the call log in a temporary SQLite file (as
  users have it) and with the log off;
- ``llmkit.compare()`` of 200 prompts x 3 models at concurrency 32 (wall time inside the call).

Reported: the median wall time, client CPU per call (this process's CPU time over the calls, every
thread included; the server's CPU is not), and each wall time over raw aiohttp's in the same round.
The ideal wall time is calls x delay / concurrency.

``official``: the provider against the official ``openai`` client on tests/fake_servers.py's server,
in alternating rounds: per-request time (median over sequential non-streamed calls, sync and async),
and streaming throughput (chunks/s reading a ``--tokens``-chunk stream written at once, so the figure
is the client's parsing cost). Ratios are llmkit / official: below 1.0 per request, or above 1.0 for
throughput, means llmkit wins.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


def start_fake_server() -> tuple[subprocess.Popen, str]:
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
    parser.add_argument("--part", choices=("concurrency", "official", "all"), default="all")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--calls", type=int, default=600, help="calls per client per round (at least 10 waves)")
    parser.add_argument(
        "--server",
        choices=("light", "proxy"),
        default="light",
        help="bench/stream_server.py, or llmkit serve with its log off and a delayed handler",
    )
    parser.add_argument("--delay", type=float, default=0.05, help="the server's seconds before each answer")
    parser.add_argument("--chunks", type=int, default=20, help="content chunks in each streamed answer")
    parser.add_argument("--requests", type=int, default=300, help="official: requests per client per round")
    parser.add_argument("--tokens", type=int, default=2000, help="official: chunks in each streamed answer")
    args = parser.parse_args()
    if args.part in ("concurrency", "all"):
        concurrency(args)
    if args.part in ("official", "all"):
        process, base = start_fake_server()
        try:
            official(base, args)
        finally:
            process.stdin.close()
            process.wait(timeout=5)


# -- concurrency: raw clients and llmkit, streamed, against a local server ---------------------------
def start_stream_server(args: argparse.Namespace) -> tuple[subprocess.Popen, str]:
    if args.server == "proxy":
        return start_proxy(args)
    command = [
        sys.executable,
        str(ROOT / "bench" / "stream_server.py"),
        "--delay",
        str(args.delay),
        "--chunks",
        str(args.chunks),
    ]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    return process, process.stdout.readline().strip() + "/v1"


PROXY_HANDLER = """
import asyncio
from llmkit import CustomLLM

class Delayed(CustomLLM):
    async def astreaming(self, *args, **kwargs):
        await asyncio.sleep({delay})
        for i in range({chunks}):
            last = i == {chunks} - 1
            usage = (
                {{"prompt_tokens": 5, "completion_tokens": {chunks}, "total_tokens": 5 + {chunks}}} if last else None
            )
            finish = "stop" if last else None
            yield {{"text": f"w{{i}} ", "is_finished": last, "finish_reason": finish, "usage": usage}}

handler = Delayed()
"""


def start_proxy(args: argparse.Namespace) -> tuple[subprocess.Popen, str]:
    """``llmkit serve`` with its call log off and a handler that streams after ``--delay``, as issue 16 measured."""
    import socket
    import urllib.request

    folder = Path(tempfile.mkdtemp(prefix="llmkit-bench-proxy-"))
    (folder / "bench_delayed.py").write_text(PROXY_HANDLER.format(delay=args.delay, chunks=args.chunks))
    models = "".join(f"  - {{model_name: {name}, litellm_params: {{model: delayed/x}}}}\n" for name in MODEL_NAMES)
    (folder / "config.yaml").write_text(
        f"model_list:\n{models}litellm_settings:\n  custom_provider_map:\n"
        "    - {provider: delayed, custom_handler: bench_delayed.handler}\n"
    )
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [
        sys.executable,
        "-m",
        "llmkit.cli",
        "serve",
        "--config",
        "config.yaml",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    env = {**os.environ, "LLMKIT_LOG": "off", "PYTHONPATH": str(folder)}
    process = subprocess.Popen(command, cwd=folder, env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    for _ in range(600):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
            return process, f"http://127.0.0.1:{port}/v1"
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("llmkit serve did not start within 30 s")


MODEL_NAMES = ("bench", "bench-a", "bench-b", "bench-c")


def _decode(line: bytes) -> None:
    if line.startswith(b"data: ") and line[6:].strip() != b"[DONE]":
        json.loads(line[6:])


class Clients:
    """One streamed chat call per client, each reading every event and decoding its JSON."""

    def __init__(self, base: str, concurrency: int) -> None:
        import aiohttp
        import httpx

        self.url = base + "/chat/completions"
        self.aiohttp = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1000))
        limits = httpx.Limits(max_connections=1000, max_keepalive_connections=concurrency)
        self.httpx = httpx.AsyncClient(limits=limits, timeout=600)
        try:
            import httpx_aiohttp
        except ImportError:
            print("httpx + aiohttp transport: skipped, pip install httpx-aiohttp to run it", file=sys.stderr)
            self.httpx_aiohttp = None
        else:
            self.httpx_aiohttp = httpx_aiohttp.HttpxAiohttpClient(limits=limits, timeout=600)
        self.base = base

    def body(self, i: int) -> dict:
        return {"model": "bench", "messages": [{"role": "user", "content": f"prompt {i}"}], "stream": True,
                "stream_options": {"include_usage": True}}  # fmt: skip

    async def raw_aiohttp(self, i: int) -> None:
        async with self.aiohttp.post(self.url, json=self.body(i)) as response:
            response.raise_for_status()
            async for line in response.content:
                _decode(line)

    async def _httpx(self, client, i: int) -> None:
        async with client.stream("POST", self.url, json=self.body(i)) as response:
            response.raise_for_status()
            async for line in response.aiter_lines():
                _decode(line.encode())

    async def raw_httpx(self, i: int) -> None:
        await self._httpx(self.httpx, i)

    async def raw_httpx_aiohttp(self, i: int) -> None:
        await self._httpx(self.httpx_aiohttp, i)

    async def llmkit(self, i: int) -> None:
        messages = [{"role": "user", "content": f"prompt {i}"}]
        stream = await llmkit.acompletion("openai/bench", messages, api_base=self.base, api_key="sk-bench", stream=True)
        async for _ in stream:
            pass

    async def aclose(self) -> None:
        await self.aiohttp.close()
        await self.httpx.aclose()
        if self.httpx_aiohttp is not None:
            await self.httpx_aiohttp.aclose()


async def _on_loop(fn, *args):
    return fn(*args)


async def _drive(call, calls: int, concurrency: int) -> None:
    """``calls`` calls, ``concurrency`` at a time: workers pulling the next call number."""
    numbers = iter(range(calls))

    async def worker() -> None:
        for i in numbers:
            await call(i)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def _timed(run) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def concurrency(args: argparse.Namespace) -> None:
    from llmkit.calllog import configure_log

    log_dir = tempfile.mkdtemp(prefix="llmkit-bench-")
    process, base = start_stream_server(args)
    loop = asyncio.new_event_loop()
    try:
        for level in args.concurrency:
            one_level(loop, base, level, args, Path(log_dir) / "calls.db")
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        process.stdin.close()
        process.terminate()  # the light server also ends with its stdin; llmkit serve needs this
        process.wait(timeout=15)
        configure_log()
        shutil.rmtree(log_dir, ignore_errors=True)


def one_level(loop: asyncio.AbstractEventLoop, base: str, level: int, args: argparse.Namespace, log_path: Path) -> None:
    """Every client at concurrency ``level``, in interleaved rounds; prints the table."""
    from llmkit.calllog import configure_log

    calls = max(args.calls, 10 * level)
    clients = loop.run_until_complete(_on_loop(Clients, base, level))  # aiohttp wants a running loop

    def on_loop(fn, log: str = "sqlite"):
        return (lambda: loop.run_until_complete(_drive(fn, calls, level))), log

    configs = {
        "aiohttp, raw": on_loop(clients.raw_aiohttp),
        "httpx, raw": on_loop(clients.raw_httpx),
        "httpx + aiohttp transport": on_loop(clients.raw_httpx_aiohttp),
        "llmkit, log in SQLite": on_loop(clients.llmkit),
        "llmkit, log off": on_loop(clients.llmkit, "off"),
    }
    if clients.httpx_aiohttp is None:
        del configs["httpx + aiohttp transport"]
    if level == 32:
        models = ["openai/bench-a", "openai/bench-b", "openai/bench-c"]
        prompts = [f"prompt {i}" for i in range(calls // len(models))]

        def compare() -> None:
            llmkit.compare(models, prompts, concurrency=level, progress=False, api_base=base, api_key="sk-bench")

        configs["llmkit.compare(), log in SQLite"] = (compare, "sqlite")
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in configs}
    for round_ in range(args.rounds + 1):  # round 0 warms up: connections, imports, schemas
        names = list(configs)
        names = names[round_ % len(names) :] + names[: round_ % len(names)]  # rotate the order
        figures = {}
        for name in names:
            run, log = configs[name]
            configure_log(log, path=log_path if log == "sqlite" else None)
            figures[name] = _timed(run)
        if round_:
            reference = figures["aiohttp, raw"][0]
            for name, (wall, cpu) in figures.items():
                results[name].append((wall, cpu / calls, wall / reference))
    loop.run_until_complete(clients.aclose())
    ideal = calls * args.delay / level
    print(
        f"\nconcurrency {level}: {calls} streamed calls of {args.chunks} content chunks, {args.delay * 1000:g} ms"
        f" server delay ({args.server} server); ideal wall {ideal:.3f} s; medians over {args.rounds} rounds"
    )
    print(f"{'client':34}{'wall s':>9}{'x ideal':>9}{'x aiohttp':>11}{'CPU ms/call':>13}")
    for name, rows in results.items():
        wall = statistics.median(r[0] for r in rows)
        cpu = statistics.median(r[1] for r in rows)
        ratio = statistics.median(r[2] for r in rows)
        print(f"{name:34}{wall:>9.3f}{wall / ideal:>9.2f}{ratio:>11.2f}{cpu * 1000:>13.3f}")


# -- official: the provider against the official openai client -------------------------------------
def official(base: str, args: argparse.Namespace) -> None:
    import openai

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
        stream = llmkit.completion(
            "openai/echo", MESSAGES, api_base=base, api_key="sk-bench", stream=True, **stream_body
        )
        return sum(1 for _ in stream)

    def theirs_stream() -> int:
        stream = official.chat.completions.create(
            model="echo", messages=MESSAGES, stream=True, stream_options={"include_usage": True}, extra_body=stream_body
        )
        return sum(1 for _ in stream)

    async def ours_astream() -> int:
        stream = await llmkit.acompletion(
            "openai/echo", MESSAGES, api_base=base, api_key="sk-bench", stream=True, **stream_body
        )
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

    print(
        f"\nopenai {openai.__version__}, llmkit {llmkit.__version__}; {args.rounds} rounds,"
        f" {args.requests} requests/round, {args.tokens}-chunk streams; medians over rounds"
    )
    print(f"{'':16}{'llmkit':>14}{'official':>14}{'ratio':>8}")
    for name, (mine, peer) in results.items():
        a, b = statistics.median(mine), statistics.median(peer)
        if name.endswith("request"):
            print(f"{name:16}{a * 1e6:>11.0f} us{b * 1e6:>11.0f} us{a / b:>8.2f}")
        else:
            print(f"{name:16}{a:>8.0f} chunk/s{b:>8.0f} chunk/s{a / b:>8.2f}".replace(" chunk/s", "/s"))


if __name__ == "__main__":
    main()
