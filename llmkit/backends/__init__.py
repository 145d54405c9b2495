"""Where compare()'s calls run: ``backend="local"`` (this process, the default) or ``backend="ray"``.

A backend is an object with one method, ``open(params)``: called in the caller's thread before any
call (connect to a cluster, check that what must travel can travel; bad input raises here), it
returns a runner, ``await runner(jobs, on_row, concurrency=, per_model=, run_id=)``, which makes
every :class:`~llmkit.backends.jobs.Job`'s call and hands each finished row to ``on_row(job, row)``
in the caller's event loop, as the rows finish. ``concurrency`` and ``per_model`` bound the calls in
flight for the whole run, wherever they run. Ray is imported only when its backend is used.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, cast

__all__ = ["BACKENDS", "Backend", "LocalBackend", "RayBackend", "resolve"]

#: The names compare(backend=...) accepts.
BACKENDS = ("local", "ray")


class Backend(Protocol):
    name: str

    def open(self, params: dict[str, Any]) -> Callable[..., Awaitable[None]]: ...


def resolve(backend: Any) -> Backend:
    """The backend named by ``backend`` ("local", "ray"), or ``backend`` itself when it is one."""
    if isinstance(backend, str):
        if backend == "local":
            from llmkit.backends.local import LocalBackend

            return LocalBackend()
        if backend == "ray":
            from llmkit.backends.ray import RayBackend

            return RayBackend()
    elif callable(getattr(backend, "open", None)):  # a Backend is anything with open(): a Protocol
        return cast(Backend, backend)
    raise ValueError(
        f"unknown backend {backend!r}; backends: {', '.join(BACKENDS)}"
        " (or a backend object such as llmkit.backends.RayBackend(num_gpus=1))"
    )


def __getattr__(name: str) -> Any:
    if name == "LocalBackend":
        from llmkit.backends.local import LocalBackend

        return LocalBackend
    if name == "RayBackend":
        from llmkit.backends.ray import RayBackend

        return RayBackend
    raise AttributeError(f"module 'llmkit.backends' has no attribute {name!r}")
