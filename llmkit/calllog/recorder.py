"""The calling path's side of the log: cheap entries in, a writer thread turning them into records.

While a call runs, the dispatcher holds an :class:`Entry`: references to what it was given, two clock
readings, and at the end the result or the exception. Finishing an entry appends it to a queue, a few
hundred nanoseconds. A daemon thread wakes every ``flush_interval`` seconds, builds the records
(``record.build_record``), runs the callbacks and writes the batch to the store in one transaction.
Readers flush first, so a call is visible as soon as it has returned; the queue is flushed at exit.
A server's event loop may take the building over (``build_on_loop``): a few records at a time
between its requests, rather than a whole batch in the writer while the loop waits for the GIL.

Memory stays bounded when the store cannot keep up or refuses records: past ``MAX_PENDING`` queued
calls the calling thread writes (or, when the writer is stuck in the store, spills the oldest) itself,
and past ``MAX_UNWRITTEN`` refused records the oldest are written to a spill file (``spill.py``)
named in a warning. A record is only ever lost with a warning saying so.
"""

from __future__ import annotations

import atexit
import collections
import contextvars
import inspect
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

from llmkit.calllog import spill
from llmkit.calllog.record import build_record, with_prompt

__all__ = ["Capture", "Entry", "add_records", "begin", "build_on_loop", "capture", "drain", "ensure_writer"]

_perf = time.perf_counter
_time = time.time

_pending: collections.deque = collections.deque()
_lock = threading.RLock()  # one drain at a time (re-entrant: a callback may read the log)
_build_lock = threading.Lock()  # each entry's record is built once, whoever asks first
_capture: contextvars.ContextVar[Capture | None] = contextvars.ContextVar("llmkit_calllog_capture", default=None)

#: True when nothing wants entries (the log is off and no callbacks are registered).
off = False
#: Set by ``config``: the store records go to (a function, so it opens lazily) and the callbacks.
store_getter: Callable[[], Any] = lambda: None  # noqa: E731 - replaced by config at import
callbacks: list[tuple[str, Callable[[dict], Any]]] = []
# Short, so that under load a batch is small: entries then die young (cheap for the garbage
# collector) and a drain holds the GIL only briefly. A proxy at 8,000 requests/s had a p99 of
# 40-75 ms at 0.2 s and 12-16 ms at 0.05 s.
flush_interval = 0.05

_writer: threading.Thread | None = None
_stop = threading.Event()
_warned: set[Any] = set()
_open_streams: set[Entry] = set()  # streams handed to callers and not ended yet
_unwritten: list[dict] = []  # records of batches the store refused, retried on the next flush
_to_build: collections.deque | None = None  # finished calls for build_on_loop, while one runs
#: Finished calls that may wait for the writer before the calling thread takes some over.
MAX_PENDING = 50_000
#: Records the store refused that are kept to try again; older ones go to the spill file.
MAX_UNWRITTEN = 10_000
_SPILL_AT_ONCE = 1_000  # calls a calling thread spills when the queue is full and the writer stuck
#: Seconds a calling thread waits for a writer busy with a batch before it counts the store as stuck.
WRITER_PATIENCE = 1.0
_writes_begun = 0  # store.write calls started: the writer still in the same one has not moved on
_stuck_in = -1  # the write in which a calling thread last gave up waiting


