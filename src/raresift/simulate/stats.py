"""Statistics over seeds: mean / std learning curves, labels-to-target, penalty matrices.

Rows are the tidy results table (one dict per strategy, seed and round), as written by the runner
and read back by :func:`read_table`.

Examples
--------
>>> rows = [{"strategy": s, "seed": k, "round": r, "n_labeled": 10 * r, "accuracy": a}
...         for s, base in (("a", 0.5), ("b", 0.4)) for k in range(3)
...         for r, a in enumerate([base, base + 0.1 + 0.01 * k])]
>>> labels, matrix = penalty_matrix(rows, "accuracy")
>>> labels, matrix.tolist()
(['a', 'b'], [[0.0, 1.0], [0.0, 0.0]])
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats as sps

from raresift.errors import CorruptFileError, ValidationError
from raresift.simulate.metrics import labels_to_reach

_TEXT_COLUMNS = {"study", "strategy", "strategy_name", "selected_by"}


REQUIRED_COLUMNS = ("strategy", "seed", "round", "n_labeled")
#: Fewest seeds a paired t-test is run on: with 2 it has 1 degree of freedom (t_0.975 = 12.7)
#: and zero-spread differences would count as significant.
MIN_PENALTY_SEEDS = 3


def read_table(path: str | Path) -> list[dict[str, Any]]:
    """Read a results CSV: text columns stay strings, the rest become int / float (NaN if empty).

    A file that is not UTF-8 text, lacks a column of :data:`REQUIRED_COLUMNS` or holds a
    non-numeric number raises :class:`CorruptFileError` naming the line.
    """
    path = Path(path)
    if not path.exists():
        raise ValidationError(f"results file {path} does not exist; run `raresift simulate` first")
    if path.is_dir():
        raise ValidationError(f"{path} is a folder; pass the results.csv inside it")
    rows = []
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise CorruptFileError(
                    f"{path} is not a results table: it lacks the column(s) "
                    f"{', '.join(missing)}; pass the results.csv that `raresift simulate` wrote"
                )
            for raw in reader:
                rows.append(_parse_row(raw, path, reader.line_num))
    except UnicodeDecodeError as exc:
        raise CorruptFileError(
            f"{path} is not UTF-8 text (byte {exc.start}); pass the results.csv that "
            "`raresift simulate` wrote"
        ) from None
    if not rows:
        raise ValidationError(f"results file {path} holds no rows")
    return rows


def _parse_row(raw: dict[str | None, Any], path: Path, line: int) -> dict[str, Any]:
    if None in raw or any(v is None for v in raw.values()):
        raise CorruptFileError(f"{path}:{line} has a different number of cells than the header")
    row: dict[str, Any] = {}
    for key, value in raw.items():
        if key in _TEXT_COLUMNS:
            row[key] = value
        elif value == "":
            row[key] = float("nan")
        else:
            try:
                number = float(value)
            except ValueError:
                raise CorruptFileError(
                    f"{path}:{line}: column {key!r} holds {value[:40]!r}, not a number"
                ) from None
            if key in ("seed", "round"):
                if not number.is_integer():
                    raise CorruptFileError(f"{path}:{line}: {key} {value!r} is not an integer")
                number = int(number)
            row[key] = number
    return row


def strategies_in(rows: list[dict[str, Any]]) -> list[str]:
    """Strategy labels in order of first appearance."""
    return list(dict.fromkeys(r["strategy"] for r in rows))


def curve_matrix(
    rows: list[dict[str, Any]], strategy: str, column: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(rounds, seeds, values)`` with ``values[s, r]`` the column for seed s at round r.

    Only rounds every seed has finished are kept, so curves never mix seed subsets.
    """
    mine = [r for r in rows if r["strategy"] == strategy]
    if not mine:
        raise ValidationError(f"no rows for strategy {strategy!r}")
    seeds = np.array(sorted({r["seed"] for r in mine}))
    per_seed = {
        s: {r["round"]: r.get(column, np.nan) for r in mine if r["seed"] == s} for s in seeds
    }
    rounds = sorted(set.intersection(*(set(v) for v in per_seed.values())))
    values = np.array([[per_seed[s][r] for r in rounds] for s in seeds], dtype=np.float64)
    return np.array(rounds), seeds, values


def summarize(rows: list[dict[str, Any]], column: str) -> list[dict[str, Any]]:
    """Mean and standard deviation (ddof=1; NaN for one seed) over seeds, per strategy and round."""
    out = []
    for strategy in strategies_in(rows):
        rounds, seeds, values = curve_matrix(rows, strategy, column)
        _, _, labeled = curve_matrix(rows, strategy, "n_labeled")
        std = values.std(axis=0, ddof=1) if seeds.size > 1 else np.full(rounds.size, np.nan)
        for i, r in enumerate(rounds.tolist()):
            out.append(
                {
                    "strategy": strategy,
                    "round": r,
                    "n_labeled": float(labeled[0, i]),
                    "mean": float(values[:, i].mean()),
                    "std": float(std[i]),
                    "n_seeds": int(seeds.size),
                }
            )
    return out


