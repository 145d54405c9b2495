"""Identical calls in flight are made once (threads and tasks), and processes share one cache file."""

import asyncio
import json
import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
from cache_support import USER, counting, dumps, text

import llmkit

N = 8


@pytest.fixture
def use(log):
    llmkit.configure_cache("use")
    return log


def in_threads(n, call):
    """``call()`` in ``n`` threads released at once; their results (or exceptions), in thread order."""
    barrier = threading.Barrier(n)
    results = [None] * n

    def run(i):
        barrier.wait()
        try:
            results[i] = call()
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


# -- threads ---------------------------------------------------------------------------------------
def test_identical_sync_calls_in_flight_are_made_once(use):
    # Each call takes 0.5 s: without coalescing every thread would miss the cache and call the handler.
    handler = counting(delay=0.5)
    answers = in_threads(N, lambda: llmkit.completion("count/m", USER))
    assert handler.total == 1
    assert {text(a) for a in answers} == {"answer 1"} and len({id(a) for a in answers}) == N
    rows = use.records()
    assert sorted(r["cache_hit"] for r in rows) == [False] + [True] * (N - 1)


def test_identical_sync_streams_in_flight_are_made_once_and_read_whole_by_each(use):
    handler = counting(words=5, delay=0.05)
    streams = in_threads(N, lambda: list(llmkit.completion("count/m", USER, stream=True)))
    assert handler.calls == {"streaming": 1}
    assert all(dumps(s) == dumps(streams[0]) for s in streams) and len(streams[0]) == 6
    rows = use.records()
    assert sorted(r["cache_hit"] for r in rows) == [False] + [True] * (N - 1)
    assert {r["response"] for r in rows} == {"w0.1 w1.1 w2.1 w3.1 w4.1 "} and {r["status"] for r in rows} == {"ok"}


def test_two_identical_streams_in_one_thread_read_in_any_order(use):
    handler = counting(words=4)
    first = llmkit.completion("count/m", USER, stream=True)
    second = llmkit.completion("count/m", USER, stream=True)  # joins the first, which nobody has read yet
    later = list(second)  # reading it drives the one live stream: no waiting on the unread first
    earlier = list(first)
    assert handler.calls == {"streaming": 1} and dumps(earlier) == dumps(later) and len(later) == 5
    assert dumps(llmkit.completion("count/m", USER, stream=True)) == dumps(later)  # kept once complete


def test_a_failed_call_in_flight_lets_the_others_make_it(use):
    handler = counting(delay=0.3, fail=[503])
    results = in_threads(3, lambda: llmkit.completion("count/m", USER))
    errors = [r for r in results if isinstance(r, Exception)]
    assert len(errors) == 1 and isinstance(errors[0], llmkit.ServiceUnavailableError)
    assert handler.total == 2 and {text(r) for r in results if r not in errors} == {"answer 2"}


# -- tasks -----------------------------------------------------------------------------------------
def test_identical_async_calls_in_flight_are_made_once(use):
    handler = counting(delay=0.2)

    async def main():
        return await asyncio.gather(*(llmkit.acompletion("count/m", USER) for _ in range(N)))

    answers = asyncio.run(main())
    assert handler.total == 1 and {text(a) for a in answers} == {"answer 1"}
    assert sorted(r["cache_hit"] for r in use.records()) == [False] + [True] * (N - 1)


def test_identical_async_streams_in_flight_are_made_once(use):
    handler = counting(words=5, delay=0.02)

    async def read():
        return [chunk async for chunk in await llmkit.acompletion("count/m", USER, stream=True)]

    async def main():
        return await asyncio.gather(*(read() for _ in range(N)))

    streams = asyncio.run(main())
    assert handler.calls == {"astreaming": 1}
    assert all(dumps(s) == dumps(streams[0]) for s in streams) and len(streams[0]) == 6


