"""The ``raresift`` command. Only this module prints; user mistakes exit 2 with one line."""

from __future__ import annotations

import argparse
import logging
import sys

from raresift.errors import RaresiftError


def _cmd_strategies(args: argparse.Namespace) -> int:
    from raresift.strategies import strategy_names

    print("\n".join(strategy_names()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="raresift",
        description="Active learning and active search for rare classes and concepts.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("strategies", help="list the acquisition strategies by name")
    p.set_defaults(func=_cmd_strategies)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except RaresiftError as exc:
        print(f"raresift: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("raresift: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
