"""The ``llmkit`` command. Thin: each subcommand calls into the library."""

from __future__ import annotations

import argparse
import sys

from llmkit.errors import LLMKitError

__all__ = ["main"]


def _build_parser() -> argparse.ArgumentParser:
    from llmkit import __version__

    parser = argparse.ArgumentParser(prog="llmkit", description="Call, stream and compare your own LLM APIs.")
    parser.add_argument("--version", action="version", version=f"llmkit {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser("demo", help="a short tour on the offline demo provider (no key, no network)")
    demo.add_argument("--fast", action="store_true", help="stream without pacing")
    commands.add_parser("providers", help="list the providers a model string can name")
    serve = commands.add_parser("serve", help="an OpenAI-compatible HTTP proxy for a config.yaml's models")
    _add_serve_options(serve, required=True)
    logs = commands.add_parser("logs", help="the call log")
    actions = logs.add_subparsers(dest="logs_command", metavar="ACTION", required=True)
    load = actions.add_parser("import", help="load an llmkit SQLite log (a file of unsent calls) into PostgreSQL")
    load.add_argument("path", metavar="PATH", help="the SQLite file")
    load.add_argument("--url", help="the PostgreSQL database (default: LLMKIT_LOG_URL)")
    # LiteLLM's spelling, `litellm --config PATH`, works as `llmkit --config PATH` too.
    _add_serve_options(parser, required=False)
    return parser


def _add_serve_options(parser: argparse.ArgumentParser, required: bool) -> None:
    what = "the proxy's config.yaml" if required else "serve this config.yaml (short for: llmkit serve --config PATH)"
    parser.add_argument("--config", required=required, metavar="PATH", help=what)
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    parser.add_argument("--port", type=int, default=4000, help="port to listen on (default 4000)")
    parser.add_argument("--access-log", action="store_true", help="log one line per request")


def _serve(args: argparse.Namespace) -> int:
    try:
        from llmkit.proxy import ConfigError, serve
    except ImportError as exc:
        print(f"llmkit serve needs the proxy extra ({exc.name} is missing): pip install 'llmkit[proxy]'", file=sys.stderr)
        return 2
    try:
        return serve(args.config, host=args.host, port=args.port, access_log=args.access_log)
    except ConfigError as exc:
        print(f"llmkit serve: {exc}", file=sys.stderr)
        return 2


def _import_log(args: argparse.Namespace) -> int:
    import os

    url = args.url or os.environ.get("LLMKIT_LOG_URL")
    if not url:
        print("llmkit logs import: name the database: --url postgresql://... or LLMKIT_LOG_URL", file=sys.stderr)
        return 2
    try:
        from llmkit.calllog.postgres import PostgresStore
        from llmkit.calllog.transfer import import_sqlite_log

        store = PostgresStore(url)
        try:
            result = import_sqlite_log(args.path, store)
        finally:
            store.close()
    except (ImportError, OSError, LLMKitError) as exc:
        print(f"llmkit logs import: {exc}", file=sys.stderr)
        return 1
    print(f"imported {result} from {args.path} into {store}; the file can now be deleted")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        from llmkit.tour import run_tour

        return run_tour(fast=args.fast)
    if args.command == "providers":
        from llmkit import provider_names

        print("\n".join(provider_names()))
        return 0
    if args.command == "logs":
        return _import_log(args)
    if args.command == "serve" or args.config:
        return _serve(args)
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
