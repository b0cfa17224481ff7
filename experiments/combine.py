"""Write docs/results/combined-*.md: each scenario's penalty matrices summed over its two studies.

Run after the studies (``make results-studies`` does): ``python experiments/combine.py``.
"""

import os
from pathlib import Path

from raresift.simulate.report import write_combined_penalty

SCENARIOS = [
    ("rare-classes", "rare_accuracy", "rare classes, rare-class accuracy"),
    ("redundancy", "accuracy", "redundancy, test accuracy"),
    ("ood", "accuracy", "out-of-distribution, in-distribution test accuracy"),
]

os.chdir(Path(__file__).resolve().parents[1])  # the reports name the tables from the repo root
for scenario, column, title in SCENARIOS:
    tables = [
        f"docs/results/{scenario}-{data}/results.csv" for data in ("fashion-mnist", "mnist5k")
    ]
    out = write_combined_penalty(
        tables,
        column,
        f"docs/results/combined-{scenario}.md",
        f"{title} (Fashion-MNIST + MNIST 5k)",
    )
    print(f"combined: {out}")
