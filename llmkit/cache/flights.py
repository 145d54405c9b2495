"""Identical calls in flight at the same time are made once: the first leads, the others wait for it.

A flight is keyed by the call's cache key and by who may wait for it: sync calls wait for sync calls
(blocking a thread), async calls for async calls in the same event loop. A sync call never waits for
an async one, which could be waiting for the very loop the sync call is blocking.

The leader resolves its flight with the outcome the others need: the answer as kept (JSON text), a
live stream to read (``streams.SharedStream``), or None when it failed, after which the others try
again and one of them leads.
"""

from __future__ import annotations

import concurrent.futures
import os
import threading
from typing import Any

__all__ = ["Flight", "flights"]


class Flight:
    __slots__ = ("key", "leading", "_future")

    def __init__(self, key: Any, future: concurrent.futures.Future, leading: bool) -> None:
        self.key = key
        self.leading = leading
        self._future = future

    def wait(self) -> Any:
        return self._future.result()

    async def await_outcome(self) -> Any:
        import asyncio

        # shield: a waiter cancelled must not cancel the outcome the other waiters share.
        return await asyncio.shield(asyncio.wrap_future(self._future))

    def resolve(self, outcome: Any, finished: bool = True) -> None:
        """Give the waiters ``outcome``; with ``finished`` the flight also ends (see :meth:`finish`)."""
        if finished:
            self.finish()
        if not self._future.done():
            self._future.set_result(outcome)

    def finish(self) -> None:
        """Later identical calls no longer join this flight."""
        flights.remove(self)


class _Flights:
    def __init__(self) -> None:
        self.forget_all()

    def forget_all(self) -> None:
        """No call in flight, and a fresh lock (a forked child's may be held by a parent's thread)."""
        self._table: dict[Any, concurrent.futures.Future] = {}
        self._lock = threading.Lock()

    def join(self, key: str, waits_in: Any) -> Flight:
        """The flight of the identical call in flight, or a new one that this call leads."""
        whose = (key, waits_in)
        with self._lock:
            future = self._table.get(whose)
            if future is not None:
                return Flight(whose, future, leading=False)
            future = self._table[whose] = concurrent.futures.Future()
            return Flight(whose, future, leading=True)

    def remove(self, flight: Flight) -> None:
        with self._lock:
            if self._table.get(flight.key) is flight._future:
                del self._table[flight.key]


flights = _Flights()


def _after_fork() -> None:
    # The calls in flight belong to the parent's threads; the child waits for none of them.
    flights.forget_all()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
