"""``llmkit logs`` and ``llmkit cache``: the call log and the response cache from a shell.

``llmkit logs`` prints the newest calls as a table (``-n``, ``--model``, ``--status``, ``--since``;
``--json`` / ``--csv`` for other programs); ``llmkit logs search TEXT`` searches prompts and responses;
``llmkit logs path`` says where the log is; ``llmkit logs off|on`` opts out of (or back into) logging,
remembered in the settings file; ``llmkit logs import PATH`` loads an llmkit SQLite log (a spill file
of calls PostgreSQL could not take) into the PostgreSQL log; ``llmkit cache stats`` describes the
response cache. Thin: each reads through ``llmkit.calls`` / ``llmkit.cache`` (``import`` through
``calllog.transfer``); none needs pandas.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import re
import sys
from typing import Any

__all__ = ["add_commands"]

#: Columns of the table ``llmkit logs`` prints; --json and --csv have every column.
TABLE = ("started_at", "model", "status", "latency_ms", "total_tokens", "prompt", "response")
_WIDTHS = {"started_at": 19, "model": 20, "status": 9, "latency_ms": 7, "total_tokens": 6}
_HEADERS = {"started_at": "time (UTC)", "latency_ms": "ms", "total_tokens": "tokens"}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(s|m|h|d|w)")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def add_commands(commands: Any) -> None:
    """Add ``logs`` and ``cache`` to the ``llmkit`` command's subcommands."""
    logs = commands.add_parser("logs", help="the call log: newest calls, search, where it is, off/on")
    _add_listing_options(logs)
    logs.set_defaults(run=_list)
    actions = logs.add_subparsers(dest="logs_command", metavar="ACTION")
    search = actions.add_parser("search", help="calls whose prompt or response has every word of TEXT")
    search.add_argument("text", nargs="+", metavar="TEXT")
    search.add_argument("-n", type=int, default=20, help="how many calls (default 20)")
    _add_output_options(search)
    search.set_defaults(run=_search)
    actions.add_parser("path", help="where the call log is kept").set_defaults(run=_path)
    actions.add_parser("off", help="stop logging calls (remembered in llmkit's settings file)").set_defaults(run=_off)
    actions.add_parser("on", help="log calls again").set_defaults(run=_on)
    load = actions.add_parser("import", help="load an llmkit SQLite log (a file of unsent calls) into PostgreSQL")
    load.add_argument("path", metavar="PATH", help="the SQLite file")
    load.add_argument("--url", help="the PostgreSQL database (default: LLMKIT_LOG_URL)")
    load.set_defaults(run=_import)
    cache = commands.add_parser("cache", help="the response cache")
    cache_actions = cache.add_subparsers(dest="cache_command", metavar="ACTION", required=True)
    cache_actions.add_parser("stats", help="mode, where answers are kept, entries and size").set_defaults(
        run=_cache_stats
    )


def _add_listing_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-n", type=int, default=10, help="how many of the newest calls (default 10)")
    parser.add_argument("--model", action="append", help="only this model's calls (repeatable)")
    parser.add_argument("--status", action="append", choices=("ok", "error", "cancelled"), help="only calls with it")
    parser.add_argument("--since", help="only calls since: an ISO date or time, or a duration ago such as 30m, 2h, 7d")
    _add_output_options(parser)


def _add_output_options(parser: argparse.ArgumentParser) -> None:
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="every column, as a JSON array of calls")
    output.add_argument("--csv", action="store_true", help="every column, as CSV")


# -- commands ----------------------------------------------------------------------------------------
def _list(args: argparse.Namespace) -> int:
    import llmkit

    if args.n < 1:
        return _fail(f"-n takes how many calls to show (>= 1), got {args.n}")
    filters: dict[str, Any] = {"model": args.model, "status": args.status}
    if args.since:
        try:
            filters["since"] = _since(args.since)
        except ValueError as exc:
            return _fail(str(exc))
    if _is_off():
        return _fail("the call log is off; `llmkit logs on` turns it back on")
    return _print(llmkit.calls.last(args.n, **filters), args)


def _search(args: argparse.Namespace) -> int:
    import warnings

    import llmkit

    if args.n < 1:
        return _fail(f"-n takes how many calls to show (>= 1), got {args.n}")
    if _is_off():
        return _fail("the call log is off; `llmkit logs on` turns it back on")
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        found = llmkit.calls.search(" ".join(args.text), args.n)
    for warning in said:
        print(f"llmkit logs search: {warning.message}", file=sys.stderr)
    return _print(found, args)


def _path(args: argparse.Namespace) -> int:
    from llmkit.calllog import config

    store = config.current_store() if not _is_off() else None
    where = getattr(store, "path", None) or config.default_path()
    print(where)
    if store is not None and getattr(store, "path", None) is None:
        print(f"(this process logs to {store}, not to a file)", file=sys.stderr)
    if _is_off():
        print("(logging is off: `llmkit logs on` turns it back on)", file=sys.stderr)
    return 0


