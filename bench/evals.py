"""Benchmark of compare() with checks. Run: python bench/evals.py [--quick]

200 prompts x 3 models x 3 samples (1,800 calls to an instant in-process handler, logged to a
fresh SQLite file) with three deterministic checks (contains, regex, max_tokens), against the same
compare without checks, rounds interleaved; medians and their ratio. The goal: checks cost at most
1.2x the plain run (they score each row as it arrives and write their annotations in one batch).
Wall time and the process's CPU time are both shown: on a loaded machine the CPU time is the steadier.
"""

from __future__ import annotations

import gc
import os
import statistics
import sys
import tempfile
import time

import llmkit
from llmkit import checks
from llmkit.calllog import configure_log

QUICK = "--quick" in sys.argv
PROMPTS = [f"Question {i}: what is the capital of France?" for i in range(50 if QUICK else 200)]
MODELS = ["instant/a", "instant/b", "instant/c"]
SAMPLES = 3
ROUNDS = 3 if QUICK else 7
CHECKS = [checks.contains("Paris"), checks.regex(r"capital of \w+"), checks.max_tokens(64)]


class Instant(llmkit.CustomLLM):
    """Answers at once: what is measured is llmkit, not a model."""

    async def acompletion(self, model, messages, optional_params, **kwargs):
        text = f"{model} says: Paris is the capital of France. ({messages[-1]['content'][:12]})"
        return llmkit.ModelResponse(model=model, choices=[{"message": {"content": text}}])


def one_run(with_checks: bool, folder: str, n: int) -> tuple[float, float]:
    configure_log("sqlite", path=os.path.join(folder, f"run{n}.db"))
    gc.collect()  # each run starts clean: neither peer pays for the garbage of the run before it
    start, cpu = time.perf_counter(), time.process_time()
    df = llmkit.compare(MODELS, PROMPTS, samples=SAMPLES, checks=CHECKS if with_checks else None, progress=False)
    llmkit.calls.flush()  # the log written, annotations too: the whole cost of the run
    took = time.perf_counter() - start, time.process_time() - cpu
    assert len(df) == len(PROMPTS) * len(MODELS) * SAMPLES and (df["status"] == "ok").all()
    if with_checks:
        assert df["passed"].all()
    return took


def main() -> None:
    llmkit.custom_provider_map = [{"provider": "instant", "custom_handler": Instant()}]
    calls = len(PROMPTS) * len(MODELS) * SAMPLES
    print(f"compare(): {len(PROMPTS)} prompts x {len(MODELS)} models x {SAMPLES} samples = {calls:,} calls")
    times: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as folder:
        one_run(False, folder, -1)  # warm-up: imports, the loop thread
        for n in range(ROUNDS):
            for with_checks in (False, True) if n % 2 == 0 else (True, False):
                times[with_checks].append(one_run(with_checks, folder, 2 * n + with_checks))
    medians = {key: [statistics.median(t[i] for t in runs) for i in (0, 1)] for key, runs in times.items()}
    for key, label in ((False, "without checks"), (True, "with 3 checks ")):
        wall, cpu = medians[key]
        per_call = f"{wall / calls * 1e6:5.1f} us per call"
        print(f"   {label}  median wall {wall * 1e3:7.1f} ms ({per_call}), cpu {cpu * 1e3:7.1f} ms")
    ratios = [medians[True][i] / medians[False][i] for i in (0, 1)]
    print(f"   ratio wall {ratios[0]:.2f}x, cpu {ratios[1]:.2f}x (goal <= 1.2x)")


if __name__ == "__main__":
    main()
