"""What plugins, the LiteLLM bridge and price tables cost, and where they stay out of the way.

    python bench/providers.py            # medians; the peers are measured in the same run
    python bench/providers.py --quick

- import: ``import llmkit`` against the same import followed by an entry point scan (what an eager
  plugin design would cost every process), and against ``import litellm``.
- discovery: the first scan of the installed packages' entry points (cold: importlib.metadata not
  yet imported, as in a fresh process), and a rescan (what naming an unknown provider costs).
- per call: ``completion()`` to a plugin's provider against the same handler registered by hand,
  with a handler that does no work; a plugin is installed for the run as a hand-made dist-info
  directory in a temporary folder on ``sys.path``.
- prices: reading LiteLLM's bundled table (when installed), and a call's cost computed from it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

os.environ["LLMKIT_LOG"] = "off"  # the call log is measured by bench/calllog.py
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

PLUGIN_MODULE = """
from llmkit import CustomLLM, ModelResponse

RESPONSE = ModelResponse(model="m", choices=[{"message": {"content": "hi"}}])


class Nothing(CustomLLM):
    def completion(self, *args, **kwargs):
        return RESPONSE
"""


def subprocess_ms(code: str, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def inprocess_ms(code: str, runs: int) -> float:
    """Median ms of the last statement of ``code``, timed inside fresh processes."""
    setup, timed = code.rsplit("\n", 1)
    script = f"import time\n{setup}\nt = time.perf_counter()\n{timed}\nprint((time.perf_counter() - t) * 1000)"
    values = [
        float(subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True).stdout)
        for _ in range(runs)
    ]
    return statistics.median(values)


def per_call_us(function, repeat: int, number: int) -> float:
    best = []
    for _ in range(repeat):
        started = time.perf_counter()
        for _ in range(number):
            function()
        best.append((time.perf_counter() - started) / number * 1e6)
    return statistics.median(best)


def install_plugin(folder: str) -> None:
    """A real installed distribution as importlib.metadata sees one: a module and its dist-info."""
    with open(os.path.join(folder, "bench_plugin.py"), "w") as module:
        module.write(PLUGIN_MODULE)
    info = os.path.join(folder, "bench_plugin-1.0.dist-info")
    os.mkdir(info)
    with open(os.path.join(info, "METADATA"), "w") as metadata:
        metadata.write("Metadata-Version: 2.1\nName: bench-plugin\nVersion: 1.0\n")
    with open(os.path.join(info, "entry_points.txt"), "w") as entry_points:
        entry_points.write("[llmkit.providers]\nbenchplug = bench_plugin:Nothing\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    runs, number = (5, 2_000) if args.quick else (15, 20_000)

    print("import (ms, median of fresh processes)")
    plain = subprocess_ms("import llmkit", runs)
    scanned = subprocess_ms("import llmkit; from llmkit.providers import plugins; plugins.discover()", runs)
    print(f"  import llmkit                        {plain:8.1f}")
    print(f"  import llmkit + entry point scan     {scanned:8.1f}   (+{scanned - plain:.1f}: kept off import llmkit)")
    try:
        import importlib.util

        if importlib.util.find_spec("litellm") is not None:
            heavy = subprocess_ms("import litellm", max(3, runs // 3))
            ratio = f"{heavy / plain:.0f}x llmkit"
            print(f"  import litellm                       {heavy:8.1f}   ({ratio}: only on a litellm/ call)")
    except ImportError:
        pass

    print("discovery (ms, median of fresh processes)")
    cold = inprocess_ms("import llmkit\nfrom llmkit.providers import plugins\nplugins.discover()", runs)
    rescan = inprocess_ms(
        "import llmkit\nfrom llmkit.providers import plugins\nplugins.discover()\nplugins.discover(refresh=True)", runs
    )
    print(f"  first scan (imports importlib.metadata)  {cold:6.2f}")
    print(f"  rescan (an unknown provider named)       {rescan:6.2f}")

    import llmkit
    from llmkit.providers import plugins

    folder = tempfile.mkdtemp(prefix="llmkit-bench-plugin-")
    install_plugin(folder)
    sys.path.insert(0, folder)
    plugins.reset()
    messages = [{"role": "user", "content": "hi"}]
    llmkit.completion("benchplug/m", messages)  # discovered and loaded once
    handler = plugins.discover()["benchplug"].handler
    llmkit.register_provider("byhand", handler)
    registered = per_call_us(lambda: llmkit.completion("byhand/m", messages), runs, number // 10)
    plugged = per_call_us(lambda: llmkit.completion("benchplug/m", messages), runs, number // 10)
    print("per call (us, completion() with a do-nothing handler, log off)")
    print(f"  registered by hand                   {registered:8.2f}")
    print(f"  from a plugin                        {plugged:8.2f}   (ratio {plugged / registered:.2f})")

    from llmkit import prices
    from llmkit.calllog.costs import cost_of

    started = time.perf_counter()
    tables = prices.tables()
    loaded_ms = (time.perf_counter() - started) * 1000
    if tables:
        print("prices")
        models = sum(len(t.entries) for t in tables)
        print(f"  read LiteLLM's bundled table         {loaded_ms:8.1f} ms  ({models} models, once per process)")
        cost_us = per_call_us(lambda: cost_of("openai/gpt-4o", "gpt-4o", 120, 40, provider="openai"), runs, number)
        print(f"  cost of one call from the table      {cost_us:8.2f} us (on the log's writer thread)")
    print("(a loaded machine inflates every figure; compare the rows of one run)")


if __name__ == "__main__":
    main()
