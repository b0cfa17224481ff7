"""The ``raresift`` command. Only this module prints; user mistakes exit 2 with one line."""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys

from raresift import __version__
from raresift.errors import RaresiftError


def _cmd_strategies(args: argparse.Namespace) -> int:
    from raresift.strategies import STRATEGIES

    if args.names:
        print("\n".join(sorted(STRATEGIES)))
        return 0
    width = max(map(len, STRATEGIES))
    families = dict.fromkeys(info.family for info in STRATEGIES.values())
    for family in families:
        print(family)
        for info in STRATEGIES.values():
            if info.family == family:
                print(f"  {info.name:<{width}}  {info.purpose}")
                print(f"  {'':<{width}}  needs: {info.needs}")
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
        study=not args.no_study,
        progress=lambda line: print(line, flush=True),
    )
    print(f"report: {result.csv_path} and {result.png_path}")
    if result.study_report is not None:
        print(f"study report: {result.study_report}")
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from raresift.simulate.runner import simulate_command

    only = [s.strip() for s in args.only.split(",") if s.strip()] if args.only else None
    path = simulate_command(
        args.config,
        args.out,
        resume=not args.no_resume,
        jobs=args.jobs,
        progress=not args.no_progress,
        command=args.command_line,
        only=only,
    )
    print(f"report: {path}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from raresift.simulate.report import report_command

    print(f"report: {report_command(args.results, args.out)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="raresift",
        description="Active learning and active search for rare classes and concepts.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    parser.add_argument("--version", action="version", version=f"raresift {__version__}")
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
    p.add_argument("--no-study", action="store_true", help="skip the rare-classes study")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser(
        "simulate", help="run a study (strategies x seeds x rounds) from a TOML config"
    )
    p.add_argument("config", help="study config (TOML), e.g. experiments/rare-classes-mnist5k.toml")
    p.add_argument("--out", help="output folder (default: runs/<study name>)")
    p.add_argument("--jobs", type=int, help="worker processes (default: config, else cores)")
    p.add_argument(
        "--only", help="comma-separated strategy labels to run now (others keep their rows)"
    )
    p.add_argument("--no-resume", action="store_true", help="discard finished rounds, start over")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=_cmd_simulate)

    p = sub.add_parser("report", help="rewrite the Markdown report and figures of a study")
    p.add_argument("results", help="results.csv written by simulate")
    p.add_argument("--out", help="folder for report.md and figures (default: beside it)")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser(
        "strategies", help="list the acquisition strategies: family, purpose, what each needs"
    )
    p.add_argument("--names", action="store_true", help="print the names only, one a line")
    p.set_defaults(func=_cmd_strategies)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.command_line = "raresift " + shlex.join(sys.argv[1:] if argv is None else argv)
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
    except BrokenPipeError:  # `raresift strategies | head`: the reader left, nothing to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
