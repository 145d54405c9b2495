"""compare(backend="ray"): the same jobs, run by worker actors on a Ray cluster.

The driver (the caller's process) keeps the run's limits: a job is sent to a worker only once it
holds a slot of ``concurrency`` (and of ``per_model``), and gives the slot back when its row is
back, so the limits hold across the whole cluster exactly, at no cost beyond the call itself (no
semaphore actor to ask twice per call). Workers run many calls at once on llmkit's async dispatcher,
and send each call's records back with it: the driver writes them to its own log (``source="batch"``,
the worker's node id in ``metadata["ray_node_id"]``), unless that log is a shared database the
workers can open themselves (:func:`shared_log`), in which case they write there and the driver
does not. Checks run in the driver as rows arrive, as with the local backend.

Workers stay up for ``idle_timeout`` seconds after a run, so the next comparison starts at once.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import socket
import threading
from collections.abc import Callable
from typing import Any

from llmkit.backends import shipping
from llmkit.backends.jobs import Job, each_within_limits, row_of
from llmkit.backends.ray_pool import Pool
from llmkit.backends.ray_worker import CANCELLED
from llmkit.calllog import config, recorder
from llmkit.calllog.costs import cost_of
from llmkit.calllog.recorder import capture
from llmkit.errors import WorkerLostError

__all__ = ["RayBackend", "shared_log"]

_CANCEL_TIMEOUT = 3.0  # compare() waits 5 s for a cancelled run to record its calls


class RayBackend:
    """Run compare()'s calls on Ray: ``compare(..., backend=RayBackend(num_gpus=1))``.

    ``address``: the cluster to connect to when this process is not connected yet (else
    ``RAY_ADDRESS``, else a local Ray started here). ``num_cpus`` / ``num_gpus``: what each job
    holds while it runs (a handler that runs a model itself); each worker then holds that and runs
    one job at a time. Without them there is one worker per CPU of the cluster, spread over its
    nodes, holding no resources and running many calls at once (models behind APIs).
    ``runtime_env``: Ray's runtime environment for the workers (``py_modules``, ``pip``, ...).
    ``idle_timeout``: seconds the workers stay up after a run, for the next one.
    """

    name = "ray"

    def __init__(
        self,
        *,
        address: str | None = None,
        num_cpus: float | None = None,
        num_gpus: float | None = None,
        runtime_env: dict[str, Any] | None = None,
        idle_timeout: float = 60.0,
    ) -> None:
        for label, value in (("num_cpus", num_cpus), ("num_gpus", num_gpus), ("idle_timeout", idle_timeout)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
                raise ValueError(f"{label} must be a number >= 0, got {value!r}")
        if address is not None and (not isinstance(address, str) or not address.strip()):
            raise ValueError(
                f"address must be a Ray address such as 'head-node:6379' or 'ray://head-node:10001', got {address!r}"
            )
        self.address, self.num_cpus, self.num_gpus = address, num_cpus, num_gpus
        self.runtime_env, self.idle_timeout = runtime_env, idle_timeout

    def __repr__(self) -> str:
        options = {"address": self.address, "num_cpus": self.num_cpus, "num_gpus": self.num_gpus}
        return "RayBackend(" + ", ".join(f"{k}={v!r}" for k, v in options.items() if v is not None) + ")"

    def open(self, params: dict[str, Any]) -> Callable[..., Any]:
        for name in ("num_cpus", "num_gpus"):
            if name in params:
                raise TypeError(
                    f"{name} is an option of the Ray backend, not a call parameter: pass"
                    f" backend=llmkit.backends.RayBackend({name}={params[name]!r})"
                )
        ray = _import_ray()
        connect(ray, self.address)
        self._check_resources(ray)
        packed = shipping.pack(params)
        return functools.partial(self._run, packed, shared_log())

    # -- resources ---------------------------------------------------------------------------------
    @property
    def _actor_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"num_cpus": self.num_cpus or 0, "max_restarts": 0}
        if self.num_gpus:
            options["num_gpus"] = self.num_gpus
        if not (self.num_cpus or self.num_gpus):
            # calls that mostly wait (models behind APIs): workers hold nothing, so that idle ones
            # block no one, and are spread over the nodes rather than packed on one
            options["scheduling_strategy"] = "SPREAD"
        if self.runtime_env:
            options["runtime_env"] = self.runtime_env
        return options

    def _check_resources(self, ray: Any) -> None:
        total = ray.cluster_resources()
        for label, key, wanted in (("num_cpus", "CPU", self.num_cpus), ("num_gpus", "GPU", self.num_gpus)):
            if wanted and total.get(key, 0) < wanted:
                raise ValueError(
                    f"{label}={wanted} per job, but the Ray cluster has {total.get(key, 0):g} {key}(s) in all;"
                    " ask for less, or connect to a cluster that has them"
                )

    def _workers_wanted(self, ray: Any, concurrency: int, jobs: int) -> int:
        """One worker per CPU of the cluster, or as many as its resources hold jobs of the size asked
        for (those it cannot place yet wait for room), and never more than there are calls at once."""
        total = ray.cluster_resources()
        limits = [concurrency, jobs]
        if self.num_cpus:
            limits.append(total.get("CPU", 0) // self.num_cpus)
        if self.num_gpus:
            limits.append(total.get("GPU", 0) // self.num_gpus)
        if not (self.num_cpus or self.num_gpus):
            limits.append(total.get("CPU", 1))
        return int(max(1, min(limits)))

    # -- a run -------------------------------------------------------------------------------------
    async def _run(
        self,
        packed: dict[str, Any],
        shared: Any,
        jobs: list[Job],
        on_row: Callable[[Job, dict[str, Any]], None],
        *,
        concurrency: int,
        per_model: int | None,
        run_id: str,
    ) -> None:
        import ray

        one_job_each = bool(self.num_cpus or self.num_gpus)
        key = json.dumps([self._actor_options, one_job_each], sort_keys=True, default=repr)
        pool = _pools.checkout(key) or Pool(self._actor_options, one_job_each)
        params = shipping.unpack_params(packed)
        delivered = _Delivery(on_row, params, run_id, log_here=shared is None)
        finished = False
        try:
            await pool.start_run(self._workers_wanted(ray, concurrency, len(jobs)), packed, run_id, shared)
            await _run_jobs(pool, jobs, delivered, concurrency, per_model)
            if shared is not None:
                await pool.flush()
            finished = True
        finally:
            if finished:
                _pools.checkin(key, pool, self.idle_timeout)
            else:  # cancelled (Ctrl-C) or failed: stop every call still running, keep no worker
                try:
                    for job, status, records in await pool.cancel(_CANCEL_TIMEOUT):
                        delivered.abandoned(job, status, records)
                    if shared is not None:  # the workers' own records of the cancelled calls
                        await asyncio.wait([asyncio.ensure_future(pool.flush())], timeout=_CANCEL_TIMEOUT / 3)
                finally:
                    pool.kill()


async def _run_jobs(pool: Pool, jobs: list[Job], delivered: _Delivery, concurrency: int, per_model: int | None) -> None:
    async def call(job: Job) -> None:
        try:
            _, records = await pool.call(job)
        except WorkerLostError as exc:
            delivered.lost(job, exc)
        else:
            delivered.row(job, records)

    await each_within_limits(jobs, call, concurrency=concurrency, per_model=per_model)


class _Delivery:
    """Where the records and rows that workers send back go: the driver's log (unless the workers
    wrote them to a shared log) and compare()'s ``on_row``."""

    def __init__(self, on_row: Callable, params: dict[str, Any], run_id: str, log_here: bool) -> None:
        self.on_row, self.params, self.run_id, self.log_here = on_row, params, run_id, log_here

    def row(self, job: Job, records: list[dict[str, Any]]) -> None:
        if self.log_here:
            records = [_priced(record) for record in records]
            recorder.add_records(records)
        if records:
            self.on_row(job, row_of(job, records[-1]))

    def lost(self, job: Job, error: BaseException) -> None:
        """An error row for a job no worker could finish, recorded here (no worker record exists)."""
        self.on_row(job, row_of(job, self._record_here(job, error)))

    def abandoned(self, job: Job, status: str | None, records: list[dict[str, Any]] | None) -> None:
        """A call in flight when the run was cancelled: its record, and its row if it had finished."""
        if records is None:  # the worker did not answer: record the cancellation here
            self._record_here(job, asyncio.CancelledError())
        elif status == CANCELLED:
            if self.log_here:
                recorder.add_records([_priced(record) for record in records])
        else:
            self.row(job, records)

    def _record_here(self, job: Job, error: BaseException) -> dict[str, Any]:
        with capture(self.run_id) as captured:
            entry = recorder.begin("stream", job.model, job.messages, {**self.params, "sample": job.sample})
            assert entry is not None  # a capture always wants the entry
            entry.failed(error)
        return captured.records[-1]


