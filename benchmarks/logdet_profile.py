"""Where LogDet*'s selection time goes, beside the n x n sgemm the facility-location family is
held to (issue 28). The log-determinant family never builds an n x n kernel (kernel="auto" gives it
feature rows computed for the picks only), so the sgemm is only a yardstick; the profile of
LogDetCMI shows its time in the incremental Cholesky chains. Each pick extends every chain by one
vector over the n candidates, ``e = (k_a - c[:, a] @ c) / d_a``, a float64 GEMV over all the
chain's vectors so far (``b`` base vectors for the query/conditioning items, then one per pick):
the chains read ``sum_t (b + t) n 8`` bytes in all. The last lines time those GEMVs alone (the
floor of this algorithm on this machine, memory-bound) beside the sgemm.

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
    sizes = {"logdet": [0], "logdetmi": [0, 25], "logdetcg": [100], "logdetcmi": [100, 125]}
    chains = {}
    for name, bases in sizes.items():
        vectors = [np.ones((b + 100, args.n)) for b in bases]

        def gemvs(vectors=vectors, bases=bases):
            for t in range(100):
                for c, b in zip(vectors, bases, strict=True):
                    part = c[: b + t]
                    part[:, t] @ part

        chains[name] = (
            sum((b + t) * args.n * 8 for b in bases for t in range(100)) / 1e9,
            min(_cpu(gemvs) for _ in range(args.repeats)),
        )
    gemm = min(_cpu(lambda: xs @ xt) for _ in range(args.repeats))
    for name, (gb, seconds) in chains.items():
        print(
            f"{name:<10} chains read {gb:.2f} GB: their GEMVs alone {seconds:.3f} s "
            f"= {seconds / gemm:.2f} x the sgemm ({gemm:.3f} s)"
        )
    profile = cProfile.Profile()
    profile.runcall(select, "logdetcmi", 100, "lazy", **sides)
    pstats.Stats(profile, stream=sys.stdout).sort_stats("tottime").print_stats(8)


if __name__ == "__main__":
    main()
