"""The local backend: every job on this process's event loop, the default."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from llmkit.backends.jobs import Job, each_within_limits, row_of, stream_job
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

    async def call(job: Job) -> None:
        with capture(run_id) as captured:
            await stream_job(job, params)
        records = captured.records
        if records:
            on_row(job, row_of(job, records[-1]))

    await each_within_limits(jobs, call, concurrency=concurrency, per_model=per_model)