def _priced(record: dict[str, Any]) -> dict[str, Any]:
    """The record priced with this process's prices (``register_model_cost``, ``load_prices``), as
    the local backend's calls are: a worker knows only the price tables of its own machine."""
    if "cost_usd" not in record or record.get("cache_hit") or record.get("kind") not in ("chat", "stream"):
        return record
    cost = cost_of(
        record["model"],
        record["handler_model"],
        record.get("prompt_tokens"),
        record.get("completion_tokens"),
        provider=record["provider"],
        kind=record["kind"],
        params=record.get("params"),
    )
    return {**record, "cost_usd": cost}


# -- connecting --------------------------------------------------------------------------------------
def _import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ImportError(f"backend='ray' needs Ray ({exc}): pip install 'llmkit[ray]'") from None
    return ray


def connect(ray: Any, address: str | None) -> None:
    """Connect this process to Ray: the cluster it is connected to already, else ``address``, else
    ``RAY_ADDRESS``, else a local Ray started here. An address that does not answer fails at once."""
    if ray.is_initialized():
        if address is not None and _host_port(address) != _host_port(ray.get_runtime_context().gcs_address):
            raise ValueError(
                f"this process is connected to the Ray cluster at {ray.get_runtime_context().gcs_address} already;"
                f" address={address!r} names another: call ray.shutdown() first, or leave address unset"
            )
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address not in (None, "auto", "local"):
        _reachable(address)
    try:
        ray.init(address=address, include_dashboard=False, configure_logging=False)
    except ConnectionError as exc:
        raise ConnectionError(f"cannot connect to the Ray cluster at {address!r}: {exc}") from None


