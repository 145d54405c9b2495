"""compare(backend="ray") against the local backend, in the same run.

    python bench/ray_compare.py            # about a minute on 2 idle cores, after Ray starts
    python bench/ray_compare.py --repeat 5 --io-concurrency 8

1. CPU-bound: a handler doing ~20 ms of pure-Python work per call, 200 calls. Locally they take
   turns on one core (the GIL); Ray runs them in one worker per CPU, two ways: ``backend="ray"``
   (each worker runs many calls at once, as for models behind APIs) and
   ``backend=RayBackend(num_cpus=1)`` (each job holds a CPU, as docs/scale.md advises for a handler
   that computes: one call at a time per worker). Goal: Ray >= 1.7x faster on 2 CPUs.
2. I/O-bound: a handler that sleeps 50 ms, 1,000 calls, ``--io-concurrency`` at once (32 by
   default). Both backends are bound by the same limit, so the gap is Ray's overhead per call (a
   job sent to a worker and its row and records sent back). Goal: Ray <= 1.3x the local time.

3. For the design: what a semaphore actor (the other way to keep the limits global) would add to
   every call, an acquire and a release, each a round trip to one actor. The backend keeps the
   limits in the driver instead, which adds nothing.

A local Ray with ``--cpus`` CPUs (2) is started first, as an existing cluster would be, and its start
is not timed. The handlers are defined here in ``__main__``, so they travel to the workers by value.
Runs alternate local / Ray, ``--repeat`` times; figures are medians. The first Ray run also starts
the worker processes (they then stay warm for the next comparison): it is reported on its own. The
call log is on (SQLite, in a scratch file), as users get it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from typing import Any

os.environ.setdefault("LLMKIT_LOG_PATH", os.path.join(tempfile.mkdtemp(prefix="llmkit-bench-"), "calls.db"))
os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a throwaway local cluster: no token to write

import llmkit

SPINS = 0  # loop turns making ~20 ms of work; calibrated at start


def spin(turns: int) -> int:
    total = 0
    for i in range(turns):
        total += i * i % 7
    return total


class Busy(llmkit.CustomLLM):
    async def acompletion(self, model, messages, **kwargs):
        spin(kwargs["optional_params"]["spins"])
        return llmkit.ModelResponse(model=model, choices=[{"message": {"content": "done"}}])


class Waiting(llmkit.CustomLLM):
    async def acompletion(self, model, messages, **kwargs):
        await asyncio.sleep(0.05)
        return llmkit.ModelResponse(model=model, choices=[{"message": {"content": "done"}}])


def calibrate(target_s: float = 0.020) -> int:
    turns = 10_000
    while True:
        started = time.perf_counter()
        spin(turns)
        elapsed = time.perf_counter() - started
        if elapsed > 0.005:
            return int(turns * target_s / elapsed)
        turns *= 4


def timed(model: str, calls: int, backend: Any, **options) -> float:
    started = time.perf_counter()
    df = llmkit.compare([model], [f"prompt {i}" for i in range(calls)], backend=backend, progress=False, **options)
    elapsed = time.perf_counter() - started
    assert len(df) == calls and (df["status"] == "ok").all(), df[df["status"] != "ok"].head()
    return elapsed


def scenario(name: str, model: str, calls: int, repeat: int, goal: str, backend: Any = "ray", **options) -> None:
    """Runs alternate local / ``backend``; one Ray backend per scenario, since a run with other
    options stops the idle workers of the last (they could hold the resources it needs)."""
    cold = timed(model, calls, backend, **options)  # starts the worker processes
    local, remote = [], []
    for _ in range(repeat):
        local.append(timed(model, calls, "local", **options))
        remote.append(timed(model, calls, backend, **options))
    local_s, ray_s = statistics.median(local), statistics.median(remote)
    print(f"{name}: {calls} calls")
    print(f"  local  median {local_s:6.2f} s   (runs: {', '.join(f'{t:.2f}' for t in local)})")
    runs = ", ".join(f"{t:.2f}" for t in remote)
    print(f"  ray    median {ray_s:6.2f} s   (runs: {runs}; the first, starting the workers: {cold:.2f})")
    print(f"  ray is {local_s / ray_s:.2f}x as fast as local ({ray_s / local_s:.2f}x its time); goal: {goal}")


def semaphore_actor_cost(rounds: int = 300, repeat: int = 5) -> None:
    import ray

    @ray.remote(num_cpus=0)
    class Semaphore:
        def __init__(self):
            self.held = 0

        async def acquire(self):
            self.held += 1

        async def release(self):
            self.held -= 1

    async def measure() -> list[float]:
        semaphore = Semaphore.remote()
        await semaphore.acquire.remote()  # started
        await semaphore.release.remote()
        costs = []
        for _ in range(repeat):
            started = time.perf_counter()
            for _ in range(rounds):
                await semaphore.acquire.remote()
                await semaphore.release.remote()
            costs.append((time.perf_counter() - started) / rounds * 1000)
        return costs

    costs = asyncio.run(measure())
    print("3. a semaphore actor instead of the driver's limits")
    print(f"  acquire + release: median {statistics.median(costs):.2f} ms added to every call"
          f" (runs: {', '.join(f'{c:.2f}' for c in costs)})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--io-concurrency", type=int, default=32)
    args = parser.parse_args()

    import ray

    started = time.perf_counter()
    ray.init(num_cpus=args.cpus, include_dashboard=False, configure_logging=False, log_to_driver=False)
    print(f"ray.init: {time.perf_counter() - started:.1f} s (not counted); load average {os.getloadavg()[0]:.1f}")
    spins = calibrate()
    llmkit.custom_provider_map = [
        {"provider": "busy", "custom_handler": Busy()},
        {"provider": "wait", "custom_handler": Waiting()},
    ]
    try:
        from llmkit.backends.ray import RayBackend

        scenario('1a. CPU-bound (~20 ms of Python per call), backend="ray"', "busy/m", 200, args.repeat,
                 ">= 1.7x as fast", spins=spins)  # fmt: skip
        scenario("1b. CPU-bound, backend=RayBackend(num_cpus=1)", "busy/m", 200, args.repeat, ">= 1.7x as fast",
                 RayBackend(num_cpus=1), spins=spins)  # fmt: skip
        scenario(f"2. I/O-bound (50 ms sleep, {args.io_concurrency} at once)", "wait/m", 1000, args.repeat,
                 "<= 1.3x the time", concurrency=args.io_concurrency)  # fmt: skip
        semaphore_actor_cost()
    finally:
        from llmkit.backends.ray import release_workers

        release_workers()
        ray.shutdown()


if __name__ == "__main__":
    main()
