"""The Markdown report of a study: setup, command, final-round table, curves, penalty matrices.

``write_report(results_csv, out_dir)`` reads the tidy table and, when it lies beside it, the
``study.json`` the runner wrote (config, scenario sizes, command).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from raresift.errors import CorruptFileError, ValidationError
from raresift.outputs import make_output_folder
from raresift.simulate import plots
from raresift.simulate.joblog import log_path, read_log
from raresift.simulate.stats import (
    combine_penalty_matrices,
    curve_matrix,
    labels_to_target,
    penalty_matrix,
    read_table,
    strategies_in,
    summarize,
)

logger = logging.getLogger("raresift")

#: (column, title) of the metrics each scenario kind reports, the first being the headline.
KIND_METRICS = {
    "standard": [("accuracy", "test accuracy")],
    "rare-classes": [
        ("accuracy", "test accuracy"),
        ("rare_accuracy", "rare-class accuracy"),
        ("n_rare_selected", "rare items selected"),
    ],
    "redundancy": [
        ("accuracy", "test accuracy"),
        ("n_unique_selected", "unique items selected"),
    ],
    "out-of-distribution": [
        ("accuracy", "in-distribution test accuracy"),
        ("n_in_distribution_selected", "in-distribution items selected"),
    ],
    "concept": [
        ("average_precision", "test average precision"),
        ("recall", "recall of positives"),
    ],
}
_SELECTION = {"n_rare_selected", "n_unique_selected", "n_in_distribution_selected", "recall"}


def _metrics_for(kind: str, rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    chosen = KIND_METRICS.get(kind, KIND_METRICS["standard"])
    present = [(c, t) for c, t in chosen if any(np.isfinite(r.get(c, np.nan)) for r in rows)]
    if not present:
        raise ValidationError(f"the results hold none of the metrics of a {kind!r} study")
    return present


def _fmt(mean: float, std: float, digits: int = 3) -> str:
    """``mean ± std``; ``± n/a`` where there is no spread to show (one seed)."""
    if not np.isfinite(mean):
        return "n/a"
    spread = f"{std:.{digits}f}" if np.isfinite(std) else "n/a"
    return f"{mean:.{digits}f} ± {spread}"


def _final_table(rows, metrics_, strategies) -> list[str]:
    header = "| strategy | labels | " + " | ".join(t for _, t in metrics_)
    header += f" | mean {metrics_[0][1]} over rounds |"
    lines = [header, "|" + "---|" * (len(metrics_) + 3)]
    summaries = {c: summarize(rows, c) for c, _ in metrics_}
    for s in strategies:
        cells = []
        for column, _ in metrics_:
            mine = [x for x in summaries[column] if x["strategy"] == s]
            digits = 1 if column.startswith("n_") else 3
            cells.append(_fmt(mine[-1]["mean"], mine[-1]["std"], digits))
        _, _, values = curve_matrix(rows, s, metrics_[0][0])
        per_seed = values[:, 1:].mean(axis=1) if values.shape[1] > 1 else values[:, 0]
        spread = per_seed.std(ddof=1) if per_seed.size > 1 else float("nan")
        labeled = [x for x in summaries[metrics_[0][0]] if x["strategy"] == s][-1]["n_labeled"]
        lines.append(
            f"| {s} | {labeled:.0f} | "
            + " | ".join(cells)
            + f" | {_fmt(per_seed.mean(), spread)} |"
        )
    return lines


def _round_table(rows, column: str, strategies) -> list[str]:
    summary = summarize(rows, column)
    rounds = sorted({x["round"] for x in summary})
    labeled = {x["round"]: x["n_labeled"] for x in summary if x["strategy"] == strategies[0]}
    lines = [
        "| strategy | " + " | ".join(f"{labeled.get(r, r):.0f}" for r in rounds) + " |",
        "|" + "---|" * (len(rounds) + 1),
    ]
    digits = 1 if column.startswith("n_") else 3
    for s in strategies:
        by_round = {x["round"]: x["mean"] for x in summary if x["strategy"] == s}
        lines.append(
            f"| {s} | "
            + " | ".join(f"{by_round[r]:.{digits}f}" if r in by_round else "" for r in rounds)
            + " |"
        )
    return lines


def _penalty_section(rows, column, title, out_dir: Path, stem: str) -> list[str]:
    try:
        labels, matrix = penalty_matrix(rows, column)
    except ValidationError as exc:
        return [f"No penalty matrix for {title}: {exc}.", ""]
    return _penalty_lines(labels, matrix, title, out_dir, stem)


def _penalty_lines(labels, matrix, title, out_dir: Path, stem: str) -> list[str]:
    png = plots.plot_penalty(labels, matrix, out_dir / f"{stem}.png", f"penalty matrix: {title}")
    lines = [
        f"### Penalty matrix: {title}",
        "",
        "Cell (row i, column j): share of selection rounds in which i beat j significantly "
        "(paired two-tailed t-test over seeds, alpha = 0.05; papers/000 appendix B.3). "
        "High row sums are good, high column sums bad.",
        "",
        f"![penalty matrix {title}]({png.name})",
        "",
        "| better \\ worse | " + " | ".join(labels) + " | row sum |",
        "|" + "---|" * (len(labels) + 2),
    ]
    for i, label in enumerate(labels):
        cells = " | ".join(f"{v:.2f}" for v in matrix[i])
        lines.append(f"| {label} | {cells} | {matrix[i].sum():.2f} |")
    col = " | ".join(f"{v:.2f}" for v in matrix.sum(axis=0))
    lines += [f"| column sum | {col} | |", ""]
    return lines


def _setup_section(study: dict[str, Any] | None, rows) -> list[str]:
    seeds = sorted({r["seed"] for r in rows})
    if study is None:
        return [f"Seeds: {seeds}. (No study.json beside the results: setup unknown.)", ""]
    config, scenario = study["config"], study.get("scenario", {})
    sizes = {k: v for k, v in scenario.items() if k not in ("kind", "class_names")}
    lines = [
        "## Setup",
        "",
        "- Commands (in order; a study resumes where the previous one stopped):",
        *(
            f"  - `{c['command']}` (started {c['started']}, {c['cores']} cores)"
            for c in study.get("commands", [])
        ),
        f"- Data set: `{json.dumps(config['dataset'])}`",
        f"- Scenario: `{scenario.get('kind')}`, parameters `{json.dumps(config['scenario'])}`",
        f"- Sizes (seed {config['seeds'][0]}): `{json.dumps(sizes)}`",
        f"- Classes: {', '.join(scenario.get('class_names', []))}",
        f"- Model: `{json.dumps(config['model'])}`",
        f"- Rounds: {config['rounds']} x budget {config['budget']}; seeds: {config['seeds']}",
        "- Strategies: "
        + "; ".join(
            f"{s['label']} = `{s['name']}`"
            + (f" {json.dumps(s['params'])}" if s["params"] else "")
            + (f" (candidates {json.dumps(s['candidates'])})" if s["candidates"] != "all" else "")
            + (
                f" (until the conditioning set has items: `{s['fallback']}`)"
                if s["fallback"]
                else ""
            )
            for s in config["strategies"]
        ),
        "",
        "Config:",
        "",
        "```json",
        json.dumps(config, indent=2),
        "```",
        "",
    ]
    return lines


def read_study(path: str | Path) -> dict[str, Any] | None:
    """The ``study.json`` the runner wrote (None if absent); a garbled one raises
    :class:`CorruptFileError`."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        study = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptFileError(
            f"{path} is not valid JSON ({exc}); delete it and rerun `raresift simulate` with the "
            "study's config (finished rounds in runs/ are kept)"
        ) from None
    if not isinstance(study, dict) or not isinstance(study.get("config"), dict):
        raise CorruptFileError(
            f"{path} is not a study description (no `config` table); delete it and rerun "
            "`raresift simulate` with the study's config"
        )
    keys = _REPLAY_KEYS if study["config"].get("kind") == "replay" else _STUDY_KEYS
    lacking = [key for key in keys if key not in study["config"]]
    if lacking:
        raise CorruptFileError(
            f"{path} is not a study description: its config lacks {', '.join(lacking)}; "
            "delete it and rerun `raresift simulate` with the study's config"
        )
    return study


