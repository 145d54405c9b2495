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
    return parser


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
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
