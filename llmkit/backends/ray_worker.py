"""One Ray worker of compare()'s Ray backend: an async actor running llmkit's own dispatcher.

The driver starts these (``ray_pool``), installs a run's providers and parameters in each
(:meth:`Worker.start_run`), then sends it jobs, many at once: each :meth:`Worker.call` makes one
call inside a call-log capture and returns its records, which the driver writes to its own log. The
worker's log is off meanwhile, so a worker never writes a local SQLite file of its own; when the
driver's log is a shared database, the worker opens it and writes its records there instead.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from llmkit.backends import shipping
from llmkit.backends.jobs import Job, stream_job
from llmkit.calllog import configure_log, recorder
from llmkit.calllog.recorder import capture

__all__ = ["CANCELLED", "DONE", "Worker"]

DONE = "done"
CANCELLED = "cancelled"


class Worker:
    """Runs a run's jobs concurrently; created by Ray as an async actor (``ray.remote(Worker)``)."""

    def __init__(self) -> None:
        import ray

        self.node_id = ray.get_runtime_context().get_node_id()
        self.params: dict[str, Any] = {}
        self.run_id: str | None = None
        self.running: set[asyncio.Task] = set()
        # jobs that hold resources run one at a time; the others all at once
        self.turn: asyncio.Semaphore | contextlib.nullcontext[None] = contextlib.nullcontext()
        self.shared: tuple[Any, Any] | None = None  # the shared log's opener, and the store it opened
        configure_log("off")  # no local file: records go back to the driver

    async def start_run(
        self, packed: dict[str, Any], run_id: str, shared_log: Any, one_job_each: bool = False
    ) -> dict[str, str]:
        """Install the run's providers and parameters; ``{provider: why}`` for handlers that failed to load.
        ``one_job_each``: the driver sends a job ahead, to wait here until the one running is done."""
        failed = shipping.install(packed)
        self.turn = asyncio.Semaphore(1) if one_job_each else contextlib.nullcontext()
        self.params = shipping.unpack_params(packed)
        self.run_id = run_id
        self._use_log(shared_log)
        return failed

    def _use_log(self, opener: Any) -> None:
        """Log to the shared log ``opener`` opens (kept open while runs name the same one), or nowhere."""
        if self.shared is not None and self.shared[0] == opener:
            return
        previous, self.shared = self.shared, None
        if opener is not None:
            self.shared = (opener, _Stamped(opener(), self.node_id))
        configure_log("off" if self.shared is None else self.shared[1])
        if previous is not None:
            previous[1].close()  # its connections: a warm worker serves many runs

    async def call(self, job: Job) -> tuple[str, list[dict[str, Any]]]:
        """Make ``job``'s call: ``(DONE or CANCELLED, its records)``, each stamped with this node's id."""
        task = asyncio.current_task()
        assert task is not None  # Ray runs an async actor method as a task
        self.running.add(task)
        status = DONE
        with capture(self.run_id) as captured:
            try:
                async with self.turn:  # the call (and its latency) starts once the previous job is done
                    await stream_job(job, self.params)
            except asyncio.CancelledError:  # cancel() below: the driver was interrupted
                status = CANCELLED
            finally:
                self.running.discard(task)
        return status, [_stamp(record, self.node_id) for record in captured.records]

    async def cancel(self) -> int:
        """Cancel the calls in flight (each then returns CANCELLED with its record); how many there were."""
        for task in list(self.running):
            task.cancel()
        return len(self.running)

    async def flush(self) -> None:
        """Write what this worker logged itself (a shared log) before the driver reads it."""
        recorder.drain()


def _stamp(record: dict[str, Any], node_id: str) -> dict[str, Any]:
    return {**record, "metadata": {**(record.get("metadata") or {}), "ray_node_id": node_id}}


class _Stamped:
    """A shared log store seen through a worker: each record stamped with the worker's node id."""

    def __init__(self, store: Any, node_id: str) -> None:
        self._store, self._node_id = store, node_id

    def write(self, records: list[dict[str, Any]]) -> None:
        self._store.write([_stamp(record, self._node_id) for record in records])

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)