_STUDY_KEYS = ("seeds", "rounds", "budget", "dataset", "scenario", "model", "strategies")
_REPLAY_KEYS = ("seeds", "budget", "labels", "checkpoints", "seed_examples", "datasets",
                "strategies")  # fmt: skip


def missing_rounds(rows: list[dict[str, Any]], config: dict[str, Any]) -> dict[tuple, list[int]]:
    """``{(strategy label, seed): rounds}`` the study design lists but ``rows`` lack.

    >>> design = {"strategies": [{"label": "a"}], "seeds": [0, 1], "rounds": 2}
    >>> missing_rounds([{"strategy": "a", "seed": 0, "round": r} for r in range(3)], design)
    {('a', 1): [0, 1, 2]}
    """
    have: dict[tuple, set[int]] = {}
    for row in rows:
        have.setdefault((row["strategy"], row["seed"]), set()).add(row["round"])
    out = {}
    for spec in config["strategies"]:
        for seed in config["seeds"]:
            lacking = sorted(
                set(range(config["rounds"] + 1)) - have.get((spec["label"], seed), set())
            )
            if lacking:
                out[(spec["label"], seed)] = lacking
    return out


def _check_design(rows, study, results_path: Path) -> list[str]:
    """Report lines on jobs the design lists but the table lacks.

    Rows lost from the table while the run logs beside it still hold them mean a truncated
    or edited ``results.csv``: that raises :class:`CorruptFileError`. Jobs that failed, or were
    not run yet, are said at the top of the report.
    """
    failed = {(f["strategy"], f["seed"]) for f in study.get("failures", [])}
    runs = results_path.parent
    lost, unfinished = [], []
    for (label, seed), lacking in missing_rounds(rows, study["config"]).items():
        logged = {r["round"] for r in read_log(log_path(runs, label, seed))}
        if logged & set(lacking) or not ((runs / "runs").is_dir() or (label, seed) in failed):
            lost.append(f"{label} seed {seed} rounds {_span(lacking)}")
        elif (label, seed) not in failed:
            unfinished.append(f"{label} seed {seed} (rounds {_span(lacking)})")
    if lost:
        raise CorruptFileError(
            f"{results_path} lacks rows its study design lists: {'; '.join(lost[:5])}"
            f"{' ...' if len(lost) > 5 else ''}; it is truncated or edited: rebuild it with "
            "`raresift simulate CONFIG --out FOLDER` (resumes from the run logs)"
        )
    if not unfinished:
        return []
    return [f"**Incomplete**: not run yet: {'; '.join(unfinished)}. Run `raresift simulate` "
            "again to finish the study.", ""]  # fmt: skip