def labels_to_target(
    rows: list[dict[str, Any]], column: str, target: float, skip_first_round: bool = True
) -> dict[str, Any]:
    """Per strategy: labels each seed needed to reach ``target``; mean over the seeds that did.

    Round 0 (the shared initial model, before any selection) does not count by default: when
    random ends below its start, its final value would otherwise be "reached" by everyone with
    no label selected at all.

    Returns ``{strategy: {"mean": ..., "reached": k, "seeds": n}}``; mean NaN if none reached it.
    """
    out = {}
    for strategy in strategies_in(rows):
        rounds, seeds, values = curve_matrix(rows, strategy, column)
        _, _, labeled = curve_matrix(rows, strategy, "n_labeled")
        if skip_first_round:
            values, labeled = values[:, rounds > 0], labeled[:, rounds > 0]
        needed = np.array(
            [labels_to_reach(labeled[i], values[i], target) for i in range(seeds.size)]
        )
        reached = np.isfinite(needed)
        out[strategy] = {
            "mean": float(needed[reached].mean()) if reached.any() else float("nan"),
            "reached": int(reached.sum()),
            "seeds": int(seeds.size),
        }
    return out


def penalty_matrix(
    rows: list[dict[str, Any]],
    column: str = "accuracy",
    alpha: float = 0.05,
    skip_first_round: bool = True,
) -> tuple[list[str], np.ndarray]:
    """Pairwise penalty matrix of papers/000 appendix B.3 (after BADGE).

    For every round and pair (i, j), the per-seed differences ``d = column_i - column_j`` (paired
    by seed) give ``t = mean(d) / (std(d, ddof=1) / sqrt(n))``; a two-tailed test at level
    ``alpha`` with ``n - 1`` degrees of freedom adds ``1 / N_rounds`` to cell (i, j) when
    ``t > t_alpha`` and to cell (j, i) when ``t < -t_alpha``. Identical differences (zero spread)
    count as significant when their mean is not zero. At least :data:`MIN_PENALTY_SEEDS` seeds
    are needed. Round 0 (the shared initial model) is left
    out by default. A row's sum says how often a strategy is significantly better than the others,
    a column's how often it is significantly worse.
    """
    labels = strategies_in(rows)
    curves = {s: curve_matrix(rows, s, column) for s in labels}
    common_rounds = sorted(set.intersection(*(set(c[0].tolist()) for c in curves.values())))
    if skip_first_round:
        common_rounds = [r for r in common_rounds if r > 0]
    common_seeds = sorted(set.intersection(*(set(c[1].tolist()) for c in curves.values())))
    if len(common_seeds) < MIN_PENALTY_SEEDS:
        raise ValidationError(
            f"too few seeds for a penalty matrix: {len(common_seeds)} shared by all strategies, "
            f"and its paired t-tests need at least {MIN_PENALTY_SEEDS}"
        )
    if not common_rounds:
        raise ValidationError("a penalty matrix needs at least one finished selection round")
    n = len(common_seeds)
    table = np.stack([
        curves[s][2][np.isin(curves[s][1], common_seeds)][:, np.isin(curves[s][0], common_rounds)]
        for s in labels
    ])  # fmt: skip  # (strategies, seeds, rounds)
    diffs = table[:, None] - table[None, :]  # (i, j, seeds, rounds)
    mean = diffs.mean(axis=2)
    spread = diffs.std(axis=2, ddof=1) / np.sqrt(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(spread > 0, mean / np.where(spread > 0, spread, 1.0), np.sign(mean) * np.inf)
    t_alpha = sps.t.ppf(1.0 - alpha / 2.0, n - 1)
    matrix = (t > t_alpha).sum(axis=2) / len(common_rounds)
    np.fill_diagonal(matrix, 0.0)
    return labels, matrix.astype(np.float64)


def combine_penalty_matrices(
    parts: list[tuple[list[str], np.ndarray]],
) -> tuple[list[str], np.ndarray]:
    """Sum penalty matrices of several studies (BADGE's and SIMILAR's consolidated matrix).

    Strategies are matched by label; a pair absent from a study adds nothing.

    >>> labels, m = combine_penalty_matrices([(["a", "b"], np.array([[0, .5], [0, 0]])),
    ...                                       (["b", "c"], np.array([[0, 1.], [0, 0]]))])
    >>> labels, m.tolist()
    (['a', 'b', 'c'], [[0.0, 0.5, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    """
    labels = list(dict.fromkeys(label for names, _ in parts for label in names))
    where = {label: i for i, label in enumerate(labels)}
    total = np.zeros((len(labels), len(labels)))
    for names, matrix in parts:
        idx = np.array([where[n] for n in names])
        total[np.ix_(idx, idx)] += matrix
    return labels, total
