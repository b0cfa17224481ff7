"""Whether a study table reproduces a committed one on any CPU: what is exact, what within bounds.

A trained network amplifies the last bits that a CPU's BLAS or SIMD kernels change (AVX2 vs
AVX-512, one thread or two): after a few epochs its weights, accuracies and the picks of every
strategy that reads it differ from one kind of CPU to another. So "reproduces" means:

- **exactly**: the same rows (strategy, seed, round) in the same order and the same columns; the
  cells that no floating point decides (``n_labeled``, ``n_selected``, the strategy names); and,
  for a strategy whose picks read no model (``requires()`` is empty, e.g. ``random``: its picks
  come from the seed alone), the cells that only its picks decide (``n_rare_selected``);
- **within a tolerance**, per strategy over all its seeds and rounds: the mean accuracy, mean rare
  accuracy, mean training accuracy, mean epoch count, and the rare items selected by the last round
  (summed over seeds).
  :data:`TOLERANCES` holds the bounds; ``benchmarks/cpu_spread.py`` measures the spread they cover
  (``benchmarks/results/cpu-spread.txt``), running the studies with other thread counts and the
  kernel types of OpenBLAS, ATen and MKL forced one by one.

Timing columns (``seconds_*``) are never compared.

>>> a = [{"strategy": "random", "strategy_name": "random", "seed": "0", "round": "0",
...       "n_labeled": "10", "n_selected": "0", "n_rare_selected": "0", "accuracy": "0.5"}]
>>> differences(a, a)
[]
>>> differences([dict(a[0], n_rare_selected="1")], a)  # random's picks are exact
['random seed 0 round 0: n_rare_selected 1 vs 0']
>>> differences([dict(a[0], accuracy="0.51")], a)  # its trained model's accuracy is not
[]
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from pathlib import Path

KEYS = ("strategy", "seed", "round")
EXACT_COLUMNS = ("study", "strategy_name", "n_labeled", "n_selected")
PICK_COLUMNS = ("selected_by", "n_rare_selected")  # exact where the picks read no model
# quantity -> (column, how the rows of one strategy are summarised: the mean over its seeds and
# rounds, or the sum over its seeds of the last round's value)
QUANTITIES = {
    "accuracy": ("accuracy", "mean"),
    "rare_accuracy": ("rare_accuracy", "mean"),
    "train_accuracy": ("train_accuracy", "mean"),
    "n_epochs": ("n_epochs", "mean"),
    "n_rare_selected": ("n_rare_selected", "final"),
}
# Bounds on |fresh - committed| per strategy: 2.5 to 3 times the largest spread measured across
# thread counts and kernel types (benchmarks/results/cpu-spread.txt), rounded up; a test keeps
# them between 1 and 3 times that file's figures.
TOLERANCES = {
    "accuracy": 0.02,
    "rare_accuracy": 0.04,
    "train_accuracy": 0.02,
    "n_epochs": 20.0,
    "n_rare_selected": 10.0,
}


def read_table(path: str | Path) -> list[dict[str, str]]:
    """A results.csv as rows of strings, without the timing columns."""
    with open(path, newline="") as fh:
        return [
            {k: v for k, v in row.items() if not k.startswith("seconds_")}
            for row in csv.DictReader(fh)
        ]


def same_cell(a: str, b: str) -> bool:
    """Equal strings, or equal numbers to 1e-9 relative (what a CSV round trip keeps)."""
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    except ValueError:
        return a == b


def reads_no_model(strategy_name: str) -> bool:
    """Whether a registered strategy's picks ignore the model (it requires no capability)."""
    from raresift.strategies.registry import make_strategy

    return not make_strategy(strategy_name).requires()


def _where(row: dict[str, str]) -> str:
    return f"{row['strategy']} seed {row['seed']} round {row['round']}"


def _summaries(rows: list[dict[str, str]]) -> dict[str, dict[str, float]]:
    by_strategy: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        by_strategy[row["strategy"]].append(row)
    out = {}
    for strategy, group in by_strategy.items():
        out[strategy] = {}
        last = {r["seed"]: r for r in group}  # rows run by round within each seed
        for quantity, (column, how) in QUANTITIES.items():
            rows = last.values() if how == "final" else group
            values = [float(r[column]) for r in rows if r.get(column, "") != ""]
            if values:
                total = math.fsum(values)
                out[strategy][quantity] = total if how == "final" else total / len(values)
    return out


def _shape_problems(fresh, committed) -> list[str]:
    if [list(r) for r in fresh[:1]] != [list(r) for r in committed[:1]]:
        return ["other columns: " + ", ".join(fresh[0] if fresh else []) + " vs the committed"]
    fresh_keys = [tuple(r[k] for k in KEYS) for r in fresh]
    committed_keys = [tuple(r[k] for k in KEYS) for r in committed]
    if fresh_keys != committed_keys:
        extra = sorted(set(fresh_keys) - set(committed_keys))[:3]
        missing = sorted(set(committed_keys) - set(fresh_keys))[:3]
        return [f"other rows: {len(fresh)} vs {len(committed)}; new {extra}, missing {missing}"]
    return []


def spread(fresh: list[dict[str, str]], committed: list[dict[str, str]]) -> dict[str, float]:
    """The largest |fresh - committed| per quantity of :data:`QUANTITIES` over strategies."""
    problems = _shape_problems(fresh, committed)
    if problems:
        raise ValueError(problems[0])
    new, old = _summaries(fresh), _summaries(committed)
    return {
        q: max((abs(new[s][q] - old[s][q]) for s in old if q in old[s]), default=0.0)
        for q in QUANTITIES
    }


def differences(
    fresh: list[dict[str, str]],
    committed: list[dict[str, str]],
    tolerances: dict[str, float] | None = TOLERANCES,
) -> list[str]:
    """What keeps ``fresh`` from reproducing ``committed``; empty when it does.

    ``tolerances=None`` checks the exact part only (rows, columns and float-free cells).
    """
    problems = _shape_problems(fresh, committed)
    if problems:
        return problems
    model_free = {
        r["strategy"]: reads_no_model(r.get("strategy_name", r["strategy"])) for r in committed
    }
    for new, old in zip(fresh, committed, strict=True):
        exact = EXACT_COLUMNS + (PICK_COLUMNS if model_free[old["strategy"]] else ())
        columns = [c for c in exact if c in new]
        problems += [
            f"{_where(new)}: {c} {new[c]} vs {old[c]}"
            for c in columns
            if not same_cell(new[c], old[c])
        ]
    if tolerances is not None:
        new_sum, old_sum = _summaries(fresh), _summaries(committed)
        for strategy, quantities in old_sum.items():
            for q, old_value in quantities.items():
                moved = abs(new_sum[strategy].get(q, math.inf) - old_value)
                if not moved <= tolerances[q]:
                    problems.append(
                        f"{strategy}: {QUANTITIES[q][1]} {q} {new_sum[strategy].get(q):.4g} vs "
                        f"{old_value:.4g} (tolerance {tolerances[q]:g})"
                    )
    return problems
