"""Where LogDet*'s selection time goes, beside the n x n sgemm the facility-location family is
held to (issue 28). The log-determinant family never builds an n x n kernel (kernel="auto" gives it
feature rows computed for the picks only), so the sgemm is only a yardstick; the profile of
LogDetCMI shows its time in the incremental Cholesky chains.

Run:  OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/logdet_profile.py [--n 10000]
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import pstats
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from raresift.submodular import select  # noqa: E402


def _cpu(run) -> float:
    start = time.process_time()
    run()
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(args.n, 64)).astype(np.float32)
    Q = rng.normal(size=(25, 64)).astype(np.float32)
    P = rng.normal(size=(100, 64)).astype(np.float32)
    xs = X / np.linalg.norm(X, axis=1, keepdims=True)
    xt = np.ascontiguousarray(xs.T)
    sides = {"data": X, "query": Q, "conditioning": P}
    print(f"n={args.n}, d=64, q=25, p=100, budget 100, lazy, CPU seconds, min of {args.repeats}")
    for name in ("logdet", "logdetmi", "logdetcg", "logdetcmi"):
        gemm = min(_cpu(lambda: xs @ xt) for _ in range(args.repeats))
        run = functools.partial(select, name, 100, "lazy", **sides)
        sel = min(_cpu(run) for _ in range(args.repeats))
        print(f"{name:<10} n x n sgemm {gemm:.3f} s  selection {sel:.3f} s  ratio {sel / gemm:.2f}")
    profile = cProfile.Profile()
    profile.runcall(select, "logdetcmi", 100, "lazy", **sides)
    pstats.Stats(profile, stream=sys.stdout).sort_stats("tottime").print_stats(8)


if __name__ == "__main__":
    main()