def test_a_waiting_call_cancelled_leaves_the_others_their_answer(use):
    handler = counting(delay=0.3)

    async def main():
        tasks = [asyncio.ensure_future(llmkit.acompletion("count/m", USER)) for _ in range(3)]
        await asyncio.sleep(0.1)
        tasks[1].cancel()  # a follower
        return await asyncio.gather(*tasks, return_exceptions=True)

    first, cancelled, third = asyncio.run(main())
    assert isinstance(cancelled, asyncio.CancelledError)
    assert text(first) == text(third) == "answer 1" and handler.total == 1
    rows = sorted((r["status"], r["cache_hit"]) for r in use.records())  # the cancelled wait is a row too
    assert rows == [("cancelled", False), ("ok", False), ("ok", True)]


def test_a_stream_failing_midway_fails_every_reader_and_is_not_kept(use):
    class Breaks(llmkit.CustomLLM):
        calls = 0

        async def astreaming(self, model, messages, optional_params, **kwargs):
            Breaks.calls += 1
            yield {"text": "half ", "is_finished": False, "finish_reason": None, "usage": None}
            await asyncio.sleep(0.1)
            if Breaks.calls == 1:
                raise llmkit.CustomLLMError(502, "upstream went away")
            yield {"text": "whole", "is_finished": True, "finish_reason": "stop", "usage": None}

    llmkit.register_provider("breaks", Breaks())

    async def read():
        return [chunk async for chunk in await llmkit.acompletion("breaks/m", USER, stream=True)]

    async def main():
        return await asyncio.gather(*(read() for _ in range(3)), return_exceptions=True)

    results = asyncio.run(main())
    assert all(isinstance(r, llmkit.BadGatewayError) and "upstream went away" in r.message for r in results)
    assert Breaks.calls == 1
    again = asyncio.run(read())  # nothing was kept: called again, and whole this time
    assert "".join(c.choices[0].delta.content or "" for c in again) == "half whole" and Breaks.calls == 2
    statuses = [(r["status"], r["cache_hit"]) for r in use.records()]
    assert statuses.count(("error", False)) == 1 and statuses.count(("error", True)) == 2


# -- processes -------------------------------------------------------------------------------------
SCRIPT = """
import json, sys
sys.path.insert(0, {tests!r})
import llmkit
from cache_support import counting, text

handler = counting()
first, last = int(sys.argv[1]), int(sys.argv[2])
asks = [[{{"role": "user", "content": f"prompt {{i}}"}}] for i in range(first, last)]
answers = [text(llmkit.completion("count/m", messages)) for messages in asks]
print(json.dumps({{"calls": handler.total, "answers": answers}}))
"""


@pytest.mark.parametrize("where", ["sqlite", "postgres"])
def test_processes_share_one_cache(tmp_path, request, where):
    script = tmp_path / "calls.py"
    script.write_text(SCRIPT.format(tests=str(Path(__file__).parent)))
    if where == "sqlite":
        log = {"path": tmp_path / "shared.db"}
        env = {**os.environ, "LLMKIT_LOG_PATH": str(log["path"]), "LLMKIT_CACHE": "use"}
    else:  # the answers in the team's database, which every process shares
        log = {"url": request.getfixturevalue("postgres_server").create_database(f"c_{uuid.uuid4().hex[:12]}")}
        env = {**os.environ, "LLMKIT_LOG_URL": log["url"], "LLMKIT_CACHE": "use"}

    def start(first, last, **extra):
        args = [sys.executable, str(script), str(first), str(last)]
        return subprocess.Popen(args, env={**env, **extra}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def result(process):
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        return json.loads(out)

    a, b = start(0, 60), start(30, 90)  # at once, overlapping on prompts 30-59
    a, b = result(a), result(b)
    assert 90 <= a["calls"] + b["calls"] <= 120
    replay = result(start(0, 90, LLMKIT_CACHE="replay"))
    assert replay["calls"] == 0
    assert replay["answers"][:30] == a["answers"][:30] and replay["answers"][60:] == b["answers"][30:]
    assert all(
        r in (x, y) for r, x, y in zip(replay["answers"][30:60], a["answers"][30:], b["answers"][:30], strict=True)
    )
    llmkit.configure_log(**log)
    try:
        rows = llmkit.calls.records()
    finally:
        llmkit.configure_log()
    assert len(rows) == 60 + 60 + 90
    assert sum(r["cache_hit"] for r in rows) == 90 + 120 - a["calls"] - b["calls"]
