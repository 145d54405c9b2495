"""The local backend: every job on this process's event loop, the default."""

from __future__ import annotations

import asyncio
import functools
from typing import Any, Callable

from llmkit.backends.jobs import Job, row_of, stream_job
from llmkit.calllog.recorder import capture

__all__ = ["LocalBackend", "run_jobs"]


class LocalBackend:
    """Runs the calls in this process, on llmkit's async dispatcher (``backend="local"``)."""

    name = "local"

    def open(self, params: dict[str, Any]) -> Callable[..., Any]:
        return functools.partial(run_jobs, params=params)

    def __repr__(self) -> str:
        return "LocalBackend()"


async def run_jobs(
    jobs: list[Job],
    on_row: Callable[[Job, dict[str, Any]], None],
    *,
    concurrency: int,
    per_model: int | None,
    params: dict[str, Any],
    run_id: str,
) -> None:
    """Call every job through the dispatcher (streamed, ``sample=job.sample``), at most
    ``concurrency`` at once (``per_model`` per model), and hand each finished row to ``on_row``."""
    limit = asyncio.Semaphore(concurrency)
    per_model_limits = {job.model: asyncio.Semaphore(per_model) for job in jobs} if per_model else {}

    async def one(job: Job) -> None:
        model_limit = per_model_limits.get(job.model)
        if model_limit is not None:
            async with model_limit, limit:
                await call(job)
        else:
            async with limit:
                await call(job)

    async def call(job: Job) -> None:
        with capture(run_id) as captured:
            await stream_job(job, params)
        records = captured.records
        if records:
            on_row(job, row_of(job, records[-1]))

    tasks = [asyncio.ensure_future(one(job)) for job in jobs]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
