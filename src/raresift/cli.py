"""The ``raresift`` command. Only this module prints; user mistakes exit 2 with one line."""

from __future__ import annotations

import argparse
import logging
import os
import pathlib
import shlex
import sys

from raresift import __version__
from raresift.errors import RaresiftError, ValidationError


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
    print("the demo left a labeling session with its next batch pending; continue it by hand:")
    print("\n".join(f"  {command}" for command in result.session_commands))
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


class _Parser(argparse.ArgumentParser):
    """argparse with usage mistakes on one line (exit 2), like every other raresift error."""

    def error(self, message: str):
        self.exit(2, f"raresift: error: {self.prog}: {message} (see {self.prog} --help)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _warn_if_exposed(host: str, what: str) -> None:
    """Warn on stderr when a server listens beyond this machine: anyone reaching it can ``what``."""
    from raresift.app import is_loopback

    if not is_loopback(host):
        print(
            f"raresift: warning: serving on {host}: anyone who can reach this port can {what}",
            file=sys.stderr,
        )


def _cmd_serve(args: argparse.Namespace) -> int:
    from raresift.app import serve

    _warn_if_exposed(
        args.host,
        "read and label the project (the default --host 127.0.0.1 keeps it on this machine)",
    )

    def ready(url: str) -> None:
        print(f"raresift: labeling {args.project} at {url} (Ctrl-C stops)", flush=True)
        if args.open:
            import webbrowser

            webbrowser.open(url)

    serve(args.project, host=args.host, port=args.port, who=args.who, ready=ready)
    return 0


# ---------------------------------------------------------------------- labeling sessions
def _cmd_label_studio(args: argparse.Namespace) -> int:
    from raresift.app.ml_backend import serve_backend, sync

    token = args.token or os.environ.get("LABEL_STUDIO_API_KEY") or None
    if args.sync:
        result = sync(args.project, args.url, token, args.ls_project)
        pushed = result["pushed"]
        print(
            f"raresift: round {pushed['round']}{' (new)' if result['ran'] else ''}: "
            f"raresift_priority pushed to {pushed['updated']} of {pushed['tasks']} tasks of "
            f"Label Studio project {args.ls_project}"
        )
        return 0
    _warn_if_exposed(
        args.host, "label the project through it (set BASIC_AUTH_USER and BASIC_AUTH_PASS)"
    )

    def ready(url: str) -> None:
        pushing = f"; pushes raresift_priority to {args.url}" if args.url else ""
        print(
            f"raresift: ML backend of {args.project} at {url} (Ctrl-C stops){pushing}", flush=True
        )

    serve_backend(
        args.project,
        host=args.host,
        port=args.port,
        url=args.url,
        token=token,
        ls_project=args.ls_project,
        ready=ready,
    )
    return 0


def _open_session(args: argparse.Namespace):
    from raresift.session import Session

    return Session.open(args.project)


def _cmd_init(args: argparse.Namespace) -> int:
    from raresift.session import Session

    session = Session.create(
        args.project,
        embeddings=args.embeddings,
        texts=args.texts,
        text_column=args.text_column,
        images=args.images,
        image_column=args.image_column,
        items=args.items,
        ids_column=args.ids_column,
        vector_column=args.vector_column,
        npz_key=args.npz_key,
        concept=args.concept,
        classes=args.classes.split(",") if args.classes else None,
        rare_classes=args.rare_classes.split(",") if args.rare_classes else None,
        seed_labels=args.labels,
        strategy=args.strategy,
        candidates=args.candidates,
        budget=args.budget,
        index=args.index,
        seed=args.seed,
        engine=args.engine,
        address=args.address,
        image_size=args.image_size,
        encoding=args.encoding,
    )
    status = session.status(estimate=False)
    print(f"created {session.root}: {session.n_items} items, {status['task']}, "
          f"{status['labels_spent']} seed answers")  # fmt: skip
    print(f"next runs: {session.describe_defaults()}")
    return 0


def _cmd_next(args: argparse.Namespace) -> int:
    from raresift.session.views import batch_text, round_header

    session = _open_session(args)
    like = None
    if args.like is not None:
        like = [x.strip() for x in args.like.split(",") if x.strip()]
        if not like:
            raise ValidationError(f"--like needs item ids separated by commas, got {args.like!r}")
    batch = session.next(budget=args.budget, strategy=args.strategy, candidates=args.candidates,
                         query=args.query, like=like, replace=args.replace,
                         audit=args.audit)  # fmt: skip
    print(round_header(session), file=sys.stderr)
    sys.stdout.write(batch_text(session, batch, args.format))
    return 0


def _cmd_label(args: argparse.Namespace) -> int:
    session = _open_session(args)
    if args.answers is not None:
        if args.id is not None or args.label is not None:
            raise ValidationError("give either ANSWERS.csv or --id ID --label LABEL, not both")
        result = session.import_file(
            args.answers, partial=args.partial, who=args.who or "cli", encoding=args.encoding
        )
        _print_import(args.answers, result)
        return 0
    if args.id is None or args.label is None:
        raise ValidationError("give ANSWERS.csv, or both --id ID and --label LABEL")
    record = session.answer(args.id, _class_of_key(session, args.label), who=args.who or "cli")
    was = f" (was {record['previous']})" if record["previous"] is not None else ""
    where = f"answer #{record['seq']}, round {record['round']}"
    print(f"{record['id']}: {record['answer']}{was} [{where}]")
    return 0


def _class_of_key(session, label: str) -> str:
    """In a class session, a digit that names no class is the class of that key in the web app
    (1 = the first class, ..., 0 = the tenth), so ``--label 2`` means what the key 2 means."""
    text = str(label).strip()
    if session.kind != "classes" or not text.isascii() or not text.isdigit() or len(text) != 1:
        return label
    if text in session.config["classes"]:
        return label
    from raresift.app.server import option_keys

    keys = {o["key"]: o["answer"] for o in option_keys(session.answer_options(), concept=False)}
    return keys.get(text, label)


def _print_import(path, result: dict) -> None:
    print(f"{path}: {result['written']} answer(s) recorded, {result['unchanged']} unchanged")
    for line, message in result["problems"]:
        print(f"  skipped line {line}: {message}", file=sys.stderr)


def _cmd_undo(args: argparse.Namespace) -> int:
    for record in _open_session(args).undo(args.last):
        back = record["previous"] if record["previous"] is not None else "no answer"
        print(f"undid {record['id']}: {record['answer']} -> {back}")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    import json

    from raresift.session.views import status_text

    session = _open_session(args)
    status = session.status()
    if args.plot:
        status["plot"] = str(session.status_plot(args.plot))
    print(json.dumps(status, indent=1) if args.json else status_text(status))
    if args.plot and not args.json:
        print(f"curve     {status['plot']}")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    import time

    from raresift.session import Session

    start = time.perf_counter()
    session = Session.open(args.project, full=True)
    seconds = time.perf_counter() - start
    for f in session.checked_files:
        note = "; its new modification time is recorded" if f["retimed"] else ""
        print(f"{f['role']} file {f['path']}: unchanged ({f['size']:,} bytes hashed whole){note}")
    print(f"verified in {seconds:.2f} s")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    session = _open_session(args)
    result = session.export(
        args.format, args.out, items=args.items, history=args.history, image_root=args.image_root
    )
    if args.out is None:
        sys.stdout.write(result)
    else:
        print(f"wrote {result}")
    if args.format == "label-studio" and args.out is not None:
        from raresift.session.exchange import label_studio_config

        config = pathlib.Path(args.out).with_suffix(".label-config.xml")
        config.write_text(label_studio_config(session), encoding="utf-8")
        print(f"wrote {config} (the Label Studio labeling config for these tasks)")
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    result = _open_session(args).import_file(
        args.file, partial=args.partial, encoding=args.encoding
    )
    _print_import(args.file, result)
    return 0


def _add_session_commands(sub) -> None:
    p = sub.add_parser(
        "init", help="start a labeling session over your own embeddings, texts or images"
    )
    p.add_argument("project", metavar="PROJECT", help="project folder (created)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--embeddings",
        metavar="FILE",
        help=".npy (memory-mapped, not copied), .npz, or Parquet/CSV/JSONL with a vector column",
    )
    src.add_argument(
        "--texts", metavar="FILE", help="item table (CSV/JSONL/Parquet) of texts to embed"
    )
    src.add_argument(
        "--images", metavar="DIR_OR_FILE", help="image folder, or item table with an image column"
    )
    p.add_argument("--text-column", help="column of --texts holding the text")
    p.add_argument(
        "--image-column", help="column of an --images table holding paths (default: image)"
    )
    p.add_argument(
        "--items", metavar="FILE", help="item table aligned row by row with a bare .npy/.npz"
    )
    p.add_argument(
        "--ids-column", metavar="COL", help="id column of the table (default: id, else row numbers)"
    )
    p.add_argument("--vector-column", metavar="COL", help="vector column of an --embeddings table")
    p.add_argument("--npz-key", help="array name inside an .npz")
    task = p.add_mutually_exclusive_group()
    task.add_argument("--concept", metavar="NAME", help="a binary concept: answers 1 / 0 (default)")
    task.add_argument("--classes", metavar="a,b,c", help="classes to choose among")
    p.add_argument(
        "--rare-classes", metavar="a,b", help="classes whose items are the positives sought"
    )
    p.add_argument("--labels", metavar="SEED.csv", help="seed answers (columns id,label)")
    p.add_argument("--strategy", help="default strategy of next (default: from the task)")
    p.add_argument(
        "--candidates",
        choices=["all", "seals", "random"],
        help="default candidates (default: from the pool size)",
    )
    p.add_argument(
        "--budget", type=int, default=100, help="default batch size (default: %(default)s)"
    )
    p.add_argument(
        "--index",
        metavar="FACTORY",
        help="Faiss factory string for SEALS (default: from the pool size)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument(
        "--engine",
        default="local",
        choices=["local", "ray"],
        help="where rounds run: this process, or Ray workers (pip install 'raresift[ray]'; "
        "the same picks) (default: local)",
    )
    p.add_argument(
        "--address",
        help="with --engine ray: the Ray cluster to join ('auto', 'ray://host:10001'); "
        "default: start a local Ray",
    )
    p.add_argument(
        "--image-size",
        type=int,
        help="image side in pixels for the image model (default: the images' typical shorter "
        "side, 64 to 224)",
    )
    p.add_argument(
        "--encoding",
        help="encoding of a text file that is not UTF-8 and has no byte-order mark (latin-1, ...)",
    )
    p.set_defaults(func=_cmd_init)

    p = sub.add_parser("next", help="fit on the answers so far and show the batch to label next")
    p.add_argument("project", metavar="PROJECT")
    p.add_argument("--budget", type=int, help="items in the batch (default: the session's)")
    p.add_argument("--strategy", help="acquisition strategy (see raresift strategies)")
    p.add_argument("--candidates", choices=["all", "seals", "random"])
    p.add_argument(
        "--query", metavar="TEXT", help="cold start: pick the items closest to this text"
    )
    p.add_argument(
        "--like", metavar="ID,ID", help="cold start: pick the items closest to these items"
    )
    p.add_argument(
        "--replace",
        action="store_true",
        help="with --query/--like: set aside the pending batch's unanswered items",
    )
    p.add_argument(
        "--audit",
        type=int,
        metavar="N",
        help="N items drawn at random, stratified by model score: what `status` certifies from",
    )
    p.add_argument("--format", choices=["table", "csv", "jsonl"], default="table")
    p.set_defaults(func=_cmd_next)

    p = sub.add_parser("label", help="record answers: a file of answers, or one --id/--label")
    p.add_argument("project", metavar="PROJECT")
    p.add_argument(
        "answers", nargs="?", metavar="ANSWERS.csv", help="CSV/JSONL with id,label columns"
    )
    p.add_argument("--id", help="item id")
    p.add_argument(
        "--label",
        help="a class (or its key in the web app: 1 for the first class, ...), 1/0 for a "
        "concept, skip, junk or duplicate",
    )
    p.add_argument(
        "--partial", action="store_true", help="keep the good lines of a file with bad ones"
    )
    p.add_argument("--who", help="who answered (default: cli)")
    p.add_argument(
        "--encoding",
        help="encoding of a text file that is not UTF-8 and has no byte-order mark (latin-1, ...)",
    )
    p.set_defaults(func=_cmd_label)

    p = sub.add_parser("undo", help="take back the most recent answers")
    p.add_argument("project", metavar="PROJECT")
    p.add_argument("--last", type=int, default=1, help="how many (default: 1)")
    p.set_defaults(func=_cmd_undo)

    p = sub.add_parser("status", help="labels spent, positives found and left, stopping rules")
    p.add_argument("project", metavar="PROJECT")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--plot", metavar="FILE.png", help="also write the positives-found curve")
    p.set_defaults(func=_cmd_status)

    p = sub.add_parser(
        "verify",
        help="check the session's files whole (every command checks their size, time and "
        "sampled blocks)",
    )
    p.add_argument("project", metavar="PROJECT")
    p.set_defaults(func=_cmd_verify)

    p = sub.add_parser("export", help="write the answers (CSV/JSONL) or Label Studio tasks")
    p.add_argument("project", metavar="PROJECT")
    p.add_argument("--format", required=True, choices=["csv", "jsonl", "label-studio"])
    p.add_argument("--out", metavar="FILE", help="output file (default: stdout)")
    p.add_argument(
        "--items",
        choices=["batch", "answered", "all"],
        default="batch",
        help="label-studio: the pending batch (default), every answered item, or every item; "
        "answers go out as annotations",
    )
    p.add_argument(
        "--image-root",
        metavar="DIR",
        help="label-studio: image URLs are Label Studio local-files URLs (/data/local-files/"
        "?d=PATH) relative to DIR, its LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT (default: the "
        "folder above the images)",
    )
    p.add_argument(
        "--history", action="store_true", help="csv/jsonl: every answer ever given, undone ones too"
    )
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser(
        "import", help="record answers from a Label Studio export or a CSV of answers"
    )
    p.add_argument("project", metavar="PROJECT")
    p.add_argument("file", metavar="FILE")
    p.add_argument(
        "--partial", action="store_true", help="keep the good lines of a file with bad ones"
    )
    p.add_argument(
        "--encoding",
        help="encoding of a text file that is not UTF-8 and has no byte-order mark (latin-1, ...)",
    )
    p.set_defaults(func=_cmd_import)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
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
    p.add_argument(
        "--jobs", type=_positive_int, help="worker processes (default: config, else cores)"
    )
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

    p = sub.add_parser("serve", help="label a session in the browser (a local web app)")
    p.add_argument("project", help="session folder made by raresift init")
    p.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    p.add_argument(
        "--port", type=int, default=8765, help="port; 0 picks a free one (default: %(default)s)"
    )
    p.add_argument("--open", action="store_true", help="open the app in a web browser")
    p.add_argument("--who", help="name recorded with each answer (default: your login name)")
    p.set_defaults(func=_cmd_serve)

    p = sub.add_parser(
        "label-studio",
        help="serve a session as Label Studio's ML backend (predictions, answers, priorities)",
        description="Label Studio's ML backend over a session: /predict gives raresift's "
        "predictions, /webhook records annotations as answers, and each new batch's order is "
        "pushed into the tasks' raresift_priority (sort the Data Manager by it, ascending).",
    )
    p.add_argument("project", help="session folder made by raresift init")
    p.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    p.add_argument(
        "--port", type=int, default=9090, help="port; 0 picks a free one (default: %(default)s)"
    )
    p.add_argument("--url", help="Label Studio's address, e.g. http://localhost:8080")
    p.add_argument(
        "--token",
        help="a Label Studio access token (default: $LABEL_STUDIO_API_KEY): a personal access "
        "token, or a legacy token where the organization enabled them",
    )
    p.add_argument("--ls-project", type=_positive_int, help="the Label Studio project's id")
    p.add_argument(
        "--sync",
        action="store_true",
        help="push raresift_priority once (after the next round if the batch is answered) and exit",
    )
    p.set_defaults(func=_cmd_label_studio)

    p = sub.add_parser(
        "strategies", help="list the acquisition strategies: family, purpose, what each needs"
    )
    p.add_argument("--names", action="store_true", help="print the names only, one a line")
    p.set_defaults(func=_cmd_strategies)

    _add_session_commands(sub)
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
        message = " ".join(str(exc).split())  # one line, whatever the message holds
        print(f"raresift: error: {message}", file=sys.stderr)
        return getattr(exc, "exit_code", 2)
    except BrokenPipeError:  # `raresift strategies | head`: the reader left, nothing to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as exc:  # the disk refused (full, read-only, permissions): say so, exit 2
        from raresift.errors import storage_error

        message = " ".join(str(storage_error(exc, "use")).split())
        print(f"raresift: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("raresift: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
