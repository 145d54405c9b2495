"""Helpers for the proxy tests: config files, handlers that record their calls, servers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from ports import free_port

import llmkit
from llmkit import CustomLLM, CustomLLMError, ModelResponse
from llmkit.proxy import load_config
from llmkit.proxy.server import make_server


def write_config(folder: Path, text: str, name: str = "config.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


class Recorder(CustomLLM):
    """Answers with its own name; remembers the keyword arguments of every call.

    ``fail`` is a list of status codes to raise, one per call, before answering normally.
    """

    def __init__(self, name: str = "recorder", fail: list[int] | None = None) -> None:
        self.name = name
        self.calls: list[dict[str, Any]] = []
        self.fail = list(fail or [])

    async def acompletion(self, **kwargs: Any) -> ModelResponse:
        self.calls.append(kwargs)
        if self.fail:
            raise CustomLLMError(self.fail.pop(0), f"{self.name} failed, as the test asked")
        return ModelResponse(model=kwargs["model"], choices=[{"message": {"content": f"from {self.name}"}}])


def register(**handlers: CustomLLM) -> None:
    for name, handler in handlers.items():
        llmkit.register_provider(name, handler)


@contextlib.contextmanager
def running_server(config_path: Path, **options: Any) -> Iterator[str]:
    """A real uvicorn server for the config on a free loopback port, in a thread; yields its URL.

    ``options`` go to ``make_server`` (read_timeout=, graceful_seconds=...)."""
    port = free_port()
    server = make_server(load_config(config_path), "127.0.0.1", port, **options)
    # The default asyncio loop in this thread: uvloop's policy would leak into the test process.
    thread = threading.Thread(target=asyncio.run, args=(server.serve(),), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the proxy did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


# -- a real `llmkit serve` process ---------------------------------------------------------------------
HANDLERS = '''
import asyncio, os, time, threading
from llmkit import CustomLLM

def _mark(params, what):
    folder = params.get("marks")
    if folder:
        with open(os.path.join(folder, what), "w") as f:
            f.write(str(os.getpid()))

class Slowpoke(CustomLLM):
    """Answers after `seconds`; streams `chunks` words `every` seconds apart. Leaves a file in
    `marks` when a call starts and when its finally block runs."""

    async def acompletion(self, model, messages, optional_params, **kwargs):
        _mark(optional_params, "started")
        try:
            await asyncio.sleep(float(optional_params.get("seconds", 0)))
            return {"model": model, "choices": [{"message": {"content": f"pid {os.getpid()}"}}]}
        finally:
            _mark(optional_params, "finally")

    async def astreaming(self, model, messages, optional_params, **kwargs):
        _mark(optional_params, "started")
        try:
            await asyncio.sleep(float(optional_params.get("first", 0)))
            for i in range(int(optional_params.get("chunks", 10))):
                yield {"text": f"w{i} ", "is_finished": False, "finish_reason": None, "usage": None}
                await asyncio.sleep(float(optional_params.get("every", 0)))
        finally:
            _mark(optional_params, "finally")

class Buggy(CustomLLM):
    def completion(self, model, messages, optional_params, **kwargs):
        return {"missing": 1}["oops"]

slowpoke = Slowpoke()
buggy = Buggy()
'''


def llmkit_command() -> list[str]:
    script = Path(sys.executable).parent / "llmkit"
    return [str(script)] if script.exists() else [sys.executable, "-m", "llmkit.cli"]


def wait_until_serving(process: subprocess.Popen, url: str, timeout: float = 30, stderr: Any = None) -> None:
    """Until ``llmkit serve`` at ``url`` answers /health; AssertionError with its stderr if it exits
    first (``stderr()`` reads it, by default the process's own pipe), or if it never answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            said = stderr() if stderr is not None else process.stderr.read() if process.stderr else ""
            raise AssertionError(f"llmkit serve exited with {process.returncode}: {said}")
        try:
            httpx.get(url + "/health", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError("llmkit serve did not start")


class ServerProcess:
    """``llmkit serve`` in a subprocess on a free loopback port, logging to its own SQLite file."""

    def __init__(self, folder: Path, config: str, *args: str) -> None:
        (folder / "test_handlers.py").write_text(HANDLERS)
        self.config = write_config(folder, config)
        self.log_path = folder / "server-calls.db"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "LLMKIT_LOG_PATH": str(self.log_path)}
        command = [
            *llmkit_command(),
            "serve",
            "--config",
            str(self.config),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            *args,
        ]
        self.process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
        self._stderr: str | None = None

    def wait_ready(self, timeout: float = 60) -> ServerProcess:
        wait_until_serving(self.process, self.url, timeout, stderr=lambda: self.stderr)
        return self

    def signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    def wait(self, timeout: float = 30) -> int:
        return self.process.wait(timeout=timeout)

    @property
    def stderr(self) -> str:
        if self._stderr is None:
            if self.process.poll() is None:
                raise RuntimeError("read stderr once the server has exited")
            self._stderr = self.process.stderr.read()
        return self._stderr

    def rows(self, columns: str = "status") -> list[tuple]:
        if not self.log_path.exists():
            return []
        with contextlib.closing(sqlite3.connect(self.log_path)) as db:
            try:
                return db.execute(f"SELECT {columns} FROM calls ORDER BY seq").fetchall()
            except sqlite3.OperationalError:  # the server has not created its tables yet
                return []

    def children(self) -> list[int]:
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in path.read_text().split()] if path.exists() else []

    def kill(self) -> None:
        if self.process.poll() is None:
            for child in self.children():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGKILL)
            self.process.kill()
            self.process.wait()
