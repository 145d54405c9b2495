"""Token counting never touches the network: tiktoken is used only with its vocabulary already cached.

Each case runs in a fresh interpreter with an audit hook that records (and refuses) every socket
operation, so an attempted download shows up as a recorded event rather than as traffic.
"""

import hashlib
import inspect
import json
import os
import subprocess
import sys

import pytest

tiktoken_ext = pytest.importorskip("tiktoken_ext.openai_public", reason="tiktoken is in the test extra")

PROBE = r"""
import json, sys
attempts = []

def refuse_network(event, args):
    if event.startswith("socket.") or event.startswith("urllib."):
        attempts.append(event)
        raise OSError("the test refuses network access")

sys.addaudithook(refuse_network)
import llmkit
from llmkit import tokens

counted = tokens.count_tokens("hello world, counted offline")
messages = tokens.count_message_tokens([{"role": "user", "content": "hi there"}])
encoded = len(tokens.encoding.encode("hello world"))
reply = llmkit.completion("demo/echo", [{"role": "user", "content": "two words"}])
print(json.dumps({"attempts": attempts, "counted": counted, "messages": messages, "encoded": encoded,
                  "tiktoken_used": tokens._tiktoken() is not None, "usage": reply.usage.total_tokens}))
"""


def probe(env_changes, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR")}
    env.update(env_changes)
    env["LLMKIT_LOG"] = "off"
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def cache_file(folder):
    url = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
    return folder / hashlib.sha1(url.encode()).hexdigest()


def test_an_empty_cache_means_the_estimate_and_no_download(tmp_path):
    result = probe({"TIKTOKEN_CACHE_DIR": str(tmp_path)}, tmp_path)
    assert result["attempts"] == []
    assert result["tiktoken_used"] is False
    assert result["counted"] == 7  # ceil(28 characters / 4): the heuristic
    assert result["encoded"] == 3 and result["messages"] == 6 and result["usage"] > 0
    assert list(tmp_path.iterdir()) == []


def test_the_default_cache_location_is_read_and_not_filled(tmp_path):
    result = probe({"TMPDIR": str(tmp_path)}, tmp_path)  # tiktoken's default is data-gym-cache in the temp dir
    assert result["attempts"] == [] and result["tiktoken_used"] is False
    assert not (tmp_path / "data-gym-cache").exists()


def test_a_damaged_cached_vocabulary_is_neither_used_nor_replaced(tmp_path):
    damaged = cache_file(tmp_path)
    damaged.write_bytes(b"not the vocabulary")
    result = probe({"DATA_GYM_CACHE_DIR": str(tmp_path)}, tmp_path)
    assert result["attempts"] == [] and result["tiktoken_used"] is False
    assert damaged.read_bytes() == b"not the vocabulary"  # tiktoken would delete it and download again


def test_a_cache_turned_off_means_no_tiktoken(tmp_path):
    result = probe({"TIKTOKEN_CACHE_DIR": ""}, tmp_path)
    assert result["attempts"] == [] and result["tiktoken_used"] is False


def test_llmkit_looks_where_tiktoken_looks_for_what_it_expects():
    # If tiktoken moves its vocabulary or changes its checksum, llmkit must learn of it here.
    from llmkit import tokens

    source = inspect.getsource(tiktoken_ext.cl100k_base)
    assert tokens._CL100K_URL in source and tokens._CL100K_SHA256 in source
    assert tokens.tiktoken_cache_path() is not None


def test_a_cached_vocabulary_is_used(tmp_path):
    from llmkit import tokens

    path = tokens.tiktoken_cache_path()
    if path is None or not os.path.exists(path):
        pytest.skip("cl100k_base's vocabulary is not in tiktoken's cache on this machine (it is never downloaded)")
    folder = os.path.dirname(path)
    result = probe({"TIKTOKEN_CACHE_DIR": folder}, tmp_path)
    assert result["attempts"] == [] and result["tiktoken_used"] is True
