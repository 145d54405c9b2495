"""`llmkit serve --workers 2`: processes sharing one port and one log, restarted, drained together."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import httpx
import pytest
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


def listening_inodes(pid: int, port: int) -> set[str]:
    """The inodes of the sockets a process holds that listen on ``port`` (from /proc)."""
    listening = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                    listening.add(fields[9])
    held = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in listening:
            held.add(target[8:-1])
    return held


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT spreads connections on Linux only")
def test_connections_opened_at_once_are_spread_over_the_workers(tmp_path):
    server = ServerProcess(tmp_path, CONFIG, "--workers", "2").wait_ready()
    try:
        workers = wait_until(lambda: len(server.children()) == 2 and server.children())
        wait_until(lambda: all(listening_inodes(pid, server.port) for pid in workers))
        sockets = [listening_inodes(pid, server.port) for pid in workers]
        assert all(len(held) == 1 for held in sockets) and sockets[0] != sockets[1]  # one socket each

        start = threading.Barrier(16)
        pids: list[int] = []

        def one_connection() -> None:
            with httpx.Client(timeout=30) as client:  # one kept-alive connection, opened with the others
                start.wait()
                for _ in range(2):
                    response = client.post(server.url + "/v1/chat/completions", json={**ASK, "seconds": 0.2})
                    pids.append(int(response.json()["choices"][0]["message"]["content"].split()[1]))

        threads = [threading.Thread(target=one_connection) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert len(pids) == 32 and set(pids) == set(workers)  # 16 connections all to one worker: 1 in 32,768
    finally:
        server.kill()


def test_a_second_server_on_a_port_workers_serve_is_refused_not_let_in(tmp_path):
    import subprocess

    from proxy_support import llmkit_command

    server = ServerProcess(tmp_path, CONFIG, "--workers", "2").wait_ready()
    try:
        for workers in ("2", "1"):  # SO_REUSEPORT sockets would take a second llmkit's in silently
            second = subprocess.run(
                [*llmkit_command(), "serve", "--config", str(server.config), "--host", "127.0.0.1",
                 "--port", str(server.port), "--workers", workers],
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert second.returncode != 0 and f"port {server.port} on 127.0.0.1 is already in use" in second.stderr
    finally:
        server.kill()