class Entry:
    """One call in flight. Finishing it (``ok``/``failed``/``abandoned``) records it exactly once."""

    __slots__ = (
        "kind",
        "model",
        "payload",
        "kwargs",
        "capture",
        "started_at",
        "t0",
        "t_first",
        "t_end",
        "result",
        "error",
        "status",
        "reason",
        "cache_hit",
        "_record",
    )

    def __init__(self, kind: str, model: Any, payload: Any, kwargs: dict, capture: Capture | None) -> None:
        self.kind = kind
        self.model = model
        # A copy: callers often append the answer to their messages list and call again.
        self.payload = list(payload) if type(payload) is list else payload
        self.kwargs = kwargs
        self.capture = capture
        self.t_first: float | None = None
        self.t_end: float  # set when it finishes
        self.result: Any = None
        self.error: BaseException | None = None
        self.status: str | None = None
        self.reason: str | None = None
        self.cache_hit = False  # answered by the response cache (llmkit/cache), not by the handler
        self._record: dict[str, Any] | None = None
        self.started_at = _time()
        self.t0 = _perf()

    def ok(self, result: Any) -> None:
        if self.status is None:
            self.t_end = _perf()
            self.result = result
            self.status = "ok"
            _submit(self)

    def failed(self, error: BaseException, result: Any = None) -> None:
        """A failure; KeyboardInterrupt, task cancellation and other non-``Exception``s are cancellations."""
        if self.status is None:
            self.t_end = _perf()
            self.result = result
            self.error = error
            self.status = "error" if isinstance(error, Exception) else "cancelled"
            _submit(self)

    def streaming(self, converter: Any) -> None:
        """The stream opened: until it ends, it is recorded at exit if nothing else ends it."""
        self.result = converter
        _open_streams.add(self)

    def abandoned(self, result: Any, reason: str) -> None:
        """Cancelled without an exception: a stream closed or dropped before its end."""
        if self.status is None:
            self.t_end = _perf()
            self.result = result
            self.reason = reason
            self.status = "cancelled"
            _submit(self)

    def record(self) -> dict[str, Any]:
        record = self._record
        if record is None:
            with _build_lock:
                record = self._record
                if record is None:
                    record = self._record = build_record(self)
        return record

    def build_now(self) -> None:
        """Build the record unless it is built or another thread is building one: never waits."""
        if self._record is None and _build_lock.acquire(blocking=False):
            try:
                if self._record is None:
                    self._record = build_record(self)
            finally:
                _build_lock.release()


def begin(kind: str, model: Any, payload: Any, kwargs: dict) -> Entry | None:
    """An entry for a call starting now, or None when nothing would use it."""
    current = _capture.get()
    if off and current is None:
        return None
    return Entry(kind, model, payload, kwargs, current)


def _submit(entry: Entry) -> None:
    if entry.kind == "stream":
        _open_streams.discard(entry)
    if entry.capture is not None:
        entry.capture.entries.append(entry)
    if not off:
        _pending.append(entry)
        if _to_build is not None:
            _to_build.append(entry)
        if _writer is None:
            ensure_writer()
        elif len(_pending) > MAX_PENDING:
            _relieve()


def _relieve() -> None:
    """The queue is full: write it from this thread once the writer is done with its batch (calls
    made faster than they can be written wait, and stay in the log), or, when the writer is stuck in
    the store, spill the oldest calls: a store that never answers costs time, not memory without bound."""
    global _stuck_in
    patience = 0.0 if _stuck_in == _writes_begun else WRITER_PATIENCE  # no second wait on one stuck write
    if _lock.acquire(timeout=patience):
        try:
            drain()
        finally:
            _lock.release()
        return
    _stuck_in = _writes_begun
    entries: list[Entry] = []
    while _pending and len(entries) < _SPILL_AT_ONCE:
        try:
            entries.append(_pending.popleft())
        except IndexError:  # emptied meanwhile by the writer
            break
    records = _records_of(entries)
    _spill(
        records, f"llmkit's call log {store_getter()} has not taken calls for a while (more than {MAX_PENDING} wait)"
    )
    for record in records:
        _run_callbacks(record)


class _Made:
    """A record built in another process (a Ray worker), queued like an entry of this one."""

    __slots__ = ("model", "_record")

    def __init__(self, record: dict[str, Any]) -> None:
        self.model = record.get("model")
        self._record = record

    def record(self) -> dict[str, Any]:
        return self._record


def add_records(records: list[dict[str, Any]]) -> None:
    """Log calls made elsewhere, from their finished records: written and called back like this
    process's own calls (compare()'s Ray backend ships its workers' records here)."""
    if off:
        return
    _pending.extend(_Made(record) for record in records)
    if _writer is None:
        ensure_writer()


