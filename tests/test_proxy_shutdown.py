"""Stopping `llmkit serve` with real signals: drain, stop what is left, flush the log, exit 0."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import threading
import time

import httpx
import pytest
from proxy_support import ServerProcess, free_port, llmkit_command, write_config

CONFIG = """\
model_list:
  - {model_name: slow, litellm_params: {model: test/slow}}
litellm_settings:
  custom_provider_map: [{provider: test, custom_handler: test_handlers.slowpoke}]
"""


def stream(url: str, body: dict, out: list, first: threading.Semaphore | None = None) -> None:
    """POST a streamed chat and keep every SSE data line (in a thread); release ``first`` at the first."""
    body = {"model": "slow", "messages": [{"role": "user", "content": "x"}], "stream": True, **body}
    lines: list[str] = []
    try:
        with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=30) as response:
            for line in response.iter_lines():
                if line.startswith("data: "):
                    lines.append(line)
                    if len(lines) == 1 and first is not None:
                        first.release()
    except httpx.HTTPError as exc:
        lines.append(f"client error: {exc!r}")
    out.append(lines)


def wait_for(semaphore: threading.Semaphore, count: int) -> None:
    for _ in range(count):
        assert semaphore.acquire(timeout=30), "a stream did not start"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_an_idle_server_exits_0_within_half_a_second(tmp_path, sig):
    server = ServerProcess(tmp_path, CONFIG).wait_ready()
    try:
        began = time.monotonic()
        server.signal(sig)
        assert server.wait(timeout=10) == 0
        assert time.monotonic() - began < 0.5
    finally:
        server.kill()


def test_streams_finishing_during_the_drain_all_complete_and_are_all_logged(tmp_path):
    server = ServerProcess(tmp_path, CONFIG).wait_ready()
    try:
        results: list = []
        started = threading.Semaphore(0)
        body = {"chunks": 40, "every": 0.05}
        threads = [threading.Thread(target=stream, args=(server.url, body, results, started)) for _ in range(30)]
        for thread in threads:
            thread.start()
        wait_for(started, 30)  # every stream is under way
        server.signal(signal.SIGTERM)
        for thread in threads:
            thread.join(timeout=30)
        assert server.wait(timeout=30) == 0
    finally:
        server.kill()
    assert len(results) == 30
    assert all(lines[-1] == "data: [DONE]" and len(lines) == 42 for lines in results), results[0]
    assert server.rows() == [("ok",)] * 30  # the log was flushed before the process ended


def test_requests_still_running_at_the_deadline_are_stopped_answered_and_logged_as_cancelled(tmp_path):
    marks, call_marks = tmp_path / "marks", tmp_path / "call-marks"
    marks.mkdir()
    call_marks.mkdir()
    server = ServerProcess(tmp_path, CONFIG, "--timeout-graceful-shutdown", "0.5").wait_ready()
    try:
        streamed: list = []
        started = threading.Semaphore(0)
        stream_thread = threading.Thread(
            target=stream, args=(server.url, {"chunks": 1000, "every": 0.05, "marks": str(marks)}, streamed, started)
        )
        stream_thread.start()
        wait_for(started, 1)
        answered: list = []
        body = {
            "model": "slow",
            "messages": [{"role": "user", "content": "x"}],
            "seconds": 60,
            "marks": str(call_marks),
        }
        call_thread = threading.Thread(
            target=lambda: answered.append(httpx.post(server.url + "/v1/chat/completions", json=body, timeout=30))
        )
        call_thread.start()
        deadline = time.monotonic() + 20
        while not (call_marks / "started").exists() and time.monotonic() < deadline:  # the call reached its handler
            time.sleep(0.02)
        began = time.monotonic()
        server.signal(signal.SIGTERM)
        stream_thread.join(timeout=20)
        call_thread.join(timeout=20)
        assert server.wait(timeout=20) == 0
        assert time.monotonic() - began < 5
    finally:
        server.kill()
    (lines,) = streamed
    assert lines[0].startswith("data: {") and "w0" in lines[0]
    error = json.loads(lines[-1].removeprefix("data: "))["error"]  # the stream ends with an SSE error event
    assert "shutting down" in error["message"] and error["code"] == "server_shutting_down"
    (response,) = answered
    assert response.status_code == 503 and "shutting down" in response.json()["error"]["message"]
    assert (marks / "finally").exists() and (call_marks / "finally").exists()  # cancelled: finally blocks ran
    assert sorted(server.rows("kind, status")) == [("chat", "cancelled"), ("stream", "cancelled")]


def test_a_port_in_use_is_one_clear_line_and_exit_2(tmp_path):
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        config = write_config(tmp_path, "model_list:\n  - {model_name: echo, litellm_params: {model: demo/echo}}\n")
        done = subprocess.run(
            [*llmkit_command(), "serve", "--config", str(config), "--host", "127.0.0.1", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"port {port}" in lines[0] and "--port" in lines[0] and "in use" in lines[0]
    assert "llmkit proxy: http://" not in done.stderr  # nothing announced a server that never ran