def _off(args: argparse.Namespace) -> int:
    return _switch("off")


def _on(args: argparse.Namespace) -> int:
    return _switch("on")


def _switch(value: str) -> int:
    from llmkit import settings

    try:
        settings.update(log=None if value == "on" else "off")
    except settings.SettingsError as exc:
        return _fail(str(exc))
    print(f"call log {value} (saved in {settings.path()})")
    if os.environ.get("LLMKIT_LOG") is not None:
        print(f"LLMKIT_LOG={os.environ['LLMKIT_LOG']} is set and comes first in this shell", file=sys.stderr)
    return 0


def _import(args: argparse.Namespace) -> int:
    from llmkit.errors import LLMKitError

    url = args.url or os.environ.get("LLMKIT_LOG_URL")
    if not url:
        return _fail("name the database: --url postgresql://... or LLMKIT_LOG_URL", command="logs import")
    try:
        from llmkit.calllog.postgres import PostgresStore
        from llmkit.calllog.transfer import import_sqlite_log

        store = PostgresStore(url)
        try:
            result = import_sqlite_log(args.path, store)
        finally:
            store.close()
    except (ImportError, OSError, LLMKitError) as exc:
        return _fail(str(exc), command="logs import", code=1)
    print(f"imported {result} from {args.path} into {store}; the file can now be deleted")
    return 0


def _cache_stats(args: argparse.Namespace) -> int:
    import llmkit

    print(llmkit.cache.stats_text(), end="")
    return 0


# -- output --------------------------------------------------------------------------------------------
def _print(records: list[dict[str, Any]], args: argparse.Namespace) -> int:
    if args.json:
        json.dump([_jsonable(r) for r in records], sys.stdout, ensure_ascii=False, indent=1, default=str)
        print()
    elif args.csv:
        _write_csv(records)
    elif not records:
        print("no calls", file=sys.stderr)
    else:
        print(_table(records))
    return 0


def _jsonable(record: dict[str, Any]) -> dict[str, Any]:
    return {**record, "started_at": _iso(record["started_at"])}


def _write_csv(records: list[dict[str, Any]]) -> None:
    from llmkit.calllog.record import COLUMNS, JSON_COLUMNS

    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(COLUMNS)
    for record in records:
        row = _jsonable(record)
        writer.writerow(
            [
                "" if row[name] is None else json.dumps(row[name]) if name in JSON_COLUMNS else row[name]
                for name in COLUMNS
            ]
        )


def _table(records: list[dict[str, Any]]) -> str:
    """The calls as aligned columns, oldest first; long texts cut to what the terminal has room for."""
    import shutil

    fixed = sum(_WIDTHS.values()) + 2 * len(TABLE)
    free = max(shutil.get_terminal_size((120, 24)).columns - fixed, 20)
    widths = {**_WIDTHS, "prompt": free // 2, "response": free - free // 2}
    lines = ["  ".join(_fit(_HEADERS.get(name, name), widths[name], name) for name in TABLE).rstrip()]
    for record in records:
        cells = {
            "started_at": _iso(record["started_at"])[:19].replace("T", " "),
            "model": record["model"] or "",
            "status": record["status"] or "",
            "latency_ms": "" if record["latency_ms"] is None else f"{record['latency_ms']:.0f}",
            "total_tokens": "" if record["total_tokens"] is None else str(record["total_tokens"]),
            "prompt": _one_line(record["prompt"]),
            "response": _one_line(record["response"] if record["status"] == "ok" else record["error_message"]),
        }
        lines.append("  ".join(_fit(cells[name], widths[name], name) for name in TABLE).rstrip())
    return "\n".join(lines)


def _fit(text: str, width: int, name: str) -> str:
    if len(text) > width:
        text = text[: width - 1] + "\u2026"
    return text.rjust(width) if name in ("latency_ms", "total_tokens") else text.ljust(width)


def _one_line(text: Any) -> str:
    return " ".join(str(text).split()) if text else ""


def _iso(epoch: Any) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).isoformat() if epoch is not None else ""


def _since(text: str) -> Any:
    """A duration ago (``30m``, ``2h``, ``1d12h``) as a timedelta, else the ISO text as it is."""
    spans = _DURATION.findall(text.replace(" ", ""))
    if spans and "".join(f"{n}{u}" for n, u in spans) == text.replace(" ", ""):
        return dt.timedelta(seconds=sum(float(n) * _UNITS[u] for n, u in spans))
    try:
        dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"--since {text!r} is neither an ISO date/time (2026-01-31T12:00) nor a duration (30m, 2h, 7d)"
        ) from None
    return text


def _is_off() -> bool:
    from llmkit.calllog import config

    return config.log_mode() == "off"


def _fail(message: str, *, command: str = "logs", code: int = 2) -> int:
    print(f"llmkit {command}: {message}", file=sys.stderr)
    return code
