"""Bridges between sync and async code that work inside a running event loop.

A sync call that must run a coroutine (a handler that only implements ``acompletion``) cannot use
``asyncio.run`` inside Jupyter, whose kernel already runs a loop in that thread. Instead of patching
the loop (nest-asyncio), coroutines run on one dedicated event-loop thread, started on first use; the
calling thread blocks on the result. That works the same in a script, a notebook cell, a thread or an
async function, and never re-enters a loop.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextvars
import functools
import os
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterator
from typing import Any, TypeVar

__all__ = [
    "aiter_in_thread",
    "handler_pool",
    "iterate_sync",
    "run_in_thread",
    "run_sync",
    "stop_handler_threads",
    "submit",
    "wait_for",
]

T = TypeVar("T")

_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None
_lock = threading.Lock()


def _bridge_loop() -> asyncio.AbstractEventLoop:
    global _loop, _thread
    if _loop is not None:
        return _loop
    with _lock:
        if _loop is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="llmkit-bridge", daemon=True)
            thread.start()
            atexit.register(_stop, loop, thread)
            _thread, _loop = thread, loop
    return _loop


def _stop(loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=1)


def submit(coro: Any) -> concurrent.futures.Future:
    """Start ``coro`` on the bridge loop without waiting: the caller polls or waits on the future."""
    return asyncio.run_coroutine_threadsafe(coro, _bridge_loop())


def run_sync(awaitable: Awaitable[T]) -> T:
    """Run ``awaitable`` to completion and return its result, from any thread, loop or no loop."""
    coro = awaitable if asyncio.iscoroutine(awaitable) else _await(awaitable)
    if threading.current_thread() is _thread:
        # A coroutine on the bridge loop made a sync call that needs the bridge: blocking the loop
        # on itself would deadlock, so this one nested call gets a private loop in a fresh thread.
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(asyncio.run, coro).result()
    future = asyncio.run_coroutine_threadsafe(coro, _bridge_loop())
    try:
        return future.result()
    except BaseException:
        future.cancel()  # KeyboardInterrupt in the caller stops the coroutine too
        raise


async def _await(awaitable: Awaitable[T]) -> T:
    return await awaitable


def iterate_sync(aiterable: Any) -> Iterator[Any]:
    """Iterate an async iterable from sync code, one ``__anext__`` per item on the bridge loop."""
    iterator = aiterable.__aiter__()
    try:
        while True:
            try:
                item = run_sync(iterator.__anext__())
            except StopAsyncIteration:
                return
            yield item
    finally:
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            run_sync(aclose())


async def wait_for(awaitable: Awaitable[T], timeout: float) -> T:
    """``asyncio.wait_for``, except that a KeyboardInterrupt or SystemExit raised by ``awaitable``
    reaches the caller as an exception of this call. (Before Python 3.12 wait_for runs the awaitable
    in a task of its own, and a task raising one of those stops the whole event loop: a server's.)"""
    if _timeout is not None:  # Python 3.11+: no task in between, which is also several times cheaper
        async with _timeout(timeout):
            return await awaitable
    try:
        return await asyncio.wait_for(_contained(awaitable), timeout)
    except _Escaped as escaped:
        raise escaped.exception from None


_timeout = getattr(asyncio, "timeout", None)


class _Escaped(Exception):
    def __init__(self, exception: BaseException) -> None:
        self.exception = exception


async def _contained(awaitable: Awaitable[T]) -> T:
    try:
        return await awaitable
    except (KeyboardInterrupt, SystemExit) as exc:
        raise _Escaped(exc) from None


_pools: dict[Hashable, concurrent.futures.ThreadPoolExecutor] = {}
THREAD_PREFIX = "llmkit-handler"


def handler_pool(key: Hashable = None) -> concurrent.futures.ThreadPoolExecutor:
    """The threads sync handlers run in when called from async code or under a timeout.

    One pool per ``key`` (the dispatcher passes the provider and model), so that calls to one model
    that hang hold only that model's threads while the others keep answering. Not the loop's default
    executor, which has only cores + 4 threads: calls to a model mostly wait on the network, so a
    comparison of 32 calls at once should have 32 threads to wait in. ``LLMKIT_HANDLER_THREADS`` sets
    the size of each pool (default 64); threads start when needed.
    """
    pool = _pools.get(key)
    if pool is None:
        with _lock:
            pool = _pools.get(key)
            if pool is None:
                size = int(os.environ.get("LLMKIT_HANDLER_THREADS", "64"))
                pool = concurrent.futures.ThreadPoolExecutor(max_workers=size, thread_name_prefix=THREAD_PREFIX)
                _pools[key] = pool
    return pool


def stop_handler_threads(timeout: float) -> int:
    """Stop every handler pool: queued calls are dropped, idle threads end, and running calls get
    ``timeout`` seconds in all to return. Returns how many threads are still running a call."""
    with _lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        pool.shutdown(wait=False, cancel_futures=True)
    deadline = time.monotonic() + timeout
    busy = [t for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX)]
    for thread in busy:
        thread.join(max(0.0, deadline - time.monotonic()))
    return sum(thread.is_alive() for thread in busy)


async def run_in_thread(fn: Callable[..., T], /, *args: Any, pool: Hashable = None) -> T:
    """Await a blocking call in the handler pool for ``pool``, keeping context variables."""
    call = functools.partial(contextvars.copy_context().run, fn, *args)
    return await asyncio.get_running_loop().run_in_executor(handler_pool(pool), call)


async def aiter_in_thread(iterator: Iterator[Any], pool: Hashable = None) -> AsyncIterator[Any]:
    """Iterate a blocking iterator from async code without blocking the event loop.

    One worker thread drains the iterator and hands items to the loop as they come, which costs a
    few microseconds an item instead of an executor round trip per item. When the consumer stops
    early the worker stops at the next item and closes the iterator.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[bool, Any]] = asyncio.Queue()
    stopped = threading.Event()

    def hand_over(item: tuple[bool, Any]) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the consumer's loop is closed: nobody is listening any more
            stopped.set()

    def produce() -> None:
        try:
            for item in iterator:
                if stopped.is_set():
                    break
                hand_over((True, item))
        except BaseException as exc:  # delivered to the consumer, raised there
            hand_over((False, exc))
            return
        finally:
            close = getattr(iterator, "close", None)
            if close is not None and stopped.is_set():
                close()
        hand_over((False, None))

    loop.run_in_executor(handler_pool(pool), produce)
    try:
        while True:
            ok, item = await queue.get()
            if ok:
                yield item
            elif item is None:
                return
            else:
                raise item
    finally:
        stopped.set()
