"""Where the facility-location family's selection time goes, beside the one sgemm that builds its
n x n kernel (issue 28: within 1.5x of it).

For each objective: the sgemm; the build (the sgemm, the finish and the first gains in one pass,
plus the query and conditioning kernels); the 100 greedy steps; and what the steps must read.
A step updates every gain from the kernel rows whose ``h_i`` moved (the represented items whose
clipped running maximum rose), so the steps read ``rows moved`` full rows in all, counted here
in passes over the kernel (n rows each) by replaying the picks; ``entries that change a gain``
counts those among them above the row's old maximum (only they change a gain; the others are
read to find them). ``one pass`` times the compiled update over all n rows.

Run:  OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/fl_profile.py [--n 10000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from raresift.submodular import loops, make_objective, select  # noqa: E402


def _seconds(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def _moved_rows(fn, picks: np.ndarray) -> tuple[int, int]:
    """Rows whose clipped running maximum rose, summed over the picks, and the entries among them
    above the old clipped maximum."""
    matrix, running = fn.cover.matrix, np.zeros(fn.n, dtype=np.float32)
    rows = entries = 0
    for j in picks.tolist():
        new = np.maximum(running, matrix[j])
        old = fn._bounded(running)
        moved = np.flatnonzero(fn._bounded(new) > old)
        rows += moved.size
        entries += int(np.count_nonzero(matrix[moved] > old[moved, None]))
        running = new
    return rows, entries


def _one_pass(matrix: np.ndarray) -> None:
    """The compiled gain update over every kernel row (as when every running maximum moves)."""
    n = matrix.shape[0]
    lo, hi = np.zeros(n, np.float32), np.full(n, np.inf, np.float32)
    loops.add_clipped_rows(matrix, np.arange(n), lo, hi, np.zeros(n), -1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    n = args.n
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 64)).astype(np.float32)
    sides = {
        "query": rng.normal(size=(25, 64)).astype(np.float32),
        "conditioning": rng.normal(size=(100, 64)).astype(np.float32),
    }
    xs = X / np.linalg.norm(X, axis=1, keepdims=True)
    xt = np.ascontiguousarray(xs.T)
    print(f"n={n}, d=64, q=25, p=100, budget 100, naive greedy, wall s, min of {args.repeats}")
    print(
        f"{'objective':<9} {'sgemm':>6} {'build':>6} {'steps':>6} {'x sgemm':>8} "
        f"{'rows moved':>11} {'one pass':>9} {'entries that change a gain':>27}"
    )
    for name in ("fl", "flvmi", "flcg", "flcmi"):
        gemm = build = steps = np.inf
        for _ in range(args.repeats):
            gemm = min(gemm, _seconds(lambda: xs @ xt))
            start = time.perf_counter()
            fn = make_objective(name, data=X, **sides)
            build = min(build, time.perf_counter() - start)
            start = time.perf_counter()
            sel = select(fn, 100, "naive")
            steps = min(steps, time.perf_counter() - start)
        rows, entries = _moved_rows(fn, sel.indices)
        one_pass = min(
            _seconds(lambda m=fn.cover.matrix: _one_pass(m)) for _ in range(args.repeats)
        )
        print(
            f"{name:<9} {gemm:6.3f} {build:6.3f} {steps:6.3f} {(build + steps) / gemm:8.2f} "
            f"{rows / n:6.2f} pass {one_pass:7.3f} s {entries / n / n:21.2f} pass"
        )


if __name__ == "__main__":
    main()