def _host_port(address: str) -> tuple[str, int]:
    target = address.split("://", 1)[-1].rstrip("/")
    host, colon, port = target.rpartition(":")
    if not colon or not port.isdigit():
        host, port = target, "10001" if address.startswith("ray://") else "6379"
    host = host.strip("[]")
    try:
        host = socket.gethostbyname(host)
    except OSError:
        pass  # _reachable says so
    return host, int(port)


def _reachable(address: str, timeout: float = 3.0) -> None:
    try:
        socket.create_connection(_host_port(address), timeout=timeout).close()
    except OSError as exc:
        raise ConnectionError(
            f"cannot reach a Ray cluster at {address!r} ({exc}); check the address (`ray status` on the head"
            " node prints it), or leave it unset to start a local Ray in this process"
        ) from None


def shared_log() -> Any:
    """How workers open the driver's log themselves, or None when the driver must write their records.

    A store whose ``for_workers()`` returns a picklable function making an equivalent store in another
    process (a shared database: PostgreSQL) is written by the workers directly; any other store
    (SQLite, memory: private to this machine or process) gets the records shipped back to the driver.
    """
    store = config.current_store()
    opener = getattr(store, "for_workers", None)
    return opener() if callable(opener) else None


# -- workers kept warm between runs -----------------------------------------------------------------
class _Pools:
    """Idle worker pools by their options; a run takes one out (or makes one) and gives it back."""

    def __init__(self) -> None:
        self._idle: dict[str, tuple[Pool, threading.Timer]] = {}
        self._lock = threading.Lock()

    def checkout(self, key: str) -> Pool | None:
        import ray

        with self._lock:
            pool, timer = self._idle.pop(key, (None, None))
            others, self._idle = list(self._idle.values()), {}
        for other, other_timer in others:  # idle workers of other options must not hold what this run needs
            other_timer.cancel()
            other.kill()
        if timer is not None:
            timer.cancel()
        if pool is not None and pool.job_id != ray.get_runtime_context().get_job_id():
            return None  # left from an earlier connection (ray.shutdown(), ray.init() again)
        return pool

    def checkin(self, key: str, pool: Pool, idle_timeout: float) -> None:
        with self._lock:
            if key in self._idle or not idle_timeout:
                pool.kill()  # another run's pool is kept already
                return
            timer = threading.Timer(idle_timeout, self._expire, (key, pool))
            timer.daemon = True
            self._idle[key] = (pool, timer)
        timer.start()

    def _expire(self, key: str, pool: Pool) -> None:
        with self._lock:
            if self._idle.get(key, (None,))[0] is not pool:
                return
            del self._idle[key]
        pool.kill()

    def release(self) -> None:
        """Stop every idle worker now."""
        with self._lock:
            idle, self._idle = list(self._idle.values()), {}
        for pool, timer in idle:
            timer.cancel()
            pool.kill()


_pools = _Pools()


def release_workers() -> None:
    """Stop the Ray workers kept warm for the next comparison now, rather than after ``idle_timeout``."""
    _pools.release()