class Capture:
    """The calls made inside a :func:`capture` block, and the run id they are logged with."""

    def __init__(self, run_id: str | None) -> None:
        self.run_id = run_id
        self.entries: list[Entry] = []

    @property
    def records(self) -> list[dict[str, Any]]:
        """The records of the calls finished so far, in the order they finished."""
        return [with_prompt(entry.record()) for entry in list(self.entries)]


def capture(run_id: str | None = None) -> _CaptureBlock:
    """``with capture(run_id) as run:`` collects the records of calls made inside, in this context.

    Calls inherit the block through context variables, so asyncio tasks started inside it count too.
    """
    return _CaptureBlock(run_id)


class _CaptureBlock:
    def __init__(self, run_id: str | None = None) -> None:
        self._capture = Capture(run_id)
        self._token: Any = None

    def __enter__(self) -> Capture:
        self._token = _capture.set(self._capture)
        return self._capture

    def __exit__(self, *exc_info: Any) -> None:
        _capture.reset(self._token)


# -- building on a server's event loop -------------------------------------------------------------
async def build_on_loop(every: float = 0.005, at_once: int = 32) -> None:
    """Build the records of finished calls on the running event loop until cancelled: every ``every``
    seconds, ``at_once`` records at a time, letting the loop's other work run between them.

    For a server whose event loop makes the calls (the proxy). Left to the writer thread, a batch's
    records are built in one go while the loop waits for the GIL, and the requests it holds up wait
    with it: bench/proxy_log.py's p99 went from 11-12 ms to 8.5-8.7 ms (log-off: 7.1-7.3 ms) with this,
    at the same requests/s. The writer still builds any record not built by the time it writes, and
    one that fails to build here is left to it (it says why, once).
    """
    import asyncio  # here: importing llmkit does not import asyncio

    global _to_build
    queue = _to_build = collections.deque()
    take = queue.popleft
    pause = every
    try:
        while True:
            await asyncio.sleep(pause)
            pause = every if queue else min(2 * pause, flush_interval)  # an idle server wakes less often
            while queue:
                for _ in range(min(at_once, len(queue))):
                    entry = take()
                    try:
                        entry.build_now()
                    except Exception:  # the writer tries again and warns
                        pass
                await asyncio.sleep(0)
    finally:
        if _to_build is queue:
            _to_build = None


# -- the writer ------------------------------------------------------------------------------------
def ensure_writer() -> None:
    global _writer
    with _lock:
        if _writer is None:
            _stop.clear()
            writer = threading.Thread(target=_write_loop, name="llmkit-calllog", daemon=True)
            try:
                writer.start()
            except RuntimeError:  # interpreter shutdown (a stream dropped at exit): nothing to start
                return
            _writer = writer
            _flush_at_worker_exit()


_finalizer_pid = None


def _flush_at_worker_exit() -> None:
    """multiprocessing's worker processes end with os._exit, skipping atexit: flush at their exit too."""
    global _finalizer_pid
    mp_util = sys.modules.get("multiprocessing.util")
    if mp_util is not None and _finalizer_pid != os.getpid():
        _finalizer_pid = os.getpid()
        mp_util.Finalize(None, stop_writer, exitpriority=0)


def _write_loop() -> None:
    while not _stop.wait(flush_interval):
        try:
            drain()
        except Exception as exc:  # never let the writer die; say once what went wrong
            warn_once("writer", f"llmkit's call log could not write calls: {type(exc).__name__}: {exc}")


def drain() -> None:
    """Build the records of finished calls, write them to the store, then run the callbacks.

    Callbacks run after the lock is released, so one may read the log or make calls itself.
    """
    with _lock:
        entries = []
        while _pending:
            entries.append(_pending.popleft())
        if not entries and not _unwritten:
            return
        records = _records_of(entries)
        _write(records)
    for record in records:
        _run_callbacks(record)


