"""Rows that look across paths: usage reported, sync and async agree, errors have status codes, and
concurrent calls all succeed, each with its own answer, without blocking the event loop."""

from __future__ import annotations

import time
from typing import Any

from llmkit.checker.probe import Probe, aio, collect_async
from llmkit.checker.report import FAIL, PASS, SKIP, WARN, CheckRow
from llmkit.checker.shapes import Answer, describe_error, text_of
from llmkit.types.utils import ModelResponse

__all__ = ["concurrency_row", "error_row", "parity_rows", "usage_row"]

BLOCKED_LOOP_SECONDS = 0.25  # a loop stalled this long during async calls means a blocking handler
CHAT_METHODS = ("completion", "acompletion", "streaming", "astreaming")
METHODS = (*CHAT_METHODS, "image_generation", "aimage_generation", "embedding", "aembedding")
_PAIRS = (
    ("completion", "acompletion"),
    ("streaming", "astreaming"),
    ("completion", "streaming"),
    ("image_generation", "aimage_generation"),
    ("embedding", "aembedding"),
)


def usage_row(answers: dict[str, Answer]) -> list[CheckRow]:
    chat = {m: a for m, a in answers.items() if m in CHAT_METHODS and a.error is None and a.text is not None}
    if not chat:
        return []
    without = [m for m, a in chat.items() if not a.usage]
    if without:
        return [CheckRow("usage", WARN, f"no usage from {', '.join(without)}; llmkit estimates token counts there")]
    return [CheckRow("usage", PASS, f"reported by {', '.join(chat)}")]


def parity_rows(answers: dict[str, Answer]) -> list[CheckRow]:
    rows = []
    for left, right in _PAIRS:
        a, b = answers.get(left), answers.get(right)
        if a is None or b is None or a.text is None or b.text is None:
            continue
        name = f"{left} = {right}"
        if a.text == b.text and a.usage == b.usage:
            rows.append(CheckRow(name, PASS, "same answer"))
        elif a.text == b.text:
            rows.append(CheckRow(name, WARN, f"same text, but usage only from {left if a.usage else right}"))
        else:
            differ = f"answers differ ({a.text[:40]!r} vs {b.text[:40]!r}): fine if the model samples"
            rows.append(CheckRow(name, WARN, differ))
    return rows


def error_row(probe: Probe, bad_model: str, fields: dict[str, Any]) -> CheckRow:
    """An unknown model must fail with a status code (CustomLLMError), so callers get a typed error."""
    method = next(m for m in METHODS if probe.implements(m))
    kwargs = probe.kwargs(model=bad_model, stream=method in ("streaming", "astreaming"), **fields)
    try:
        if method.startswith("a"):
            result = aio().run_sync(probe.acall(method, **kwargs))
            if method == "astreaming":
                aio().run_sync(collect_async(result, probe.timeout))
        else:
            result = probe.call(method, **kwargs)
            if method == "streaming" and not isinstance(result, dict):
                list(result)
    except Exception as exc:
        status = PASS if isinstance(getattr(exc, "status_code", None), int) else FAIL
        return CheckRow("errors", status, f"unknown model {bad_model!r}: {describe_error(exc)}")
    return CheckRow("errors", SKIP, f"{method}() accepted model {bad_model!r}, so no error path was exercised")


def concurrency_row(probe: Probe, messages: list, answers: dict[str, Answer], n: int) -> list[CheckRow]:
    use_async = probe.implements("acompletion")
    if probe.model is None or not (use_async or probe.implements("completion")):
        return []
    asked = messages[-1].get("content")
    echoes = isinstance(asked, str) and any(
        a.text and asked in a.text for m, a in answers.items() if m in ("completion", "acompletion")
    )
    prompts = [f"llmkit check call {i}" for i in range(n)]
    started = time.perf_counter()
    try:
        if use_async:
            texts, stall = aio().run_sync(_concurrent_async(probe, messages, prompts))
        else:
            texts, stall = _concurrent_threads(probe, messages, prompts), 0.0
    except Exception as exc:
        return [CheckRow("concurrency", FAIL, f"{n} concurrent calls: {describe_error(exc)}")]
    seconds = time.perf_counter() - started
    how = "acompletion" if use_async else "completion in threads"
    if stall > BLOCKED_LOOP_SECONDS:
        return [CheckRow("concurrency", FAIL, (
            f"{n} concurrent {how} calls blocked the event loop for {stall:.2f} s: acompletion must not call"
            " blocking code (time.sleep, requests, a sync client); await async code instead, or implement only"
            " completion() and let llmkit run it in a thread"
        ))]  # fmt: skip
    if echoes:
        mixed = [p for p, text in zip(prompts, texts, strict=True) if p not in (text or "")]
        if mixed:
            return [CheckRow("concurrency", FAIL, (
                f"{len(mixed)} of {n} concurrent calls answered another call's prompt (e.g. {mixed[0]!r}):"
                " does the handler keep per-call state on self?"
            ))]  # fmt: skip
    own = ", each with its own answer" if echoes else ""
    return [CheckRow("concurrency", PASS, f"{n} concurrent {how} calls ok{own} ({seconds * 1000:.0f} ms)")]


def _chat_kwargs(probe: Probe, messages: list, content: str) -> dict[str, Any]:
    asked = [*messages[:-1], {"role": "user", "content": content}]
    return probe.kwargs(messages=asked, model_response=ModelResponse())


async def _concurrent_async(probe: Probe, messages: list, prompts: list[str]) -> tuple[list[str | None], float]:
    import asyncio

    stall = 0.0
    done = False

    async def watch() -> None:  # how long the loop went without running us: a blocking handler
        nonlocal stall
        while not done:
            before = time.perf_counter()
            await asyncio.sleep(0.01)
            stall = max(stall, time.perf_counter() - before - 0.01)

    watcher = asyncio.ensure_future(watch())
    await asyncio.sleep(0)
    try:
        calls = (probe.acall("acompletion", **_chat_kwargs(probe, messages, p)) for p in prompts)
        results = await asyncio.gather(*calls)
    finally:
        done = True
        await watcher
    return [text_of(r) for r in results], stall


def _concurrent_threads(probe: Probe, messages: list, prompts: list[str]) -> list[str | None]:
    from concurrent.futures import ThreadPoolExecutor

    def one(prompt: str) -> str | None:
        return text_of(probe.call("completion", **_chat_kwargs(probe, messages, prompt)))

    with ThreadPoolExecutor(max_workers=len(prompts)) as pool:
        return list(pool.map(one, prompts))
