"""Handlers shared by the call-log tests."""

import asyncio
import time

import llmkit

USER = [{"role": "user", "content": "hello there"}]


class NoUsage(llmkit.CustomLLM):
    """Answers without reporting usage, so the log must estimate tokens."""

    def completion(self, model, messages, **kwargs):
        return llmkit.ModelResponse(model=model, choices=[{"message": {"content": "four words of answer"}}])

    def streaming(self, model, messages, **kwargs):
        for word in ("four ", "words ", "of ", "answer"):
            yield {"text": word, "is_finished": False, "finish_reason": None, "usage": None}


class Slow(llmkit.CustomLLM):
    """Async chat and stream that wait ``delay`` seconds (default 10) per step, to be cancelled."""

    async def acompletion(self, model, messages, optional_params, **kwargs):
        await asyncio.sleep(optional_params.get("delay", 10))
        return llmkit.ModelResponse(model=model, choices=[{"message": {"content": "late"}}])

    async def astreaming(self, model, messages, optional_params, **kwargs):
        for word in ("one ", "two ", "three "):
            yield {"text": word, "is_finished": False, "finish_reason": None, "usage": None}
        await asyncio.sleep(optional_params.get("delay", 10))
        yield {"text": "never", "is_finished": True, "finish_reason": "stop", "usage": None}


class Interrupted(llmkit.CustomLLM):
    """A stream that delivers two chunks, then the user presses Ctrl-C."""

    def streaming(self, model, messages, **kwargs):
        yield {"text": "partial ", "is_finished": False, "finish_reason": None, "usage": None}
        yield {"text": "answer", "is_finished": False, "finish_reason": None, "usage": None}
        raise KeyboardInterrupt


class Sleepy(llmkit.CustomLLM):
    """Sync chat that takes ``delay`` seconds."""

    def completion(self, model, messages, optional_params, **kwargs):
        time.sleep(optional_params.get("delay", 0.01))
        return llmkit.ModelResponse(model=model, choices=[{"message": {"content": "ok"}}])


def use(provider, handler):
    llmkit.custom_provider_map = [{"provider": provider, "custom_handler": handler}]


def watch_builds(monkeypatch):
    """The threads ``build_record`` runs on from now, one per record built (it still builds them)."""
    import threading

    from llmkit.calllog import recorder

    real, threads = recorder.build_record, []

    def watched(entry):
        threads.append(threading.current_thread())
        return real(entry)

    monkeypatch.setattr(recorder, "build_record", watched)
    return threads
