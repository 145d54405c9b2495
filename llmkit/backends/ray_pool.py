"""compare()'s Ray workers for one run: started on demand, sent jobs, replaced when one dies.

Each worker is an async actor (``ray_worker.Worker``) holding the resources the caller asked for. The
driver sends a job to the least busy worker; with resources per job (``num_cpus`` / ``num_gpus``
given) a worker takes one job at a time. A worker that dies fails the calls it was running; each is
sent once more to another worker, and a replacement worker is started in its place.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from llmkit.backends import shipping
from llmkit.backends.jobs import Job
from llmkit.errors import WorkerLostError

__all__ = ["Pool"]

# A worker that runs one job at a time is sent the next one while it runs this one, so that it never
# waits for a round trip to the driver between jobs; it runs them in turn (ray_worker.Worker.turn).
_JOBS_SENT_TO_ONE = 2

_actor_class: Any = None


def _remote_worker() -> Any:
    global _actor_class
    if _actor_class is None:
        import ray

        from llmkit.backends.ray_worker import Worker

        _actor_class = ray.remote(Worker)
    return _actor_class


class _Member:
    __slots__ = ("handle", "number", "outstanding", "alive", "ready")

    def __init__(self, handle: Any, number: int) -> None:
        self.handle, self.number = handle, number
        self.outstanding = 0
        self.alive, self.ready = True, False


class Pool:
    """Worker actors with the same options; used by one run at a time, kept warm between runs."""

    def __init__(self, options: dict[str, Any], one_job_each: bool) -> None:
        import ray

        self.options = options
        self.one_job_each = one_job_each
        self.job_id = ray.get_runtime_context().get_job_id()
        self.members: list[_Member] = []
        self.abandoned: list[tuple[Job, Any]] = []  # calls in flight when the run was cancelled
        self._numbers = itertools.count(1)
        self._changed = asyncio.Event()  # made again by each run, on its loop
        self._starting = 0
        self._spares = 0
        self._replacing: set[asyncio.Future[None]] = set()  # held so the loop cannot collect them mid-way
        self._run: tuple = ()

    @property
    def alive(self) -> list[_Member]:
        return [member for member in self.members if member.alive]

    # -- a run -------------------------------------------------------------------------------------
    async def start_run(self, size: int, packed: dict[str, Any], run_id: str, shared_log: Any) -> None:
        """Grow to ``size`` workers and install the run in each, returning once one is ready (the
        others join as Ray places them); ImportError naming the providers a worker could not load."""
        self._changed = asyncio.Event()
        self._run = (packed, run_id, shared_log, self.one_job_each)
        self._spares = max(2, size)  # replacements allowed this run: enough for one job to be retried once
        self.abandoned = []
        while len(self.alive) < size:
            self._add()
        pending = {asyncio.ensure_future(self._install(member)) for member in self.alive}
        errors = []
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task.exception() is not None:
                    errors.append(task.exception())
                elif task.result():
                    raise shipping.load_error(task.result())
                else:
                    for task in pending:  # one worker is ready; the others join when theirs finish
                        task.add_done_callback(_retrieved)
                    return
        raise RuntimeError(f"no Ray worker could be started for compare(): {errors[0] if errors else 'none asked for'}")

    def _add(self) -> _Member:
        member = _Member(_remote_worker().options(**self.options).remote(), next(self._numbers))
        self.members.append(member)
        return member

    async def _install(self, member: _Member) -> dict[str, str]:
        import ray

        try:
            failed = await member.handle.start_run.remote(*self._run)
        except ray.exceptions.RayActorError:
            self._lost(member)
            raise
        member.ready = not failed
        self._changed.set()
        return dict(failed)

    async def call(self, job: Job) -> tuple[str, list[dict[str, Any]]]:
        """``(status, records)`` of ``job``'s call; WorkerLostError when two workers died running it."""
        import ray

        failures: list[str] = []
        while len(failures) < 2:
            member = await self._pick(failures)
            member.outstanding += 1
            ref = member.handle.call.remote(job)
            try:
                status, records = await ref
                return status, records
            except asyncio.CancelledError:
                self.abandoned.append((job, ref))
                raise
            except ray.exceptions.RayActorError as exc:
                failures.append(f"worker {member.number}: {type(exc).__name__}: {_first_line(exc)}")
                self._lost(member)
            finally:
                member.outstanding -= 1
                self._changed.set()
        raise WorkerLostError(
            f"the Ray worker running this call died, and so did the one it was retried on ({'; '.join(failures)})"
        )

    async def _pick(self, failures: list[str]) -> _Member:
        while True:
            free = [
                m
                for m in self.members
                if m.alive and m.ready and (not self.one_job_each or m.outstanding < _JOBS_SENT_TO_ONE)
            ]
            if free:
                return min(free, key=lambda member: member.outstanding)
            if not any(m.alive for m in self.members) and not self._starting:
                raise WorkerLostError(f"no Ray worker left to run this call ({'; '.join(failures) or 'all died'})")
            self._changed.clear()
            await self._changed.wait()

    def _lost(self, member: _Member) -> None:
        if not member.alive:
            return
        member.alive = member.ready = False
        self._changed.set()
        if self._spares > 0:
            self._spares -= 1
            self._starting += 1  # now, so that no call concludes meanwhile that no worker is left
            replacing = asyncio.ensure_future(self._replace())
            self._replacing.add(replacing)
            replacing.add_done_callback(self._replacing.discard)

    async def _replace(self) -> None:
        try:
            await self._install(self._add())
        except Exception:
            pass  # _install marked it lost (and maybe replaced it); the run goes on with the others
        finally:
            self._starting -= 1
            self._changed.set()

    # -- the end of a run --------------------------------------------------------------------------
    async def cancel(self, timeout: float) -> list[tuple[Job, str | None, list[dict[str, Any]] | None]]:
        """Cancel the calls in flight; ``(job, status, records)`` of each call the run gave up on
        (status and records None when its worker did not answer within ``timeout`` seconds)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        cancels = [member.handle.cancel.remote() for member in self.alive]
        await asyncio.wait([asyncio.ensure_future(_settled(ref)) for ref in cancels], timeout=timeout)
        results = []
        for job, ref in self.abandoned:
            try:
                status, records = await asyncio.wait_for(_settled(ref), max(0.0, deadline - loop.time()))
            except Exception:
                status, records = None, None
            results.append((job, status, records))
        self.abandoned = []
        return results

    async def flush(self) -> None:
        await asyncio.gather(*(member.handle.flush.remote() for member in self.alive), return_exceptions=True)

    def kill(self) -> None:
        import ray

        for member in self.members:
            try:
                ray.kill(member.handle, no_restart=True)
            except Exception:
                pass  # already gone, or Ray was shut down
        self.members = []


def _retrieved(task: asyncio.Task) -> None:
    if not task.cancelled():
        task.exception()  # a worker that failed to start was marked lost and replaced: nothing to report


async def _settled(ref: Any) -> Any:
    return await ref


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:300]
