"""A long stream through the proxy in bounded memory: chunks are let go once sent (issue 12 item 5)."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import httpx
import pytest
from proxy_support import ServerProcess

from llmkit.streaming import CustomStreamWrapper

CONFIG = """\
model_list:
  - {model_name: slow, litellm_params: {model: test/slow}}
litellm_settings:
  custom_provider_map: [{provider: test, custom_handler: test_handlers.slowpoke}]
"""
CHUNKS = 100_000


def rss_mb(pid: int) -> float:
    return int(re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text()).group(1)) / 1024


@pytest.mark.skipif(
    not hasattr(CustomStreamWrapper, "replay_limit"),
    reason="needs the stream wrapper's replay_limit (issue 12 item 5, the library half)",
)
def test_a_100000_chunk_stream_does_not_grow_the_server_by_its_chunks(tmp_path):
    server = ServerProcess(tmp_path, CONFIG).wait_ready()
    try:
        body = {"model": "slow", "messages": [{"role": "user", "content": "x"}], "stream": True, "chunks": 100}
        httpx.post(server.url + "/v1/chat/completions", json=body, timeout=60)  # warm up
        before = rss_mb(server.process.pid)
        events = 0
        with httpx.stream(
            "POST", server.url + "/v1/chat/completions", json={**body, "chunks": CHUNKS}, timeout=120
        ) as response:
            for line in response.iter_lines():
                events += line.startswith("data: ")
                if events == CHUNKS // 2:
                    middle = rss_mb(server.process.pid)
        after = rss_mb(server.process.pid)
        server.signal(signal.SIGTERM)
        assert server.wait() == 0
    finally:
        server.kill()
    assert events == CHUNKS + 2  # every chunk, the finish_reason chunk and [DONE]
    # Kept, a chunk costs about 2 KB: 100,000 of them would be some 200 MB. The text the log keeps is ~1 MB.
    assert max(middle, after) - before < 60, (before, middle, after)
    ((status, length),) = server.rows("status, length(response)")[-1:]
    assert status == "ok" and length > 500_000  # the log still has the whole answer
