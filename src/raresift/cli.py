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


def _cmd_demo(args: argparse.Namespace) -> int:
    from raresift.demo import run_demo

    result = run_demo(
        out_dir=args.out,
        dataset=args.dataset,
        rare_class=args.rare_class,
        rounds=args.rounds,
        batch=args.batch,
        seed=args.seed,
        progress=lambda line: print(line, flush=True),
    )
    print(f"report: {result.csv_path} and {result.png_path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="raresift",
        description="Active learning and active search for rare classes and concepts.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("demo", help="active search for a rare class on real images, with a report")
    p.add_argument("--out", default="raresift-demo", help="report folder (default: %(default)s)")
    p.add_argument(
        "--dataset", default="auto", choices=["auto", "fashion-mnist", "mnist5k"],
        help="Fashion-MNIST when installed (auto), else MNIST 5k",
    )  # fmt: skip
    p.add_argument("--rare-class", type=int, default=6, help="class made rare (default: 6)")
    p.add_argument("--rounds", type=int, default=10, help="selection rounds (default: 10)")
    p.add_argument("--batch", type=int, default=100, help="labels per round (default: 100)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.set_defaults(func=_cmd_demo)

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
