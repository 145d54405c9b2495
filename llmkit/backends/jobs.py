"""What a backend runs: one :class:`Job` per call of a comparison, and the row each one becomes.

Every backend calls a job the same way (:func:`stream_job`, inside a call-log capture) and turns the
job's last record into a row with :func:`row_of`, so the rows are the same wherever the job ran.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["ROW_FIELDS", "Job", "each_within_limits", "row_of", "stream_job"]

#: Columns of compare()'s DataFrame, one row per (prompt, model, sample); ``check_<name>`` columns
#: and ``passed`` follow when checks were given.
ROW_FIELDS = (
    "prompt_index",
    "prompt",
    "model",
    "sample",
    "response",
    "status",
    "error",
    "latency_ms",
    "ttft_ms",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "tokens_estimated",
    "tokens_per_s",
    "cost_usd",
    "call_id",
    "run_id",
)


@dataclass(frozen=True)
class Job:
    """One call of a run: prompt number ``index`` (its ``prompt`` and chat ``messages``), to ``model``,
    as sample number ``sample``."""

    index: int
    prompt: Any
    messages: list
    model: str
    sample: int

    @property
    def key(self) -> tuple[int, str, int]:
        return self.index, self.model, self.sample


async def each_within_limits(
    jobs: list[Job], call: Callable[[Job], Awaitable[None]], *, concurrency: int, per_model: int | None
) -> None:
    """``await call(job)`` for every job, at most ``concurrency`` at once (``per_model`` per model);
    when this is cancelled (Ctrl-C), every call still waiting or running is cancelled before it returns."""
    limit = asyncio.Semaphore(concurrency)
    model_limits = {job.model: asyncio.Semaphore(per_model) for job in jobs} if per_model else {}

    async def one(job: Job) -> None:
        model_limit = model_limits.get(job.model)
        if model_limit is not None:
            async with model_limit, limit:
                await call(job)
        else:
            async with limit:
                await call(job)

    tasks = [asyncio.ensure_future(one(job)) for job in jobs]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def stream_job(job: Job, params: dict[str, Any]) -> None:
    """Make the job's call, streamed (so time to first token is measured), through the dispatcher.

    A failed call returns normally: the failure is in its call-log record, which becomes the row.
    Cancellation propagates (the record says "cancelled").
    """
    from llmkit.dispatch import acompletion

    try:
        stream = await acompletion(model=job.model, messages=job.messages, stream=True, sample=job.sample, **params)
        # The row comes from the call's record: chunks kept for a replay would only live on, and
        # under concurrency every one kept makes the garbage collector run more often.
        stream.replay_limit = 0
        async for _ in stream:
            pass
    except Exception:
        pass


def row_of(job: Job, record: dict[str, Any]) -> dict[str, Any]:
    """compare()'s row for ``job`` from its call's log record."""
    row = {name: record.get(name) for name in ROW_FIELDS}
    prompt = job.prompt if isinstance(job.prompt, str) else record.get("prompt")
    row.update(prompt_index=job.index, prompt=prompt, model=job.model, sample=job.sample)
    if record["status"] != "ok":
        parts = [record.get("error_type"), record.get("error_message")]
        row["error"] = ": ".join(str(part) for part in parts if part) or record["status"]
    return row
