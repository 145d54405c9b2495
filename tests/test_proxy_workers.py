"""`llmkit serve --workers 2`: processes sharing one port and one log, restarted, drained together."""

from __future__ import annotations

import os
import signal
import threading
import time

import httpx
from proxy_support import ServerProcess

CONFIG = """\
model_list:
  - {model_name: slow, litellm_params: {model: test/slow}}
litellm_settings:
  custom_provider_map: [{provider: test, custom_handler: test_handlers.slowpoke}]
"""
ASK = {"model": "slow", "messages": [{"role": "user", "content": "x"}]}


def wait_until(condition, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def answering_pid(url: str, answered: list) -> int:
    """The pid of the worker that answered, on a fresh connection."""
    response = httpx.post(url + "/v1/chat/completions", json=ASK, timeout=30)
    assert response.status_code == 200
    answered.append(response)
    return int(response.json()["choices"][0]["message"]["content"].split()[1])


def test_two_workers_serve_one_port_a_dead_one_is_replaced_and_sigterm_drains_both(tmp_path):
    server = ServerProcess(tmp_path, CONFIG, "--workers", "2").wait_ready()
    answered: list = []
    try:
        workers = set(wait_until(lambda: len(server.children()) == 2 and server.children()))
        seen: set[int] = set()
        for _ in range(400):
            seen.add(answering_pid(server.url, answered))
            if seen == workers:
                break
        assert seen == workers  # both processes answer on the one port

        # SIGKILL loses what a process has not written yet: let the log catch up first
        wait_until(lambda: len(server.rows()) == len(answered))
        victim = workers.pop()
        os.kill(victim, signal.SIGKILL)
        replacement = wait_until(lambda: len(server.children()) == 2 and set(server.children()) - workers - {victim})
        assert victim not in server.children() and len(replacement) == 1
        assert answering_pid(server.url, answered)

        slow: list = []
        thread = threading.Thread(
            target=lambda: slow.append(
                httpx.post(server.url + "/v1/chat/completions", json={**ASK, "seconds": 1.5}, timeout=30)
            )
        )
        thread.start()
        time.sleep(0.5)
        server.signal(signal.SIGTERM)
        thread.join(timeout=30)
        assert server.wait(timeout=30) == 0
        assert slow[0].status_code == 200  # finished during the drain
    finally:
        server.kill()
    assert "worker" in server.stderr and "exited with status -9; starting another" in server.stderr
    # every answered call, from both workers and the replacement, is in the one log
    assert server.rows() == [("ok",)] * (len(answered) + 1)


def test_a_worker_that_cannot_load_the_config_stops_the_server_with_status_2(tmp_path):
    server = ServerProcess(tmp_path, CONFIG, "--workers", "2").wait_ready()
    try:
        workers = wait_until(lambda: len(server.children()) == 2 and server.children())
        server.config.write_text("model_list: []\n")  # broken after the server started
        os.kill(workers[0], signal.SIGKILL)
        assert server.wait(timeout=30) == 2  # a replacement would fail the same way, again and again
    finally:
        server.kill()
    assert "worker:" in server.stderr and "model_list" in server.stderr and "could not start" in server.stderr