def _records_of(entries: list[Entry]) -> list[dict[str, Any]]:
    """The entries' records, built in one go. An event loop waiting for the GIL gets it within
    Python's switch interval (5 ms) anyway; pausing every 32 records, as this did, only added
    hand-offs between the threads: the proxy with its log in SQLite spent 9-11% less CPU per request
    without them (three sets of paired rounds under wrk), with the same p99."""
    return [record for record in map(_record_or_warn, entries) if record]


def _write(records: list[dict[str, Any]]) -> None:
    global _unwritten, _writes_begun
    store = store_getter()
    if store is None:
        return
    batch, _unwritten = _unwritten + records, []
    _writes_begun += 1
    try:
        store.write(batch)
    except Exception as exc:
        warn_once(
            ("store", type(exc)),
            f"llmkit's call log could not write to {store}: {type(exc).__name__}: {exc};"
            f" keeping up to {MAX_UNWRITTEN} calls in memory to try again, and writing older ones to a spill file",
        )
        overflow, _unwritten = batch[:-MAX_UNWRITTEN], batch[-MAX_UNWRITTEN:]
        if overflow:
            _spill(overflow, f"llmkit's call log could not write to {store} ({type(exc).__name__}: {exc})")


def _spill(records: list[dict[str, Any]], why: str) -> None:
    """Write ``records`` to the spill file, saying once where it is; if even that fails, say what was lost."""
    if not records:
        return
    try:
        store = store_getter()
        target = spill.spill_store(beside=getattr(store, "path", None))
        target.write(records)
    except Exception as exc:
        warnings.warn(
            f"{why}; {len(records)} calls were lost: they could not be written to a spill file either"
            f" ({type(exc).__name__}: {exc})",
            RuntimeWarning,
            stacklevel=2,
        )
        return
    warn_once(
        ("spill", str(target)),
        f"{why}; the calls it cannot keep are written to {target} (an llmkit call log: read it with"
        " llmkit.configure_log(path=...))",
    )


def _record_or_warn(entry: Entry) -> dict[str, Any] | None:
    try:
        return entry.record()
    except Exception as exc:  # a bug here must cost one record, never the batch or the writer
        warn_once(
            ("record", type(exc)), f"llmkit could not record a call to {entry.model!r}: {type(exc).__name__}: {exc}"
        )
        return None


def _run_callbacks(record: dict[str, Any]) -> None:
    if not callbacks:
        return
    with_prompt(record)
    wanted = "success" if record["status"] == "ok" else "failure"
    for on, callback in list(callbacks):
        if on != wanted:
            continue
        try:
            result = callback(record)
            if inspect.isawaitable(result):
                from llmkit import aio

                aio.run_sync(result)
        except Exception as exc:
            name = getattr(callback, "__qualname__", repr(callback))
            warn_once(
                ("callback", id(callback)),
                f"call log callback {name} raised {type(exc).__name__}: {exc}; the call was not affected"
                " (this warning is shown once per callback)",
            )


def warn_once(key: Any, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=2)


def stop_writer() -> None:
    """Stop the writer thread after a last flush (at exit, and when the log is reconfigured)."""
    global _writer
    _stop.set()
    writer = _writer
    if writer is not None and writer is not threading.current_thread():
        writer.join(timeout=5)
    _writer = None
    drain()


def _after_fork() -> None:
    # The child has no writer thread; the parent writes the calls it had queued.
    global _writer, _lock, _build_lock, _unwritten, _to_build
    _writer = None
    _to_build = None  # the parent's event loop, if it had one building, is not running here
    _lock, _build_lock = threading.RLock(), threading.Lock()
    _pending.clear()
    _open_streams.clear()
    _unwritten = []


def _at_exit() -> None:
    for entry in list(_open_streams):  # a stream still held open (a variable in a notebook)
        entry.abandoned(entry.result, "still open when the process exited")
    stop_writer()


atexit.register(_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
