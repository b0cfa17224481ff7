"""Compare two studies' results.csv on every cell but the timing columns (``seconds_*``).

``python experiments/compare.py NEW/results.csv OLD/results.csv`` prints the number of differing
cells and the first few (strategy, seed, round, column, new, old); it exits 1 when any differ or
the two tables do not have the same rows and columns. Floats are equal to 1e-9 relative: this is
the same-machine check; ``raresift.simulate.reproduce.differences`` is the one that holds across
CPUs (what tests/test_committed_results.py uses). Example:

    raresift simulate experiments/ood-mnist5k.toml --out /tmp/ood --no-resume
    python experiments/compare.py /tmp/ood/results.csv docs/results/ood-mnist5k/results.csv
"""

import argparse
import sys

from raresift.simulate.reproduce import read_table as read_rows
from raresift.simulate.reproduce import same_cell


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("new")
    parser.add_argument("old")
    parser.add_argument("--show", type=int, default=10, help="differing cells to print")
    args = parser.parse_args(argv)
    new, old = read_rows(args.new), read_rows(args.old)
    same_columns = [list(r) for r in new[:1]] == [list(r) for r in old[:1]]
    if len(new) != len(old) or not same_columns:
        columns = "the same columns" if same_columns else "other columns"
        print(f"not comparable: {len(new)} vs {len(old)} rows, {columns}")
        return 1
    keys = ("strategy", "seed", "round")
    differ = [
        (*(r[k] for k in keys), col, r[col], o[col])
        for r, o in zip(new, old, strict=True)
        for col in r
        if not same_cell(r[col], o[col])
    ]
    print(f"{len(differ)} of {len(new) * len(new[0])} cells differ ({len(new)} rows)")
    for cell in differ[: args.show]:
        print("  ", *cell)
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
