"""Helpers for the proxy tests: config files, handlers that record their calls, servers."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import textwrap
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import llmkit
from llmkit import CustomLLM, CustomLLMError, ModelResponse
from llmkit.proxy import load_config
from llmkit.proxy.server import make_server


def write_config(folder: Path, text: str, name: str = "config.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
def running_server(config_path: Path) -> Iterator[str]:
    """A real uvicorn server for the config on a free loopback port, in a thread; yields its URL."""
    port = free_port()
    server = make_server(load_config(config_path), "127.0.0.1", port)
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
