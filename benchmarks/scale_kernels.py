"""Scoring and kernels at scale, each beside its bound or its predecessor, in one run.

Parts (``--parts``, comma-separated):

- ``scoring``: MaxEnt (entropy) scoring of all of U (``--n`` x ``--dim``, float32 and float16,
  everything but ``--labeled`` items), as the strategy scores a -All round, against the read
  bandwidth measured in the same run (the best of ``--repeats`` streaming passes over the
  float32 array: a pass that reads every byte and computes next to nothing). The bound of each
  case is its bytes over that bandwidth; ``x bound`` is scoring time over bound time.
- ``sparse-fl``: facility location over a sparse k-NN kernel (``--fl-n`` x 64, k = 100, budget
  100, naive greedy, shifted cosine), kernel construction included, by this tree and by the code
  at ``--old`` (a checkout of an earlier commit, run in its own process), side by side.

- ``build``: the 10^8 pipeline at ``--build-n`` x 64: a float16 synthetic pool written to
  ``--scratch`` chunk by chunk, then an on-disk sharded ``IVF<4 sqrt(n)>,SQ8`` index
  (``build_sharded_index``, 100,000 training rows), with times and peak RSS. Generation is
  linear in n (its 10^8 estimate is a plain scaling); adding through the flat coarse quantiser
  costs n x nlist, so the 10^8 estimate scales the whole measured build (training included,
  which makes it an over-estimate) by 100 x 10.

Dense FL against submodlib is ``benchmarks/submodular_vs_submodlib.py --sizes 10000``.

Command behind docs/results/seals.md (single-threaded, under the shared heavy-work lock):
    git worktree add --detach /work/scratch/wt16/old-4cdc122 4cdc122
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONPATH=src \\
        python benchmarks/scale_kernels.py --old /work/scratch/wt16/old-4cdc122
Quick run:
    PYTHONPATH=src python benchmarks/scale_kernels.py --n 100000 --fl-n 10000 --old ''
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def read_pass(x: np.ndarray, block: int = 65_536) -> float:
    """One streaming read of every byte of ``x`` (a column sum per block of rows)."""
    total = 0.0
    for lo in range(0, x.shape[0], block):
        total += float(np.add.reduce(x[lo : lo + block], axis=0)[0])
    return total


def scoring(args) -> list[dict]:
    from sklearn.linear_model import LogisticRegression

    from raresift.models.sklearn_model import SklearnModel
    from raresift.pool import Labels, Pool
    from raresift.strategies import make_strategy
    from raresift.strategies.base import SelectionState

    rng = np.random.default_rng(0)
    x32 = rng.standard_normal((args.n, args.dim), dtype=np.float32)
    labeled = np.sort(rng.choice(args.n, size=args.labeled, replace=False))
    y = (x32[labeled, 0] > 1.5).astype(int)
    model = SklearnModel(LogisticRegression(max_iter=200), n_classes=2).fit(x32[labeled], y)
    candidates = np.setdiff1d(np.arange(args.n), labeled)
    strategy = make_strategy("entropy")
    rows = []
    bandwidth = x32.nbytes / best_of(lambda: read_pass(x32), args.repeats)
    for dtype in (np.float32, np.float16):
        x = x32 if dtype == np.float32 else x32.astype(np.float16)
        pool = Pool(x)
        state = SelectionState(pool, Labels(labeled, y), model)
        bound = x.nbytes / bandwidth
        score = best_of(lambda s=state: strategy.score(s, candidates), args.repeats)
        rows.append(
            {
                "case": f"entropy -All, {args.n:,} x {args.dim} {np.dtype(dtype).name}",
                "GB": x.nbytes / 1e9,
                "read s": bound,
                "read GB/s": x.nbytes / 1e9 / bound,
                "score s": score,
                "x bound": score / bound,
            }
        )
        del pool, state
    return rows


def build(args) -> list[dict]:
    import shutil
    import time

    from raresift.index import build_sharded_index, ivf_nlist
    from raresift.simulate.synthetic import make_synthetic_concepts

    n, scratch = args.build_n, Path(args.scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    data = make_synthetic_concepts(
        n=n, dim=64, n_concepts=3, path=scratch / "pool16.npy", dtype="float16", progress=False
    )
    generated = time.perf_counter() - start
    nlist = ivf_nlist(n)
    start = time.perf_counter()
    index = build_sharded_index(
        data.train, f"IVF{nlist},SQ8", scratch / "index", shard_size=max(1, n // 4), progress=False
    )
    built = time.perf_counter() - start
    on_disk = sum(f.stat().st_size for f in (scratch / "index").iterdir()) / 1e9
    scale, big_nlist = 10**8 / n, ivf_nlist(10**8)
    rows = [
        {
            "case": f"{n:,} x 64 float16, IVF{nlist},SQ8",
            "generate s": generated,
            "build s": built,
            "index GB": on_disk,
            "peak RSS GB": peak_rss_gb(),
            "10^8 generate s (est.)": generated * scale,
            "10^8 add s (est.)": built * scale * big_nlist / nlist,
        }
    ]
    del index, data
    shutil.rmtree(scratch)
    return rows


def peak_rss_gb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def sparse_fl_worker(n: int) -> dict:
    """Run in a subprocess whose PYTHONPATH names the tree under test."""
    import raresift
    from raresift.kernels import knn_kernel
    from raresift.submodular import select

    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 64)).astype(np.float32)
    start = time.perf_counter()
    kernel = knn_kernel(X, 100)
    built = time.perf_counter() - start
    sel = select("fl", 100, "naive", data_kernel=kernel, seed=0)
    total = time.perf_counter() - start
    return {
        "tree": str(Path(raresift.__file__).parents[2]),
        "kernel s": built,
        "greedy s": total - built,
        "total s": total,
        "nnz": int(kernel.matrix.nnz),
        "picks": [int(i) for i in sel.indices[:10]],
    }


def sparse_fl(args) -> list[dict]:
    trees = [("this tree", ROOT)] + ([("old", Path(args.old))] if args.old else [])
    rows = []
    for label, tree in trees:
        env = dict(os.environ, PYTHONPATH=str(tree / "src"))
        cmd = [sys.executable, __file__, "--worker-sparse-fl", str(args.fl_n)]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"{label} failed: {done.stderr.strip().splitlines()[-1:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        result["case"] = f"sparse FL n={args.fl_n:,} k=100 ({label})"
        rows.append(result)
    if len(rows) == 2:
        rows[0]["speedup"] = rows[1]["total s"] / rows[0]["total s"]
        rows[1]["speedup"] = 1.0
    return rows


def show(rows: list[dict], keys: list[str]) -> None:
    def cell(v):
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    table = [["case", *keys]] + [[r["case"], *(cell(r.get(k, "-")) for k in keys)] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for i, row in enumerate(table):
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    print(flush=True)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--worker-sparse-fl":
        print(json.dumps(sparse_fl_worker(int(sys.argv[2]))))
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--parts", default="scoring,sparse-fl")
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--labeled", type=int, default=2000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--fl-n", type=int, default=100_000)
    p.add_argument("--old", default="", help="checkout of the earlier tree ('' to skip)")
    p.add_argument("--build-n", type=int, default=1_000_000)
    p.add_argument("--scratch", default="/work/scratch/wt16/build")
    args = p.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    parts = args.parts.split(",")
    if "scoring" in parts:
        show(scoring(args), ["GB", "read s", "read GB/s", "score s", "x bound"])
    if "build" in parts:
        keys = ["generate s", "build s", "index GB", "peak RSS GB"]
        show(build(args), keys + ["10^8 generate s (est.)", "10^8 add s (est.)"])
    if "sparse-fl" in parts:
        rows = sparse_fl(args)
        show(rows, ["kernel s", "greedy s", "total s", "nnz", "speedup"])
        for r in rows:
            print(f"{r['case']}: first picks {r['picks']}")


if __name__ == "__main__":
    main()