def _span(rounds: list[int]) -> str:
    return f"{rounds[0]}-{rounds[-1]}" if len(rounds) > 1 else str(rounds[0])


def write_report(results_path: str | Path, out_dir: str | Path | None = None) -> Path:
    """Write ``report.md`` and its PNG figures into ``out_dir`` (default: the results' folder).

    With the runner's ``study.json`` beside the results, the table is checked against the study
    design, and failed or unfinished jobs are listed at the top.
    """
    results_path = Path(results_path)
    rows = read_table(results_path)
    out_dir = Path(out_dir) if out_dir is not None else results_path.parent
    study = read_study(results_path.parent / "study.json")
    status = [] if study is None else _check_design(rows, study, results_path)
    make_output_folder(out_dir)
    kind = (study or {}).get("scenario", {}).get("kind", "standard")
    name = (study or {}).get("config", {}).get("name", rows[0].get("study", "study"))
    metrics_ = _metrics_for(kind, rows)
    strategies = strategies_in(rows)
    lines = [f"# {name}", ""]
    for failure in (study or {}).get("failures", []):
        lines += [
            f"**Failed**: {failure['strategy']}, seed {failure['seed']}: {failure['error']}",
            "",
        ]
    lines += status
    if study and study["config"].get("description"):
        lines += [study["config"]["description"], ""]
    lines += _setup_section(study, rows)
    lines += [
        "## Results",
        "",
        f"Mean ± standard deviation over seeds at the last round. Results file: `{results_path}`.",
        "",
        *_final_table(rows, metrics_, strategies),
        "",
    ]
    if "random" in strategies:
        _, _, random_curve = curve_matrix(rows, "random", metrics_[0][0])
        target = float(random_curve[:, -1].mean())
        start = float(random_curve[:, 0].mean())
        below = f"; random ends below its start, {start:.3f}" if target < start else ""
        reach = labels_to_target(rows, metrics_[0][0], target)
        lines += [
            f"Labels needed to reach random's final {metrics_[0][1]} ({target:.3f}{below}), "
            "counted from the first selection round on, mean over the seeds that reached it:",
            "",
            "| strategy | labels | seeds reaching it |",
            "|---|---|---|",
            *(
                f"| {s} | {reach[s]['mean']:.0f} | {reach[s]['reached']}/{reach[s]['seeds']} |"
                if np.isfinite(reach[s]["mean"])
                else f"| {s} | not reached | 0/{reach[s]['seeds']} |"
                for s in strategies
            ),
            "",
        ]
    for column, title in metrics_:
        png = plots.plot_curves(rows, column, out_dir / f"curve_{column}.png", title, name)
        lines += [
            f"### {title[0].upper() + title[1:]}",
            "",
            f"![{title}]({png.name})",
            "",
            "Mean over seeds per round (columns: labeled items):",
            "",
            *_round_table(rows, column, strategies),
            "",
        ]
    for column, title in metrics_:
        if column not in _SELECTION:
            lines += _penalty_section(rows, column, title, out_dir, f"penalty_{column}")
    path = out_dir / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    logger.info("report written to %s", path)
    return path


def report_command(results_path: str | Path, out_dir: str | Path | None = None) -> Path:
    """``raresift report RESULTS``: (re)write the report of a results table; returns its path."""
    study = read_study(Path(results_path).parent / "study.json")  # a garbled one raises here
    if study is not None and study["config"].get("kind") == "replay":
        from raresift.simulate.replay import write_replay_report

        return write_replay_report(results_path, out_dir)
    return write_report(results_path, out_dir)


def write_combined_penalty(
    results_paths: list[str | Path], column: str, out_path: str | Path, title: str
) -> Path:
    """Markdown section + heatmap of the summed penalty matrices of several studies.

    Writes ``out_path`` (Markdown) and a PNG beside it; returns the Markdown path.
    """
    out_path = Path(out_path)
    parts = [penalty_matrix(read_table(p), column) for p in results_paths]
    labels, matrix = combine_penalty_matrices(parts)
    lines = _penalty_lines(labels, matrix, title, out_path.parent, out_path.stem)
    sources = ", ".join(f"`{p}`" for p in results_paths)
    lines += [f"Summed over: {sources}.", ""]
    out_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out_path
