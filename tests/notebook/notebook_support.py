"""Shared by the notebook tests: a recording display publisher, a slow handler, a cell runner."""

import asyncio
import time

from IPython.core.displaypub import DisplayPublisher

import llmkit


class RecordingPublisher(DisplayPublisher):
    """Keeps every display message, as a kernel would send them: (kind, display_id, data)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.messages = []

    def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kwargs):
        kind = "update_display_data" if update else "display_data"
        self.messages.append((kind, (transient or {}).get("display_id"), data))


class SlowStream(llmkit.CustomLLM):
    """Streams numbered words slowly and notes whether its generator was closed."""

    def __init__(self, words=200, delay=0.01):
        self.words, self.delay = words, delay
        self.closed = False
        self.calls = []
        self.sent_at = []  # when each word left the handler

    async def astreaming(self, model, messages, optional_params, **kwargs):
        self.calls.append({"model": model, "messages": messages, "optional_params": optional_params})
        try:
            for i in range(self.words):
                await asyncio.sleep(self.delay)
                self.sent_at.append(time.monotonic())
                yield {"text": f"w{i} ", "is_finished": i == self.words - 1, "finish_reason": "stop", "usage": None}
        finally:
            self.closed = True

    async def acompletion(self, model, messages, optional_params, **kwargs):
        self.calls.append({"model": model, "messages": messages, "optional_params": optional_params})
        return llmkit.ModelResponse(model=model, choices=[{"message": {"content": "whole answer"}}])


def cell(ip, line, body="hello"):
    """Run ``%%llm line`` with ``body``; return the display messages it sent."""
    start = len(ip.display_pub.messages)
    result = ip.run_cell(f"%%llm {line}\n{body}")
    assert result.error_before_exec is None
    return ip.display_pub.messages[start:]
