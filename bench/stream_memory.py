"""Memory of a long library stream: peak RSS while draining N chunks, then its whole text.

    python bench/stream_memory.py               # 1,000,000 chunks
    python bench/stream_memory.py --chunks 300000

A stream keeps its chunks for a replay only up to CustomStreamWrapper.replay_limit (10,000), so the
peak should stay near start-up RSS plus ~20 MB whatever N is; keeping every chunk costs ~2 KB each.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time

# The call log stays on, as it is for users, but writes to a scratch file rather than the user's log.
os.environ.setdefault("LLMKIT_LOG_PATH", os.path.join(tempfile.mkdtemp(prefix="llmkit-bench-"), "calls.db"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=1_000_000)
    args = parser.parse_args()

    import llmkit

    chunk = {"text": "tok ", "is_finished": False, "finish_reason": None, "usage": None}

    class Long(llmkit.CustomLLM):
        def streaming(self, **kwargs):
            for _ in range(args.chunks):
                yield chunk
            yield {**chunk, "text": "", "is_finished": True, "finish_reason": "stop"}

    llmkit.register_provider("long", Long())
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    stream = llmkit.completion("long/m", [{"role": "user", "content": "go"}], stream=True)
    delivered = sum(1 for _ in stream)
    text = stream.text()
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{delivered:,} chunks, {len(text):,} characters of text, {seconds:.1f} s")
    print(f"peak RSS {before:.0f} MB before the stream, {peak:.0f} MB after (+{peak - before:.0f} MB)")


if __name__ == "__main__":
    main()
