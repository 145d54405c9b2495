"""The ``llmkit`` command. Thin: each subcommand calls into the library."""

from __future__ import annotations

import argparse
import sys

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
    from llmkit.cli_logs import add_commands  # llmkit logs ..., llmkit cache stats

    add_commands(commands)
    # LiteLLM's spelling, `litellm --config PATH`, works as `llmkit --config PATH` too.
    _add_serve_options(parser, required=False)
    return parser


def _add_serve_options(parser: argparse.ArgumentParser, required: bool) -> None:
    what = "the proxy's config.yaml" if required else "serve this config.yaml (short for: llmkit serve --config PATH)"
    parser.add_argument("--config", required=required, metavar="PATH", help=what)
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    parser.add_argument("--port", type=int, default=4000, help="port to listen on (default 4000)")
    parser.add_argument("--access-log", action="store_true", help="log one line per request")
    parser.add_argument(
        "--workers",
        type=_workers,
        default=1,
        metavar="N",
        help="server processes on the port (default 1; 'auto': one per core)",
    )
    parser.add_argument(
        "--timeout-graceful-shutdown",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="on SIGTERM/SIGINT, how long requests in flight may take to finish (default 30)",
    )


def _workers(text: str) -> int:
    if text == "auto":
        import os

        return os.cpu_count() or 1
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of workers; give a whole number >= 1, or auto")
    return int(text)


def _serve(args: argparse.Namespace) -> int:
    try:
        from llmkit.proxy import ConfigError, serve
        from llmkit.proxy.server import ServeError
    except ImportError as exc:
        print(
            f"llmkit serve needs the proxy extra ({exc.name} is missing): pip install 'llmkit[proxy]'", file=sys.stderr
        )
        return 2
    try:
        return serve(
            args.config,
            host=args.host,
            port=args.port,
            access_log=args.access_log,
            workers=args.workers,
            graceful_seconds=args.timeout_graceful_shutdown,
        )
    except (ConfigError, ServeError) as exc:
        print(f"llmkit serve: {exc}", file=sys.stderr)
        return 2


def _providers() -> int:
    import warnings

    from llmkit.providers.registry import describe_providers

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a plugin that fails to load: the listing says why, once
        rows = describe_providers()
    width = max(len(name) for name, _ in rows)
    print("\n".join(f"{name:<{width}}  {origin}" for name, origin in rows))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        from llmkit.tour import run_tour

        return run_tour(fast=args.fast)
    if args.command == "providers":
        return _providers()
    if getattr(args, "run", None) is not None:  # a subcommand that names its own function
        status: int = args.run(args)
        return status
    if args.command == "serve" or args.config:
        return _serve(args)
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
