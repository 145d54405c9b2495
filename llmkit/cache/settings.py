"""The cache's mode for this process and for one call: ``configure_cache``, ``LLMKIT_CACHE``, ``cache=``.

Modes: ``off`` (the default: every call is live), ``use`` (answer from the cache when the same call was
made before, else call and keep the answer), ``replay`` (answer only from the cache; a miss raises
``CacheMissError``), ``refresh`` (always call, and overwrite what was kept).

:data:`on` is the one thing the dispatcher reads on every call, so it must stay a plain module
global: True when calls pass through the cache (a mode other than off, or an ``LLMKIT_CACHE`` value
that every call must report as wrong).
"""

from __future__ import annotations

import contextvars
import os
from pathlib import Path
from typing import Any

__all__ = ["MODES", "call_mode", "configure", "mode", "on", "outcomes"]

#: A list to which each call made in this context appends "hits" or "misses": how a caller (the
#: notebook's footer) learns whether its own call was answered from the cache. None: nobody asks.
outcomes: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("llmkit_cache_outcomes", default=None)

MODES = ("off", "use", "replay", "refresh")
_ENV_MODES = {
    "": "off", "off": "off", "0": "off", "false": "off", "no": "off", "none": "off",
    "use": "use", "on": "use", "1": "use", "true": "use", "yes": "use",
    "replay": "replay", "refresh": "refresh",
}  # fmt: skip

#: True when calls pass through the cache; read by the dispatcher on every call.
on = False
_mode = "off"
_error: str | None = None  # why LLMKIT_CACHE could not be used, said by every call until fixed
cache_path: Path | None = None  # a separate SQLite file for the cache; None keeps it next to the call log
replay_pace = False  # replayed streams keep their recorded gaps between chunks


def _modes_text() -> str:
    return ", ".join(repr(m) for m in MODES)


def check_mode(value: Any, where: str) -> str:
    """``value`` as a mode (True means "use", False "off"), or ValueError listing the modes."""
    if value is True:
        return "use"
    if value is False or value is None:
        return "off"
    if isinstance(value, str) and value.strip().lower() in MODES:
        return value.strip().lower()
    raise ValueError(f"{where} must be one of {_modes_text()} (or True / False), got {value!r}")


def _from_environment() -> tuple[str, str | None]:
    raw = os.environ.get("LLMKIT_CACHE")
    if raw is None:
        return "off", None
    mode = _ENV_MODES.get(raw.strip().lower())
    if mode is None:
        return "off", (f"LLMKIT_CACHE={raw!r} is not a cache mode; set it to one of {_modes_text()}, or unset it")
    return mode, None


def configure(mode: Any = None, *, path: str | os.PathLike | None = None, pace: bool = False) -> None:
    """Set the process's mode (None: read ``LLMKIT_CACHE`` again), the cache file and replay pacing."""
    global cache_path, replay_pace
    if mode is None:
        new_mode, error = _from_environment()
        if error is not None:
            raise ValueError(error)
    else:
        new_mode, error = check_mode(mode, "mode"), None
    _set(new_mode, error)
    cache_path = Path(path).expanduser() if path is not None else None
    replay_pace = bool(pace)


def _set(new_mode: str, error: str | None) -> None:
    global on, _mode, _error
    _mode, _error = new_mode, error
    on = new_mode != "off" or error is not None


def mode() -> str:
    """The process's mode (``ValueError`` when ``LLMKIT_CACHE`` holds no mode)."""
    if _error is not None:
        raise ValueError(_error)
    return _mode


def call_mode(kwargs: dict[str, Any]) -> str:
    """The mode for one call: its ``cache=`` when given, else the process's mode."""
    if "cache" in kwargs:
        return check_mode(kwargs["cache"], "cache=")
    return mode()


_set(*_from_environment())
