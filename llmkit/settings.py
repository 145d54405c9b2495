"""llmkit's settings file: a small TOML file of choices that outlive a kernel or a shell.

It lives in the per-user config folder that ``platformdirs`` names (``~/.config/llmkit/settings.toml``
on Linux), or in ``LLMKIT_CONFIG_DIR``. ``%llm default`` and ``%llm alias`` write ``default_model``
and ``[aliases]`` (read back by the notebook's ``LLM`` configurable, :mod:`llmkit.notebook.configurable`);
``llmkit logs off|on`` writes ``log``, which the call log reads when no ``LLMKIT_LOG`` is set.
``default_params``, ``format`` and ``stream`` may be written by hand. Example::

    default_model = "demo/lorem"
    log = "on"

    [aliases]
    fast = "demo/echo"

    [default_params]
    temperature = 0.2

Writes are atomic (a new file renamed over the old one), so a crash never leaves half a file. The
writer is our own: the file is flat (scalars, and tables of values), so 40 lines do it, and the reader
checks every write (:func:`dumps` round-trips through it) — one dependency less for every install.
"""

from __future__ import annotations

import math
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from llmkit.errors import LLMKitError

__all__ = ["SettingsError", "config_dir", "dumps", "path", "read", "update"]

FILE_NAME = "settings.toml"


class SettingsError(LLMKitError):
    """The settings file cannot be read, or a value cannot be written to it."""


def config_dir() -> Path:
    """``LLMKIT_CONFIG_DIR``, else llmkit's folder in the user's config directory."""
    configured = os.environ.get("LLMKIT_CONFIG_DIR", "").strip()
    if configured:
        return Path(configured).expanduser()
    import platformdirs  # loaded when the file is first needed, never by import llmkit

    return Path(platformdirs.user_config_dir("llmkit", appauthor=False))


def path() -> Path:
    """Where the settings file is (it may not exist yet)."""
    return config_dir() / FILE_NAME


def read() -> dict[str, Any]:
    """The settings as a dict; empty when there is no file yet."""
    where = path()
    try:
        text = where.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):  # no file yet (or no folder where it would go)
        return {}
    except OSError as exc:
        raise SettingsError(f"cannot read llmkit's settings file {where}: {exc}") from None
    try:
        return _toml_loads(text)
    except ValueError as exc:  # tomllib.TOMLDecodeError
        raise SettingsError(
            f"llmkit's settings file {where} is not valid TOML ({exc}); fix it, or delete it to start over"
        ) from None


def update(**changes: Any) -> dict[str, Any]:
    """Set (or, with None, remove) top-level settings and write the file; returns the new settings.

    A table (``aliases={...}``) replaces the whole table: read, change, then pass it back.
    """
    settings = read()
    for key, value in changes.items():
        if value is None or value == {}:
            settings.pop(key, None)
        else:
            settings[key] = value
    _write(path(), dumps(settings))
    return settings


def _write(where: Path, text: str) -> None:
    try:
        where.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=".settings-", suffix=".toml", dir=where.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temporary, where)  # atomic: readers see the old file or the new one
        except BaseException:
            os.unlink(temporary)
            raise
    except OSError as exc:
        raise SettingsError(
            f"cannot write llmkit's settings file {where}: {exc}; set LLMKIT_CONFIG_DIR to a writable folder"
        ) from None


def _toml_loads(text: str) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    return tomllib.loads(text)


# -- writing -----------------------------------------------------------------------------------------
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r", "\b": "\\b", "\f": "\\f"}


def dumps(settings: dict[str, Any]) -> str:
    """``settings`` as TOML: values first, then one ``[table]`` per dict; checked by reading it back."""
    lines = [f"{_key(k)} = {_value(v, k)}" for k, v in settings.items() if not isinstance(v, dict)]
    for name, table in settings.items():
        if isinstance(table, dict):
            lines += ["", f"[{_key(name)}]", *(f"{_key(k)} = {_value(v, f'{name}.{k}')}" for k, v in table.items())]
    text = "\n".join(lines).lstrip("\n") + "\n"
    if _toml_loads(text) != settings:  # a value TOML would read back differently
        raise SettingsError(f"these settings do not survive a round trip through TOML: {settings!r}")
    return text


def _key(key: Any) -> str:
    if not isinstance(key, str) or not key:
        raise SettingsError(f"a setting's name must be a non-empty string, got {key!r}")
    return key if _BARE_KEY.fullmatch(key) else _string(key)


def _string(text: str) -> str:
    escaped = "".join(_ESCAPES.get(c, c if c >= " " and c != "\x7f" else f"\\u{ord(c):04x}") for c in text)
    return f'"{escaped}"'


def _value(value: Any, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return (
            ("nan" if math.isnan(value) else ("inf" if value > 0 else "-inf"))
            if not math.isfinite(value)
            else repr(value)
        )
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(item, where) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(v, where)}" for k, v in value.items()) + "}"
    what = "no null in TOML: leave the setting out" if value is None else f"a {type(value).__name__}"
    raise SettingsError(f"cannot save {where} = {value!r} in the settings file ({what})")
