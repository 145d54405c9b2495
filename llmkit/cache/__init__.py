"""The response cache: answers kept beside the call log, so a notebook can be run again without
paying for, or drifting on, every call.

``llmkit.configure_cache("use")`` (or ``LLMKIT_CACHE=use``, or ``cache="use"`` on one call) answers a
call from the cache when the same call was made before; ``"replay"`` answers only from it (a miss
raises ``CacheMissError``); ``"refresh"`` calls and overwrites; ``"off"`` is the default.

The dispatcher reads :data:`settings.on <llmkit.cache.settings.on>` on every call and, when it is
set or the call passes ``cache=``, hands the call to :func:`serve` / :func:`aserve`. The rest loads
then: ``keys`` (what makes two calls equal), ``serving`` (lookup, replay, coalescing, keeping),
``flights`` (identical calls in flight made once), ``streams`` (replays and shared live streams),
``values`` (answers as JSON), ``store`` / ``sqlite`` (where they are kept) and ``backend`` (which
store, next to the log).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from llmkit.cache import settings
from llmkit.errors import CacheMissError

if TYPE_CHECKING:
    from llmkit.cache.store import CacheStore

__all__ = ["MODES", "CacheMissError", "aserve", "clear", "configure_cache", "mode", "serve", "stats", "stats_text"]

MODES = settings.MODES

Answer = TypeVar("Answer")


def configure_cache(
    mode: str | bool | None = None, *, path: str | os.PathLike | None = None, replay_pace: bool = False
) -> None:
    """Choose how calls use the response cache, for this process.

    ``mode``: ``"off"`` (the default), ``"use"``, ``"replay"`` or ``"refresh"``; None reads
    ``LLMKIT_CACHE`` again. The answers are kept next to the call log (in its SQLite file, or in
    memory with the memory log) unless ``path`` names a SQLite file for them. ``replay_pace=True``
    replays kept streams with the gaps between chunks they had when recorded.
    """
    settings.configure(mode, path=path, pace=replay_pace)


def mode() -> str:
    """The process's cache mode: off, use, replay or refresh."""
    return settings.mode()


def serve(kind: str, model: Any, payload: Any, kwargs: dict[str, Any], live: Callable[[Any], Answer]) -> Answer:
    """Answer a call through the cache; ``live(entry)`` makes it the ordinary way (for the dispatcher).

    A kept answer has the type ``live`` returns: answers are kept, and decoded, by ``kind``.
    The first call loads ``serving`` and puts its functions here, so later calls go straight to them.
    """
    answer: Answer = _load().serve(kind, model, payload, kwargs, live)
    return answer


async def aserve(
    kind: str, model: Any, payload: Any, kwargs: dict[str, Any], live: Callable[[Any], Awaitable[Answer]]
) -> Answer:
    answer: Answer = await _load().aserve(kind, model, payload, kwargs, live)
    return answer


def _load() -> Any:
    global serve, aserve
    from llmkit.cache import serving

    serve, aserve = serving.serve, serving.aserve
    return serving


def clear(model: str | None = None) -> int:
    """Remove every kept answer, or only ``model``'s (``"provider/model"``); returns how many went."""
    from llmkit.cache import backend
    from llmkit.params import split_model

    if model is not None:
        handler_model, provider = split_model(model)
        if provider is None:
            raise ValueError(f"clear(model=...) takes a 'provider/model' string such as 'demo/echo', got {model!r}")
        model = f"{provider}/{handler_model}"
    store: CacheStore = backend.current_store()
    return store.clear(model)


def stats() -> dict[str, Any]:
    """The mode, where answers are kept, how many and how large, and this process's hits and misses."""
    from llmkit.cache import backend

    store = backend.current_store()
    entries, size = store.stats()
    hits, misses = backend.counts["hits"], backend.counts["misses"]
    return {
        "mode": settings.mode(),
        "store": str(store),
        "entries": entries,
        "size_bytes": size,
        "hits": hits,
        "misses": misses,
        "hit_rate": hits / (hits + misses) if hits + misses else None,
    }


def stats_text() -> str:
    """:func:`stats` in two lines, as ``%llm cache stats`` and ``llmkit cache stats`` print them."""
    s = stats()
    rate = "-" if s["hit_rate"] is None else f"{s['hit_rate']:.0%}"
    return (
        f"response cache: {s['mode']}, kept in {s['store']}\n{s['entries']} answer(s), {s['size_bytes']:,} bytes;"
        f" this session: {s['hits']} hits, {s['misses']} misses, hit rate {rate}\n"
    )
