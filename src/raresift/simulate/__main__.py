"""``python -m raresift.simulate``: run a study or rewrite a report without the main command.

The argument definitions are shared with ``raresift simulate`` / ``raresift report``: the main CLI
calls :func:`add_simulate_arguments` / :func:`add_report_arguments` and :func:`run_simulate` /
:func:`run_report`. Usage::

    python -m raresift.simulate experiments/demo.toml --out runs/demo
    python -m raresift.simulate report runs/demo/results.csv
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path

from raresift.errors import RaresiftError

logger = logging.getLogger("raresift")


def add_simulate_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``simulate CONFIG``."""
    parser.add_argument("config", help="study config (TOML), e.g. experiments/demo.toml")
    parser.add_argument("--out", help="output folder (default: runs/<study name>)")
    parser.add_argument("--jobs", type=int, help="worker processes (default: config, else cores)")
    parser.add_argument(
        "--only", help="comma-separated strategy labels to run now (others keep their rows)"
    )
    parser.add_argument(
        "--no-resume", action="store_true", help="discard finished rounds and start over"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``report RESULTS``."""
    parser.add_argument("results", help="results.csv written by simulate")
    parser.add_argument("--out", help="folder for report.md and figures (default: beside it)")


def run_simulate(args: argparse.Namespace, command: str | None = None) -> Path:
    """Run ``simulate`` from parsed arguments; returns the report path."""
    from raresift.simulate.runner import simulate_command

    only = [s.strip() for s in args.only.split(",") if s.strip()] if args.only else None
    return simulate_command(
        args.config,
        args.out,
        resume=not args.no_resume,
        jobs=args.jobs,
        progress=not args.no_progress,
        command=command,
        only=only,
    )


def run_report(args: argparse.Namespace) -> Path:
    """Run ``report`` from parsed arguments; returns the report path."""
    from raresift.simulate.report import report_command

    return report_command(args.results, args.out)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    is_report = bool(argv) and argv[0] == "report"
    parser = argparse.ArgumentParser(prog="python -m raresift.simulate" + (" report" * is_report))
    (add_report_arguments if is_report else add_simulate_arguments)(parser)
    args = parser.parse_args(argv[1:] if is_report else argv)
    try:
        if is_report:
            path = run_report(args)
        else:
            path = run_simulate(args, command="python -m raresift.simulate " + shlex.join(argv))
    except RaresiftError as exc:
        logger.error("%s", exc)
        return 2
    logger.info("report: %s", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
