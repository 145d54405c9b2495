"""How much does %%llm add to a stream? A 5,000-chunk demo/lorem stream, through the magic and bare.

    python bench/magic_stream.py [--runs 31] [--chunks 5000] [--no-kernel]

Measured in one run, interleaved, medians:
  bare sync     for chunk in llmkit.completion(..., stream=True): pass
  bare async    async for over llmkit.acompletion(..., stream=True) on llmkit's bridge loop (the
                path the magic takes, without any rendering)
  magic         %%llm in an IPython InteractiveShell whose display publisher JSON-encodes every
                message, as a kernel does
  kernel        the same two cells (bare sync loop vs %%llm) in a real ipykernel, timed from
                execute_request to the idle status, as a front-end sees it
The goal: magic / bare <= 1.2.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import llmkit
from llmkit import aio

MODEL = "demo/lorem"


def params(chunks: int) -> dict:
    return {"max_tokens": chunks, "tokens_per_second": 0}


def bare_sync(chunks: int) -> int:
    count = 0
    for _ in llmkit.completion(MODEL, [{"role": "user", "content": "bench"}], stream=True, **params(chunks)):
        count += 1
    return count


def bare_async(chunks: int) -> int:
    async def consume() -> int:
        count = 0
        stream = await llmkit.acompletion(MODEL, [{"role": "user", "content": "bench"}], stream=True, **params(chunks))
        async for _ in stream:
            count += 1
        return count

    return aio.run_sync(consume())


def make_shell():
    from IPython.core.displaypub import DisplayPublisher
    from IPython.core.interactiveshell import InteractiveShell

    class JSONPublisher(DisplayPublisher):
        """Encodes each message the way a kernel must before sending it; counts them."""

        messages = 0

        def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kwargs):
            json.dumps({"data": data, "metadata": metadata or {}, "transient": transient or {}})
            JSONPublisher.messages += 1

    shell = InteractiveShell.instance()
    shell.display_pub = JSONPublisher(shell=shell)
    shell.extension_manager.load_extension("llmkit")
    return shell, JSONPublisher


def magic_cell(chunks: int) -> str:
    return f"%%llm {MODEL} --max-tokens {chunks} -p tokens_per_second=0\nbench"


def bare_cell(chunks: int) -> str:
    return (
        "import llmkit\n"
        f"for _ in llmkit.completion({MODEL!r}, [{{'role': 'user', 'content': 'bench'}}], stream=True,"
        f" max_tokens={chunks}, tokens_per_second=0): pass"
    )


def timed(fn, *args) -> float:
    started = time.perf_counter()
    fn(*args)
    return time.perf_counter() - started


def in_process(runs: int, chunks: int) -> dict[str, list[float]]:
    shell, publisher = make_shell()
    assert bare_sync(chunks) >= chunks  # warm up, and check the stream has the chunks we think
    bare_async(chunks)
    shell.run_cell(magic_cell(chunks))
    times: dict[str, list[float]] = {"bare sync": [], "bare async": [], "magic": []}
    publisher.messages = 0
    for _ in range(runs):
        times["bare sync"].append(timed(bare_sync, chunks))
        times["bare async"].append(timed(bare_async, chunks))
        times["magic"].append(timed(shell.run_cell, magic_cell(chunks)))
    print(f"display messages per %%llm cell: {publisher.messages / runs:.1f}")
    return times


def in_kernel(runs: int, chunks: int) -> dict[str, list[float]]:
    from jupyter_client.manager import start_new_kernel

    manager, client = start_new_kernel(kernel_name="python3")
    try:

        def execute(code: str) -> float:
            started = time.perf_counter()
            msg_id = client.execute(code)
            while True:
                msg = client.get_iopub_msg(timeout=60)
                if (
                    msg["parent_header"].get("msg_id") == msg_id
                    and msg["msg_type"] == "status"
                    and msg["content"]["execution_state"] == "idle"
                ):
                    return time.perf_counter() - started

        execute("%load_ext llmkit")
        execute(bare_cell(chunks))
        execute(magic_cell(chunks))
        times: dict[str, list[float]] = {"kernel bare": [], "kernel magic": []}
        for _ in range(runs):
            times["kernel bare"].append(execute(bare_cell(chunks)))
            times["kernel magic"].append(execute(magic_cell(chunks)))
        return times
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=31)
    parser.add_argument("--chunks", type=int, default=5000)
    parser.add_argument("--no-kernel", action="store_true", help="skip the real-kernel measurement")
    args = parser.parse_args()
    times = in_process(args.runs, args.chunks)
    if not args.no_kernel:
        times.update(in_kernel(args.runs, args.chunks))
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"{args.chunks} chunks, {args.runs} runs, medians:")
    for name, value in medians.items():
        print(f"  {name:<13} {value * 1000:8.1f} ms")
    print(f"magic / bare sync   {medians['magic'] / medians['bare sync']:.2f}x")
    print(f"magic / bare async  {medians['magic'] / medians['bare async']:.2f}x")
    if "kernel magic" in medians:
        print(f"kernel magic / bare {medians['kernel magic'] / medians['kernel bare']:.2f}x   (goal <= 1.2x)")


if __name__ == "__main__":
    main()
